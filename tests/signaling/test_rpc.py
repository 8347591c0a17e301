"""The channel between signaling nodes and media workers: authentication, calls both
ways, ordered notifications, and what happens when a side breaks the rules or goes away."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from signaling.cluster.rpc import ConnectionLost, RpcConnection, RpcError

SECRET = "a cluster secret for tests"


class Side:
    """A listening side (the worker's role) that records what reaches it."""

    def __init__(self) -> None:
        self.accepted: list[RpcConnection] = []
        self.refused = 0
        self.notes: list[Any] = []
        self.server: asyncio.Server | None = None
        self.changed = asyncio.Event()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(5):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    async def handler(self, method: str, params: dict[str, Any]) -> Any:
        if method == "echo":
            return params
        if method == "note":
            await asyncio.sleep(0.01 if params["n"] % 2 else 0)  # handled in order anyway
            self.notes.append(params["n"])
            self.changed.set()
            return None
        if method == "ask_back":
            return await self.accepted[0].call("double", {"x": params["x"]})
        if method == "slow":
            await asyncio.Event().wait()
        raise ValueError(f"no method {method}")

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = await RpcConnection.accept(reader, writer, SECRET, self.handler)
        if connection is None:
            self.refused += 1
        else:
            self.accepted.append(connection)
        self.changed.set()


@pytest.fixture
async def side() -> AsyncIterator[tuple[Side, int]]:
    side = Side()
    side.server = await asyncio.start_server(side.accept, "127.0.0.1", 0)
    port = side.server.sockets[0].getsockname()[1]
    yield side, port
    side.server.close()
    for connection in side.accepted:
        await connection.close()


async def doubler(method: str, params: dict[str, Any]) -> Any:
    assert method == "double"
    return params["x"] * 2


async def test_calls_both_ways_and_notifications_in_order(side: tuple[Side, int]) -> None:
    worker, port = side
    node = await RpcConnection.connect("127.0.0.1", port, SECRET, doubler)
    try:
        assert await node.call("echo", {"a": [1, "two"]}) == {"a": [1, "two"]}
        # the worker calls the node back while the node's call is in progress
        assert await node.call("ask_back", {"x": 21}) == 42
        for n in range(20):
            await node.notify("note", {"n": n})
        await node.call("echo", {})  # answered after the notifications were read
        await worker.until(lambda: len(worker.notes) == 20)
        assert worker.notes == list(range(20))
        with pytest.raises(RpcError, match="no method nothing"):
            await node.call("nothing", {})
    finally:
        await node.close()


async def test_a_wrong_secret_is_refused(side: tuple[Side, int]) -> None:
    worker, port = side
    with pytest.raises(RpcError, match="refused"):
        await RpcConnection.connect("127.0.0.1", port, "not the cluster secret", doubler)
    assert worker.refused == 1 and not worker.accepted


async def test_garbage_instead_of_a_proof_is_refused(side: tuple[Side, int]) -> None:
    worker, port = side
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readexactly(4)  # the challenge's length; then send nonsense
    writer.write(b"\x00\x00\x00\x05hello")
    await writer.drain()
    async with asyncio.timeout(5):
        await reader.read()  # the worker closes the connection
    await worker.until(lambda: worker.refused == 1)
    assert not worker.accepted
    writer.close()


async def test_an_oversized_frame_ends_the_connection(side: tuple[Side, int]) -> None:
    worker, port = side
    lost = asyncio.Event()
    node = await RpcConnection.connect("127.0.0.1", port, SECRET, doubler)
    await worker.until(lambda: bool(worker.accepted))
    worker.accepted[0].on_close = lambda _c: lost.set()
    node._writer.write(struct.pack(">I", 64 * 1024 * 1024))  # longer than allowed
    await node._writer.drain()
    async with asyncio.timeout(5):
        await lost.wait()
        await node.closed.wait()
    with pytest.raises(ConnectionLost):
        await node.call("echo", {})


async def test_pending_calls_fail_when_the_other_side_goes_away(side: tuple[Side, int]) -> None:
    worker, port = side
    node = await RpcConnection.connect("127.0.0.1", port, SECRET, doubler)
    closed: list[RpcConnection] = []
    node.on_close = closed.append
    call = asyncio.ensure_future(node.call("slow", {}))
    await worker.until(lambda: bool(worker.accepted))
    await worker.accepted[0].close()  # the worker dies mid-call
    with pytest.raises(ConnectionLost):
        async with asyncio.timeout(5):
            await call
    assert closed == [node]
    await node.close()


# --- the channel's protection ---------------------------------------------------------


class Relay:
    """A TCP hop between the node and the worker that sees every byte, as anyone on the
    network between them would, and may change what the node sends (``alter``: frame
    index -> replacement frames, the length prefix included)."""

    def __init__(self, port: int, alter: dict[int, Callable[[bytes], list[bytes]]]) -> None:
        self.port = port
        self.alter = alter
        self.seen = bytearray()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._hop, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _hop(self, node_reader: asyncio.StreamReader, node_writer) -> None:
        worker_reader, worker_writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def node_to_worker() -> None:
            index = 0
            with contextlib.suppress(asyncio.IncompleteReadError, OSError):
                while True:
                    header = await node_reader.readexactly(4)
                    frame = header + await node_reader.readexactly(struct.unpack(">I", header)[0])
                    self.seen += frame
                    for out in self.alter.get(index, lambda f: [f])(frame):
                        worker_writer.write(out)
                    await worker_writer.drain()
                    index += 1
            worker_writer.close()

        async def worker_to_node() -> None:
            with contextlib.suppress(OSError):
                while data := await worker_reader.read(65536):
                    self.seen += data
                    node_writer.write(data)
                    await node_writer.drain()
            node_writer.close()

        for job in (node_to_worker(), worker_to_node()):
            task = asyncio.ensure_future(job)
            self.tasks.add(task)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in self.tasks:
            task.cancel()


@pytest.fixture
async def relayed(side: tuple[Side, int]) -> AsyncIterator[Callable[..., Any]]:
    relays: list[Relay] = []

    async def make(**alter: Callable[[bytes], list[bytes]]) -> tuple[Relay, int]:
        relay = Relay(side[1], {int(k.removeprefix("frame_")): f for k, f in alter.items()})
        relays.append(relay)
        return relay, await relay.start()

    yield make
    for relay in relays:
        await relay.close()


async def test_nothing_said_on_the_channel_can_be_read_on_the_wire(
    side: tuple[Side, int], relayed
) -> None:
    worker, _ = side
    relay, port = await relayed()
    node = await RpcConnection.connect("127.0.0.1", port, SECRET, doubler)
    try:
        marker = "the-claimant-will-settle-for-40000"
        assert await node.call("echo", {"offer": marker}) == {"offer": marker}
        await node.notify("note", {"n": 7})
        await worker.until(lambda: worker.notes == [7])
    finally:
        await node.close()
    assert marker.encode() not in relay.seen
    assert b"echo" not in relay.seen and b"note" not in relay.seen
    assert SECRET.encode() not in relay.seen


def _flip(frame: bytes) -> list[bytes]:
    return [frame[:-1] + bytes((frame[-1] ^ 1,))]


@pytest.mark.parametrize(
    "alter",
    [
        pytest.param({"frame_1": _flip}, id="a bit flipped"),
        pytest.param({"frame_1": lambda f: [f, f]}, id="a message replayed"),
        pytest.param({"frame_1": lambda f: []}, id="a message dropped"),
    ],
)
async def test_a_message_altered_on_the_way_ends_the_connection(
    side: tuple[Side, int], relayed, alter
) -> None:
    """Frame 0 is the node's proof; from frame 1 on every message is sealed.  A flipped
    bit fails its tag; a replayed or a dropped one is opened with the wrong counter."""
    worker, _ = side
    _relay, port = await relayed(**alter)
    node = await RpcConnection.connect("127.0.0.1", port, SECRET, doubler)
    await worker.until(lambda: bool(worker.accepted))
    lost = asyncio.Event()
    worker.accepted[0].on_close = lambda _c: lost.set()
    await node.notify("note", {"n": 1})  # frame 1
    await node.notify("note", {"n": 2})  # frame 2: after a drop, opened with the wrong nonce
    async with asyncio.timeout(5):
        await lost.wait()
        await node.closed.wait()
    assert worker.notes in ([], [1])  # never acted on twice, nothing after a gap
    with pytest.raises(ConnectionLost):
        await node.call("echo", {})


async def test_a_listener_without_the_secret_cannot_pose_as_a_worker() -> None:
    """A process on the worker's address that does not hold the secret: it cannot answer
    the node's challenge, and the node refuses to go on (nothing it would forward, such
    as a party's SDP, reaches it)."""
    received: list[bytes] = []
    hung_up = asyncio.Event()

    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = json.dumps({"challenge": "ab" * 32}).encode()
        writer.write(struct.pack(">I", len(body)) + body)
        header = await reader.readexactly(4)
        received.append(await reader.readexactly(struct.unpack(">I", header)[0]))
        welcome = json.dumps({"ok": True, "proof": "00" * 32}).encode()
        writer.write(struct.pack(">I", len(welcome)) + welcome)
        await writer.drain()
        received.append(await reader.read())  # whatever follows, until the node hangs up
        hung_up.set()
        writer.close()

    server = await asyncio.start_server(impostor, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(RpcError, match="did not prove"):
            await RpcConnection.connect("127.0.0.1", port, SECRET, doubler)
        async with asyncio.timeout(5):
            await hung_up.wait()
        assert received[1] == b""
        assert SECRET.encode() not in received[0]
    finally:
        server.close()


@pytest.mark.parametrize("challenge", ["", "zz" * 32, "ab" * 31, 42, None, "ab" * 33], ids=repr)
async def test_a_malformed_challenge_from_the_node_is_refused(
    side: tuple[Side, int], challenge: object
) -> None:
    worker, port = side
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    header = await reader.readexactly(4)
    await reader.readexactly(struct.unpack(">I", header)[0])
    body = json.dumps({"challenge": challenge, "proof": "00" * 32}).encode()
    writer.write(struct.pack(">I", len(body)) + body)
    await writer.drain()
    async with asyncio.timeout(5):
        await reader.read()  # closed by the worker
    await worker.until(lambda: worker.refused == 1)
    assert not worker.accepted
    writer.close()
