"""The simulcast publisher's clips: one moving picture encoded to VP8 once per layer.

Each layer of :data:`DEFAULT_LAYERS` (a quarter, a half and the full 1280x720 picture,
as a browser sends them) is a clip whose first frame is its only keyframe, so that
looping it gives a keyframe every ``seconds`` and a stream can answer a keyframe
request at once by going back to its first frame (see
:meth:`client.direct_publish.PublishedStream.restart`).  Every layer encodes the same
source pictures (drawn at the largest size, scaled down for the others), so the layers
show the same thing frame for frame.

Encoding the three layers takes about a second of CPU; :func:`simulcast_clips` does it
once per process, and once per machine with a ``cache_dir`` (or ``CAUCUS_CLIP_CACHE``).
A cache file that does not read back as the clips asked for is ignored and replaced.
"""

from __future__ import annotations

import contextlib
import fractions
import functools
import hashlib
import logging
import os
import random
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av

log = logging.getLogger(__name__)

#: The environment variable naming a directory for :func:`simulcast_clips`' cache.
CACHE_ENVIRONMENT = "CAUCUS_CLIP_CACHE"
_MAGIC = b"CaucusSimulcastClips\x01"
_COUNT = struct.Struct("!I")
#: No cached frame is larger than this (a 1280x720 keyframe is some 30 KB).
_MAX_FRAME = 4 << 20
#: The source background's blocks, in pixels of the largest layer.
_BLOCK = 32


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a simulcast video: its RID, picture size and target bitrate (bit/s)."""

    rid: str
    width: int
    height: int
    bitrate: int


#: Lowest layer first, as a browser offers them (``a=simulcast:send q;h;f``).
DEFAULT_LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("q", 320, 180, 150_000),
    LayerSpec("h", 640, 360, 500_000),
    LayerSpec("f", 1280, 720, 1_200_000),
)


@dataclass(frozen=True)
class LayerClip:
    """One layer's encoded clip: ``frames`` in order, the first a keyframe."""

    spec: LayerSpec
    frames: tuple[bytes, ...]
    fps: int


def is_vp8_keyframe(frame: bytes) -> bool:
    """RFC 6386 §9.1: the frame tag's P bit is clear and the start code follows."""
    return len(frame) >= 10 and not frame[0] & 0x01 and frame[3:6] == b"\x9d\x01\x2a"


