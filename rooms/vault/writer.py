"""Writing a blob: ``BlobWriter``.

Plaintext never touches the disk: ``BlobWriter`` encrypts in memory and writes only
ciphertext to ``<blob_id>.partial``, fsyncs and renames it to ``<blob_id>`` in
``finish()``. A ``.partial`` file never counts as a blob.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from rooms.vault.format import (
    FORMAT_VERSION,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    PARTIAL_SUFFIX,
    SALT_SIZE,
    TAG_SIZE,
    blob_aead,
    chunk_nonce,
)
from rooms.vault.offload import IO_BATCH_BYTES, in_thread, join_threads

T = TypeVar("T")


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """Encrypts one blob as it is written; owns the ``.partial`` file until finish or abort.

    Use as an async context manager. ``write`` accepts pieces of any size; ``finish``
    seals the final chunk, fsyncs, renames the partial file to the blob name and returns
    the plaintext size. Leaving the context by an exception, or without ``finish``,
    removes the partial file: a blob exists only once ``finish`` has returned.
    Writing an id that already exists replaces that blob atomically on ``finish``.
    One writer serves one task: do not call ``write`` concurrently.

    Chunks are encrypted with ``encrypt_into`` straight into a 1 MiB ciphertext buffer,
    written to the file with one ``write`` when full. By default this happens on the
    event loop, yielding between batches (a batch costs well under a millisecond when
    the page cache absorbs the write). With ``offload_io`` a worker thread encrypts
    into one of two buffers while another writes the other (AES-GCM releases the GIL).
    The final fsync always runs in a worker thread.
    """

    def __init__(
        self,
        directory: Path,
        case_id: str,
        case_key: bytes,
        blob_id: str,
        chunk_size: int,
        offload_io: bool = False,
    ) -> None:
        self.__offload = offload_io
        self.__directory = directory
        self.__final = directory / blob_id
        self.__partial = directory / (blob_id + PARTIAL_SUFFIX)
        salt = os.urandom(SALT_SIZE)
        self.__header = HEADER.pack(MAGIC, FORMAT_VERSION, chunk_size, salt)
        self.__aead = blob_aead(case_key, salt, case_id, blob_id)
        self.__chunk_size = chunk_size
        self.__pending = bytearray(chunk_size)
        self.__pending_view = memoryview(self.__pending)
        self.__pending_len = 0
        chunks_per_batch = max(2, IO_BATCH_BYTES // (chunk_size + TAG_SIZE))
        capacity = (chunk_size + TAG_SIZE) * chunks_per_batch
        self.__outs = [memoryview(bytearray(capacity)), memoryview(bytearray(capacity))]
        self.__out = self.__outs[0]
        self.__out_len = 0
        self.__io: asyncio.Future[None] | None = None
        self.__threads: set[asyncio.Future[Any]] = set()
        self.__index = 0
        self.__size = 0
        self.__fd: int | None = None
        self.__state = "new"  # new -> open -> finished | aborted

    @property
    def size(self) -> int:
        """Plaintext bytes accepted so far."""
        return self.__size

    async def __aenter__(self) -> BlobWriter:
        await asyncio.to_thread(self.__open)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.__state == "open":
            await self.abort()

    def __open(self) -> None:
        self.__directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            self.__fd = os.open(self.__partial, flags, 0o600)
        except FileExistsError:
            raise FileExistsError(
                f"blob {self.__final.name} is already being written ({self.__partial})"
            ) from None
        self.__state = "open"
        self.__out[:HEADER_SIZE] = self.__header
        self.__out_len = HEADER_SIZE

    def __check_open(self) -> None:
        if self.__state != "open":
            raise RuntimeError(f"blob writer is {self.__state}, not open")

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and append ``data``; pieces of any size, zero included."""
        self.__check_open()
        view = memoryview(data).cast("B")
        n = len(view)
        self.__size += n
        if self.__pending_len + n <= self.__chunk_size:
            # Common for small network reads: just gather, nothing to seal yet.
            end = self.__pending_len + n
            self.__pending_view[self.__pending_len : end] = view
            self.__pending_len = end
            return
        try:
            pos = 0
            while pos < n:
                if self.__offload:
                    pos = await asyncio.shield(self.__spawn(self.__absorb, view, pos))
                else:
                    pos = self.__absorb(view, pos)
                if not self.__has_room(self.__chunk_size):
                    await self.__submit()
        except BaseException:
            await self.abort()
            raise

    def __spawn(self, func: Callable[..., T], *args: object) -> asyncio.Future[T]:
        future = in_thread(func, *args)
        self.__threads.add(future)
        future.add_done_callback(self.__threads.discard)
        return future

    def __has_room(self, plaintext_len: int) -> bool:
        return self.__out_len + plaintext_len + TAG_SIZE <= len(self.__out)

    def __absorb(self, view: memoryview, pos: int) -> int:
        """Seal what fits in the current buffer from ``view[pos:]``; return the new pos.

        A chunk is sealed only once more data is known to follow it: the last chunk is
        held back in ``pending`` until ``finish`` so it can carry the final-chunk flag.
        """
        size, n = self.__chunk_size, len(view)
        if self.__pending_len:
            take = min(size - self.__pending_len, n - pos)
            end = self.__pending_len + take
            self.__pending_view[self.__pending_len : end] = view[pos : pos + take]
            self.__pending_len = end
            pos += take
            if end < size or pos == n or not self.__has_room(size):
                return pos
            self.__seal_chunk(self.__pending_view, last=False)
            self.__pending_len = 0
        while n - pos > size and self.__has_room(size):
            self.__seal_chunk(view[pos : pos + size], last=False)
            pos += size
        if n - pos <= size:
            self.__pending_view[: n - pos] = view[pos:]
            self.__pending_len = n - pos
            pos = n
        return pos

    def __seal_chunk(self, plaintext: memoryview, last: bool) -> None:
        start = self.__out_len
        end = start + len(plaintext) + TAG_SIZE
        self.__aead.encrypt_into(
            chunk_nonce(self.__index, last), plaintext, self.__header, self.__out[start:end]
        )
        self.__out_len = end
        self.__index += 1

    async def __submit(self) -> None:
        """Hand the current buffer to a writing thread and continue in the other one."""
        if self.__io is not None:
            await asyncio.shield(self.__io)  # the other buffer is free once it is written
            self.__io = None
        full = self.__out[: self.__out_len]
        if not self.__offload:
            self.__write_out(full)  # one large write to the page cache
            self.__out_len = 0
            await asyncio.sleep(0)  # let other tasks run between batches
            return
        self.__io = self.__spawn(self.__write_out, full)
        self.__out = self.__outs[1] if self.__out is self.__outs[0] else self.__outs[0]
        self.__out_len = 0

    def __write_out(self, data: memoryview) -> None:
        assert self.__fd is not None
        _write_all(self.__fd, data)

    async def finish(self) -> int:
        """Seal the final chunk, make the blob durable and visible; return its size."""
        self.__check_open()
        try:
            if not self.__has_room(self.__pending_len):
                await self.__submit()
            self.__seal_chunk(self.__pending_view[: self.__pending_len], last=True)
            self.__pending_len = 0
            await self.__submit()
            if self.__io is not None:
                await asyncio.shield(self.__io)
                self.__io = None
            await asyncio.shield(self.__spawn(self.__commit))
        except BaseException:
            await self.abort()
            raise
        return self.__size

    def __commit(self) -> None:
        assert self.__fd is not None
        os.fsync(self.__fd)
        os.close(self.__fd)
        self.__fd = None
        os.replace(self.__partial, self.__final)
        self.__state = "finished"
        _fsync_dir(self.__directory)

    async def abort(self) -> None:
        """Discard everything written; remove the partial file. Safe to call twice."""
        if self.__state != "open":
            return
        self.__state = "aborting"
        try:
            await join_threads(list(self.__threads))
        finally:
            self.__io = None
            self.__pending_view[:] = bytes(len(self.__pending))
            self.__remove_partial()

    def __remove_partial(self) -> None:
        if self.__state == "finished":
            return  # finish() was cancelled after its commit had already succeeded
        self.__state = "aborted"
        if self.__fd is not None:
            os.close(self.__fd)
            self.__fd = None
        self.__partial.unlink(missing_ok=True)
