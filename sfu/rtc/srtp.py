"""DTLS-SRTP protection profiles: which ones a connection offers, which one it got."""

from __future__ import annotations

from collections.abc import Iterable

from aiortc import RTCDtlsTransport, RTCPeerConnection
from aiortc.rtcdtlstransport import SRTP_PROFILES, SRTPProtectionProfile

from .internals import selected_srtp_profile, set_srtp_profiles


def srtp_profiles(names: Iterable[str]) -> list[SRTPProtectionProfile]:
    """aiortc's profile objects for the given OpenSSL names, in the given order."""
    by_name = {p.openssl_profile.decode(): p for p in SRTP_PROFILES}
    profiles = [by_name[name] for name in names if name in by_name]
    if not profiles:
        raise ValueError(f"none of the SRTP profiles {list(names)} is available")
    return profiles


def restrict_srtp_profiles(pc: RTCPeerConnection, profiles: list[SRTPProtectionProfile]) -> None:
    """Limit every DTLS transport of ``pc`` to ``profiles``; call before DTLS starts."""
    for transceiver in pc.getTransceivers():
        for dtls in (transceiver.receiver.transport, transceiver.sender.transport):
            if dtls.state == "new":
                set_srtp_profiles(dtls, profiles)


def negotiated_srtp_profile(dtls: RTCDtlsTransport | None) -> str | None:
    """The OpenSSL name of the profile ``dtls`` negotiated, once connected."""
    if dtls is None or dtls.state != "connected":
        return None
    profile = selected_srtp_profile(dtls)
    return profile.decode() if profile else None
