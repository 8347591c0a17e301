"""Test tools on a connection's RTP path (through ``sfu.rtc``'s accessors)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import RTCDtlsTransport

from sfu.rtc import receive
from sfu.rtc.internals import nominated_pair


class _Delayed(asyncio.DatagramProtocol):
    """Stands between a socket's asyncio transport and its protocol: each datagram
    reaches the protocol ``seconds`` later (``None``: never)."""

    def __init__(self, protocol: Any, seconds: float | None) -> None:
        self._protocol = protocol
        self._seconds = seconds
        self._loop = asyncio.get_running_loop()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if self._seconds is not None:
            # looked up when due: the direct receive path may be installed meanwhile
            self._loop.call_later(self._seconds, self._deliver, data, addr)

    def _deliver(self, data: bytes, addr: tuple) -> None:
        self._protocol.datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        self._protocol.error_received(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._protocol.connection_lost(exc)


def delay_incoming(dtls: RTCDtlsTransport, seconds: float | None) -> None:
    """Deliver every datagram arriving on the nominated pair's socket (STUN included)
    ``seconds`` late, in order, as a receiver that is behind on its socket's queue would;
    ``None`` drops them all (a peer that went away)."""
    pair = nominated_pair(dtls)
    assert pair is not None, "not connected"
    receive.stop_polling(dtls)  # the socket is read by asyncio again, through the delay
    transport = pair.protocol.transport
    transport.set_protocol(_Delayed(transport.get_protocol(), seconds))


def nominated_local_address(dtls: RTCDtlsTransport) -> tuple[str, int]:
    """The (address, port) of the socket of ``dtls``'s nominated pair."""
    pair = nominated_pair(dtls)
    assert pair is not None, "not connected"
    return tuple(pair.protocol.transport.get_extra_info("sockname")[:2])
