"""Caucus recorder: writes forwarded RTP into encrypted WebM files without re-encoding.

A :class:`Recorder` subscribes to SFU producers as a sink, puts the packets back into
frames and muxes them with PyAV into a vault blob, encrypted as it is written.  A
:class:`HearingRecorder` keeps one recording per participant and a timeline.  See
``docs/recorder.md``.
"""

from .hearing import HearingRecorder, HearingResult
from .recorder import (
    COMPLETED,
    DEFAULT_MAX_SECONDS,
    FAILED,
    RECORDING,
    Recorder,
    RecorderError,
    RecordingResult,
)

__all__ = [
    "COMPLETED",
    "DEFAULT_MAX_SECONDS",
    "FAILED",
    "RECORDING",
    "HearingRecorder",
    "HearingResult",
    "Recorder",
    "RecorderError",
    "RecordingResult",
]
