"""Fuzz target: the ``Range`` header of space file downloads (``byte_range``).

An input is a file size (4 bytes, big-endian), a stretch byte and the header's value,
decoded as aiohttp decodes header bytes (UTF-8, undecodable bytes kept as lone
surrogates).  The header is tried as it is, and with every run of digits repeated up to
32 x the stretch byte characters (up to 8,160): numbers longer than Python's limit of
4,300 digits for ``int()`` of a string, which mutation alone seldom reaches.

Documented outcomes: ``None`` (the whole file), an inclusive ``(start, end)`` inside the
file, or ``RangeNotSatisfiable`` (answered 416).  A crash is any other exception (the
download would answer 500) or a range outside the file.
"""

from __future__ import annotations

import re
import sys

import atheris

with atheris.instrument_imports(include=["signaling.http.api.spaces"]):
    from signaling.http.api.spaces import RangeNotSatisfiable, byte_range


def stretched(header: str, length: int) -> str:
    """``header`` with each run of ASCII digits repeated to ``length`` characters."""
    return re.sub("[0-9]+", lambda m: (m.group() * (length // len(m.group()) + 1))[:length], header)


def check(header: str, size: int) -> None:
    try:
        wanted = byte_range(header, size)
    except RangeNotSatisfiable:
        return
    if wanted is not None:
        start, end = wanted
        assert 0 <= start <= end < size, (wanted, size)


def TestOneInput(data: bytes) -> None:
    if len(data) < 5:
        return
    size = int.from_bytes(data[:4], "big")
    header = data[5:].decode("utf-8", "surrogateescape")
    check(header, size)
    if data[4]:
        check(stretched(header, 32 * data[4]), size)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
