"""Small network probes the harness's tests run on either side of a link: in the test's
process (the root namespace) or in a participant's namespace as a child
(``participant.start("tests.weaknet.probes:UdpSink.open")``).  Datagrams carry a sequence
number in their first four bytes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from typing import Any, Self

from tests.support.weaknet import kbit_per_s, large_receive_buffer

_SEQ = struct.Struct("!I")


class _UdpEndpoint(asyncio.DatagramProtocol):
    """A UDP port with a large receive buffer; :meth:`open` binds it."""

    def __init__(self) -> None:
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls, host: str = "0.0.0.0", port: int = 0) -> Self:
        endpoint = cls()
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: endpoint, local_addr=(host, port)
        )
        endpoint._transport = transport
        large_receive_buffer(transport)
        endpoint.port = transport.get_extra_info("sockname")[1]
        return endpoint

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class UdpSink(_UdpEndpoint):
    """Counts the datagrams and bytes arriving on a UDP port, and their sequence numbers."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.datagrams = 0
        self.sequences: list[int] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.bytes += len(data)
        self.datagrams += 1
        if len(data) >= _SEQ.size:
            self.sequences.append(_SEQ.unpack_from(data)[0])

    def snapshot(self) -> dict[str, float]:
        """Bytes and datagrams so far, at ``time`` (``time.monotonic()``: every namespace's)."""
        return {"time": time.monotonic(), "bytes": self.bytes, "datagrams": self.datagrams}


class UdpEcho(_UdpEndpoint):
    """Sends every datagram back where it came from."""

    def __init__(self) -> None:
        super().__init__()
        self.echoed = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self._transport is not None
        self.echoed += 1
        self._transport.sendto(data, addr)


class TcpEcho:
    """A TCP server that sends back what it reads, connection by connection."""

    def __init__(self, server: asyncio.Server) -> None:
        self._server = server
        self.port: int = server.sockets[0].getsockname()[1]

    @classmethod
    async def open(cls, host: str = "0.0.0.0", port: int = 0) -> TcpEcho:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        return cls(await asyncio.start_server(echo, host, port))

    def close(self) -> None:
        self._server.close()


async def tcp_roundtrip(host: str, port: int, payload: str) -> str:
    """``payload`` sent over a new TCP connection to an echo server and read back."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(payload.encode())
        await writer.drain()
        return (await reader.readexactly(len(payload.encode()))).decode()
    finally:
        writer.close()


class UdpSource:
    """Sends sequence-numbered datagrams of ``size`` bytes to one address at ``rate``
    bit/s of payload, paced by the event loop's clock, until stopped."""

    def __init__(self) -> None:
        self.sent = 0
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    def start(self, host: str, port: int, rate: int, size: int = 1000) -> None:
        self.stop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect((host, port))
        self._socket = sock
        self._task = asyncio.ensure_future(self._send(sock, rate, size))

    async def _send(self, sock: socket.socket, rate: int, size: int) -> None:
        loop = asyncio.get_running_loop()
        interval = size * 8 / rate
        padding = bytes(size - _SEQ.size)
        due = loop.time()
        while True:
            while due <= loop.time():
                with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                    sock.send(_SEQ.pack(self.sent) + padding)
                self.sent += 1
                due += interval
            await asyncio.sleep(due - loop.time())  # pacing: the next datagram's due time

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def close(self) -> None:
        self.stop()


class Pinger(asyncio.DatagramProtocol):
    """Round trips to a UDP echo server (directly or through a relay), and bursts of
    sequence-numbered datagrams whose echoes it counts."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._waiting: dict[int, asyncio.Future[float]] = {}
        self._transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls) -> Pinger:
        pinger = cls()
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: pinger, local_addr=("0.0.0.0", 0)
        )
        pinger._transport = transport
        large_receive_buffer(transport)
        return pinger

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        sequence = _SEQ.unpack_from(data)[0]
        self.received.append(sequence)
        waiting = self._waiting.pop(sequence, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(time.monotonic())

    async def rtts(self, host: str, port: int, count: int, within: float = 2.0) -> list[float]:
        """``count`` round trips one after the other; each in seconds."""
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        results = []
        for sequence in range(1 << 30, (1 << 30) + count):
            answer = loop.create_future()
            self._waiting[sequence] = answer
            sent = time.monotonic()
            self._transport.sendto(_SEQ.pack(sequence) + bytes(60), (host, port))
            async with asyncio.timeout(within):
                results.append(await answer - sent)
        return results

    async def burst(self, host: str, port: int, count: int, rate: float, first: int = 0) -> int:
        """Send datagrams ``first`` … ``first + count - 1`` at ``rate`` a second; returns
        how many were sent.  Their echoes land in :attr:`received`."""
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index in range(count):
            due = start + index / rate
            if due > loop.time():
                await asyncio.sleep(due - loop.time())  # pacing
            self._transport.sendto(_SEQ.pack(first + index) + bytes(100), (host, port))
        return count

    def echoes(self, first: int = 0, last: int = 1 << 30) -> list[int]:
        """The sequence numbers in [``first``, ``last``) whose echo came back."""
        return sorted(s for s in self.received if first <= s < last)

    async def tcp_roundtrip(self, host: str, port: int, payload: str) -> str:
        return await tcp_roundtrip(host, port, payload)

    def unreachable(self, host: str, port: int) -> str:
        """The error a UDP datagram to ``host`` meets (``""`` when it is sent)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(b"x", (host, port))
            except OSError as exc:
                return f"{type(exc).__name__}: {exc}"
        return ""

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def rate_kbit(before: dict[str, Any], after: dict[str, Any]) -> float:
    """The rate between two :meth:`UdpSink.snapshot`s in kbit/s of Ethernet frames."""
    return kbit_per_s(
        int(after["bytes"] - before["bytes"]),
        int(after["datagrams"] - before["datagrams"]),
        after["time"] - before["time"],
    )
