"""The channel between signaling nodes and media worker processes.

A connection carries JSON messages, each framed by a 4-byte big-endian length, in both
directions: a signaling node forwards socket.io events to the worker hosting the case; the
worker sends back what it has to say to the sockets (emits, and calls that wait for the
browser's acknowledgement, such as subscribe offers).  Either side may call the other::

    {"id": 7, "method": "event", "params": {...}}     a call, answered by
    {"id": 7, "result": {...}}  or  {"id": 7, "error": {"message": "..."}}
    {"method": "left", "params": {...}}               a notification (no answer)

The connection is authenticated both ways before anything else, and every message after
that is encrypted and authenticated:

1. the worker sends a random challenge ``w``; the connecting node answers with its own
   random challenge ``n`` and HMAC-SHA256(cluster secret, "node" | w | n);
2. the worker checks it and answers with HMAC-SHA256(secret, "worker" | w | n), which the
   node checks in turn: a process that does not hold the secret can pose as neither side;
3. both derive two AES-256-GCM keys with HKDF-SHA256 (the secret, salted with w | n), one
   per direction, and seal each message with a counter as its nonce and its length
   prefix as associated data.  A message altered, replayed, reordered or dropped on the
   way fails to open and ends the connection.

The secret never crosses the wire, and the keys are new for each connection.
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

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
_LENGTH = struct.Struct(">I")
_TAG_BYTES = 16  # AES-GCM's authentication tag

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]


class RpcError(Exception):
    """The other side answered a call with an error, or the connection is gone."""


class ConnectionLost(RpcError):
    pass


#: The challenge each side sends: 32 random bytes, hex.
_CHALLENGE_BYTES = 32


def _proof(secret: str, role: bytes, worker: bytes, node: bytes) -> str:
    """What ``role`` (b"node" or b"worker") shows it holds ``secret``, bound to both
    challenges of this connection."""
    message = role + b"|" + worker + b"|" + node
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _challenge(value: object) -> bytes:
    """A challenge as received: 64 hex digits, else ValueError."""
    if not isinstance(value, str) or len(value) != 2 * _CHALLENGE_BYTES:
        raise ValueError("a malformed challenge")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ValueError("a malformed challenge") from None


class _Seal:
    """One direction of a connection: AES-256-GCM with a 96-bit message counter as the
    nonce, so that no nonce repeats under a key and a replayed or reordered message does
    not open."""

    __slots__ = ("_aead", "_counter")

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._counter = 0

    def _nonce(self) -> bytes:
        nonce = self._counter.to_bytes(12, "big")
        self._counter += 1
        return nonce

    def seal(self, body: bytes, header: bytes) -> bytes:
        return self._aead.encrypt(self._nonce(), body, header)

    def open(self, sealed: bytes, header: bytes) -> bytes:
        try:
            return self._aead.decrypt(self._nonce(), sealed, header)
        except InvalidTag:
            raise ValueError("a cluster message failed its authentication") from None


def _seals(secret: str, worker: bytes, node: bytes) -> tuple[_Seal, _Seal]:
    """(node to worker, worker to node) for the connection of these challenges."""
    keys = HKDF(
        algorithm=hashes.SHA256(),
        length=64,
        salt=worker + node,
        info=b"caucus cluster channel v1",
    ).derive(secret.encode())
    return _Seal(keys[:32]), _Seal(keys[32:])


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
        #: (sending, receiving) once the handshake is done (see the module's docstring).
        self._seals: tuple[_Seal, _Seal] | None = None

    # --- connecting ---------------------------------------------------------------------

    @classmethod
    async def connect(
        cls, host: str, port: int, secret: str, handler: Handler, *, within: float = 5.0
    ) -> RpcConnection:
        """Connect to a worker at ``host:port``; each side proves it holds ``secret``."""
        async with asyncio.timeout(within):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                worker = _challenge((await _read_frame(reader)).get("challenge"))
                node = os.urandom(_CHALLENGE_BYTES)
                await _write_frame(
                    writer,
                    {"challenge": node.hex(), "proof": _proof(secret, b"node", worker, node)},
                )
                welcome = await _read_frame(reader)
            except BaseException:
                writer.close()
                raise
        if not welcome.get("ok"):
            writer.close()
            raise RpcError("the worker refused the cluster secret")
        proof = welcome.get("proof")
        if not isinstance(proof, str) or not hmac.compare_digest(
            proof, _proof(secret, b"worker", worker, node)
        ):
            writer.close()
            raise RpcError("the worker did not prove it holds the cluster secret")
        sending, receiving = _seals(secret, worker, node)
        connection = cls(reader, writer, handler, name=f"{host}:{port}")
        connection._seals = (sending, receiving)
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
        worker = os.urandom(_CHALLENGE_BYTES)
        try:
            async with asyncio.timeout(within):
                await _write_frame(writer, {"challenge": worker.hex()})
                answer = await _read_frame(reader)
            node = _challenge(answer.get("challenge"))
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            writer.close()
            return None
        proof = answer.get("proof")
        if not isinstance(proof, str) or not hmac.compare_digest(
            proof, _proof(secret, b"node", worker, node)
        ):
            with contextlib.suppress(OSError):
                await _write_frame(writer, {"ok": False})
            writer.close()
            log.warning("refused a cluster connection: wrong secret")
            return None
        await _write_frame(writer, {"ok": True, "proof": _proof(secret, b"worker", worker, node)})
        receiving, sending = _seals(secret, worker, node)
        peer = writer.get_extra_info("peername")
        connection = cls(reader, writer, handler, name=str(peer))
        connection._seals = (sending, receiving)
        connection.start()
        return connection

    def _sealing(self, direction: int) -> _Seal:
        if self._seals is None:
            raise RuntimeError("the connection has not been authenticated")
        return self._seals[direction]

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
                await _write_frame(self._writer, message, self._sealing(0))
            except (OSError, RuntimeError) as exc:
                self._lost()
                raise ConnectionLost(f"connection to {self.name} lost: {exc}") from exc

    # --- receiving ----------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                message = await _read_frame(self._reader, self._sealing(1))
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


async def _write_frame(
    writer: asyncio.StreamWriter, message: dict[str, Any], seal: _Seal | None = None
) -> None:
    """Send one message; sealed (after the handshake) when ``seal`` is given."""
    body = json.dumps(message, separators=(",", ":")).encode()
    if seal is not None:
        header = _LENGTH.pack(len(body) + _TAG_BYTES)
        writer.write(header + seal.seal(body, header))
    else:
        writer.write(_LENGTH.pack(len(body)) + body)
    await writer.drain()


async def _read_frame(reader: asyncio.StreamReader, seal: _Seal | None = None) -> dict[str, Any]:
    """Read one message (ValueError: too large, fails to open, not a JSON object)."""
    header = await reader.readexactly(_LENGTH.size)
    (length,) = _LENGTH.unpack(header)
    if length > MAX_MESSAGE_BYTES + (_TAG_BYTES if seal is not None else 0):
        raise ValueError(f"cluster message of {length} bytes is too large")
    if seal is not None and length < _TAG_BYTES:
        raise ValueError("a sealed cluster message shorter than its tag")
    body = await reader.readexactly(length)
    if seal is not None:
        body = seal.open(body, header)
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("a cluster message must be a JSON object")
    return message
