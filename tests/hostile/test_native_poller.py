"""The receive poller's epoll set (``caucus_poller``) when sockets close under it: a
registration belongs to its receiver, so removing a receiver whose socket aioice closed
never removes the socket that was given the same descriptor number afterwards; a socket
closed behind the poller's back is swept out and its port released."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from client.receive_poller import ReceivePoller
from sfu.rtc.internals import datagram_socket
from tests.support.eventually import eventually

from .native_support import fast


class Protocol(asyncio.DatagramProtocol):
    """A protocol object as aioice's (whose methods can be replaced per instance)."""


class Endpoint:
    """A real asyncio datagram endpoint with a compiled receiver the poller reads, and
    the datagrams Python was handed for it."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self.transport: Any = transport
        sock = datagram_socket(transport)
        assert sock is not None
        self.sock: socket.socket = sock
        self.address = self.sock.getsockname()
        self.rx: Any = fast.ffi.new("caucus_receiver *")
        self.seen: list[bytes] = []

    def handler(self, result: int) -> None:
        self.seen.append(bytes(fast.ffi.buffer(self.rx.buf, self.rx.length)))


async def endpoint(sock: socket.socket | None = None) -> Endpoint:
    loop = asyncio.get_running_loop()
    if sock is None:
        transport, _ = await loop.create_datagram_endpoint(Protocol, local_addr=("127.0.0.1", 0))
    else:
        transport, _ = await loop.create_datagram_endpoint(Protocol, sock=sock)
    return Endpoint(transport)


@pytest.fixture
async def poller() -> AsyncIterator[ReceivePoller]:
    poller = ReceivePoller()
    yield poller
    poller.close()


def send(address: tuple[str, int], data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(data, address)


async def test_a_closed_sockets_receiver_never_removes_the_next_socket_of_its_number(
    poller: ReceivePoller,
) -> None:
    first = await endpoint()
    poller.attach(first.transport, first.sock, first.rx, first.handler)
    number = first.sock.fileno()
    first.transport.close()  # as aioice closes an ICE connection's sockets
    await eventually(lambda: first.sock.fileno() == -1, 5)
    # the next socket gets the same number (made certain here)
    fresh = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if fresh.fileno() != number:
        os.dup2(fresh.fileno(), number)
        fresh.close()
        fresh = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, fileno=number)
    fresh.bind(("127.0.0.1", 0))
    fresh.setblocking(False)
    second = await endpoint(fresh)
    assert second.sock.fileno() == number
    poller.attach(second.transport, second.sock, second.rx, second.handler)
    # the first connection's DTLS transport leaves "connected" later and detaches
    poller.detach_all([first.rx])
    send(second.address, b"\x00\x01 for the second socket")
    await eventually(lambda: second.seen == [b"\x00\x01 for the second socket"], 5)
    assert first.seen == [] and second.rx.registered
    assert not first.rx.registered and first.rx.fd == -1
    second.transport.close()


async def test_connection_lost_detaches_before_the_socket_closes(
    poller: ReceivePoller,
) -> None:
    first = await endpoint()
    poller.attach(first.transport, first.sock, first.rx, first.handler)
    assert first.rx.registered and first.rx.fd not in (-1, first.sock.fileno())
    first.transport.close()
    await eventually(lambda: first.sock.fileno() == -1, 5)
    assert not first.rx.registered and first.rx.fd == -1
    assert poller._attached == {} and poller._timer is None
    # the port is free again: nothing holds the socket open
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(first.address)


async def test_a_socket_closed_behind_the_pollers_back_is_swept(
    poller: ReceivePoller,
) -> None:
    first = await endpoint()
    kept = await endpoint()
    poller.attach(first.transport, first.sock, first.rx, first.handler)
    poller.attach(kept.transport, kept.sock, kept.rx, kept.handler)
    first.sock.close()  # neither the transport nor the protocol hears of it
    assert first.rx.registered  # still read through the receiver's own descriptor
    await eventually(lambda: not first.rx.registered, 3 * poller.SWEEP_INTERVAL)
    assert first.rx.fd == -1 and kept.rx.registered
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(first.address)
    send(kept.address, b"\x00\x01 still read")
    await eventually(lambda: kept.seen == [b"\x00\x01 still read"], 5)
    first.transport.close()
    kept.transport.close()
