"""The RTCP a browser's receiver sends, for a headless subscriber that counts packets
instead of decoding them.

A subscriber whose receivers are hooked (:func:`sfu.rtc.intercept_rtp_data`) never lets
aiortc see a packet, so aiortc sends the SFU no receiver report, no REMB and no NACK, and
the SFU's bandwidth estimation and layer selection learn nothing of that subscriber.
:class:`ReceiverFeedback` (one per subscribe connection) is fed every received RTP
packet as bytes and sends what libwebrtc's receiver would:

* a receiver report every ~1 s with a block per received SSRC (RFC 3550 §6.4.2, A.1,
  A.3, A.8): fraction lost over the interval, cumulative lost, extended highest sequence
  number, interarrival jitter, and LSR/DLSR from the sender reports the SFU sends for
  each SSRC;
* a REMB (draft-alvestrand-rmcat-remb) with aiortc's delay-based estimator
  (:class:`aiortc.rate.RemoteBitrateEstimator`, one per connection, as libwebrtc keeps
  one) fed from the abs-send-time header extension, naming every video SSRC received:
  with the next report, and at once when the estimate moved notably;
* transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-
  extensions-01, :mod:`sfu.twcc`) when the answer accepted the SFU's transport-wide
  sequence number (:meth:`ReceiverFeedback.use_transport_cc`): every packet carrying
  one (audio, video and retransmissions alike) is recorded with its arrival time on
  this side's monotonic clock, and every 50 ms while such packets arrive a feedback
  reports the numbers since the last one (:class:`client.transport_cc.TransportArrivals`),
  its feedback count one more each time (modulo 256), its sender SSRC the one of the
  other RTCP, its media SSRC that of the latest packet recorded (as libwebrtc's
  ``RemoteEstimatorProxy`` does; the draft gives it no use).  From the first such packet
  on no REMB is sent (libwebrtc's receiver leaves bandwidth estimation to the sender
  once packets carry the number); receiver reports and NACKs go on;
* generic NACKs (RFC 4585 §6.2.1) for sequence gaps of video, re-asked a few times and
  given up after ~300 ms, when a PLI asks for a keyframe instead.

Retransmissions the SFU sends on an RTX stream (RFC 4588) are unwrapped to see which
NACKed number they recover; they count in the RTX stream's own report block, so the
media stream's fraction lost is the network's loss, as in a browser's reports.

Packets are read as hostile: a datagram too short for its header, of another RTP version,
with a CSRC list, header extension or padding running past its end, of a payload type the
receiver did not negotiate, or with a sequence number far from the stream's (RFC 3550
A.1's ``MAX_DROPOUT``, until a second packet confirms the jump) is counted in
:attr:`ReceiverFeedback.ignored` and changes nothing else.

Use (``client.Participant(..., decode=False, feedback=True)`` does this)::

    feedback = ReceiverFeedback(transceiver.receiver.transport)
    feed = feedback.watch(transceiver)           # per receiving transceiver
    rtc.intercept_rtp_data(transceiver.receiver, feed)   # no compiled track counter
    feedback.declare(offer_sdp)                  # after each subscribe offer: RTX SSRCs
    ids = transport_cc_ids(offer_sdp)            # transport-wide congestion control:
    answer_sdp = keep_transport_cc(answer_sdp, ids)   # accepted in the answer,
    feedback.use_transport_cc(ids)                    # its feedback sent
    ...
    feedback.close()

It writes through :class:`sfu.rtc.RtpWriter` on the nominated ICE pair's socket: a
connection relayed through TURN is not supported (the headless client gathers host
candidates only).
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from aiortc import RTCDtlsTransport, RTCRtpTransceiver
from aiortc.codecs import is_rtx
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtp import (
    PACKETS_LOST_MAX,
    PACKETS_LOST_MIN,
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSrPacket,
    pack_remb_fci,
    pack_rtcp_packet,
)

from sfu import rtc
from sfu.rtc.internals import rtp_router
from sfu.rtp_header import (
    ABS_SEND_TIME_URI,
    FIXED_HEADER,
    header_extension,
    payload_bounds,
)
from sfu.twcc import build_feedbacks

from .transport_cc import TransportArrivals

log = logging.getLogger(__name__)

RtpDataHandler = Callable[[bytes, int], None]

#: RFC 3550 A.1: a forward jump beyond this is not believed until a second packet
#: follows it; a packet this far behind the highest is a duplicate or reordered.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
SEQ_MOD = 1 << 16

#: Seconds between receiver reports (each interval drawn from 0.5-1.5 times it, RFC 3550
#: §6.3.1, so that many subscribers do not report in step).
REPORT_INTERVAL = 1.0
#: A NACKed number is asked again after this long, at most ``NACK_ASKS`` times, and
#: given up (with a PLI) this long after its gap was seen.
NACK_RETRY = 0.1
NACK_ASKS = 3
NACK_GIVE_UP = 0.3
#: Numbers waited for per video stream: a larger gap asks for a keyframe instead.
MAX_MISSING = 64
#: FCI items (PID+BLP) per NACK: the SFU reads no more than 16 of one.
MAX_NACK_ITEMS = 16
#: One PLI per stream per this long at most.
PLI_INTERVAL = 0.3
#: A REMB goes out at once when the estimate fell by 3 % (libwebrtc's rule) or rose by
#: 10 % since the last one sent, but not more often than this; otherwise with the report.
REMB_DECREASE = 0.97
REMB_INCREASE = 1.10
REMB_MIN_SPACING = 0.2
#: The estimator starts afresh after a silence this long (or arrival times going back).
ESTIMATOR_SILENCE_MS = 2000
ESTIMATOR_BACKWARDS_MS = 1000
#: SSRCs a REMB names at most.
MAX_REMB_SSRCS = 64
#: Streams (SSRCs) followed per connection; a stream silent this long is not reported,
#: and one silent ``STREAM_FORGET`` seconds is forgotten.
MAX_STREAMS = 256
STREAM_SILENT = 5.0
STREAM_FORGET = 30.0
#: Report blocks per receiver report (the count is five bits).
MAX_BLOCKS = 31
#: Seconds between transport feedbacks while packets with a transport-wide sequence
#: number arrive (libwebrtc sends one every 50-250 ms, by the bitrate; the shortest).
TRANSPORT_FEEDBACK_INTERVAL = 0.05

# what ReceptionStats.update says of a packet
REJECTED = 0  # not believed (a jump beyond MAX_DROPOUT, until confirmed)
NEWEST = 1  # the newest yet (in order, possibly after a gap)
LATE = 2  # behind the newest: reordered, retransmitted or duplicated
RESTARTED = 3  # a confirmed jump: the stream's statistics started again

_SEQ = struct.Struct("!H")


class ReceptionStats:
    """RFC 3550's reception statistics of one SSRC (A.1 sequence validation without
    probation, A.3 loss, A.8 jitter) and the report block they make.

    Jitter is computed from arrival times in milliseconds, converted to the stream's
    clock (``clock_rate``), for packets that are the newest yet: a retransmission or a
    reordered packet says nothing of the path's jitter.
    """

    __slots__ = (
        "bad_seq",
        "base_seq",
        "clock_rate",
        "cycles",
        "expected_prior",
        "gap",
        "jitter",
        "kind",
        "last_arrival_ms",
        "last_at",
        "last_timestamp",
        "max_seq",
        "received",
        "received_prior",
        "rtx",
        "ssrc",
    )

    def __init__(self, ssrc: int, clock_rate: int, kind: str = "video", rtx: bool = False):
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.kind = kind
        #: A retransmission (RTX) stream.
        self.rtx = rtx
        self.base_seq = 0
        self.max_seq = -1  # -1: no packet yet
        self.bad_seq = SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self.jitter = 0.0
        self.last_arrival_ms: int | None = None
        self.last_timestamp = 0
        #: Numbers skipped before the latest packet, when it was the newest yet.
        self.gap = 0
        #: ``time.monotonic()`` (or the feedback's clock) of the latest packet accepted.
        self.last_at = 0.0

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self.last_arrival_ms = None

    def update(self, seq: int, timestamp: int, arrival_ms: int) -> int:
        """Account for a packet; returns :data:`NEWEST`, :data:`LATE`, :data:`RESTARTED`
        or :data:`REJECTED` (RFC 3550 A.1's ``update_seq``)."""
        result = NEWEST
        self.gap = 0
        if self.max_seq < 0:
            self._init_seq(seq)
        else:
            delta = (seq - self.max_seq) & 0xFFFF
            if 0 < delta < MAX_DROPOUT:
                if seq < self.max_seq:
                    self.cycles += SEQ_MOD
                self.max_seq = seq
                self.gap = delta - 1
            elif delta == 0 or delta > SEQ_MOD - MAX_MISORDER:
                result = LATE  # duplicate or reordered
            elif seq == self.bad_seq:
                self._init_seq(seq)  # two sequential packets after a jump: a restart
                result = RESTARTED
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return REJECTED
        self.received += 1
        if result != LATE:
            last = self.last_arrival_ms
            if last is not None:
                elapsed = (arrival_ms - last) * self.clock_rate / 1000
                advanced = (timestamp - self.last_timestamp) & 0xFFFFFFFF
                if advanced >= 0x80000000:
                    advanced -= 1 << 32
                self.jitter += (abs(elapsed - advanced) - self.jitter) / 16
            self.last_arrival_ms = arrival_ms
            self.last_timestamp = timestamp
        return result

    @property
    def extended_max(self) -> int:
        """The extended highest sequence number received (RFC 3550 §6.4.1)."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1 if self.max_seq >= 0 else 0

    @property
    def lost(self) -> int:
        """Cumulative packets lost (negative with duplicates, RFC 3550 A.3)."""
        return self.expected - self.received

    def report(self, lsr: int = 0, dlsr: int = 0) -> RtcpReceiverInfo:
        """The report block, closing the interval that fraction lost is computed over."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        return RtcpReceiverInfo(
            ssrc=self.ssrc,
            fraction_lost=fraction,
            packets_lost=max(PACKETS_LOST_MIN, min(self.lost, PACKETS_LOST_MAX)),
            highest_sequence=self.extended_max & 0xFFFFFFFF,
            jitter=min(int(self.jitter), 0xFFFFFFFF),
            lsr=lsr,
            dlsr=dlsr,
        )


