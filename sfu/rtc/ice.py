"""The selected ICE candidate pair of a peer connection, for statistics: whether a
participant reaches the SFU directly (host, srflx) or through a TURN relay (relay).

aiortc takes a bundled transport's remote candidates from the *last* media section of the
peer's description, while browsers put them in the first one only: aioice then learns the
peer's addresses from its connectivity checks, as peer-reflexive (``prflx``) candidates.
:class:`SignalledCandidates` keeps what the peer said of each address in its SDP, so that
the statistics can name a learned address by the type the peer signalled for it."""

from __future__ import annotations

import ipaddress
from typing import Any

from aiortc import RTCPeerConnection

from .internals import nominated_pair

#: Signalled candidates kept per connection (a browser signals a handful).
MAX_SIGNALLED = 64


class SignalledCandidates:
    """The candidate types a peer signalled in its descriptions, by (protocol, address,
    port); at most :data:`MAX_SIGNALLED` of them."""

    def __init__(self) -> None:
        self.__types: dict[tuple[str, str, int], str] = {}

    def remember(self, description: Any) -> None:
        """Record the candidates of every media section of ``description`` (aiortc's
        parsed ``SessionDescription``)."""
        for media in description.media:
            for candidate in media.ice_candidates:
                if len(self.__types) >= MAX_SIGNALLED:
                    return
                key = _key(candidate.protocol, candidate.ip, candidate.port)
                if key is not None:
                    self.__types.setdefault(key, candidate.type)

    def type_of(self, protocol: str, host: str, port: int) -> str | None:
        key = _key(protocol, host, port)
        return self.__types.get(key) if key is not None else None


def _key(protocol: str, host: str, port: int) -> tuple[str, str, int] | None:
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        return None  # an mDNS name: never the source address of a check
    return (protocol.lower(), address, port)


def selected_pair(
    pc: RTCPeerConnection, signalled: SignalledCandidates | None = None
) -> dict[str, str] | None:
    """``{"local_type", "remote_type", "protocol"}`` of the nominated pair of ``pc``'s RTP
    component (with BUNDLE, every m-line shares the first one's), or ``None`` before ICE
    has nominated one.  A remote candidate learned from checks (``prflx``) takes the type
    the peer signalled for its address, if it did.  A peer that relays through TURN has
    ``remote_type == "relay"``."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        return None
    pair = nominated_pair(transceivers[0].receiver.transport)
    if pair is None:
        return None
    remote = pair.remote_candidate
    remote_type = remote.type
    if remote_type == "prflx" and signalled is not None:
        remote_type = signalled.type_of(remote.transport, remote.host, remote.port) or "prflx"
    return {
        "local_type": pair.local_candidate.type,
        "remote_type": remote_type,
        "protocol": remote.transport.lower(),
    }
