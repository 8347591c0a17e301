"""Reading a blob: ``BlobReader``, whole or by byte range."""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rooms.vault.format import (
    FORMAT_VERSION,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    TAG_SIZE,
    BlobNotFoundError,
    VaultIntegrityError,
    blob_aead,
    chunk_nonce,
)
from rooms.vault.offload import IO_BATCH_BYTES, in_thread, join_threads

# Batches a reader decrypts ahead of its consumer, each in a worker thread.
_READ_AHEAD = 2

_BatchFuture = asyncio.Future[tuple[list[bytes], VaultIntegrityError | None]]


class BlobReader:
    """An open blob: knows its plaintext size and decrypts the chunks asked for.

    Use as an async context manager (it owns a file descriptor). ``size`` comes from the
    file size, without decrypting. Iterate (``async for piece in reader``) for the whole
    plaintext, or ``read_range(start, end_inclusive)`` for a byte range, which decrypts
    only the chunks it overlaps. Reads are positional (``preadv`` of 1 MiB batches), so
    several iterations may run at once on one reader. Pieces are ``bytes`` the caller
    may keep. With ``offload_io``, batches are read and decrypted in worker threads, two
    ahead of the consumer; otherwise on the event loop, yielding between batches.
    """

    def __init__(
        self, path: Path, case_id: str, case_key: bytes, blob_id: str, offload_io: bool = False
    ) -> None:
        self.__offload = offload_io
        self.__path = path
        self.__case_id = case_id
        self.__case_key = case_key
        self.__blob_id = blob_id
        self.__fd: int | None = None
        self.__inflight: set[asyncio.Future[Any]] = set()
        self.__aead: AESGCM | None = None
        self.__header = b""
        self.__chunk_size = 0
        self.__chunk_count = 0
        self.__size = 0

    @property
    def size(self) -> int:
        """Plaintext size in bytes."""
        return self.__size

    @property
    def chunk_size(self) -> int:
        return self.__chunk_size

    async def __aenter__(self) -> BlobReader:
        await asyncio.to_thread(self.__open)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the file once reads still running in worker threads are done."""
        try:
            await join_threads(list(self.__inflight))
        finally:
            if self.__fd is not None:
                os.close(self.__fd)
                self.__fd = None

    def __open(self) -> None:
        try:
            fd = os.open(self.__path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise BlobNotFoundError(
                f"blob {self.__blob_id} not found in case {self.__case_id}"
            ) from None
        try:
            file_size = os.fstat(fd).st_size
            header = os.pread(fd, HEADER_SIZE, 0)
            self.__parse(header, file_size)
        except BaseException:
            os.close(fd)
            raise
        self.__fd = fd

    def __parse(self, header: bytes, file_size: int) -> None:
        where = f"blob {self.__blob_id} in case {self.__case_id}"
        if len(header) < HEADER_SIZE:
            raise VaultIntegrityError(f"{where} is truncated: no complete header")
        magic, version, chunk_size, salt = HEADER.unpack(header)
        if magic != MAGIC:
            raise VaultIntegrityError(f"{where} is not a vault blob (bad magic)")
        if version != FORMAT_VERSION:
            raise VaultIntegrityError(f"{where} has unknown format version {version}")
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise VaultIntegrityError(f"{where} has an implausible chunk size {chunk_size}")
        body = file_size - HEADER_SIZE
        stride = chunk_size + TAG_SIZE
        count = max(1, -(-body // stride))
        last_len = body - (count - 1) * stride
        # The last chunk carries 1..chunk_size bytes, or 0 if it is the only chunk.
        if last_len < TAG_SIZE + (count > 1):
            raise VaultIntegrityError(f"{where} is truncated (partial chunk tag)")
        self.__header = header
        self.__chunk_size = chunk_size
        self.__chunk_count = count
        self.__size = (count - 1) * chunk_size + last_len - TAG_SIZE
        self.__aead = blob_aead(self.__case_key, salt, self.__case_id, self.__blob_id)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.__chunks(0, self.__chunk_count - 1, 0, None)

    async def read_all(self) -> bytes:
        """The whole plaintext in memory: for small blobs only."""
        return b"".join([piece async for piece in self])

    def read_range(self, start: int, end_inclusive: int) -> AsyncGenerator[bytes, None]:
        """Plaintext bytes ``start..end_inclusive`` (HTTP Range semantics), in pieces."""
        if not 0 <= start <= end_inclusive < self.__size:
            raise ValueError(
                f"range {start}-{end_inclusive} is outside a blob of {self.__size} bytes"
            )
        size = self.__chunk_size
        first, last = start // size, end_inclusive // size
        return self.__chunks(first, last, start - first * size, end_inclusive + 1 - last * size)

    async def __chunks(
        self, first: int, last: int, head_skip: int, tail_end: int | None
    ) -> AsyncGenerator[bytes, None]:
        if self.__fd is None:
            raise RuntimeError("blob reader is not open (use 'async with')")
        stride = self.__chunk_size + TAG_SIZE
        per_batch = max(1, IO_BATCH_BYTES // stride)
        # Up to _READ_AHEAD batches are read and decrypted in worker threads while the
        # consumer sends the current one; results are still yielded strictly in order.
        ahead: deque[tuple[_BatchFuture, bytearray]] = deque()
        spare = [bytearray(stride * per_batch) for _ in range(min(_READ_AHEAD, last - first + 1))]
        next_index = first
        try:
            index = first
            while index <= last:
                while self.__offload and len(ahead) < _READ_AHEAD and next_index <= last:
                    stop = min(last + 1, next_index + per_batch)
                    buffer = spare.pop()
                    ahead.append((self.__submit_batch(buffer, next_index, stop), buffer))
                    next_index = stop
                if self.__offload:
                    future, buffer = ahead.popleft()
                    pieces, error = await asyncio.shield(future)
                    spare.append(buffer)
                else:
                    stop = min(last + 1, index + per_batch)
                    pieces, error = self.__read_batch(spare[0], index, stop)
                for piece_index, piece in enumerate(pieces, start=index):
                    if piece_index == last and tail_end is not None:
                        piece = piece[:tail_end]
                    if piece_index == first and head_skip:
                        piece = piece[head_skip:]
                    yield piece
                if error is not None:
                    raise error
                index += len(pieces)
                if not self.__offload:
                    await asyncio.sleep(0)  # let other tasks run between batches
        finally:
            # Batches still running finish in their threads; close() waits for them.
            ahead.clear()

    def __submit_batch(self, buffer: bytearray, first: int, stop: int) -> _BatchFuture:
        future = in_thread(self.__read_batch, buffer, first, stop)
        self.__inflight.add(future)
        future.add_done_callback(self.__inflight.discard)
        return future

    def __read_batch(
        self, buffer: bytearray, first: int, stop: int
    ) -> tuple[list[bytes], VaultIntegrityError | None]:
        assert self.__fd is not None and self.__aead is not None
        stride = self.__chunk_size + TAG_SIZE
        final = self.__chunk_count - 1
        offset = HEADER_SIZE + first * stride
        # The final chunk is shorter; a short read elsewhere means the file shrank.
        expected = min(stop * stride, self.__size + self.__chunk_count * TAG_SIZE) - first * stride
        view = memoryview(buffer)[:expected]
        got = os.preadv(self.__fd, [view], offset)
        pieces: list[bytes] = []
        for index in range(first, stop):
            start = (index - first) * stride
            end = min(start + stride, expected)
            if end > got:
                return pieces, VaultIntegrityError(
                    f"blob {self.__blob_id} in case {self.__case_id} is truncated at chunk {index}"
                )
            try:
                pieces.append(
                    self.__aead.decrypt(
                        chunk_nonce(index, index == final), view[start:end], self.__header
                    )
                )
            except InvalidTag:
                return pieces, VaultIntegrityError(
                    f"blob {self.__blob_id} in case {self.__case_id} failed authentication at "
                    f"chunk {index} (wrong case key, tampered, truncated or reordered)"
                )
        return pieces, None
