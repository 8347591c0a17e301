"""The blob tree of a deployment: ``SpaceVault``.

Deleting a case is crypto-shredding: the store forgets the wrapped case key and
``SpaceVault.delete_case_blobs`` removes the case directory.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from rooms.vault.format import (
    DEFAULT_CHUNK_SIZE,
    ID_PATTERN,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    PARTIAL_SUFFIX,
    check_id,
    check_key,
)
from rooms.vault.reader import BlobReader
from rooms.vault.sealed import seal, unseal
from rooms.vault.writer import BlobWriter


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
        check_id("case id", case_id)
        return self.__root / case_id

    def blob_path(self, case_id: str, blob_id: str) -> Path:
        check_id("blob id", blob_id)
        return self.case_dir(case_id) / blob_id

    def writer(self, case_id: str, case_key: bytes, blob_id: str) -> BlobWriter:
        """A writer for a new blob; ``async with vault.writer(...) as w: ...``."""
        check_key(case_key)
        self.blob_path(case_id, blob_id)
        return BlobWriter(
            self.case_dir(case_id), case_id, case_key, blob_id, self.__chunk_size, self.__offload
        )

    def reader(self, case_id: str, case_key: bytes, blob_id: str) -> BlobReader:
        """A reader for a finished blob; ``async with vault.reader(...) as r: ...``.

        Entering raises ``BlobNotFoundError`` if there is no such blob, and
        ``VaultIntegrityError`` if the header or file length is malformed.
        """
        check_key(case_key)
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
            return sorted(n for n in names if ID_PATTERN.fullmatch(n))

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
