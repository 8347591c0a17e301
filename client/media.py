"""Media sources for headless participants.

* :class:`PatternVideoTrack` — generated frames (a moving gradient), encoded live by
  aiortc's VP8/H264 encoder: the realistic path, used by the tests.
* :class:`PreEncodedVideoTrack` — a VP8 clip encoded once at start, then its packets
  looped with fresh timestamps: costs the client almost no CPU, used by benchmarks.
* :class:`ToneAudioTrack` — a steady tone (a participant who is speaking, as far as
  audio levels go), where aiortc's ``AudioStreamTrack`` reads silence.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import os
import struct
import time

import av
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack

VIDEO_CLOCK_RATE = 90000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)


class ToneAudioTrack(AudioStreamTrack):
    """A 440 Hz tone at ``amplitude`` (of full scale): aiortc's sender computes each
    packet's audio level (RFC 6464) from it, about -9 dBov at the default."""

    def __init__(self, amplitude: float = 0.5) -> None:
        super().__init__()
        self._amplitude = amplitude
        self._phase = 0

    async def recv(self):  # aiortc Frame
        frame = await super().recv()
        count = frame.samples
        rate = frame.sample_rate
        peak = int(32767 * self._amplitude)
        samples = [
            int(peak * math.sin(2 * math.pi * 440 * (self._phase + i) / rate)) for i in range(count)
        ]
        self._phase += count
        frame.planes[0].update(struct.pack(f"<{count}h", *samples))
        return frame


class _Pacer:
    """Yields 90 kHz timestamps at ``fps``, sleeping until each frame is due."""

    def __init__(self, fps: int) -> None:
        self._fps = fps
        self._start: float | None = None
        self._index = 0

    async def next(self) -> int:
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._index += 1
            wait = self._start + self._index / self._fps - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        return self._index * VIDEO_CLOCK_RATE // self._fps


class PatternVideoTrack(MediaStreamTrack):
    """Generated video: a gradient that moves every frame, so every frame differs."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = 30) -> None:
        super().__init__()
        self._pacer = _Pacer(fps)
        self._width = width
        self._height = height
        self._frames = 0

    async def recv(self) -> av.VideoFrame:
        pts = await self._pacer.next()
        self._frames += 1
        frame = pattern_frame(self._width, self._height, self._frames * 4)
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        return frame


def pattern_frame(width: int, height: int, shift: int, noise: bool = False) -> av.VideoFrame:
    """A YUV 4:2:0 frame holding a horizontal gradient shifted by ``shift``; with
    ``noise`` the luma is random (to give an encoder a realistic amount of work)."""
    frame = av.VideoFrame(width, height, "yuv420p")
    for index, plane in enumerate(frame.planes):
        w = plane.width
        pad = b"\x00" * (plane.line_size - w)
        if index == 0 and noise:
            rows = plane.height // 4
            flat = (bytes((x + shift) & 0xFF for x in range(w)) + pad) * (plane.height - rows)
            plane.update(b"".join(os.urandom(w) + pad for _ in range(rows)) + flat)
            continue
        if index == 0:
            row = bytes((x + shift) & 0xFF for x in range(w))
        else:
            row = bytes((128 + (shift if index == 1 else -shift)) & 0xFF for _ in range(w))
        plane.update((row + pad) * plane.height)
    return frame


def encode_vp8_clip(
    frames: int = 30, width: int = 320, height: int = 240, fps: int = 30, bitrate: int = 1_000_000
) -> list[bytes]:
    """Encode ``frames`` generated frames to VP8 once; the first is a keyframe."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width = width
    codec.height = height
    codec.pix_fmt = "yuv420p"
    codec.bit_rate = bitrate
    codec.framerate = fractions.Fraction(fps, 1)
    codec.time_base = fractions.Fraction(1, fps)
    codec.gop_size = frames
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    packets: list[bytes] = []
    for i in range(frames):
        frame = pattern_frame(width, height, i * 8, noise=True)
        frame.pts = i
        frame.time_base = codec.time_base
        packets.extend(bytes(p) for p in codec.encode(frame))
    packets.extend(bytes(p) for p in codec.encode(None))
    return packets


class PreEncodedVideoTrack(MediaStreamTrack):
    """Loops pre-encoded VP8 frames; aiortc's sender only packetizes them."""

    kind = "video"

    def __init__(self, clip: list[bytes], fps: int = 30) -> None:
        super().__init__()
        self._clip = clip
        self._pacer = _Pacer(fps)
        self._index = 0

    async def recv(self) -> av.Packet:
        pts = await self._pacer.next()
        packet = av.Packet(self._clip[self._index % len(self._clip)])
        self._index += 1
        packet.pts = pts
        packet.time_base = VIDEO_TIME_BASE
        return packet


__all__ = [
    "AudioStreamTrack",
    "PatternVideoTrack",
    "PreEncodedVideoTrack",
    "encode_vp8_clip",
]