class _Missing:
    __slots__ = ("asked_at", "asks", "since")

    def __init__(self, since: float) -> None:
        self.since = since
        self.asks = 0
        self.asked_at = 0.0


class NackList:
    """The sequence numbers one video stream waits for, in the order they went missing
    (ascending modulo 2**16)."""

    __slots__ = ("missing", "pli_at")

    def __init__(self) -> None:
        self.missing: dict[int, _Missing] = {}
        #: When a PLI was last sent for the stream (``None``: never).
        self.pli_at: float | None = None

    def gap(self, first: int, count: int, now: float) -> int:
        """``count`` numbers from ``first`` on went missing; returns how many numbers
        were given up at once (a gap too large to NACK, or the oldest ones pushed out)."""
        if count > MAX_MISSING:
            abandoned = len(self.missing) + count
            self.missing.clear()
            return abandoned
        for i in range(count):
            self.missing[(first + i) & 0xFFFF] = _Missing(now)
        abandoned = 0
        while len(self.missing) > MAX_MISSING:
            del self.missing[next(iter(self.missing))]
            abandoned += 1
        return abandoned

    def arrived(self, seq: int) -> bool:
        """``seq`` arrived: True when it had been NACKed (a recovered packet)."""
        entry = self.missing.pop(seq, None)
        return entry is not None and entry.asks > 0

    def due(self, now: float, retry: float, asks: int, give_up: float) -> tuple[list[int], int]:
        """The numbers to NACK now (at most :data:`MAX_NACK_ITEMS` items' worth, in
        order) and how many were given up."""
        ask: list[int] = []
        abandoned = 0
        for seq, entry in list(self.missing.items()):
            if now - entry.since >= give_up or (
                entry.asks >= asks and now - entry.asked_at >= retry
            ):
                del self.missing[seq]
                abandoned += 1
            elif entry.asks == 0 or (entry.asks < asks and now - entry.asked_at >= retry):
                ask.append(seq)
        return ask, abandoned

    def asked(self, numbers: list[int], now: float) -> int:
        """Mark ``numbers`` as NACKed now; returns how many were NACKed for the first time."""
        first = 0
        for seq in numbers:
            entry = self.missing.get(seq)
            if entry is not None:
                first += entry.asks == 0
                entry.asks += 1
                entry.asked_at = now
        return first


