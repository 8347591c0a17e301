"""The only module that touches aiortc (and aioice) internals.

aiortc's public API decodes every received track; the SFU needs the decrypted RTP
packets instead, and needs to write packets to a sender without an encoder.  Every
private attribute or method the SFU relies on is reached through a function here, and
listed in :data:`PRIVATE_API` so that ``tests/sfu/test_aiortc_adapter.py`` fails loudly
when an aiortc upgrade changes them (aiortc is pinned to ``>=1.16,<1.17``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdtlstransport import SRTP_PROFILES, RTCDtlsTransport, SRTPProtectionProfile, State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.rtp import AnyRtcpPacket, RtpPacket

logger = logging.getLogger(__name__)

#: (class, attribute) pairs the adapter depends on; checked by the guard test.
PRIVATE_API: tuple[tuple[type, str], ...] = (
    (RTCRtpReceiver, "_handle_rtp_packet"),
    (RTCRtpReceiver, "_handle_rtcp_packet"),
    (RTCRtpSender, "_handle_rtcp_packet"),
    (RTCRtpSender, "_send_rtcp"),
    (RTCDtlsTransport, "_handle_rtp_data"),
    (RTCDtlsTransport, "_send_rtp"),
)
#: Instance attributes (created in ``__init__``/handshake) the adapter reads.
PRIVATE_INSTANCE_ATTRIBUTES: dict[type, tuple[str, ...]] = {
    RTCRtpSender: ("_ssrc", "_rtx_ssrc"),
    RTCRtpTransceiver: ("_codecs", "_headerExtensions"),
    RTCDtlsTransport: ("_srtp_profiles", "_tx_srtp", "_ssl", "_state"),
}

RtpHandler = Callable[[RtpPacket, int], None]
RtcpHandler = Callable[[AnyRtcpPacket], None]


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
                dtls._srtp_profiles = profiles


def negotiated_srtp_profile(dtls: RTCDtlsTransport | None) -> str | None:
    if dtls is None or dtls.state != "connected" or dtls._ssl is None:
        return None
    profile = dtls._ssl.get_selected_srtp_profile()
    return profile.decode() if profile else None


def intercept_rtp(receiver: RTCRtpReceiver, handler: RtpHandler) -> None:
    """Deliver the receiver's decrypted RTP packets to ``handler`` instead of its decoder.

    The jitter buffer, decoder, NACK generator and receiver reports of aiortc are skipped.
    ``handler`` runs synchronously; an exception is logged, never propagated, because an
    exception escaping this hook would close the whole peer connection.
    """

    async def handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
        try:
            handler(packet, arrival_time_ms)
        except Exception:
            logger.exception("RTP handler failed")

    receiver._handle_rtp_packet = handle_rtp_packet  # type: ignore[method-assign]


def intercept_receiver_rtcp(receiver: RTCRtpReceiver, handler: RtcpHandler) -> None:
    """Also deliver RTCP addressed to the receiver (sender reports, BYE) to ``handler``."""
    original = receiver._handle_rtcp_packet

    async def handle_rtcp_packet(packet: AnyRtcpPacket) -> None:
        try:
            handler(packet)
        except Exception:
            logger.exception("RTCP handler failed")
        await original(packet)

    receiver._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]


def intercept_sender_rtcp(sender: RTCRtpSender, handler: RtcpHandler) -> None:
    """Route subscriber feedback (NACK, PLI, FIR, RR, REMB) for ``sender`` to ``handler``.

    aiortc's own handling (retransmission from its empty history, keyframe requests to an
    encoder that does not exist) is skipped, and its sender reports are silenced because
    its counters know nothing of forwarded packets: the SFU writes its own.
    """

    async def handle_rtcp_packet(packet: AnyRtcpPacket) -> None:
        try:
            handler(packet)
        except Exception:
            logger.exception("RTCP handler failed")

    async def send_rtcp(packets: list[AnyRtcpPacket]) -> None:
        return None

    sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]
    sender._send_rtcp = send_rtcp  # type: ignore[method-assign]


def sender_ssrcs(sender: RTCRtpSender) -> tuple[int, int]:
    """The (media, RTX) SSRCs aiortc announces for ``sender``."""
    return sender._ssrc, sender._rtx_ssrc


def receiver_rtcp_ssrc(transceiver: RTCRtpTransceiver) -> int:
    """The SSRC used as packet sender in RTCP about received media (aiortc sets it so)."""
    return transceiver.sender._ssrc


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    return list(transceiver._codecs)


def limit_codecs(transceiver: RTCRtpTransceiver, codecs: list[RTCRtpCodecParameters]) -> None:
    """Make the next answer carry only ``codecs`` for ``transceiver``."""
    transceiver._codecs = list(codecs)


def negotiated_header_extensions(
    transceiver: RTCRtpTransceiver,
) -> list[RTCRtpHeaderExtensionParameters]:
    return list(transceiver._headerExtensions)


class RtpWriter:
    """Writes serialized RTP/RTCP to one DTLS transport: SRTP-protect, then one UDP send.

    ``write_rtp`` is synchronous: no coroutine chain and no task switch per packet, which
    is what makes fanning one packet out to many subscribers cheap.
    """

    __slots__ = ("_dtls", "bytes", "packets")

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self._dtls = dtls
        self.packets = 0
        self.bytes = 0

    @property
    def dtls(self) -> RTCDtlsTransport:
        return self._dtls

    @property
    def ready(self) -> bool:
        return self._dtls.state == "connected" and self._dtls._tx_srtp is not None

    def write_rtp(self, data: bytes) -> bool:
        dtls = self._dtls
        srtp = dtls._tx_srtp
        if srtp is None or dtls._state is not State.CONNECTED:
            return False
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            return False
        data = srtp.protect(data)
        pair.protocol.transport.sendto(data, pair.remote_addr)
        self.packets += 1
        self.bytes += len(data)
        return True

    def write_rtcp(self, data: bytes) -> bool:
        dtls = self._dtls
        srtp = dtls._tx_srtp
        if srtp is None or dtls._state is not State.CONNECTED:
            return False
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            return False
        pair.protocol.transport.sendto(srtp.protect_rtcp(data), pair.remote_addr)
        return True


class IdleTrack(MediaStreamTrack):
    """A track that never yields a frame: it gives a forwarding sender the track aiortc
    requires, while the sender's own RTP loop waits forever."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.__never: asyncio.Future[Any] | None = None

    async def recv(self) -> Any:
        if self.__never is None:
            self.__never = asyncio.get_running_loop().create_future()
        return await self.__never

    def stop(self) -> None:
        super().stop()
        if self.__never is not None and not self.__never.done():
            self.__never.cancel()


def drop_incoming_rtp(dtls: RTCDtlsTransport, should_drop: Callable[[], bool]) -> None:
    """Test tool: discard received SRTP media datagrams for which ``should_drop()`` is
    true, as a lossy network would (DTLS, STUN and RTCP pass)."""
    ice = dtls.transport
    receive = ice._recv

    async def lossy_recv() -> bytes:
        while True:
            data = await receive()
            first = data[0]
            is_media = 127 < first < 192 and len(data) > 1 and not 192 <= data[1] <= 223
            if not (is_media and should_drop()):
                return data

    ice._recv = lossy_recv
