"""Headless Caucus participant (aiortc) for end-to-end tests and load benchmarks."""

from .media import PatternVideoTrack, PreEncodedVideoTrack, encode_vp8_clip
from .participant import Participant, ReceivedTrack
from .signal import LocalSignal, Signal
from .simulcast import SimulcastLayer, SimulcastVideo
from .simulcast_clips import LayerClip, LayerSpec
from .socket_signal import SignalError, SocketSignal
from .vp8_check import Vp8Check, Vp8CheckReport

__all__ = [
    "LayerClip",
    "LayerSpec",
    "LocalSignal",
    "Participant",
    "PatternVideoTrack",
    "PreEncodedVideoTrack",
    "ReceivedTrack",
    "Signal",
    "SignalError",
    "SimulcastLayer",
    "SimulcastVideo",
    "SocketSignal",
    "Vp8Check",
    "Vp8CheckReport",
    "encode_vp8_clip",
]
