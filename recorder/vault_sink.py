"""The file object PyAV's muxer writes a recording into: it encrypts as it goes.

The vault's blobs are append-only streams of AES-256-GCM chunks, but a WebM muxer goes
back at the end to fill in the segment size, the duration and the position of the cues
index, all in the file's first few hundred bytes.  So the sink keeps the head of the
file (its first ``head_size`` bytes) in memory, where those late writes land, and streams
everything after it into a *spool* blob, encrypted as it is written.  On ``finish`` the
final blob is written as head + spool (decrypted and re-encrypted chunk by chunk, in
memory), and the spool is deleted.  No plaintext ever reaches the disk.

PyAV calls ``write``/``seek``/``tell`` synchronously, from ``container.mux`` on the event
loop; the vault writer is async.  ``write`` only appends to an in-memory buffer, and a
pump task awaits ``BlobWriter.write`` whenever ``flush_size`` bytes have gathered.
Muxing a frame costs tens of microseconds, so a muxer thread would cost more in hand-offs
than it saves; the pump keeps the (batched) encryption and file writes off the call that
muxes, and bounds the memory held (``max_pending``) instead of blocking the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import io

from rooms.vault.store import SpaceVault
from rooms.vault.writer import BlobWriter

#: Bytes of the file's start kept in memory (WebM headers are well under 4 KiB).
HEAD_SIZE = 64 * 1024
FLUSH_SIZE = 256 * 1024
MAX_PENDING = 32 * 1024 * 1024
SPOOL_SUFFIX = "--spool"


class RecordingWriteError(OSError):
    """The muxer asked for something the sink cannot do, or the vault failed."""


class VaultSink:
    """A seekable, write-only file for PyAV whose bytes end up in blob ``blob_id``."""

    def __init__(
        self,
        vault: SpaceVault,
        case_id: str,
        case_key: bytes,
        blob_id: str,
        *,
        head_size: int = HEAD_SIZE,
        flush_size: int = FLUSH_SIZE,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.blob_id = blob_id
        self.spool_id = blob_id + SPOOL_SUFFIX
        self._vault = vault
        self._case_id = case_id
        self._case_key = case_key
        self._head_size = head_size
        self._flush_size = flush_size
        self._max_pending = max_pending
        self._head = bytearray()
        self._pending = bytearray()
        self._body = 0  # bytes of the body (after the head) accepted: spooled + pending
        self._pos = 0
        self._size = 0
        self._spool: BlobWriter | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._error: BaseException | None = None
        self.spooled = 0

    @property
    def size(self) -> int:
        return self._size

    async def open(self) -> None:
        spool = self._vault.writer(self._case_id, self._case_key, self.spool_id)
        await spool.__aenter__()
        self._spool = spool
        self._pump_task = asyncio.ensure_future(self._pump())

    # --- the file protocol PyAV uses (synchronous) -----------------------------------

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise RecordingWriteError(f"unsupported seek whence {whence}")
        if pos < 0:
            raise RecordingWriteError("seek before the start of the recording")
        self._pos = pos
        return pos

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._error is not None:
            raise RecordingWriteError(f"the recording's storage failed: {self._error}")
        view = memoryview(data).cast("B")
        n = len(view)
        pos = self._pos
        if pos < self._head_size:
            take = min(n, self._head_size - pos)
            if pos > len(self._head):
                self._head.extend(bytes(pos - len(self._head)))
            self._head[pos : pos + take] = view[:take]
            view = view[take:]
            pos += take
        if view:
            if pos != self._head_size + self._body:
                raise RecordingWriteError(
                    "the muxer rewrote data that is already encrypted "
                    f"(offset {pos}, written up to {self._head_size + self._body})"
                )
            self._pending += view
            self._body += len(view)
            pos += len(view)
            if len(self._pending) >= self._flush_size:
                if len(self._pending) > self._max_pending:
                    raise RecordingWriteError("the vault cannot keep up with the recording")
                self._wake.set()
        self._pos = pos
        self._size = max(self._size, pos)
        return n

    def flush(self) -> None:
        pass

    def close(self) -> None:
        """Called by PyAV when the container closes; ``finish`` does the real work."""

    # --- async side ---------------------------------------------------------------------

    async def _pump(self) -> None:
        assert self._spool is not None
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._pending:
                    data, self._pending = self._pending, bytearray()
                    await self._spool.write(data)
                    self.spooled += len(data)
                if self._closing:
                    return
        except Exception as exc:
            self._error = exc
            raise

    async def _stop_pump(self) -> None:
        self._closing = True
        self._wake.set()
        if self._pump_task is not None:
            task, self._pump_task = self._pump_task, None
            await task

    async def finish(self) -> int:
        """Write the final blob (head + spool) and delete the spool; return its size."""
        if self._head and self._size > self._head_size and len(self._head) != self._head_size:
            raise RecordingWriteError("the recording's head has a hole")
        await self._stop_pump()
        spool, self._spool = self._spool, None
        assert spool is not None
        if self._body:
            await spool.finish()
        else:
            await spool.abort()
        try:
            async with self._vault.writer(self._case_id, self._case_key, self.blob_id) as final:
                await final.write(self._head)
                if self._body:
                    async with self._vault.reader(
                        self._case_id, self._case_key, self.spool_id
                    ) as reader:
                        async for piece in reader:
                            await final.write(piece)
                size = await final.finish()
        finally:
            if self._body:
                await self._vault.delete_blob(self._case_id, self.spool_id)
            self._head = bytearray()
        return size

    async def abort(self) -> None:
        """Discard everything: no blob, no spool."""
        self._closing = True
        self._wake.set()
        if self._pump_task is not None:
            task, self._pump_task = self._pump_task, None
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        spool, self._spool = self._spool, None
        if spool is not None:
            await spool.abort()
        self._pending = bytearray()
        self._head = bytearray()
