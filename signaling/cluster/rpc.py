"""The channel between signaling nodes and media worker processes.

A connection carries JSON messages, each framed by a 4-byte big-endian length, in both
directions: a signaling node forwards socket.io events to the worker hosting the case; the
worker sends back what it has to say to the sockets (emits, and calls that wait for the
browser's acknowledgement, such as subscribe offers).  Either side may call the other::

    {"id": 7, "method": "event", "params": {...}}     a call, answered by
    {"id": 7, "result": {...}}  or  {"id": 7, "error": {"message": "..."}}
    {"method": "left", "params": {...}}               a notification (no answer)

The connection is authenticated before anything else: the worker sends a random
challenge, the connecting side answers with HMAC-SHA256(cluster secret, challenge), so the
secret never crosses the wire.  The channel is not encrypted: it belongs on loopback or a
private network (docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import struct
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
_LENGTH = struct.Struct(">I")

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]


class RpcError(Exception):
    """The other side answered a call with an error, or the connection is gone."""


class ConnectionLost(RpcError):
    pass


def _proof(secret: str, challenge: bytes) -> str:
    return hmac.new(secret.encode(), challenge, hashlib.sha256).hexdigest()


class RpcConnection:
    """One authenticated connection: calls and notifications both ways.

    ``handler(method, params)`` answers the other side's calls and notifications; it runs
    in its own task per message, so a slow call does not hold the others up.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: Handler,
        *,
        name: str = "",
    ) -> None:
        self.name = name
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reading: asyncio.Task[None] | None = None
        self._notifying: asyncio.Task[None] | None = None
        self._notifications: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._write_lock = asyncio.Lock()
        self.closed = asyncio.Event()
        #: Called once when the connection ends (either side, or a broken socket).
        self.on_close: Callable[[RpcConnection], None] | None = None

    # --- connecting ---------------------------------------------------------------------

    @classmethod
    async def connect(
        cls, host: str, port: int, secret: str, handler: Handler, *, within: float = 5.0
    ) -> RpcConnection:
        """Connect to a worker at ``host:port`` and prove knowledge of ``secret``."""
        async with asyncio.timeout(within):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                challenge = await _read_frame(reader)
                nonce = str(challenge.get("challenge", "")).encode()
                await _write_frame(writer, {"proof": _proof(secret, nonce)})
                welcome = await _read_frame(reader)
            except BaseException:
                writer.close()
                raise
        if not welcome.get("ok"):
            writer.close()
            raise RpcError("the worker refused the cluster secret")
        connection = cls(reader, writer, handler, name=f"{host}:{port}")
        connection.start()
        return connection

    @classmethod
    async def accept(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        secret: str,
        handler: Handler,
        *,
        within: float = 5.0,
    ) -> RpcConnection | None:
        """The worker's side of :meth:`connect`; ``None`` when the peer fails the proof."""
        challenge = os.urandom(32).hex()
        try:
            async with asyncio.timeout(within):
                await _write_frame(writer, {"challenge": challenge})
                answer = await _read_frame(reader)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            writer.close()
            return None
        proof = answer.get("proof")
        if not isinstance(proof, str) or not hmac.compare_digest(
            proof, _proof(secret, challenge.encode())
        ):
            with contextlib.suppress(OSError):
                await _write_frame(writer, {"ok": False})
            writer.close()
            log.warning("refused a cluster connection: wrong secret")
            return None
        await _write_frame(writer, {"ok": True})
        peer = writer.get_extra_info("peername")
        connection = cls(reader, writer, handler, name=str(peer))
        connection.start()
        return connection

    def start(self) -> None:
        self._reading = asyncio.ensure_future(self._read_loop())
        self._notifying = asyncio.ensure_future(self._notify_loop())

    async def _notify_loop(self) -> None:
        """Notifications are handled one at a time, in the order they were sent (emits to
        a socket must not overtake each other)."""
        while True:
            message = await self._notifications.get()
            if message is None:
                return  # the connection ended; what it received before is handled
            await self._answer(message)

    # --- calling ------------------------------------------------------------------------

    async def call(self, method: str, params: dict[str, Any], within: float = 30.0) -> Any:
        if self.closed.is_set():
            raise ConnectionLost(f"connection to {self.name} is closed")
        self._next_id += 1
        message_id = self._next_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        try:
            await self._send({"id": message_id, "method": method, "params": params})
            async with asyncio.timeout(within):
                return await future
        finally:
            self._pending.pop(message_id, None)

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        if self.closed.is_set():
            raise ConnectionLost(f"connection to {self.name} is closed")
        await self._send({"method": method, "params": params})

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._write_lock:
            try:
                await _write_frame(self._writer, message)
            except (OSError, RuntimeError) as exc:
                self._lost()
                raise ConnectionLost(f"connection to {self.name} lost: {exc}") from exc

    # --- receiving ----------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                message = await _read_frame(self._reader)
                if "method" in message and "id" not in message:
                    self._notifications.put_nowait(message)
                    continue
                if "method" in message:
                    task = asyncio.ensure_future(self._answer(message))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                    continue
                future = self._pending.get(message.get("id", -1))
                if future is None or future.done():
                    continue
                if "error" in message:
                    future.set_exception(RpcError(str(message["error"].get("message"))))
                else:
                    future.set_result(message.get("result"))
        except (asyncio.IncompleteReadError, OSError, ValueError):
            pass
        except asyncio.CancelledError:
            raise
        finally:
            self._lost()

    async def _answer(self, message: dict[str, Any]) -> None:
        message_id = message.get("id")
        try:
            result = await self._handler(str(message["method"]), message.get("params") or {})
            reply: dict[str, Any] = {"id": message_id, "result": result}
        except Exception as exc:
            if message_id is None:
                log.exception("cluster notification %s failed", message.get("method"))
                return
            reply = {"id": message_id, "error": {"message": str(exc) or type(exc).__name__}}
        if message_id is not None and not self.closed.is_set():
            with contextlib.suppress(ConnectionLost):
                await self._send(reply)

    def _lost(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self._notifications.put_nowait(None)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionLost(f"connection to {self.name} lost"))
        self._writer.close()
        if self.on_close is not None:
            self.on_close(self)

    async def close(self) -> None:
        self._lost()
        if self._reading is not None and self._reading is not asyncio.current_task():
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(OSError, RuntimeError):
            await self._writer.wait_closed()


async def _write_frame(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    writer.write(_LENGTH.pack(len(body)) + body)
    await writer.drain()


async def _read_frame(reader: asyncio.StreamReader) -> dict[str, Any]:
    header = await reader.readexactly(_LENGTH.size)
    (length,) = _LENGTH.unpack(header)
    if length > MAX_MESSAGE_BYTES:
        raise ValueError(f"cluster message of {length} bytes is too large")
    message = json.loads(await reader.readexactly(length))
    if not isinstance(message, dict):
        raise ValueError("a cluster message must be a JSON object")
    return message
