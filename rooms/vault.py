"""Encryption at rest for case blobs and small sealed values.

Envelope encryption: a master key (see ``rooms.masterkey``) wraps one random AES-256
*case key* per case; this module only ever sees unwrapped case keys and never stores them.

Blobs (documents, pictures, video messages, recordings) live under
``<root>/<case_id>/<blob_id>`` and are written as a stream of AES-256-GCM chunks, so
they can be uploaded and served without holding a whole file in memory, and an HTTP
range request decrypts only the chunks it touches.

Blob file format (version 1), all integers big-endian::

    header  (44 bytes)
        magic       4   b"CVLT"
        version     1   0x01
        reserved    3   zero
        chunk_size  4   plaintext bytes per chunk (64 KiB by default)
        salt        32  random, fresh for every blob written
    chunk 0 .. n-1
        ciphertext  len(plaintext_i)   AES-256-GCM
        tag         16

Every chunk but the last holds exactly ``chunk_size`` plaintext bytes; the last holds
1..chunk_size bytes (0 only for an empty blob, which is one empty chunk). So the chunk
count and the plaintext size follow from the file size alone.

Per-blob key: ``HKDF-SHA256(ikm=case_key, salt=salt, info="caucus blob v1" || case_id ||
blob_id)``. Because the key is fresh per blob (random salt), the nonce can be a counter:
``nonce_i = i (11 bytes) || last (1 byte, 1 on the final chunk, else 0)``. The header is
the associated data of every chunk. Together this is the STREAM construction
(Hoang, Reyhanitabar, Rogaway, Vizár 2015) and it detects:

* a flipped bit anywhere (tag, or header through the AAD and the key);
* reordered or duplicated chunks (the index is in the nonce);
* truncation at a chunk boundary (the new final chunk was sealed with last=0);
* truncation mid-chunk (the tag no longer verifies);
* chunks moved from another blob, even of the same case (different salt, different key);
* a blob file renamed to another blob id or case (the ids are in the key derivation).

Any of these raises ``VaultIntegrityError`` before the plaintext of the bad chunk is
returned; iteration stops there, so nothing after it is returned either.

Plaintext never touches the disk: ``BlobWriter`` encrypts in memory and writes only
ciphertext to ``<blob_id>.partial``, fsyncs and renames it to ``<blob_id>`` in
``finish()``. A ``.partial`` file never counts as a blob.

Small values (message bodies, TOTP secrets) use ``seal`` / ``unseal``: one AES-256-GCM
message under a key derived from the case key, with the caller's purpose as associated
data.

Deleting a case is crypto-shredding: the store forgets the wrapped case key and
``SpaceVault.delete_case_blobs`` removes the case directory.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "BlobNotFoundError",
    "BlobReader",
    "BlobWriter",
    "SpaceVault",
    "VaultIntegrityError",
    "new_data_key",
    "seal",
    "unseal",
]

DEFAULT_CHUNK_SIZE = 64 * 1024
KEY_SIZE = 32
TAG_SIZE = 16
NONCE_SIZE = 12

MAGIC = b"CVLT"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">4sB3xI32s")
HEADER_SIZE = _HEADER.size  # 44
SALT_SIZE = 32
MIN_CHUNK_SIZE = 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024

PARTIAL_SUFFIX = ".partial"
_BLOB_INFO = b"caucus blob v1\x00"
_SEAL_INFO = b"caucus seal v1"
_SEAL_VERSION = b"\x01"
_SEAL_OVERHEAD = 1 + NONCE_SIZE + TAG_SIZE

# Ciphertext written (or read) per system call: 16 chunks of 64 KiB.
_IO_BATCH_BYTES = 1024 * 1024
# Batches a reader decrypts ahead of its consumer, each in a worker thread.
_READ_AHEAD = 2

T = TypeVar("T")

_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")


class VaultIntegrityError(Exception):
    """Encrypted data failed authentication: wrong key, tampering, truncation or reordering.

    No plaintext from the failing piece of data is ever returned along with this error.
    """


class BlobNotFoundError(Exception):
    """No finished blob with this id exists in this case."""


def new_data_key() -> bytes:
    """Return a fresh random AES-256 key, e.g. a case key to be wrapped by the master key."""
    return os.urandom(KEY_SIZE)


def _check_key(key: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise ValueError(f"case key must be {KEY_SIZE} bytes, got {len(key)}")


def _check_id(kind: str, value: str) -> bytes:
    if not _ID_RE.fullmatch(value):
        raise ValueError(f"{kind} must match [A-Za-z0-9_-]{{1,128}}, got {value!r}")
    return value.encode("ascii")


def _nonce(index: int, last: bool) -> bytes:
    return ((index << 8) | last).to_bytes(NONCE_SIZE, "big")


def _blob_aead(case_key: bytes, salt: bytes, case_id: str, blob_id: str) -> AESGCM:
    info = _BLOB_INFO + case_id.encode("ascii") + b"\x00" + blob_id.encode("ascii")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=info)
    return AESGCM(hkdf.derive(case_key))


def _seal_aead(case_key: bytes) -> AESGCM:
    _check_key(case_key)
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=_SEAL_INFO)
    return AESGCM(hkdf.derive(case_key))


def seal(case_key: bytes, aad: bytes, plaintext: bytes) -> bytes:
    """Encrypt a small value (message body, TOTP secret) under a case key.

    ``aad`` names what the value is (e.g. ``b"message:<id>"``) and must be given again to
    ``unseal``: a sealed value copied to another purpose or row does not open there.
    Output: ``0x01 || nonce (12, random) || ciphertext || tag (16)``.
    """
    nonce = os.urandom(NONCE_SIZE)
    return _SEAL_VERSION + nonce + _seal_aead(case_key).encrypt(nonce, plaintext, aad)


def unseal(case_key: bytes, aad: bytes, sealed: bytes) -> bytes:
    """Decrypt a value from ``seal``; raise ``VaultIntegrityError`` if it does not verify."""
    if len(sealed) < _SEAL_OVERHEAD or sealed[:1] != _SEAL_VERSION:
        raise VaultIntegrityError("sealed value is malformed or of an unknown version")
    nonce = sealed[1 : 1 + NONCE_SIZE]
    try:
        return _seal_aead(case_key).decrypt(nonce, sealed[1 + NONCE_SIZE :], aad)
    except InvalidTag:
        raise VaultIntegrityError(
            "sealed value failed authentication (wrong case key, wrong purpose or tampered)"
        ) from None


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _in_thread(func: Callable[..., T], *args: object) -> asyncio.Future[T]:
    """Run ``func`` in a worker thread. Callers await it through ``asyncio.shield``: a
    thread cannot be stopped, so its future must stay uncancelled and mean "thread done"."""
    return asyncio.ensure_future(asyncio.to_thread(func, *args))


async def _join(futures: Iterable[asyncio.Future[Any]]) -> None:
    """Wait until worker threads are done, even if this task is cancelled meanwhile (they
    may use a file descriptor about to be closed); then let the cancellation through."""
    pending = {f for f in futures if not f.done()}
    cancelled = False
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True
    for future in futures:
        if future.done() and not future.cancelled():
            future.exception()  # retrieved: failures are reported by the caller's path
    if cancelled:
        raise asyncio.CancelledError


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
        self.__header = _HEADER.pack(MAGIC, FORMAT_VERSION, chunk_size, salt)
        self.__aead = _blob_aead(case_key, salt, case_id, blob_id)
        self.__chunk_size = chunk_size
        self.__pending = bytearray(chunk_size)
        self.__pending_view = memoryview(self.__pending)
        self.__pending_len = 0
        chunks_per_batch = max(2, _IO_BATCH_BYTES // (chunk_size + TAG_SIZE))
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
        future = _in_thread(func, *args)
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
            _nonce(self.__index, last), plaintext, self.__header, self.__out[start:end]
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
            await _join(list(self.__threads))
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
            await _join(list(self.__inflight))
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
        magic, version, chunk_size, salt = _HEADER.unpack(header)
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
        self.__aead = _blob_aead(self.__case_key, salt, self.__case_id, self.__blob_id)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.__chunks(0, self.__chunk_count - 1, 0, None)

    async def read_all(self) -> bytes:
        """The whole plaintext in memory: for small blobs only."""
        return b"".join([piece async for piece in self])

    def read_range(self, start: int, end_inclusive: int) -> AsyncIterator[bytes]:
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
    ) -> AsyncIterator[bytes]:
        if self.__fd is None:
            raise RuntimeError("blob reader is not open (use 'async with')")
        stride = self.__chunk_size + TAG_SIZE
        per_batch = max(1, _IO_BATCH_BYTES // stride)
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
        future = _in_thread(self.__read_batch, buffer, first, stop)
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
                        _nonce(index, index == final), view[start:end], self.__header
                    )
                )
            except InvalidTag:
                return pieces, VaultIntegrityError(
                    f"blob {self.__blob_id} in case {self.__case_id} failed authentication at "
                    f"chunk {index} (wrong case key, tampered, truncated or reordered)"
                )
        return pieces, None


class SpaceVault:
    """Owns the encrypted blob tree ``<root>/<case_id>/<blob_id>`` of a deployment.

    Holds no keys: every call takes the unwrapped case key. Ids are restricted to
    ``[A-Za-z0-9_-]{1,128}`` so they are always plain path components.

    ``offload_io=False`` (default) encrypts and does blob file I/O on the event loop in
    1 MiB batches, which measured faster than worker threads on a local disk; set it
    for slow or network storage, where a read or write may block for long.
    """

    def __init__(
        self, root: Path, chunk_size: int = DEFAULT_CHUNK_SIZE, offload_io: bool = False
    ) -> None:
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk size must be {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}")
        self.__offload = offload_io
        self.__root = Path(root)
        self.__chunk_size = chunk_size

    # Sealed small values, also reachable as vault.seal(...) / vault.open(...).
    seal = staticmethod(seal)
    open = staticmethod(unseal)

    @property
    def root(self) -> Path:
        return self.__root

    def case_dir(self, case_id: str) -> Path:
        _check_id("case id", case_id)
        return self.__root / case_id

    def blob_path(self, case_id: str, blob_id: str) -> Path:
        _check_id("blob id", blob_id)
        return self.case_dir(case_id) / blob_id

    def writer(self, case_id: str, case_key: bytes, blob_id: str) -> BlobWriter:
        """A writer for a new blob; ``async with vault.writer(...) as w: ...``."""
        _check_key(case_key)
        self.blob_path(case_id, blob_id)
        return BlobWriter(
            self.case_dir(case_id), case_id, case_key, blob_id, self.__chunk_size, self.__offload
        )

    def reader(self, case_id: str, case_key: bytes, blob_id: str) -> BlobReader:
        """A reader for a finished blob; ``async with vault.reader(...) as r: ...``.

        Entering raises ``BlobNotFoundError`` if there is no such blob, and
        ``VaultIntegrityError`` if the header or file length is malformed.
        """
        _check_key(case_key)
        path = self.blob_path(case_id, blob_id)
        return BlobReader(path, case_id, case_key, blob_id, self.__offload)

    async def write_bytes(self, case_id: str, case_key: bytes, blob_id: str, data: bytes) -> int:
        """Store ``data`` as a blob in one call; return its size."""
        async with self.writer(case_id, case_key, blob_id) as writer:
            await writer.write(data)
            return await writer.finish()

    async def read_bytes(self, case_id: str, case_key: bytes, blob_id: str) -> bytes:
        """The whole plaintext of a (small) blob."""
        async with self.reader(case_id, case_key, blob_id) as reader:
            return await reader.read_all()

    async def blob_ids(self, case_id: str) -> list[str]:
        """Finished blobs of a case, sorted; partial files are not blobs."""
        directory = self.case_dir(case_id)

        def scan() -> list[str]:
            try:
                names = os.listdir(directory)
            except FileNotFoundError:
                return []
            return sorted(n for n in names if _ID_RE.fullmatch(n))

        return await asyncio.to_thread(scan)

    async def delete_blob(self, case_id: str, blob_id: str) -> bool:
        """Remove one blob; return whether it existed."""
        path = self.blob_path(case_id, blob_id)

        def remove() -> bool:
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            return True

        return await asyncio.to_thread(remove)

    async def delete_case_blobs(self, case_id: str) -> None:
        """Remove a case's blob directory (crypto-shredding, with forgetting its case key).

        Files are unlinked, not overwritten: on journaling and copy-on-write filesystems
        and on SSDs overwriting does not reach the old blocks, and it is unnecessary
        since the blobs are ciphertext whose key the store has forgotten.
        """
        directory = self.case_dir(case_id)

        def remove() -> None:
            try:
                shutil.rmtree(directory)
            except FileNotFoundError:
                pass

        await asyncio.to_thread(remove)

    async def remove_partials(self) -> int:
        """Delete ``.partial`` files left by a crash (run at startup); return how many."""

        def sweep() -> int:
            removed = 0
            for path in self.__root.glob(f"*/*{PARTIAL_SUFFIX}"):
                path.unlink(missing_ok=True)
                removed += 1
            return removed

        return await asyncio.to_thread(sweep)
