"""Pre-encoded media that carries its send time, for measuring end-to-end latency.

The SFU forwards payloads untouched (it rewrites the RTP header and its own
abs-send-time), so the publisher's wall-clock send time travels in the payload: the
last :data:`STAMP_SIZE` bytes of every Opus packet and of every VP8 frame are
``MAGIC`` followed by the send time in microseconds since the epoch (big-endian).

* Opus: each packet is rewritten once at start into a code-3 packet of one frame with
  12 bytes of padding (RFC 6716 §3.2.5); decoders ignore padding, so the stream stays
  valid for any listener, browser or recorder.
* VP8: the stamp follows the frame data; decoders stop at the end of the coded data and
  ignore what trails it.  Frames are padded so that aiortc's packetizer never splits the
  stamp across two RTP packets: it always ends the packet with the marker bit.

Nothing is encoded while the load runs: the clips are made once, the stamp is a
concatenation per frame.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import os
import struct
import time

import av
from aiortc.mediastreams import MediaStreamTrack

from .media import VIDEO_TIME_BASE

MAGIC = b"CcLt"
STAMP = struct.Struct("!4sQ")
STAMP_SIZE = STAMP.size
AUDIO_RATE = 48000
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_RATE)
AUDIO_FRAME_SAMPLES = 960  # 20 ms
#: aiortc's VP8 packetizer: at most 1300 bytes per payload, minus a 3- or 4-byte descriptor.
_VP8_CHUNKS = (1300 - 3, 1300 - 4)


def stamp(now_us: int | None = None) -> bytes:
    return STAMP.pack(MAGIC, time.time_ns() // 1000 if now_us is None else now_us)


def read_stamp(payload: bytes) -> int | None:
    """The send time (µs since the epoch) a stamped payload ends with, else ``None``."""
    if len(payload) < STAMP_SIZE or payload[-STAMP_SIZE:-8] != MAGIC:
        return None
    return STAMP.unpack_from(payload, len(payload) - STAMP_SIZE)[1]


def stamp_ending_at(data: bytes, start: int, end: int) -> int | None:
    """:func:`read_stamp` of the payload ``data[start:end]``, without copying it."""
    if end - start < STAMP_SIZE or data[end - STAMP_SIZE : end - 8] != MAGIC:
        return None
    return STAMP.unpack_from(data, end - STAMP_SIZE)[1]


def stampable_vp8(frame: bytes) -> bytes:
    """``frame`` padded so that ``frame + stamp`` never splits the stamp between packets."""
    padding = 0
    while True:
        length = len(frame) + padding + STAMP_SIZE
        if all(length % c == 0 or length % c >= STAMP_SIZE for c in _VP8_CHUNKS):
            return frame + b"\x00" * padding
        padding += 1


def opus_with_padding(packet: bytes, padding: int = STAMP_SIZE) -> bytes:
    """A one-frame Opus packet (code 0) as a code-3 packet declaring ``padding`` bytes of
    padding, which the caller appends (the stamp)."""
    toc = packet[0]
    if toc & 0x03 != 0:
        raise ValueError("expected a one-frame (code 0) Opus packet")
    if padding >= 255:
        raise ValueError("padding must be below 255 bytes")
    # frame-count byte: v=0 (constant size), p=1 (padding follows), M=1 frame
    return bytes((toc | 0x03, 0x41, padding)) + packet[1:]


def encode_opus_clip(seconds: float = 1.0, bitrate: int = 32000) -> list[bytes]:
    """A 440 Hz tone encoded once as 20 ms Opus packets (code 0)."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = AUDIO_RATE
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = bitrate
    codec.options = {"frame_duration": "20", "application": "voip"}
    frames = int(seconds * AUDIO_RATE / AUDIO_FRAME_SAMPLES)
    packets: list[bytes] = []
    for index in range(frames):
        start = index * AUDIO_FRAME_SAMPLES
        samples = b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * (start + n) / AUDIO_RATE)))
            for n in range(AUDIO_FRAME_SAMPLES)
        )
        frame = av.AudioFrame(format="s16", layout="mono", samples=AUDIO_FRAME_SAMPLES)
        frame.planes[0].update(samples)
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = AUDIO_TIME_BASE
        packets.extend(bytes(p) for p in codec.encode(frame))
    packets.extend(bytes(p) for p in codec.encode(None))
    return [p for p in packets if p and p[0] & 0x03 == 0]


