"""Vault throughput: streaming blob encryption and decryption next to raw AES-GCM.

Run from the repository root: ``.venv/bin/python bench/vault.py --json``.

* ``raw_aesgcm_mib_s``: one ``AESGCM.encrypt`` call per 64 KiB over the same bytes, in
  memory, no I/O: the ceiling for one core.
* ``encrypt_mib_s``: ``SpaceVault.writer`` over a 256 MiB stream given in 1 MiB pieces,
  to a file in a temporary directory, until the last ``write`` returns (all ciphertext
  handed to the kernel). ``finish_s`` is the time of ``finish()`` after that (final
  chunk, fsync, rename, directory fsync) and ``encrypt_durable_mib_s`` includes it: that
  figure is bounded by the disk, not by the vault.
* ``decrypt_mib_s``: iterating a ``SpaceVault.reader`` over that blob (page cache warm).
* ``offload_*``: the same with ``SpaceVault(offload_io=True)`` (crypto and file I/O in
  worker threads, overlapped).
* ``raw_write_mib_s`` / ``raw_read_mib_s``: plain ``os.write`` / ``os.readv`` of the same
  bytes in 1 MiB calls, no crypto: the file I/O the vault cannot avoid. With a free core
  the vault overlaps it with encryption; on a busy machine the two costs add up.

Raw and vault runs alternate ``--repeat`` times so a busy machine disturbs both alike;
each figure is the best run, ratios are vault / raw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rooms.vault.format import DEFAULT_CHUNK_SIZE, new_data_key
from rooms.vault.store import SpaceVault

MIB = 1024 * 1024


def raw_aesgcm(source: memoryview, total: int, key: bytes) -> float:
    aead = AESGCM(key)
    nonce = bytes(12)
    chunk = DEFAULT_CHUNK_SIZE
    span = len(source)
    start = time.perf_counter()
    done = 0
    while done < total:
        offset = done % span
        aead.encrypt(nonce, source[offset : offset + chunk], None)
        done += chunk
    return total / MIB / (time.perf_counter() - start)


def raw_file_io(source: memoryview, total: int, directory: Path) -> tuple[float, float]:
    """Plain buffered write then read of the same bytes, 1 MiB calls, no crypto, no fsync."""
    path = directory / "raw-io"
    span = len(source)
    buffer = bytearray(MIB)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    start = time.perf_counter()
    for done in range(0, total, MIB):
        offset = done % span
        os.write(fd, source[offset : offset + MIB])
    wrote = time.perf_counter()
    os.close(fd)
    fd = os.open(path, os.O_RDONLY)
    read_start = time.perf_counter()
    while os.readv(fd, [buffer]):
        pass
    read_end = time.perf_counter()
    os.close(fd)
    path.unlink()
    mib = total / MIB
    return mib / (wrote - start), mib / (read_end - read_start)


async def vault_encrypt(
    vault: SpaceVault, source: memoryview, total: int, key: bytes
) -> tuple[float, float, float]:
    piece = MIB
    span = len(source)
    start = time.perf_counter()
    async with vault.writer("bench", key, "stream") as writer:
        done = 0
        while done < total:
            offset = done % span
            await writer.write(source[offset : offset + piece])
            done += piece
        streamed = time.perf_counter()
        await writer.finish()
    finished = time.perf_counter()
    mib = total / MIB
    return mib / (streamed - start), finished - streamed, mib / (finished - start)


async def vault_decrypt(vault: SpaceVault, total: int, key: bytes) -> float:
    start = time.perf_counter()
    seen = 0
    async with vault.reader("bench", key, "stream") as reader:
        async for piece in reader:
            seen += len(piece)
    elapsed = time.perf_counter() - start
    assert seen == total
    return total / MIB / elapsed


async def run(total_mib: int, repeat: int, directory: str | None) -> dict[str, float]:
    total = total_mib * MIB
    source = memoryview(os.urandom(16 * MIB))
    key = new_data_key()
    raw: list[float] = []
    enc: list[tuple[float, float, float]] = []
    dec: list[float] = []
    off_enc: list[float] = []
    off_dec: list[float] = []
    io: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="caucus-vault-bench-", dir=directory) as tmp:
        vault = SpaceVault(Path(tmp))
        offload = SpaceVault(Path(tmp), offload_io=True)
        for _ in range(repeat):
            raw.append(raw_aesgcm(source, total, key))
            enc.append(await vault_encrypt(vault, source, total, key))
            raw.append(raw_aesgcm(source, total, key))
            dec.append(await vault_decrypt(vault, total, key))
            await vault.delete_blob("bench", "stream")
            off_enc.append((await vault_encrypt(offload, source, total, key))[0])
            off_dec.append(await vault_decrypt(offload, total, key))
            await vault.delete_blob("bench", "stream")
            io.append(raw_file_io(source, total, Path(tmp)))
    best_raw = max(raw)
    encrypt = max(e[0] for e in enc)
    decrypt = max(dec)
    return {
        "stream_mib": total_mib,
        "encrypt_mib_s": round(encrypt, 1),
        "decrypt_mib_s": round(decrypt, 1),
        "raw_aesgcm_mib_s": round(best_raw, 1),
        "encrypt_ratio": round(encrypt / best_raw, 3),
        "decrypt_ratio": round(decrypt / best_raw, 3),
        "finish_s": round(min(e[1] for e in enc), 3),
        "encrypt_durable_mib_s": round(max(e[2] for e in enc), 1),
        "offload_encrypt_mib_s": round(max(off_enc), 1),
        "offload_decrypt_mib_s": round(max(off_dec), 1),
        "raw_write_mib_s": round(max(w for w, _ in io), 1),
        "raw_read_mib_s": round(max(r for _, r in io), 1),
        "cpus": os.cpu_count() or 1,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--mib", type=int, default=256, help="stream size in MiB")
    parser.add_argument("--repeat", type=int, default=5, help="alternating runs; best counts")
    parser.add_argument("--dir", default=None, help="where to write (default: system temp)")
    args = parser.parse_args()
    result = asyncio.run(run(args.mib, args.repeat, args.dir))
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:>22}: {value}")


if __name__ == "__main__":
    main()
