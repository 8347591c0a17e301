"""The channel between signaling nodes and media workers: authentication, calls both
ways, ordered notifications, and what happens when a side breaks the rules or goes away."""

from __future__ import annotations

import asyncio
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