def nack_packet(sender_ssrc: int, media_ssrc: int, numbers: list[int]) -> tuple[bytes, int]:
    """A generic NACK (RFC 4585 §6.2.1) for ``numbers`` (in order modulo 2**16), with at
    most :data:`MAX_NACK_ITEMS` FCI items, and how many of ``numbers`` it names.

    (aiortc's ``RtcpRtpfbPacket`` cannot pack a run that wraps past 65535.)"""
    items: list[bytes] = []
    pid = -1
    blp = 0
    named = 0
    for seq in numbers:
        if pid >= 0:
            distance = (seq - pid - 1) & 0xFFFF
            if distance < 16:
                blp |= 1 << distance
                named += 1
                continue
            items.append(struct.pack("!HH", pid, blp))
            if len(items) == MAX_NACK_ITEMS:
                pid = -1
                break
        pid, blp = seq, 0
        named += 1
    if pid >= 0:
        items.append(struct.pack("!HH", pid, blp))
    payload = struct.pack("!LL", sender_ssrc, media_ssrc) + b"".join(items)
    return pack_rtcp_packet(RTCP_RTPFB, RTCP_RTPFB_NACK, payload), named


class _ReceiverFeed:
    """What :meth:`ReceiverFeedback.watch` returns for one receiving transceiver: called
    with each decrypted RTP packet of that receiver, it knows the receiver's payload
    types (media and RTX) and its abs-send-time extension id."""

    __slots__ = (
        "abs_send_time_id",
        "clock_rates",
        "feedback",
        "kind",
        "media_ssrc",
        "mid",
        "rtx",
        "transceiver",
        "transport_cc_id",
    )

    def __init__(self, feedback: ReceiverFeedback, transceiver: RTCRtpTransceiver) -> None:
        self.feedback = feedback
        self.transceiver = transceiver
        self.kind = transceiver.kind
        self.mid = transceiver.mid
        codecs = [
            (c.payloadType, c)
            for c in rtc.negotiated_codecs(transceiver)
            if c.payloadType is not None
        ]
        rates = {payload_type: c.clockRate for payload_type, c in codecs}
        #: payload type -> clock rate (an RTX payload type: its primary codec's)
        self.clock_rates: dict[int, int] = {}
        self.rtx: set[int] = set()
        for payload_type, codec in codecs:
            if is_rtx(codec):
                apt = codec.parameters.get("apt")
                if isinstance(apt, int) and apt in rates:
                    self.rtx.add(payload_type)
                    self.clock_rates[payload_type] = rates[apt]
            else:
                self.clock_rates[payload_type] = codec.clockRate
        self.abs_send_time_id = next(
            (
                e.id
                for e in rtc.negotiated_header_extensions(transceiver)
                if e.uri == ABS_SEND_TIME_URI and 1 <= e.id <= 255
            ),
            0,
        )
        #: The media SSRC this receiver gets (its RTX stream's retransmissions belong to it).
        self.media_ssrc: int | None = None
        #: The transport-wide sequence number's extension id, once the answer accepted it
        #: (:meth:`ReceiverFeedback.use_transport_cc`; aiortc does not negotiate it).
        self.transport_cc_id = 0

    def __call__(self, data: bytes, arrival_time_ms: int) -> None:
        self.feedback.on_rtp(self, data, arrival_time_ms)


