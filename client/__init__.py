"""Headless Caucus participant (aiortc) for end-to-end tests and load benchmarks."""

from .media import PatternVideoTrack, PreEncodedVideoTrack, encode_vp8_clip
from .participant import Participant, ReceivedTrack
from .signal import LocalSignal, Signal
from .socket_signal import SignalError, SocketSignal

__all__ = [
    "LocalSignal",
    "Participant",
    "PatternVideoTrack",
    "PreEncodedVideoTrack",
    "ReceivedTrack",
    "Signal",
    "SignalError",
    "SocketSignal",
    "encode_vp8_clip",
]
