"""Properties of the blob vault over any content, chunk size and write chunking: what is
written reads back (whole and by range), and any single-byte change, truncation,
extension, reordering, duplication or removal of chunks is detected, with no plaintext
other than the original's beginning handed out before the error."""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from rooms.vault.format import HEADER_SIZE, MIN_CHUNK_SIZE, TAG_SIZE, VaultIntegrityError
from rooms.vault.store import SpaceVault

CASE = "case-props"
BLOB = "blob-1"
KEY = bytes(range(32, 64))
SETTINGS = settings(max_examples=150, deadline=None)


@st.composite
def blobs(draw) -> tuple[int, bytes, list[int], bool]:
    """(chunk size, content, write cut points, offload_io); sizes near chunk bounds."""
    chunk_size = draw(st.sampled_from([MIN_CHUNK_SIZE, 1500, 4096]))
    chunks = draw(st.integers(0, 4))
    delta = draw(st.one_of(st.integers(-2, 2), st.integers(-chunk_size, chunk_size)))
    size = max(0, chunks * chunk_size + delta)
    content = random.Random(draw(st.integers(0, 2**32))).randbytes(size)
    cuts = sorted(draw(st.lists(st.integers(0, size), max_size=6)))
    return chunk_size, content, cuts, draw(st.booleans())


def write(root: Path, chunk_size: int, content: bytes, cuts: list[int], offload: bool) -> Path:
    vault = SpaceVault(root, chunk_size=chunk_size, offload_io=offload)

    async def go() -> None:
        async with vault.writer(CASE, KEY, BLOB) as writer:
            previous = 0
            for cut in [*cuts, len(content)]:
                await writer.write(content[previous:cut])
                previous = cut
            assert await writer.finish() == len(content)

    asyncio.run(go())
    return vault.blob_path(CASE, BLOB)


def read(root: Path, chunk_size: int, offload: bool) -> tuple[bytes, VaultIntegrityError | None]:
    """What a reader hands out, and the integrity error that stopped it, if any."""
    vault = SpaceVault(root, chunk_size=chunk_size, offload_io=offload)
    pieces: list[bytes] = []

    async def go() -> None:
        async with vault.reader(CASE, KEY, BLOB) as reader:
            async for piece in reader:
                pieces.append(piece)

    try:
        asyncio.run(go())
    except VaultIntegrityError as exc:
        return b"".join(pieces), exc
    return b"".join(pieces), None


def assert_detected(root: Path, chunk_size: int, offload: bool, original: bytes) -> None:
    got, error = read(root, chunk_size, offload)
    assert error is not None, "a damaged blob read without an integrity error"
    assert original.startswith(got), "plaintext other than the original's was handed out"


@SETTINGS
@given(blob=blobs(), range_points=st.tuples(st.floats(0, 1), st.floats(0, 1)))
def test_what_is_written_reads_back(blob, range_points) -> None:
    chunk_size, content, cuts, offload = blob
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = write(root, chunk_size, content, cuts, offload)
        stride = chunk_size + TAG_SIZE
        chunks = max(1, -(-len(content) // chunk_size))
        assert path.stat().st_size == HEADER_SIZE + len(content) + chunks * TAG_SIZE
        assert path.stat().st_size <= HEADER_SIZE + chunks * stride
        got, error = read(root, chunk_size, offload)
        assert error is None and got == content
        if content:
            start, end = sorted(int(p * (len(content) - 1)) for p in range_points)
            vault = SpaceVault(root, chunk_size=chunk_size, offload_io=offload)

            async def part() -> bytes:
                async with vault.reader(CASE, KEY, BLOB) as reader:
                    assert reader.size == len(content)
                    return b"".join([p async for p in reader.read_range(start, end)])

            assert asyncio.run(part()) == content[start : end + 1]


@SETTINGS
@given(blob=blobs(), where=st.floats(0, 1, exclude_max=True), flip=st.integers(1, 255))
def test_any_changed_byte_is_detected(blob, where, flip) -> None:
    chunk_size, content, cuts, offload = blob
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = write(root, chunk_size, content, cuts, offload)
        data = bytearray(path.read_bytes())
        data[int(where * len(data))] ^= flip
        path.write_bytes(bytes(data))
        assert_detected(root, chunk_size, offload, content)


@SETTINGS
@given(blob=blobs(), keep=st.floats(0, 1, exclude_max=True), extra=st.binary(max_size=40))
def test_truncation_and_extension_are_detected(blob, keep, extra) -> None:
    chunk_size, content, cuts, offload = blob
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = write(root, chunk_size, content, cuts, offload)
        data = path.read_bytes()
        path.write_bytes(data[: int(keep * len(data))])
        assert_detected(root, chunk_size, offload, content)
        if extra:
            path.write_bytes(data + extra)
            assert_detected(root, chunk_size, offload, content)


@SETTINGS
@given(blob=blobs(), picks=st.tuples(st.integers(0, 10), st.integers(0, 10)), how=st.integers(0, 2))
def test_reordered_duplicated_or_removed_chunks_are_detected(blob, picks, how) -> None:
    chunk_size, content, cuts, offload = blob
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = write(root, chunk_size, content, cuts, offload)
        data = path.read_bytes()
        stride = chunk_size + TAG_SIZE
        body = data[HEADER_SIZE:]
        chunks = [body[i : i + stride] for i in range(0, len(body), stride)]
        if len(chunks) < 2:
            chunks = [*chunks, *chunks]  # the only chunk, twice
        else:
            i, j = (p % len(chunks) for p in picks)
            if i == j:
                j = (i + 1) % len(chunks)
            if how == 0:
                chunks[i], chunks[j] = chunks[j], chunks[i]
            elif how == 1:
                chunks[j] = chunks[i]
            else:
                del chunks[i]
        path.write_bytes(data[:HEADER_SIZE] + b"".join(chunks))
        assert_detected(root, chunk_size, offload, content)
