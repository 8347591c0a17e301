"""A test pattern that survives lossy compression: a solid colour that changes every
second, over a strip of ten black/white blocks spelling the frame number in binary."""

from __future__ import annotations

import asyncio
import fractions
import time

import av
from aiortc.mediastreams import MediaStreamTrack

WIDTH, HEIGHT, FPS = 320, 240, 30
STRIP_TOP = 160
BITS = 10
BLOCK = WIDTH // BITS
#: Background colours as (Y, U, V), one per second, cycling.
PALETTE = [
    (81, 90, 240),
    (145, 54, 34),
    (41, 240, 110),
    (210, 16, 146),
    (170, 166, 16),
    (106, 202, 222),
]
TIME_BASE = fractions.Fraction(1, 90000)


def expected_colour(counter: int) -> tuple[int, int, int]:
    return PALETTE[(counter // FPS) % len(PALETTE)]


def pattern_frame(counter: int) -> av.VideoFrame:
    cy, cu, cv = expected_colour(counter)
    strip = b"".join(
        bytes((235 if counter >> (BITS - 1 - bit) & 1 else 16,)) * BLOCK for bit in range(BITS)
    )
    luma = bytes((cy,)) * WIDTH * STRIP_TOP + strip * (HEIGHT - STRIP_TOP)
    half = WIDTH // 2
    rows_top, rows_bottom = STRIP_TOP // 2, (HEIGHT - STRIP_TOP) // 2
    u = bytes((cu,)) * half * rows_top + b"\x80" * half * rows_bottom
    v = bytes((cv,)) * half * rows_top + b"\x80" * half * rows_bottom
    frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
    for plane, data in zip(frame.planes, (luma, u, v), strict=True):
        width = plane.width
        pad = b"\x00" * (plane.line_size - width)
        if pad:
            data = b"".join(data[i : i + width] + pad for i in range(0, len(data), width))
        plane.update(data)
    return frame


def _mean(plane: av.video.plane.VideoPlane, x0: int, x1: int, y0: int, y1: int) -> float:
    data = bytes(plane)
    stride = plane.line_size
    total = count = 0
    for row in range(y0, y1, 2):
        line = data[row * stride + x0 : row * stride + x1 : 2]
        total += sum(line)
        count += len(line)
    return total / count


def read_frame(frame: av.VideoFrame) -> tuple[int, tuple[float, float, float]]:
    """(frame counter, mean background colour) of a decoded pattern frame."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    y, u, v = frame.planes
    counter = 0
    for bit in range(BITS):
        mean = _mean(y, bit * BLOCK + 8, (bit + 1) * BLOCK - 8, STRIP_TOP + 16, HEIGHT - 16)
        counter = counter << 1 | int(mean > 128)
    half_top = STRIP_TOP // 2
    colour = (
        _mean(y, 8, WIDTH - 8, 8, STRIP_TOP - 8),
        _mean(u, 4, WIDTH // 2 - 4, 4, half_top - 4),
        _mean(v, 4, WIDTH // 2 - 4, 4, half_top - 4),
    )
    return counter, colour


class CounterPatternTrack(MediaStreamTrack):
    """Paints frame ``n`` at ``n / FPS`` seconds (RTP timestamp ``n * 3000``)."""

    kind = "video"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__()
        self._start: float | None = None
        self._counter = 0

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._counter += 1
            wait = self._start + self._counter / FPS - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        frame = pattern_frame(self._counter)
        frame.pts = self._counter * (90000 // FPS)
        frame.time_base = TIME_BASE
        return frame
