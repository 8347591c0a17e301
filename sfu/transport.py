"""A Transport is one peer connection (ICE, DTLS, SRTP) of one participant.

Two per participant, like LiveKit, so offers never collide:

* ``direction="publish"``: the client offers its send-only tracks, the SFU answers
  (:meth:`Transport.accept_offer`); every received track becomes a :class:`Producer`.
* ``direction="subscribe"``: the SFU offers one send-only m-line per :class:`Consumer`
  and re-offers when consumers are added or removed.  Set :attr:`Transport.negotiator`
  to a coroutine ``offer_sdp -> answer_sdp`` (e.g. a socket.io call with an ack) and the
  transport negotiates by itself; or call :meth:`create_offer`/:meth:`accept_answer`
  yourself when :attr:`on_negotiation_needed` fires.

Any failed negotiation closes the transport: a half-negotiated peer connection is never
left behind.  ICE is not trickled: candidates are in the SDP.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.codecs import is_rtx
from aiortc.sdp import SessionDescription

from . import rtc
from .consumer import Consumer
from .delay_based import DelayBasedEstimate
from .errors import InvalidSdp, InvalidState, LimitExceeded, MediaError, NoSupportedCodec
from .ingress import Ingress
from .producer import Producer
from .rtp_header import ABS_SEND_TIME_URI, AUDIO_LEVEL_URI
from .simulcast import SimulcastProducer, Track
from .simulcast_sdp import SimulcastSection, answer_simulcast, read_simulcast
from .transport_cc_sdp import answered_transport_cc, offer_transport_cc
from .transport_feedback import TransportFeedbackReader

if TYPE_CHECKING:
    from .listeners import TransportListener

logger = logging.getLogger(__name__)

PUBLISH = "publish"
SUBSCRIBE = "subscribe"
#: The largest compound RTCP packet of reports a transport sends (before SRTCP's trailer):
#: 42 sender reports of 28 bytes, within the datagram size of the media itself.
MAX_RTCP_COMPOUND = 1200

_CANDIDATE_HOST = re.compile(r"^(a=candidate:\S+ \d+ \S+ \d+ )(\S+)( \d+ typ host)", re.M)


class Transport:
    """One peer connection of ``participant_id``; owns its producers or consumers, and
    tells its ``listener`` (the worker) of new and closed producers and of its end."""

    def __init__(self, listener: TransportListener, participant_id: str, direction: str) -> None:
        if direction not in (PUBLISH, SUBSCRIBE):
            raise ValueError(f"unknown transport direction {direction!r}")
        self.id = uuid.uuid4().hex
        self.participant_id = participant_id
        self.direction = direction
        self.closed = False
        #: Subscribe transports: coroutine sending an offer to the client, returning its answer.
        self.negotiator: Callable[[str], Awaitable[str]] | None = None
        #: Subscribe transports without a negotiator: called when an offer is due.
        self.on_negotiation_needed: Callable[[], None] | None = None
        #: Called once when the transport closes (for any reason).
        self.on_close: Callable[[Transport], None] | None = None
        self.producers: dict[str, Producer | SimulcastProducer] = {}
        self.consumers: dict[str, Consumer] = {}

        self._listener = listener
        self._settings = listener.settings
        self._srtp_profiles = rtc.srtp_profiles(self._settings.srtp_profiles)
        self._pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self._pc.on("connectionstatechange", self.__on_connection_state)
        self._writer: rtc.RtpWriter | None = None
        #: What the peer said of its candidates (for the selected pair's statistics).
        self._signalled = rtc.SignalledCandidates()
        self._lock = asyncio.Lock()
        self._pending: list[Consumer] = []  # offered, answer not yet applied
        #: The publisher's simulcast m-lines, by mid (from its latest offer).
        self._simulcast: dict[str, SimulcastSection] = {}
        self._unoffered: list[Consumer] = []
        self._renegotiate = False
        self._negotiation_task: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._connect_timer: asyncio.TimerHandle | None = None
        #: Why the SFU closed this transport itself ("connect-timeout", "unknown-ssrc",
        #: "over-budget"), or ``None``.
        self.close_reason: str | None = None
        #: What the peer may send and the counts of what was dropped.
        self.ingress = Ingress(self._settings, on_abuse=_weakly(self._abused))
        #: Subscribe transports: the transport-cc extension id offered (0: none) and,
        #: once the subscriber's answer accepted it, the reader of its feedback, which
        #: keeps the delay-based estimate of its downlink.
        self._transport_cc_id = 0
        self.transport_feedback: TransportFeedbackReader | None = None

    @property
    def connection_state(self) -> str:
        return self._pc.connectionState

    @property
    def bytes_sent(self) -> int:
        """RTP bytes sent to the peer (before SRTP)."""
        return self._writer.bytes if self._writer is not None else 0

    @property
    def srtp_profile(self) -> str | None:
        """The negotiated DTLS-SRTP profile, once connected."""
        return rtc.negotiated_srtp_profile(self._writer.dtls if self._writer else None)

    # --- publish ------------------------------------------------------------------------

    async def accept_offer(self, sdp: str) -> str:
        """Apply the client's offer on a publish transport; returns the answer SDP."""
        self._require(PUBLISH)
        async with self._lock:
            try:
                description = self._check_offer(sdp)
                self._simulcast = read_simulcast(sdp, self._settings.max_simulcast_layers)
                self._signalled.remember(description)
                await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                self._bind_ports()
                self._keep_consent()
                self.ingress.ssrc.negotiated(_declared_ssrcs(description, self._simulcast))
                rtc.route_by_mid(self._pc)
                rtc.guard_ingress(self._pc, self.ingress)
                rtc.receive_directly(self._pc, self._listener.receive_poller)
                new = self._prepare_producers()
                rtc.restrict_srtp_profiles(self._pc, self._srtp_profiles)
                await self._pc.setLocalDescription(await self._pc.createAnswer())
            except Exception as exc:
                await self.close()
                raise _as_media_error(exc) from exc
            self._ensure_writer()
            self._start_connect_timer()
            for producer in new:
                self.producers[producer.id] = producer
                self._listener.on_transport_new_producer(self, producer)
            answer = answer_simulcast(self._pc.localDescription.sdp, self._simulcast)
            return self._announce(answer)

    def _check_offer(self, sdp: str) -> SessionDescription:
        settings = self._settings
        if len(sdp) > settings.max_sdp_chars:
            raise LimitExceeded(
                "sdp-too-large", f"an SDP may hold {settings.max_sdp_chars} characters"
            )
        # counted before parsing: parsing a thousand sections is the cost being refused
        sections = sdp.count("\nm=") + sdp.startswith("m=")
        if sections > settings.max_offer_media_sections:
            raise LimitExceeded(
                "too-many-media-sections",
                f"a publish offer may hold {settings.max_offer_media_sections} media sections",
            )
        try:
            description = SessionDescription.parse(sdp)
        except Exception as exc:
            raise InvalidSdp(f"unparseable offer: {exc}") from exc
        if not description.media:
            raise InvalidSdp("offer has no media section")
        bundled = _bundled_mids(description)
        active = sum(1 for media in description.media if _is_active(media, bundled))
        if active > settings.max_tracks_per_publisher:
            raise LimitExceeded(
                "too-many-tracks",
                f"a participant may publish {settings.max_tracks_per_publisher} tracks",
            )
        _declared_ssrcs(description)  # raises on an SSRC outside 32 bits
        allowed = {c.lower() for c in self._settings.codecs}
        for media in description.media:
            if media.kind not in ("audio", "video"):
                continue
            if media.direction not in ("sendonly", "sendrecv", "inactive", None):
                raise InvalidSdp(f"publish offer m-line {media.rtp.muxId} is {media.direction}")
            names = {c.mimeType.lower() for c in media.rtp.codecs if not is_rtx(c)}
            if media.direction != "inactive" and not names & allowed:
                raise NoSupportedCodec(
                    f"{media.kind} m-line offers {sorted(names) or 'no codec'}; "
                    f"supported: {sorted(allowed)}"
                )
        return description

    def _prepare_producers(self) -> list[Track]:
        known = {p.mid for p in self.producers.values()}
        allowed = {c.lower() for c in self._settings.codecs}
        new: list[Track] = []
        for transceiver in self._pc.getTransceivers():
            if transceiver.mid in known or transceiver.receiver.track is None:
                continue
            codecs = rtc.negotiated_codecs(transceiver)
            primary = self._primary_codec(transceiver.kind, codecs, allowed)
            rtx = next(
                (c for c in codecs if is_rtx(c) and c.parameters.get("apt") == primary.payloadType),
                None,
            )
            # answer with exactly the codec the SFU forwards (and its RTX)
            rtc.limit_codecs(transceiver, [primary] + ([rtx] if rtx else []))
            extension_ids = {e.uri: e.id for e in rtc.negotiated_header_extensions(transceiver)}
            section = self._simulcast.get(transceiver.mid or "")
            producer: Producer | SimulcastProducer
            if section is not None and transceiver.kind == "video":
                producer = SimulcastProducer(
                    participant_id=self.participant_id,
                    codec=primary,
                    rtx_payload_type=rtx.payloadType if rtx else None,
                    rtcp_ssrc=rtc.receiver_rtcp_ssrc(transceiver),
                    writer=self._ensure_writer(transceiver.receiver.transport),
                    settings=self._settings,
                    section=section,
                    on_abuse=_weakly(self._abused),
                )
                rtc.intercept_rtp_data(
                    transceiver.receiver, producer.on_rtp_data, route=producer.native_route
                )
                rtc.intercept_receiver_rtcp(transceiver.receiver, producer.on_rtcp)
                new.append(producer)
                continue
            producer = Producer(
                participant_id=self.participant_id,
                kind=transceiver.kind,
                codec=primary,
                rtx_payload_type=rtx.payloadType if rtx else None,
                rtcp_ssrc=rtc.receiver_rtcp_ssrc(transceiver),
                writer=self._ensure_writer(transceiver.receiver.transport),
                settings=self._settings,
                mid=transceiver.mid,
                audio_level_id=extension_ids.get(AUDIO_LEVEL_URI, 0),
                on_abuse=_weakly(self._abused),
            )
            rtc.intercept_rtp_data(
                transceiver.receiver, producer.on_rtp_data, route=producer.native_route
            )
            rtc.intercept_receiver_rtcp(transceiver.receiver, producer.on_rtcp)
            new.append(producer)
        return new

    # --- subscribe ----------------------------------------------------------------------

    def consume(self, producer: Track) -> Consumer:
        """Add a consumer of ``producer``; the subscriber gets it after the next offer."""
        self._require(SUBSCRIBE)
        if self.closed:
            raise InvalidState("transport is closed")
        transceiver = self._pc.addTransceiver(rtc.IdleTrack(producer.kind), direction="sendonly")
        transceiver.setCodecPreferences(_sender_codecs(producer))
        rtc.restrict_srtp_profiles(self._pc, self._srtp_profiles)
        ssrc, rtx_ssrc = rtc.sender_ssrcs(transceiver.sender)
        consumer = Consumer(
            producer=producer,
            transceiver=transceiver,
            ssrc=ssrc,
            rtx_ssrc=rtx_ssrc,
            writer=self._ensure_writer(transceiver.sender.transport),
            settings=self._settings,
        )
        rtc.intercept_sender_rtcp(transceiver.sender, consumer.on_rtcp)
        self.consumers[consumer.id] = consumer
        self._unoffered.append(consumer)
        self._negotiation_needed()
        return consumer

    def remove_consumer(self, consumer: Consumer) -> None:
        """Stop forwarding to ``consumer``; its m-line goes inactive at the next offer."""
        consumer.close()
        if self.consumers.pop(consumer.id, None) is None or self.closed:
            return
        if consumer in self._unoffered:
            self._unoffered.remove(consumer)
        consumer.transceiver.direction = "inactive"
        self._negotiation_needed()

    async def create_offer(self) -> str:
        """Offer the current consumers to the subscriber (subscribe transports)."""
        self._require(SUBSCRIBE)
        if self.closed:
            raise InvalidState("transport is closed")
        # Only the consumers that exist now are answered by this offer's answer; one added
        # while the offer is being made stays unoffered (its consume() already asked for
        # the next negotiation round), so its codecs come from an answer that carries it.
        offered = list(self._unoffered)
        try:
            self._bind_ports()
            offer = await self._pc.createOffer()
            await self._pc.setLocalDescription(offer)
            rtc.guard_ingress(self._pc, self.ingress)
        except Exception as exc:
            await self.close()
            raise _as_media_error(exc) from exc
        self._start_connect_timer()
        self._pending.extend(offered)
        self._unoffered = [c for c in self._unoffered if c not in offered]
        sdp = self._pc.localDescription.sdp
        if self._settings.transport_cc:
            sdp, self._transport_cc_id = offer_transport_cc(sdp, self._transport_cc_id)
        return self._announce(sdp)

    async def accept_answer(self, sdp: str) -> None:
        """Apply the subscriber's answer to the last offer."""
        self._require(SUBSCRIBE)
        if self.closed:
            raise InvalidState("transport is closed")
        try:
            if len(sdp) > self._settings.max_sdp_chars:
                raise LimitExceeded("sdp-too-large", "the answer is too large")
            description = SessionDescription.parse(sdp)
            self.ingress.ssrc.negotiated(_declared_ssrcs(description))
            self._signalled.remember(description)
            self._keep_consent()
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except Exception as exc:
            await self.close()
            raise _as_media_error(exc) from exc
        self._apply_transport_cc(answered_transport_cc(sdp, self._transport_cc_id))
        transport_cc_id = self._transport_cc_id if self.transport_feedback is not None else 0
        pending, self._pending = self._pending, []
        for consumer in pending:
            if consumer.closed:
                continue
            codecs = rtc.negotiated_codecs(consumer.transceiver)
            primary = next((c for c in codecs if not is_rtx(c)), None)
            if primary is None:
                self.remove_consumer(consumer)
                continue
            rtx = next(
                (c for c in codecs if is_rtx(c) and c.parameters.get("apt") == primary.payloadType),
                None,
            )
            ids = {e.uri: e.id for e in rtc.negotiated_header_extensions(consumer.transceiver)}
            assert primary.payloadType is not None  # a negotiated codec has one
            consumer.configure(
                primary.payloadType,
                rtx.payloadType if rtx else None,
                (ids.get(ABS_SEND_TIME_URI, 0), ids.get(AUDIO_LEVEL_URI, 0), transport_cc_id),
            )
        self._start_consumers()

    def _apply_transport_cc(self, accepted: bool) -> None:
        """Number what the transport sends and read the subscriber's transport feedback
        once an answer accepted the extension (then for the transport's life: with BUNDLE
        the id belongs to the transport, and a later answer leaving it out changes
        nothing); without, the downlink is estimated from REMB and receiver reports."""
        if not accepted or self.transport_feedback is not None:
            return
        writer = self._ensure_writer()
        writer.transport_cc_id = self._transport_cc_id
        estimate = DelayBasedEstimate(float(self._settings.downlink_start_bitrate))
        reader = TransportFeedbackReader(self._sent_packet, estimate)
        self.transport_feedback = reader
        self.ingress.rtcp.on_transport_feedback = reader.on_part

    def _sent_packet(self, seq: int) -> tuple[float, int, int] | None:
        writer = self._writer
        return writer.sent(seq) if writer is not None else None

    def _primary_codec(self, kind: str, codecs: list[Any], allowed: set[str]) -> Any:
        """The codec to forward of a published track: for video, the first of the video
        codecs this participant may publish (its room's) that the offer has."""
        offered = [c for c in codecs if not is_rtx(c)]
        if kind != "video":
            primary = next((c for c in offered if c.mimeType.lower() in allowed), None)
            if primary is None:
                raise NoSupportedCodec(f"no supported codec for {kind}")
            return primary
        wanted = self._listener.video_codecs_for(self.participant_id)
        for name in wanted:
            primary = next((c for c in offered if c.mimeType.lower() == name.lower()), None)
            if primary is not None:
                return primary
        names = sorted({c.mimeType for c in offered}) or ["no codec"]
        raise NoSupportedCodec(
            f"this room's video is {' or '.join(wanted)}, which every participant can decode "
            f"(the server forwards video as it is, without converting it); the offer has only "
            f"{', '.join(names)}"
        )

    def _negotiation_needed(self) -> None:
        if self.negotiator is not None:
            self._renegotiate = True
            if self._negotiation_task is None or self._negotiation_task.done():
                self._negotiation_task = asyncio.ensure_future(self._negotiate())
        elif self.on_negotiation_needed is not None:
            self.on_negotiation_needed()

    async def _negotiate(self) -> None:
        while self._renegotiate and not self.closed:
            self._renegotiate = False
            try:
                negotiator = self.negotiator
                if negotiator is None:
                    return
                offer = await self.create_offer()
                answer = await asyncio.wait_for(
                    negotiator(offer), self._settings.negotiation_timeout
                )
                await self.accept_answer(answer)
            except Exception:
                if self.closed:
                    return
                logger.warning("negotiation of transport %s failed", self.id, exc_info=True)
                await self.close()
                return

    def _start_consumers(self) -> None:
        if self._pc.connectionState != "connected":
            return
        for consumer in self.consumers.values():
            if consumer.configured:
                consumer.start()

    def send_receiver_reports(self) -> int:
        """Send the RTCP receiver reports (and REMB) of this transport's producers, as
        few compound packets as fit :data:`MAX_RTCP_COMPOUND` bytes.  Returns the
        datagrams sent."""
        return self._send_compound([p.receiver_reports for p in self.producers.values()])

    def send_sender_reports(self, now: float) -> int:
        """Send the RTCP sender reports of this transport's consumers at ``now``, as few
        compound packets as fit :data:`MAX_RTCP_COMPOUND` bytes (RFC 8108 §5.3: an
        endpoint sending several streams on one transport may report them together).  A
        subscriber of a room of four receives six streams: one protected datagram a
        second instead of six.  Returns the datagrams sent."""
        return self._send_compound(
            [functools.partial(c.sender_report, now) for c in self.consumers.values()]
        )

    def _send_compound(self, makers: list[Callable[[], bytes | None]]) -> int:
        """Send the reports ``makers`` make, together; one that fails is left out (and
        logged, at most once per interval), never the others."""
        writer = self._writer
        if writer is None:
            return 0
        compound = b""
        sent = 0
        for make in makers:
            try:
                report = make()
            except Exception as exc:
                self.ingress.log.failure(
                    "rtcp-report", f"an RTCP report failed: {type(exc).__name__}: {exc}"
                )
                continue
            if report is None:
                continue
            if compound and len(compound) + len(report) > MAX_RTCP_COMPOUND:
                writer.write_rtcp(compound)
                sent += 1
                compound = b""
            compound += report
        if compound:
            writer.write_rtcp(compound)
            sent += 1
        return sent

    # --- common -------------------------------------------------------------------------

    def _keep_consent(self) -> None:
        # before ICE can complete (it starts once both descriptions are applied): consent
        # answers that wait behind received media must still count
        settings = self._settings
        rtc.keep_consent(self._pc, settings.consent_interval, settings.consent_expiry)

    def _bind_ports(self) -> None:
        # before the local description is set: gathering starts then
        settings = self._settings
        if settings.udp_port_min is not None and settings.udp_port_max is not None:
            rtc.bind_ports_in_range(self._pc, settings.udp_port_min, settings.udp_port_max)

    def _ensure_writer(self, dtls=None) -> rtc.RtpWriter:
        if self._writer is None:
            if dtls is None:
                dtls = self._pc.getTransceivers()[0].receiver.transport
            self._writer = rtc.RtpWriter(dtls)
        return self._writer

    def _start_connect_timer(self) -> None:
        """Close the transport if it has not connected ``connect_timeout`` seconds after
        its first negotiation: its ports are then free for someone who will use them."""
        if self._connect_timer is None and self._pc.connectionState != "connected":
            loop = asyncio.get_running_loop()
            self._connect_timer = loop.call_later(
                self._settings.connect_timeout, self._connect_timed_out
            )

    def _connect_timed_out(self) -> None:
        if self._pc.connectionState != "connected" and not self.closed:
            logger.info(
                "transport did not connect in time",
                extra={"transport": self.id, "participant": self.participant_id},
            )
            self._close_for("connect-timeout")

    def _abused(self, reason: str) -> None:
        """A producer or the ingress checks found the peer persistently over a limit."""
        if self.closed:
            return
        logger.warning(
            "transport closed: peer over a limit",
            extra={"transport": self.id, "participant": self.participant_id, "reason": reason},
        )
        self._close_for(reason)

    def _close_for(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
        if self._close_task is None:
            self._close_task = asyncio.ensure_future(self.close())

    def __on_connection_state(self) -> None:
        state = self._pc.connectionState
        if state == "connected":
            if self._connect_timer is not None:
                self._connect_timer.cancel()
                self._connect_timer = None
            # with BUNDLE every m-line shares the first transceiver's DTLS transport
            transceivers = self._pc.getTransceivers()
            if transceivers and self._writer is not None:
                dtls = transceivers[0].sender.transport
                if dtls is not self._writer.dtls:
                    transport_cc_id = self._writer.transport_cc_id
                    self._writer = rtc.RtpWriter(dtls)
                    self._writer.transport_cc_id = transport_cc_id
                    for producer in self.producers.values():
                        producer._writer = self._writer
                    for consumer in self.consumers.values():
                        consumer._writer = self._writer
            if self.direction == PUBLISH:
                for producer in self.producers.values():
                    producer.request_keyframe()
            self._start_consumers()
        elif state in ("failed", "closed") and not self.closed:
            self._close_task = asyncio.ensure_future(self.close())

    def _announce(self, sdp: str) -> str:
        ip = self._settings.announced_ip
        if not ip:
            return sdp
        return _CANDIDATE_HOST.sub(lambda m: m.group(1) + ip + m.group(3), sdp)

    def _require(self, direction: str) -> None:
        if self.direction != direction:
            raise InvalidState(f"not a {direction} transport")

    async def close(self) -> None:
        """Close the peer connection; producers and consumers go with it."""
        if self.closed:
            return
        self.closed = True
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None
        for consumer in list(self.consumers.values()):
            consumer.close()
        for producer in list(self.producers.values()):
            self._listener.on_transport_producer_closed(self, producer)
            producer.close()
        task = self._negotiation_task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
        await self._pc.close()
        self._listener.on_transport_closed(self)
        if self.on_close is not None:
            self.on_close(self)

    def refusals(self) -> dict[str, int]:
        """What the SFU refused from this transport's peer, by reason (monotonic)."""
        ingress = self.ingress
        rtcp = ingress.rtcp
        producers = self.producers.values()
        consumers = self.consumers.values()
        return {
            "oversize": ingress.oversize,
            "empty": ingress.empty,
            "unknown_ssrc": ingress.ssrc.dropped,
            "unknown_rtcp_ssrc": ingress.ssrc.rtcp_dropped,
            "malformed_rtp": ingress.malformed_rtp,
            "malformed_rtcp": rtcp.dropped_malformed,
            "rtcp_unparsed": ingress.malformed_rtcp,
            "rtcp_over_rate": rtcp.dropped_rate,
            "nack_items_cut": rtcp.nack_items_ignored,
            "nack_entries_ignored": sum(c.nack_entries_ignored for c in consumers),
            "keyframe_requests_coalesced": sum(p.keyframe_requests_coalesced for p in producers),
            "over_budget": sum(p.dropped_over_budget for p in producers),
        }

    def stats(self) -> dict[str, object]:
        writer = self._writer
        return {
            "id": self.id,
            "participant_id": self.participant_id,
            "direction": self.direction,
            "state": self._pc.connectionState,
            "srtp_profile": self.srtp_profile,
            "packets_sent": writer.packets if writer else 0,
            "bytes_sent": writer.bytes if writer else 0,
            "packets_dropped": writer.dropped if writer else 0,
            "consent": rtc.consent_stats(self._pc),
            "ice": rtc.selected_pair(self._pc, self._signalled),
            "close_reason": self.close_reason,
            "ingress": self.ingress.stats(),
            "refusals": self.refusals(),
            "packets_received": sum(p.packets for p in self.producers.values()),
            "bytes_received": sum(p.bytes for p in self.producers.values()),
            "producers": [p.stats() for p in self.producers.values()],
            "consumers": [c.stats() for c in self.consumers.values()],
            "transport_feedback": self._transport_feedback_stats(),
        }

    def _transport_feedback_stats(self) -> dict[str, object] | None:
        """What a subscriber's transport feedback said (``None``: not negotiated)."""
        reader = self.transport_feedback
        if reader is None:
            return None
        estimate = reader.estimate
        return {
            **reader.stats(),
            "delay_based_bitrate": int(estimate.bitrate()),
            "acknowledged_bitrate": (
                None if (acked := estimate.acknowledged_bitrate()) is None else int(acked)
            ),
            "detector": estimate.state(),
        }


def _weakly(method: Callable[[str], None]) -> Callable[[str], None]:
    """``method`` without keeping its object alive: the callbacks given to the ingress
    checks and producers end up in tables keyed weakly by aiortc objects."""
    ref = weakref.WeakMethod(method)

    def call(reason: str) -> None:
        bound = ref()
        if bound is not None:
            bound(reason)

    return call


def _bundled_mids(description: SessionDescription) -> frozenset[str]:
    """The mids of the description's BUNDLE groups."""
    return frozenset(
        str(mid) for group in description.group if group.semantic == "BUNDLE" for mid in group.items
    )


def _is_active(media, bundled: frozenset[str] = frozenset()) -> bool:
    """Whether a media section carries media towards the SFU. Port 0 rejects a section,
    except in a BUNDLE group: Firefox offers every section after the first with port 0
    and ``a=bundle-only`` (RFC 8843), which aiortc does not parse; a rejected section
    leaves the group."""
    return (
        media.kind in ("audio", "video")
        and (media.port != 0 or media.rtp.muxId in bundled)
        and media.direction
        not in (
            "inactive",
            "recvonly",
        )
    )


def _declared_ssrcs(
    description: SessionDescription, simulcast: dict[str, SimulcastSection] | None = None
) -> list[tuple[bool, tuple[int, ...], int]]:
    """(active, declared SSRCs, streams) of each media section of a peer's description:
    streams is the number of layers of a simulcast section, else 1."""
    sections = []
    simulcast = simulcast or {}
    bundled = _bundled_mids(description)
    for media in description.media:
        ssrcs = {s.ssrc for s in media.ssrc}
        for group in media.ssrc_group:
            ssrcs.update(int(item) for item in group.items)
        if any(not 0 <= ssrc <= 0xFFFFFFFF for ssrc in ssrcs):
            raise InvalidSdp(f"media section {media.rtp.muxId} declares an SSRC outside 32 bits")
        section = simulcast.get(str(media.rtp.muxId))
        streams = len(section.rids) if section is not None else 1
        sections.append((_is_active(media, bundled), tuple(sorted(ssrcs)), streams))
    return sections


def _sender_codecs(producer: Track) -> list:
    """Capabilities to offer for a consumer of ``producer``: its codec, then RTX."""
    wanted = producer.codec
    chosen: list[Any] = []
    rtx = None
    for capability in RTCRtpSender.getCapabilities(producer.kind).codecs:
        if is_rtx(capability):
            rtx = capability
        elif capability.mimeType.lower() == wanted.mimeType.lower() and not chosen:
            if wanted.mimeType.lower() == "video/h264":
                p = capability.parameters
                if p.get("profile-level-id") != wanted.parameters.get("profile-level-id") or str(
                    p.get("packetization-mode")
                ) != str(wanted.parameters.get("packetization-mode", "0")):
                    continue
            chosen.append(capability)
    if not chosen:
        raise NoSupportedCodec(f"cannot offer {wanted.mimeType} to subscribers")
    if rtx is not None and producer.kind == "video":
        chosen.append(rtx)
    return chosen


def _as_media_error(exc: Exception) -> MediaError:
    if isinstance(exc, MediaError):
        return exc
    name = type(exc).__name__
    if name == "OperationError" and "description" in str(exc):
        return NoSupportedCodec(str(exc))
    return InvalidSdp(f"{name}: {exc}")