def source_picture(width: int, height: int, index: int) -> av.VideoFrame:
    """Frame ``index`` of the source: a still background of 32-pixel blocks of random
    grey, a textured square crossing it and a slowly shifting tint, the same for a given
    ``index`` on every run.  Keyframes cost what a camera's do (a few KB at 320x180, some
    25 KB at 1280x720) and delta frames carry the motion."""
    background = _background(width, height)
    frame = av.VideoFrame(width, height, "yuv420p")
    luma = frame.planes[0]
    pad = bytes(luma.line_size - width)
    side = height // 3
    left = (index * width // 60) % (width - side)
    top = (height - side) // 2 + index % 20 - 10
    square = _square(side)
    rows = []
    for row, line in enumerate(background):
        if top <= row < top + side:
            line = line[:left] + square[row - top] + line[left + side :]
        rows.append(line + pad)
    luma.update(b"".join(rows))
    tint = (96 + index * 2 % 64).to_bytes(1, "big")
    for plane, value in ((frame.planes[1], tint), (frame.planes[2], b"\x80")):
        plane.update(value * (plane.line_size * plane.height))
    return frame


@functools.cache
def _background(width: int, height: int) -> tuple[bytes, ...]:
    rng = random.Random(0)
    grey = bytes(80 + value % 96 for value in range(256))
    rows: list[bytes] = []
    for _ in range(0, height, _BLOCK):
        blocks = rng.randbytes(width // _BLOCK + 1).translate(grey)
        line = b"".join(bytes((value,)) * _BLOCK for value in blocks)[:width]
        rows += [line] * _BLOCK
    return tuple(rows[:height])


@functools.cache
def _square(side: int) -> tuple[bytes, ...]:
    rng = random.Random(1)
    bright = bytes(160 + value % 64 for value in range(256))
    return tuple(rng.randbytes(side).translate(bright) for _ in range(side))


def encode_layer(spec: LayerSpec, pictures: Sequence[av.VideoFrame], fps: int) -> tuple[bytes, ...]:
    """``pictures`` encoded at ``spec``'s size and bitrate (scaled when they are not of
    that size): a keyframe, then delta frames only."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width = spec.width
    codec.height = spec.height
    codec.pix_fmt = "yuv420p"
    codec.bit_rate = spec.bitrate
    codec.framerate = fractions.Fraction(fps, 1)
    codec.time_base = fractions.Fraction(1, fps)
    codec.gop_size = len(pictures) + 1
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "16",
        "lag-in-frames": "0",
        "qmin": "4",
        "qmax": "56",
    }
    packets: list[bytes] = []
    for index, picture in enumerate(pictures):
        if (picture.width, picture.height) != (spec.width, spec.height):
            picture = picture.reformat(width=spec.width, height=spec.height)
        picture.pts = index
        picture.time_base = codec.time_base
        packets.extend(bytes(p) for p in codec.encode(picture))
    packets.extend(bytes(p) for p in codec.encode(None))
    if len(packets) != len(pictures):
        raise RuntimeError(f"{len(pictures)} pictures encoded to {len(packets)} VP8 frames")
    if not is_vp8_keyframe(packets[0]):
        raise RuntimeError(f"the {spec.rid} clip does not start with a keyframe")
    return tuple(packets)


def encode_layers(
    layers: Sequence[LayerSpec] = DEFAULT_LAYERS, seconds: float = 2.0, fps: int = 30
) -> tuple[LayerClip, ...]:
    """Every layer of ``layers`` encoded from the same ``seconds`` of source pictures."""
    if not layers:
        raise ValueError("no layers")
    frames = max(1, round(seconds * fps))
    width = max(spec.width for spec in layers)
    height = max(spec.height for spec in layers)
    pictures = [source_picture(width, height, index) for index in range(frames)]
    return tuple(LayerClip(spec, encode_layer(spec, pictures, fps), fps) for spec in layers)


_encoded: dict[tuple[tuple[LayerSpec, ...], float, int], tuple[LayerClip, ...]] = {}


def simulcast_clips(
    layers: Sequence[LayerSpec] = DEFAULT_LAYERS,
    seconds: float = 2.0,
    fps: int = 30,
    cache_dir: Path | str | None = None,
) -> tuple[LayerClip, ...]:
    """:func:`encode_layers`, once per process; with ``cache_dir`` (default: the
    ``CAUCUS_CLIP_CACHE`` directory, when set) read from and written to a file there."""
    key = (tuple(layers), float(seconds), fps)
    clips = _encoded.get(key)
    if clips is not None:
        return clips
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENVIRONMENT) or None
    path = None if cache_dir is None else Path(cache_dir) / _cache_name(key)
    if path is not None:
        clips = _read_cache(path, key)
    if clips is None:
        clips = encode_layers(*key)
        if path is not None:
            _write_cache(path, clips)
    _encoded[key] = clips
    return clips


def _cache_name(key: tuple[tuple[LayerSpec, ...], float, int]) -> str:
    digest = hashlib.sha256(repr((_MAGIC, key)).encode()).hexdigest()[:20]
    return f"simulcast-{digest}.vp8clips"


def _read_cache(
    path: Path, key: tuple[tuple[LayerSpec, ...], float, int]
) -> tuple[LayerClip, ...] | None:
    """The clips cached at ``path``, or ``None`` when missing or not what ``key`` asks."""
    layers, seconds, fps = key
    expected = max(1, round(seconds * fps))
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        if not data.startswith(_MAGIC):
            raise ValueError("not a clip cache")
        pos = len(_MAGIC)
        clips = []
        for spec in layers:
            (count,) = _COUNT.unpack_from(data, pos)
            pos += _COUNT.size
            if count != expected:
                raise ValueError(f"{count} frames, not {expected}")
            frames = []
            for _ in range(count):
                (size,) = _COUNT.unpack_from(data, pos)
                pos += _COUNT.size
                if not 0 < size <= _MAX_FRAME or pos + size > len(data):
                    raise ValueError("a frame runs past the file")
                frames.append(data[pos : pos + size])
                pos += size
            if not is_vp8_keyframe(frames[0]):
                raise ValueError(f"the {spec.rid} clip does not start with a keyframe")
            clips.append(LayerClip(spec, tuple(frames), fps))
        if pos != len(data):
            raise ValueError("trailing bytes")
    except (ValueError, struct.error) as error:
        log.warning("ignoring the clip cache %s: %s", path, error, extra={"path": str(path)})
        return None
    return tuple(clips)


def _write_cache(path: Path, clips: Sequence[LayerClip]) -> None:
    parts = [_MAGIC]
    for clip in clips:
        parts.append(_COUNT.pack(len(clip.frames)))
        for frame in clip.frames:
            parts += [_COUNT.pack(len(frame)), frame]
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".simulcast-")
        with os.fdopen(handle, "wb") as file:
            file.write(b"".join(parts))
        os.replace(temporary, path)
    except OSError as error:
        log.warning("cannot write the clip cache %s: %s", path, error, extra={"path": str(path)})
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


__all__ = [
    "CACHE_ENVIRONMENT",
    "DEFAULT_LAYERS",
    "LayerClip",
    "LayerSpec",
    "encode_layer",
    "encode_layers",
    "is_vp8_keyframe",
    "simulcast_clips",
    "source_picture",
]
