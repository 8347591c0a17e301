"""Fuzz target: reading encrypted blobs and sealed values of ``rooms.vault``.

An input is three control bytes and a file.  Control byte 0 picks the blob the file
claims to be (its id, hence its key, and the plaintext it was written from: empty, one
short chunk, three 1 KiB chunks) and the reader's I/O mode; bytes 1 and 2 pick a byte
range.  The file is a blob as the vault wrote it, tampered with, truncated or reordered
by the fuzzer (seeds: the three blobs untouched).  With bit 7 of byte 0 set, the file is
instead a sealed value (``unseal``; seed: one sealed message).

Documented rejection: ``VaultIntegrityError``.  A crash is any other exception, a read
that returns a plaintext (or size) other than the original, a range other than the
original's bytes, or plaintext handed out before an integrity error that is not the
beginning of the original.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["rooms.vault"]):
    from rooms.vault.format import VaultIntegrityError
    from rooms.vault.sealed import unseal
    from rooms.vault.store import SpaceVault

KEY = bytes(range(32))
CASE = "case_fuzz"
#: (blob id, plaintext) of the blobs the seeds hold.
ORIGINALS = (
    ("empty", b""),
    ("short", bytes(range(100))),
    ("chunks", bytes((i * 7) % 251 for i in range(2500))),
)
SEALED_AAD = b"message:fuzz"
SEALED_PLAINTEXT = b"The respondent accepts the second proposal."
ROOT = Path(tempfile.mkdtemp(prefix="caucus-fuzz-vault-"))
atexit.register(shutil.rmtree, ROOT, True)
VAULTS = (SpaceVault(ROOT, chunk_size=1024), SpaceVault(ROOT, chunk_size=1024, offload_io=True))
LOOP = asyncio.new_event_loop()


async def read(vault: SpaceVault, blob_id: str, original: bytes, a: int, b: int) -> None:
    pieces: list[bytes] = []
    try:
        async with vault.reader(CASE, KEY, blob_id) as reader:
            try:
                async for piece in reader:
                    pieces.append(piece)
            except VaultIntegrityError:
                got = b"".join(pieces)
                assert original.startswith(got), "plaintext before the error is not the original's"
                raise
            assert b"".join(pieces) == original, "a blob read back other than it was written"
            assert reader.size == len(original)
            if reader.size:
                start, end = sorted((a * reader.size // 256, b * reader.size // 256))
                part = b"".join([p async for p in reader.read_range(start, end)])
                assert part == original[start : end + 1], (start, end)
    except VaultIntegrityError:
        pass


def TestOneInput(data: bytes) -> None:
    if len(data) < 3:
        return
    control, a, b, body = data[0], data[1], data[2], data[3:]
    if control & 0x80:
        try:
            opened = unseal(KEY, SEALED_AAD, body)
        except VaultIntegrityError:
            return
        assert opened == SEALED_PLAINTEXT, "a sealed value opened to something else"
        return
    blob_id, original = ORIGINALS[control % len(ORIGINALS)]
    vault = VAULTS[(control >> 6) & 1]
    path = vault.blob_path(CASE, blob_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    LOOP.run_until_complete(read(vault, blob_id, original, a, b))


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