class _Clock:
    """Sleeps until each frame of a fixed-rate stream is due; returns its index."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._start: float | None = None
        self._index = -1

    async def next(self) -> int:
        self._index += 1
        if self._start is None:
            self._start = time.monotonic()
        else:
            wait = self._start + self._index * self._interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        return self._index


class StampedOpusTrack(MediaStreamTrack):
    """Loops pre-encoded Opus packets every 20 ms, each stamped with its send time."""

    kind = "audio"

    def __init__(self, clip: list[bytes]) -> None:
        super().__init__()
        self._clip = [opus_with_padding(p) for p in clip]
        self._clock = _Clock(AUDIO_FRAME_SAMPLES / AUDIO_RATE)

    async def recv(self) -> av.Packet:
        index = await self._clock.next()
        packet = av.Packet(self._clip[index % len(self._clip)] + stamp())
        packet.pts = index * AUDIO_FRAME_SAMPLES
        packet.time_base = AUDIO_TIME_BASE
        return packet


class StampedVideoTrack(MediaStreamTrack):
    """Loops a pre-encoded VP8 clip, each frame stamped with its send time."""

    kind = "video"

    def __init__(self, clip: list[bytes], fps: int = 30) -> None:
        super().__init__()
        self._clip = [stampable_vp8(frame) for frame in clip]
        self._fps = fps
        self._clock = _Clock(1 / fps)

    async def recv(self) -> av.Packet:
        index = await self._clock.next()
        packet = av.Packet(self._clip[index % len(self._clip)] + stamp())
        packet.pts = index * 90000 // self._fps
        packet.time_base = VIDEO_TIME_BASE
        return packet


def _textured_frame(width: int, height: int, shift: int, noise: int = 8) -> av.VideoFrame:
    """Horizontal bands that scroll with ``shift``, with low-amplitude noise, so that the
    encoder's rate control can meet a target bitrate (strong noise would exceed it)."""
    frame = av.VideoFrame(width, height, "yuv420p")
    luma = frame.planes[0]
    pad = b"\x00" * (luma.line_size - width)
    tables: dict[int, bytes] = {}
    rows = []
    for row in range(height):
        base = min((((row + shift) // 24) * 40) & 0xFF, 255 - noise)
        table = tables.get(base)
        if table is None:
            table = tables[base] = bytes(base + value % noise for value in range(256))
        rows.append(os.urandom(width).translate(table) + pad)
    luma.update(b"".join(rows))
    for plane in frame.planes[1:]:
        plane.update(b"\x80" * (plane.line_size * plane.height))
    return frame


def encode_vp8_at(bitrate: int, width: int = 640, height: int = 360, fps: int = 30) -> list[bytes]:
    """One second of VP8 near ``bitrate`` (a keyframe, then delta frames), encoded once.

    Two seconds are encoded and the second kept, once the rate control has settled."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width = width
    codec.height = height
    codec.pix_fmt = "yuv420p"
    codec.bit_rate = bitrate
    codec.framerate = fractions.Fraction(fps, 1)
    codec.time_base = fractions.Fraction(1, fps)
    codec.gop_size = fps
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "qmax": "63"}
    packets: list[bytes] = []
    for index in range(2 * fps):
        frame = _textured_frame(width, height, index * 2)
        frame.pts = index
        frame.time_base = codec.time_base
        packets.extend(bytes(p) for p in codec.encode(frame))
    packets.extend(bytes(p) for p in codec.encode(None))
    return packets[fps : 2 * fps]


def make_clips(video_bitrate: int, audio_only: bool) -> tuple[list[bytes], list[bytes] | None]:
    """The Opus clip and (unless ``audio_only``) a one-second 640x360 VP8 clip."""
    opus = encode_opus_clip()
    if audio_only:
        return opus, None
    return opus, encode_vp8_at(video_bitrate)


__all__ = [
    "MAGIC",
    "STAMP_SIZE",
    "StampedOpusTrack",
    "StampedVideoTrack",
    "encode_opus_clip",
    "encode_vp8_at",
    "make_clips",
    "opus_with_padding",
    "read_stamp",
    "stamp",
    "stamp_ending_at",
    "stampable_vp8",
]
