"""Headless participants as the media tests use them: by default they publish a
pre-encoded VP8 clip (looped, a keyframe every second; nothing is encoded live) and count
the packets they receive without decoding them. A test that checks decoded frames, or
how a live encoder answers keyframe requests, asks for ``decode=True`` and
``video="pattern"``."""

from __future__ import annotations

import functools
from typing import Any

from client import Participant
from client.media import encode_vp8_clip
from client.signal import Signal

#: What a test that checks decoded frames passes (the participant's own defaults).
DECODING: dict[str, Any] = {"video": "pattern", "decode": True}


@functools.cache
def vp8_clip() -> list[bytes]:
    """One second of 320x240 VP8 at 30 frames/s, encoded once per test session."""
    return encode_vp8_clip(frames=30)


def participant(name: str, signal: Signal, **options: Any) -> Participant:
    """A :class:`client.Participant` with the tests' defaults (see the module)."""
    options.setdefault("video", "preencoded")
    options.setdefault("decode", False)
    if options["video"] == "preencoded":
        options.setdefault("clip", vp8_clip())
    return Participant(name, signal, **options)
