"""A UDP port range for ICE host candidates: :func:`bind_ports_in_range` replaces
aioice's gathering step on each connection."""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import random
import socket
from collections.abc import Iterator

from aioice import turn
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol
from aiortc import RTCPeerConnection

from ..errors import NoFreePort
from .internals import add_ice_protocols, ice_connection, ice_protocols

logger = logging.getLogger(__name__)


def bind_ports_in_range(pc: RTCPeerConnection, port_min: int, port_max: int) -> None:
    """Make ``pc``'s ICE connections bind their host candidates to UDP ports within
    ``port_min``..``port_max`` (inclusive) instead of ports the system chooses.

    aioice binds one socket per host address and component to port 0.  The replacement
    gathering step binds each address to a free port of the range, trying the ports in a
    random order and skipping those in use, and raises :class:`~sfu.errors.NoFreePort`
    when every port of the range is taken on an address (the sockets it bound so far are
    closed).  Candidates are otherwise aioice's: host type, same priority and foundation,
    same receive buffer size; an address that cannot be bound for another reason is
    skipped, as aioice does.  Only host candidates are gathered (the SFU has no STUN or
    TURN server).  Call before the local description is set (gathering starts then);
    later calls do nothing.
    """
    for transceiver in pc.getTransceivers():
        connection = ice_connection(transceiver.receiver.transport.transport)
        if isinstance(connection.__dict__.get("get_component_candidates"), _PortRangeGathering):
            continue
        if connection.stun_server is not None or connection.turn_server is not None:
            raise ValueError("a UDP port range applies to host candidates only")
        connection.get_component_candidates = _PortRangeGathering(  # type: ignore[method-assign]  # per instance
            connection, port_min, port_max
        )


class _PortRangeGathering:
    """``Connection.get_component_candidates`` replacement; see :func:`bind_ports_in_range`."""

    def __init__(self, connection: Connection, port_min: int, port_max: int) -> None:
        if not 0 < port_min <= port_max <= 65535:
            raise ValueError(f"invalid UDP port range {port_min}-{port_max}")
        self._connection = connection
        self._min = port_min
        self._max = port_max

    async def __call__(
        self,
        component: int,
        addresses: list[str],
        timeout: int = 5,  # noqa: ASYNC109  # aioice's signature; bounds STUN/TURN, unused
    ) -> list[Candidate]:
        candidates: list[Candidate] = []
        bound: list[StunProtocol] = []
        try:
            for address in addresses:
                protocol = await self._bind(address)
                if protocol is None:
                    continue
                bound.append(protocol)
                host, port = protocol.transport.get_extra_info("sockname")[:2]
                protocol.local_candidate = Candidate(
                    foundation=candidate_foundation("host", "udp", host),
                    component=component,
                    transport="udp",
                    priority=candidate_priority(component, "host"),
                    host=host,
                    port=port,
                    type="host",
                )
                candidates.append(protocol.local_candidate)
        except BaseException:
            for protocol in bound:
                await protocol.close()
            raise
        add_ice_protocols(self._connection, bound)
        return candidates

    def _ports(self) -> Iterator[int]:
        """Every port of the range once, in a random order: a random start and a random
        step coprime with the range's size (no list of the whole range is built)."""
        size = self._max - self._min + 1
        start = random.randrange(size)
        step = 1
        if size > 2:
            step = random.randrange(1, size)
            while math.gcd(step, size) != 1:
                step = random.randrange(1, size)
        for i in range(size):
            yield self._min + (start + i * step) % size

    async def _bind(self, address: str) -> StunProtocol | None:
        loop = asyncio.get_running_loop()
        connection = self._connection
        for port in self._ports():
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: StunProtocol(connection), local_addr=(address, port)
                )
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    continue
                logger.info("could not bind to %s - %s", address, exc)
                return None
            sock = transport.get_extra_info("socket")
            try:
                if sock is not None:
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_RCVBUF, turn.UDP_SOCKET_BUFFER_SIZE
                    )
            except OSError as exc:
                await protocol.close()
                logger.info("could not bind to %s - %s", address, exc)
                return None
            return protocol
        raise NoFreePort(self._min, self._max)


def local_addresses(pc: RTCPeerConnection) -> list[tuple[str, int]]:
    """The (address, port) of every socket ``pc``'s ICE connections have bound."""
    seen: set[int] = set()
    addresses = []
    for transceiver in pc.getTransceivers():
        connection = ice_connection(transceiver.receiver.transport.transport)
        if id(connection) in seen:
            continue
        seen.add(id(connection))
        for protocol in ice_protocols(connection):
            addresses.append(tuple(protocol.transport.get_extra_info("sockname")[:2]))
    return addresses
