"""Hooks on aiortc's receivers and senders: decrypted RTP and RTCP to the SFU's
handlers instead of aiortc's decoder and feedback handling, idle RTCP loops, and what
aiortc negotiated for a transceiver (codecs, header extensions, SSRCs)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.rtp import AnyRtcpPacket, RtpPacket

from ..repeated_log import RepeatedLog
from .internals import header_extensions_map

logger = logging.getLogger(__name__)

RtpHandler = Callable[[RtpPacket, int], None]
RtpDataHandler = Callable[[bytes, int], None]
RtcpHandler = Callable[[AnyRtcpPacket], None]
#: (ssrc, payload type) -> (compiled producer, what to keep alive) or None.
NativeRoute = Callable[[int, int], "tuple[Any, Any] | None"]

#: Failures of the SFU's own handlers, which a peer may be able to repeat per packet.
_handler_failures = RepeatedLog(logger)


def handler_failed(kind: str, exc: BaseException) -> None:
    """Log a failure of a per-packet handler: one line per interval, with a count."""
    _handler_failures.failure(kind, f"{kind}: {type(exc).__name__}: {exc}")


def intercept_rtp(receiver: RTCRtpReceiver, handler: RtpHandler) -> None:
    """Deliver the receiver's decrypted RTP packets to ``handler`` instead of its decoder.

    The jitter buffer, decoder, NACK generator and receiver reports of aiortc are skipped
    (its report loop, with nothing to report, no longer wakes every second: the owner of
    ``handler`` reports).  ``handler`` runs synchronously; an exception is logged, never
    propagated, because an exception escaping this hook would close the whole peer
    connection.
    """
    receiver._handle_rtp_packet = RtpHook(receiver, handler, None)  # type: ignore[method-assign]  # the hook replaces aiortc's method
    stop_receiver_reports(receiver)


def intercept_rtp_data(
    receiver: RTCRtpReceiver,
    handler: RtpDataHandler,
    track: Any = None,
    route: NativeRoute | None = None,
) -> None:
    """Like :func:`intercept_rtp`, but ``handler(data, arrival_time_ms)`` receives the
    decrypted RTP packet as ``bytes`` (header, extensions, payload, padding), so that it
    reads only the fields it needs; with :func:`receive_directly` nothing is parsed for
    it at all.  ``arrival_time_ms`` counts from 1900, as aiortc's does.

    ``track``, a compiled track counter (``caucus_track *`` of ``sfu._fastpath``) that
    ``handler`` feeds, lets :func:`receive_directly`'s compiled path count the receiver's
    packets itself once the first one went through ``handler``: the later ones of that
    SSRC and payload type never reach Python (``handler`` is not called for them).

    ``route(ssrc, payload_type)``, asked after ``handler`` took a packet, names the
    compiled producer (``caucus_producer *``, a ``sfu.producer.Producer``'s ``native``)
    whose state ``handler`` keeps and which may forward that stream's ordinary packets
    itself from then on (``handler`` is then called only for what the producer leaves
    to Python), with what to keep alive while the path points to it (the producer and
    its buffer); or ``None``."""
    receiver._handle_rtp_packet = RtpHook(receiver, None, handler, track, route)  # type: ignore[method-assign]  # the hook replaces aiortc's method
    stop_receiver_reports(receiver)


class RtpHook:
    """``RTCRtpReceiver._handle_rtp_packet`` replacement set by :func:`intercept_rtp` and
    :func:`intercept_rtp_data`.  aiortc awaits it with a parsed packet; the direct
    receive path of :func:`receive_directly` calls ``on_data``/``on_packet`` itself."""

    __slots__ = ("_receiver", "on_data", "on_packet", "route", "track")

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        on_packet: RtpHandler | None,
        on_data: RtpDataHandler | None,
        track: Any = None,
        route: NativeRoute | None = None,
    ) -> None:
        self._receiver = receiver
        self.on_packet = on_packet
        self.on_data = on_data
        self.track = track
        self.route = route

    async def __call__(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        try:
            if self.on_data is not None:
                extensions = header_extensions_map(self._receiver.transport)
                self.on_data(packet.serialize(extensions), arrival_time_ms)
            else:
                self.on_packet(packet, arrival_time_ms)  # type: ignore[misc]  # set: on_data is not
        except Exception as exc:
            handler_failed("RTP handler failed", exc)


def intercept_receiver_rtcp(receiver: RTCRtpReceiver, handler: RtcpHandler) -> None:
    """Also deliver RTCP addressed to the receiver (sender reports, BYE) to ``handler``."""
    original = receiver._handle_rtcp_packet

    async def handle_rtcp_packet(packet: AnyRtcpPacket) -> None:
        try:
            handler(packet)
        except Exception as exc:
            handler_failed("RTCP handler failed", exc)
        await original(packet)

    receiver._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]  # the hook replaces aiortc's method


def intercept_sender_rtcp(sender: RTCRtpSender, handler: RtcpHandler) -> None:
    """Route subscriber feedback (NACK, PLI, FIR, RR, REMB) for ``sender`` to ``handler``.

    aiortc's own handling (retransmission from its empty history, keyframe requests to an
    encoder that does not exist) is skipped, and its sender reports are silenced because
    its counters know nothing of forwarded packets: the SFU writes its own.
    """

    async def handle_rtcp_packet(packet: AnyRtcpPacket) -> None:
        try:
            handler(packet)
        except Exception as exc:
            handler_failed("RTCP handler failed", exc)

    async def send_rtcp(packets: list[AnyRtcpPacket]) -> None:
        return None

    sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]  # the hook replaces aiortc's method
    sender._send_rtcp = send_rtcp  # type: ignore[method-assign]  # the hook replaces aiortc's method
    _idle_rtcp_loop(sender, "_RTCRtpSender")


def _idle_rtcp_loop(owner: RTCRtpSender | RTCRtpReceiver, prefix: str) -> None:
    """Replace ``owner``'s RTCP loop, which wakes every 0.5-1.5 s to build reports, by
    one that waits to be cancelled (``stop()`` still finds its events set); a loop already
    running is cancelled.

    A silenced sender's reports are dropped when sent; a receiver whose packets never
    reach aiortc (:func:`receive_directly` counting them in C) has nothing to report.
    Each loop costs some 30-100 µs of the event loop per second: 768 senders of a worker
    forwarding 32 rooms of 4, as many receivers in the load client measuring them."""
    task = getattr(owner, f"{prefix}__rtcp_task")
    if task is not None:
        task.cancel()
        return
    started: asyncio.Event = getattr(owner, f"{prefix}__rtcp_started")
    exited: asyncio.Event = getattr(owner, f"{prefix}__rtcp_exited")

    async def run_rtcp() -> None:
        started.set()
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            pass
        exited.set()

    owner._run_rtcp = run_rtcp  # type: ignore[method-assign]  # the hook replaces aiortc's method


def stop_receiver_reports(receiver: RTCRtpReceiver) -> None:
    """No RTCP receiver reports from ``receiver`` (see :func:`_idle_rtcp_loop`): for
    receivers whose packets aiortc never sees."""
    _idle_rtcp_loop(receiver, "_RTCRtpReceiver")


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