class RtcpWriter(Protocol):
    def write_rtcp(self, data: bytes) -> bool: ...


class ReceiverFeedback:
    """The receiver feedback of one subscribe connection (see the module): reception
    statistics per SSRC, the NACK lists of video streams, the bitrate estimator, the
    transport-wide arrivals not reported yet, the periodic report task, the NACK and
    transport feedback timers, and the writer they send RTCP through (``writer``: an
    :class:`sfu.rtc.RtpWriter` on ``dtls`` unless given).

    Its figures: :attr:`reports_sent` (receiver reports), :attr:`nacked` (sequence
    numbers NACKed), :attr:`nacks_sent` (NACK packets), :attr:`recovered` (NACKed
    numbers that arrived later), :attr:`abandoned` (numbers given up), :attr:`plis_sent`,
    :attr:`remb` (the last REMB's bitrate, bits/s) and :attr:`rembs_sent`,
    :attr:`sender_reports` (SRs received), :attr:`ignored` (packets not read),
    :attr:`transport_feedbacks_sent` and :attr:`transport_cc_packets` (packets recorded
    for it); all in :meth:`stats`.
    """

    def __init__(
        self,
        dtls: RTCDtlsTransport,
        *,
        report_interval: float = REPORT_INTERVAL,
        nack_retry: float = NACK_RETRY,
        nack_asks: int = NACK_ASKS,
        nack_give_up: float = NACK_GIVE_UP,
        transport_feedback_interval: float = TRANSPORT_FEEDBACK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        writer: RtcpWriter | None = None,
    ) -> None:
        self._dtls = dtls
        self._writer: RtcpWriter = rtc.RtpWriter(dtls) if writer is None else writer
        self._report_interval = report_interval
        self._nack_retry = nack_retry
        self._nack_asks = nack_asks
        self._nack_give_up = nack_give_up
        self._clock = clock
        self._random = random.Random()
        #: The SSRC this side's RTCP names as its sender (the first watched transceiver's).
        self.rtcp_ssrc = 0
        self._feeds: dict[int, _ReceiverFeed] = {}  # id(transceiver) -> feed
        self._streams: dict[int, ReceptionStats] = {}
        self._nacks: dict[int, NackList] = {}
        #: RTX SSRC -> media SSRC, from the offers' FID groups.
        self._rtx_of: dict[int, int] = {}
        #: SSRC -> (LSR: the middle 32 bits of the SR's NTP time, when it arrived)
        self._sender_reports: dict[int, tuple[int, float]] = {}
        self._estimator = RemoteBitrateEstimator()
        self._estimator_at: int | None = None  # the arrival time last fed to it (ms)
        self._estimate: int | None = None
        self._remb_at: float | None = None
        self._closed = False
        self._nack_timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        #: Transport-wide congestion control: the ids by mid the answer accepted, the
        #: arrivals not reported yet, the next feedback count, the media SSRC named.
        self._transport_cc_ids: dict[str, int] = {}
        self._arrivals = TransportArrivals()
        self._transport_feedback_interval = transport_feedback_interval
        self._transport_feedback_timer: asyncio.TimerHandle | None = None
        self._feedback_count = 0
        self._transport_cc_ssrc = 0
        self._transport_cc_active = False

        self.reports_sent = 0
        self.report_blocks_sent = 0
        self.nacked = 0
        self.nacks_sent = 0
        self.recovered = 0
        self.abandoned = 0
        self.plis_sent = 0
        self.remb: int | None = None
        self.rembs_sent = 0
        self.sender_reports = 0
        self.ignored = 0
        self.unsent = 0  # RTCP the writer could not send (not connected yet, socket gone)
        self.transport_feedbacks_sent = 0
        self.transport_cc_packets = 0

        dtls.on("statechange", self._state_changed)

    @property
    def dtls(self) -> RTCDtlsTransport:
        return self._dtls

    @property
    def streams(self) -> dict[int, ReceptionStats]:
        """The reception statistics of every SSRC followed, by SSRC (a copy)."""
        return dict(self._streams)

    # --- wiring -------------------------------------------------------------------------

    def watch(self, transceiver: RTCRtpTransceiver) -> RtpDataHandler:
        """Follow ``transceiver``'s receiver: its sender reports reach :meth:`on_rtcp`
        (through :func:`sfu.rtc.intercept_receiver_rtcp`), and the returned function is
        to be called with each of its decrypted RTP packets (``data``,
        ``arrival_time_ms`` as :func:`sfu.rtc.intercept_rtp_data` gives them).  Starts
        the report task on first use (call inside the event loop)."""
        feed = self._feeds.get(id(transceiver))
        if feed is not None:
            return feed
        feed = self._feeds[id(transceiver)] = _ReceiverFeed(self, transceiver)
        if feed.mid is not None:
            feed.transport_cc_id = self._transport_cc_ids.get(feed.mid, 0)
        if not self.rtcp_ssrc:
            self.rtcp_ssrc = rtc.receiver_rtcp_ssrc(transceiver)
        rtc.intercept_receiver_rtcp(transceiver.receiver, self.on_rtcp)
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run_reports())
        return feed

    def declare(self, sdp: str) -> None:
        """Read the RTX SSRCs an offer declares (``a=ssrc-group:FID media rtx`` per mid)
        for the watched transceivers, and route them to their receiver.

        aiortc routes only a section's media SSRC, and an unknown SSRC by its payload
        type only when one receiver has it: with two video tracks (one RTX payload type)
        the SFU's retransmissions would be dropped.  An SSRC already routed is left as
        it is, and a malformed line is skipped."""
        groups = _fid_groups(sdp)
        if not groups:
            return
        router = rtp_router(self._dtls)
        for feed in self._feeds.values():
            transceiver = feed.transceiver
            if feed.mid is None:
                continue
            for media, retransmission in groups.get(feed.mid, ()):
                if media == retransmission:
                    continue
                owner = router.ssrc_table.get(media)
                if owner is not None and owner is not transceiver.receiver:
                    continue  # another receiver's stream
                if len(self._rtx_of) < MAX_STREAMS:
                    self._rtx_of[retransmission] = media
                router.ssrc_table.setdefault(retransmission, transceiver.receiver)

    def use_transport_cc(self, ids: Mapping[str, int]) -> None:
        """The answer accepted the transport-wide sequence number with these extension
        ids (by mid, see :func:`client.transport_cc.transport_cc_ids`): read it from the
        watched receivers' packets and send transport feedback for them.  Each call (one
        per answer) replaces the ids; a receiver watched later takes its mid's."""
        self._transport_cc_ids = {mid: number for mid, number in ids.items() if 1 <= number <= 255}
        if not self._transport_cc_ids:
            self._transport_cc_active = False  # renegotiated without it: REMB again
        for feed in self._feeds.values():
            if feed.mid is not None:
                feed.transport_cc_id = self._transport_cc_ids.get(feed.mid, 0)

    @property
    def transport_cc_in_use(self) -> bool:
        """A packet with a transport-wide sequence number arrived since the answer
        accepted it: REMB is left off."""
        return self._transport_cc_active

    def close(self) -> None:
        """Stop reporting (the connection closed, or the subscriber leaves)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._nack_timer is not None:
            self._nack_timer.cancel()
            self._nack_timer = None
        if self._transport_feedback_timer is not None:
            self._transport_feedback_timer.cancel()
            self._transport_feedback_timer = None

    def _state_changed(self) -> None:
        if self._dtls.state in ("closed", "failed"):
            self.close()

    # --- what arrives -------------------------------------------------------------------

    def on_rtp(self, feed: _ReceiverFeed, data: bytes, arrival_time_ms: int) -> None:
        """One decrypted RTP packet of ``feed``'s receiver (see :meth:`watch`)."""
        if self._closed:
            return
        length = len(data)
        if length < 12 or data[0] >> 6 != 2:
            self.ignored += 1
            return
        first_byte = data[0]
        start, end = payload_bounds(data, first_byte)
        if not start:
            self.ignored += 1
            return
        _, second, seq, timestamp, ssrc = FIXED_HEADER.unpack_from(data)
        payload_type = second & 0x7F
        clock_rate = feed.clock_rates.get(payload_type)
        if clock_rate is None:
            self.ignored += 1
            return
        retransmission = payload_type in feed.rtx
        stream = self._stream(ssrc, clock_rate, feed.kind, retransmission)
        if stream is None:
            self.ignored += 1
            return
        now = self._clock()
        result = stream.update(seq, timestamp, arrival_time_ms)
        if result == REJECTED:
            self.ignored += 1
            return
        stream.last_at = now
        transport_cc = False
        if feed.transport_cc_id:
            value = header_extension(data, first_byte, feed.transport_cc_id)
            if value is not None and len(value) == 2:
                transport_cc = True
                self._transport_cc_arrival(ssrc, value[0] << 8 | value[1], now)
        if retransmission:
            if end - start >= 2:
                media = self._rtx_of.get(ssrc, feed.media_ssrc)
                nacks = self._nacks.get(media) if media is not None else None
                if nacks is not None and nacks.arrived(_SEQ.unpack_from(data, start)[0]):
                    self.recovered += 1
            return
        if feed.kind != "video":
            return
        feed.media_ssrc = ssrc
        self._track_video(ssrc, seq, result, stream, now)
        if feed.abs_send_time_id and not transport_cc:
            self._estimate_bitrate(feed, data, first_byte, ssrc, length - start, arrival_time_ms)

    def _transport_cc_arrival(self, ssrc: int, seq: int, now: float) -> None:
        if not self._arrivals.add(seq, int(now * 1_000_000)):
            return
        self.transport_cc_packets += 1
        self._transport_cc_ssrc = ssrc
        self._transport_cc_active = True
        if self._transport_feedback_timer is None:
            self._transport_feedback_timer = asyncio.get_running_loop().call_later(
                self._transport_feedback_interval, self.send_transport_feedback
            )

    def _stream(
        self, ssrc: int, clock_rate: int, kind: str, retransmission: bool
    ) -> ReceptionStats | None:
        stream = self._streams.get(ssrc)
        if stream is not None:
            return stream
        if len(self._streams) >= MAX_STREAMS:
            self._forget_silent(self._clock())
            if len(self._streams) >= MAX_STREAMS:
                return None
        stream = self._streams[ssrc] = ReceptionStats(ssrc, clock_rate, kind, retransmission)
        return stream

    def _track_video(
        self, ssrc: int, seq: int, result: int, stream: ReceptionStats, now: float
    ) -> None:
        """The NACK list of a video stream, after its packet ``seq``."""
        nacks = self._nacks.get(ssrc)
        if nacks is None:
            nacks = self._nacks[ssrc] = NackList()
        if result == RESTARTED:
            abandoned = len(nacks.missing)
            nacks.missing.clear()
            self._give_up(ssrc, nacks, abandoned, now)  # the decoder needs a keyframe
        elif result == LATE:
            if nacks.arrived(seq):
                self.recovered += 1
        elif stream.gap:
            abandoned = nacks.gap((seq - stream.gap) & 0xFFFF, stream.gap, now)
            if abandoned:
                self._give_up(ssrc, nacks, abandoned, now)
            self._send_nacks()

    def _estimate_bitrate(
        self,
        feed: _ReceiverFeed,
        data: bytes,
        first_byte: int,
        ssrc: int,
        size: int,
        arrival_time_ms: int,
    ) -> None:
        value = header_extension(data, first_byte, feed.abs_send_time_id)
        if value is None or len(value) != 3:
            return
        last = self._estimator_at
        if (
            last is not None
            and not -ESTIMATOR_BACKWARDS_MS <= arrival_time_ms - last <= ESTIMATOR_SILENCE_MS
        ) or len(self._estimator.ssrcs) > MAX_STREAMS:
            # aiortc's rate counter walks every millisecond between two arrivals: after a
            # silence (or a clock step) start afresh, as libwebrtc times a stream out; and
            # its SSRC list is never pruned
            self._estimator = RemoteBitrateEstimator()
        self._estimator_at = arrival_time_ms
        try:
            estimate = self._estimator.add(
                arrival_time_ms=arrival_time_ms,
                abs_send_time=int.from_bytes(value, "big"),
                payload_size=size,
                ssrc=ssrc,
            )
        except (ArithmeticError, ValueError):  # aiortc's arithmetic on hostile values
            self.ignored += 1
            return
        if estimate is None:
            return
        bitrate = int(estimate[0])
        self._estimate = bitrate
        last = self.remb
        now = self._clock()
        if (
            last is None or bitrate <= last * REMB_DECREASE or bitrate >= last * REMB_INCREASE
        ) and (self._remb_at is None or now - self._remb_at >= REMB_MIN_SPACING):
            self._send_remb(now)

    def on_rtcp(self, packet: Any) -> None:
        """RTCP addressed to a watched receiver: a sender report gives its SSRC's LSR."""
        if not isinstance(packet, RtcpSrPacket) or self._closed:
            return
        ssrc = packet.ssrc
        if ssrc not in self._streams and len(self._sender_reports) >= MAX_STREAMS:
            return
        self.sender_reports += 1
        lsr = (packet.sender_info.ntp_timestamp >> 16) & 0xFFFFFFFF
        self._sender_reports[ssrc] = (lsr, self._clock())

    # --- what is sent -------------------------------------------------------------------

    def _give_up(self, ssrc: int, nacks: NackList, count: int, now: float) -> None:
        """``count`` numbers of ``ssrc`` will not be asked for again: ask for a keyframe."""
        self.abandoned += count
        if nacks.pli_at is not None and now - nacks.pli_at < PLI_INTERVAL:
            return
        packet = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self.rtcp_ssrc, media_ssrc=ssrc)
        if self._write(bytes(packet)):
            nacks.pli_at = now
            self.plis_sent += 1

    def _send_nacks(self) -> None:
        """NACK what is due, give up what waited too long, and set the timer for the rest."""
        if self._nack_timer is not None:
            self._nack_timer.cancel()
            self._nack_timer = None
        if self._closed:
            return
        now = self._clock()
        waiting = False
        for ssrc, nacks in self._nacks.items():
            if not nacks.missing:
                continue
            ask, abandoned = nacks.due(now, self._nack_retry, self._nack_asks, self._nack_give_up)
            if abandoned:
                self._give_up(ssrc, nacks, abandoned, now)
            if ask:
                data, named = nack_packet(self.rtcp_ssrc, ssrc, ask)
                if self._write(data):
                    self.nacks_sent += 1
                    self.nacked += nacks.asked(ask[:named], now)
            waiting = waiting or bool(nacks.missing)
        if waiting:
            self._nack_timer = asyncio.get_running_loop().call_later(
                self._nack_retry / 2, self._send_nacks
            )

    def _send_remb(self, now: float) -> None:
        if self._estimate is None or self.transport_cc_in_use:
            return
        ssrcs = [
            s.ssrc
            for s in self._streams.values()
            if s.kind == "video" and not s.rtx and now - s.last_at < STREAM_SILENT
        ][:MAX_REMB_SSRCS]
        if not ssrcs:
            return
        packet = RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP,
            ssrc=self.rtcp_ssrc,
            media_ssrc=0,
            fci=pack_remb_fci(self._estimate, ssrcs),
        )
        if self._write(bytes(packet)):
            self.remb = self._estimate
            self._remb_at = now
            self.rembs_sent += 1

    async def _run_reports(self) -> None:
        while True:
            await asyncio.sleep(self._report_interval * (0.5 + self._random.random()))
            try:
                self.send_reports()
            except Exception:  # never end the task: the next interval tries again
                log.exception(
                    "receiver feedback: reports failed", extra={"rtcp_ssrc": self.rtcp_ssrc}
                )

    def send_reports(self) -> None:
        """Send a receiver report for every SSRC heard from lately (and the REMB)."""
        if self._closed:
            return
        now = self._clock()
        self._forget_silent(now)
        blocks: list[RtcpReceiverInfo] = []
        for ssrc, stream in self._streams.items():
            if now - stream.last_at >= STREAM_SILENT:
                continue
            lsr = dlsr = 0
            sender_report = self._sender_reports.get(ssrc)
            if sender_report is not None:
                lsr = sender_report[0]
                delay = now - sender_report[1]
                if 0 <= delay < 65536:
                    dlsr = int(delay * 65536)
            blocks.append(stream.report(lsr, dlsr))
        for i in range(0, len(blocks), MAX_BLOCKS):
            chunk = blocks[i : i + MAX_BLOCKS]
            if self._write(bytes(RtcpRrPacket(ssrc=self.rtcp_ssrc, reports=chunk))):
                self.reports_sent += 1
                self.report_blocks_sent += len(chunk)
        self._send_remb(now)

    def send_transport_feedback(self) -> None:
        """Send transport feedback for the packets recorded since the last one (its
        timer calls this 50 ms after the first of them; nothing when there are none)."""
        if self._transport_feedback_timer is not None:
            self._transport_feedback_timer.cancel()
            self._transport_feedback_timer = None
        if self._closed:
            return
        arrivals = self._arrivals.take()
        if not arrivals:
            return
        for data in build_feedbacks(
            self.rtcp_ssrc, self._transport_cc_ssrc, self._feedback_count, arrivals
        ):
            self._feedback_count = (self._feedback_count + 1) & 0xFF
            if self._write(data):
                self.transport_feedbacks_sent += 1

    def _forget_silent(self, now: float) -> None:
        for ssrc in [s for s, st in self._streams.items() if now - st.last_at >= STREAM_FORGET]:
            del self._streams[ssrc]
            self._nacks.pop(ssrc, None)
            self._sender_reports.pop(ssrc, None)

    def _write(self, data: bytes) -> bool:
        if self._writer.write_rtcp(data):
            return True
        self.unsent += 1
        return False

    def stats(self) -> dict[str, int | None]:
        return {
            "reports_sent": self.reports_sent,
            "report_blocks_sent": self.report_blocks_sent,
            "nacked": self.nacked,
            "nacks_sent": self.nacks_sent,
            "recovered": self.recovered,
            "abandoned": self.abandoned,
            "plis_sent": self.plis_sent,
            "remb": self.remb,
            "rembs_sent": self.rembs_sent,
            "sender_reports": self.sender_reports,
            "ignored": self.ignored,
            "unsent": self.unsent,
            "transport_feedbacks_sent": self.transport_feedbacks_sent,
            "transport_cc_packets": self.transport_cc_packets,
            "transport_cc_late": self._arrivals.late,
        }


