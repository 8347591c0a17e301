"""The selected ICE candidate pair of a peer connection, for statistics: whether a
participant reaches the SFU directly (host, srflx) or through a TURN relay (relay)."""

from __future__ import annotations

from aiortc import RTCPeerConnection

from .internals import nominated_pair


def selected_pair(pc: RTCPeerConnection) -> dict[str, str] | None:
    """``{"local_type", "remote_type", "protocol"}`` of the nominated pair of ``pc``'s RTP
    component (with BUNDLE, every m-line shares the first one's), or ``None`` before ICE
    has nominated one.  A peer that relays through TURN has ``remote_type == "relay"``."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        return None
    pair = nominated_pair(transceivers[0].receiver.transport)
    if pair is None:
        return None
    return {
        "local_type": pair.local_candidate.type,
        "remote_type": pair.remote_candidate.type,
        "protocol": pair.remote_candidate.transport.lower(),
    }