#: FID groups an offer may declare that :meth:`ReceiverFeedback.declare` reads.
MAX_FID_GROUPS = 256


def _fid_groups(sdp: str) -> dict[str, list[tuple[int, int]]]:
    """``{mid: [(media SSRC, RTX SSRC), ...]}`` from an SDP's ``a=ssrc-group:FID`` lines;
    lines that do not hold two SSRCs are skipped."""
    groups: dict[str, list[tuple[int, int]]] = {}
    pending: list[tuple[int, int]] = []
    mid: str | None = None
    count = 0

    def close_section() -> None:
        if mid is not None and pending:
            groups.setdefault(mid, []).extend(pending)

    for line in sdp.splitlines():
        if line.startswith("m="):
            close_section()
            pending = []
            mid = None
        elif line.startswith("a=mid:"):
            mid = line[6:].strip()
        elif line.startswith("a=ssrc-group:FID ") and count < MAX_FID_GROUPS:
            items = line[17:].split()
            if len(items) != 2 or not all(i.isdigit() and len(i) <= 10 for i in items):
                continue
            media, retransmission = int(items[0]), int(items[1])
            if media <= 0xFFFFFFFF and retransmission <= 0xFFFFFFFF:
                pending.append((media, retransmission))
                count += 1
    close_section()
    return groups
