"""A Consumer is one (subscriber, producer) pair: it writes one producer's packets to one
sender of a subscriber's peer connection.

Sequence numbers, timestamps, SSRC and payload type are rewritten per consumer.  The
rewrite offsets are re-based whenever the source changes (``switch_to``, or the
publisher restarting its stream), so the subscriber sees one continuous stream: its
jitter buffer and decoder never notice that the packets now come from elsewhere.

Within one source the offsets are fixed, so a late (reordered) packet keeps the place it
had in the source's order; only packets newer than the newest one forwarded move the
stream on.  Sequence numbers are compared as in RFC 3550: modulo 2**16, the nearer way
round.
"""

from __future__ import annotations

import builtins
import random
import time
import uuid
from typing import TYPE_CHECKING, Any

from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    unpack_remb_fci,
)

from .rtc.native import FASTPATH, NATIVE
from .rtp_header import (
    FIXED_HEADER,
    SEQUENCE,
    VERSION_BYTE,
    VERSION_BYTE_EXTENSION,
    abs_send_time,
    extension_block,
    vp8_picture,
)
from .simulcast import SimulcastProducer
from .state_field import state_field
from .token_bucket import TokenBucket

if TYPE_CHECKING:
    from aiortc import RTCRtpTransceiver

    from .producer import Producer
    from .rtc.writer import RtpWriter
    from .settings import MediaSettings


#: The header-extension ids negotiated with a subscriber: (abs-send-time,
#: ssrc-audio-level, transport-wide sequence number), 0 for one not negotiated.
ExtensionIds = tuple[int, int, int]

#: One tuple object per distinct set of extension ids, so that the producer recognises
#: consumers sharing a serialized extension block by identity.
_EXTENSION_IDS: dict[ExtensionIds, ExtensionIds] = {}


class RewriteState:
    """A consumer's rewrite state and counters, when the compiled path is not used; the
    same fields as the compiled path's ``caucus_consumer`` struct (but its ``sink``)."""

    __slots__ = (
        "bytes",
        "last_ms",
        "last_pic",
        "last_seq",
        "last_tl0",
        "last_ts",
        "packets",
        "paused",
        "payload_type",
        "pic_offset",
        "seq_offset",
        "source_span",
        "ssrc",
        "started",
        "tl0_offset",
        "ts_offset",
        "vp8",
    )

    def __init__(self) -> None:
        self.ssrc = 0
        self.payload_type = 0
        self.seq_offset = 0
        self.ts_offset = 0
        self.last_seq = 0
        self.last_ts = 0
        self.last_ms = 0
        self.source_span = 0
        self.packets = 0
        self.bytes = 0
        self.started = 0
        self.paused = 1
        self.vp8 = 0
        self.pic_offset = 0
        self.tl0_offset = 0
        self.last_pic = -1
        self.last_tl0 = -1


if FASTPATH:
    _ffi = NATIVE.ffi
    _lib = NATIVE.lib

    _fast_write = _lib.caucus_write
    _FAST_NOT_BOUND = _lib.CAUCUS_NOT_BOUND


#: The size of one padding packet (:meth:`Consumer.send_padding`) before its extension
#: block: the fixed header and 255 bytes of padding, the most one count byte says.
PADDING_PACKET = 12 + 255
_PADDING = bytes(254) + bytes((255,))  # RFC 3550: the last byte counts the padding


def _interned(ids: tuple[int, ...]) -> ExtensionIds:
    """``ids`` as the one tuple of its values; a pair (abs-send-time, audio level) has
    no transport-wide number, and an id the one-byte form cannot carry (1-14) is not
    written (0)."""
    if not 2 <= len(ids) <= 3:
        raise ValueError(f"extension ids are 2 or 3 ids, not {ids!r}")
    full = tuple(i if 1 <= i <= 14 else 0 for i in (*ids, 0)[:3])
    return _EXTENSION_IDS.setdefault(full, full)  # type: ignore[arg-type]  # three ints


class Consumer:
    """Forwards ``producer`` to the sender of ``transceiver`` on a subscribe transport.

    A consumer is *paused* until it is started (the subscriber's DTLS is up and the
    sender negotiated) and, for video, until the next keyframe of its source.
    """

    _ssrc = state_field("ssrc", "The SSRC the subscriber receives this track with.")
    _payload_type = state_field("payload_type", "The payload type negotiated with it.")
    _seq_offset = state_field("seq_offset", "Added to the source's sequence numbers.")
    _ts_offset = state_field("ts_offset", "Added to the source's timestamps.")
    _last_seq = state_field("last_seq", "The newest sequence number forwarded.")
    _last_ts = state_field("last_ts", "The timestamp forwarded with it.")
    _last_ms = state_field("last_ms", "Its arrival time (ms since 1900; 0: none yet).")
    _source_span = state_field(
        "source_span",
        "Numbers from the current source's first packet forwarded through the newest one "
        "(0 until one is forwarded): how far back a late packet may still belong.",
    )
    packets = state_field("packets", "RTP packets forwarded.")
    bytes = state_field("bytes", "RTP bytes forwarded (before SRTP).")
    _paused = state_field("paused", "Nothing is forwarded (until started and rebased).")
    _vp8 = state_field("vp8", "VP8 picture IDs and TL0PICIDX are rewritten.")
    _pic_offset = state_field("pic_offset", "Added to the source's picture IDs.")
    _tl0_offset = state_field("tl0_offset", "Added to the source's TL0PICIDX.")
    _last_pic = state_field("last_pic", "The newest forwarded packet's picture ID, or -1.")
    _last_tl0 = state_field("last_tl0", "The newest forwarded packet's TL0PICIDX, or -1.")

    @property
    def started(self) -> bool:
        """The subscriber can receive (DTLS up, sender negotiated)."""
        return bool(self._state.started)

    @started.setter
    def started(self, value: bool) -> None:
        self._state.started = int(value)

    @property
    def native(self) -> Any:
        """The compiled rewrite state (``caucus_consumer *``), or ``None``."""
        return self._state if self._native else None

    def __init__(
        self,
        *,
        producer: Producer | SimulcastProducer,
        transceiver: RTCRtpTransceiver,
        ssrc: int,
        rtx_ssrc: int,
        writer: RtpWriter,
        settings: MediaSettings,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.kind = producer.kind
        #: The track this consumer carries (a :class:`Producer`, or a
        #: :class:`~sfu.simulcast.SimulcastProducer` whose layers it picks from).
        self.producer: Producer | SimulcastProducer | None = None
        #: The producer whose packets it forwards: the track, or one of its layers
        #: (``None`` while video is withheld for bandwidth).
        self._source: Producer | None = None
        #: A layer being switched to, waiting for its keyframe (see :meth:`select_layer`).
        self._waiter: _LayerWaiter | None = None
        #: The highest layer the subscriber's bandwidth and tile allow (``None``: not
        #: limited yet), set by the worker's layer selection; the publisher is asked for
        #: what the highest wanted layer needs.
        self.wanted_layer: int | None = None
        self.transceiver = transceiver
        self.closed = False
        self.configured = False
        self.remb: int | None = None
        #: ``time.monotonic()`` of the latest REMB (the value expires).
        self.remb_at = 0.0

        self._writer = writer
        self._settings = settings
        # the rewrite state: the compiled path's struct when the writer uses its sink
        self._native: bool = getattr(writer, "native", False)
        self._state: Any
        if self._native:
            native = _ffi.new("caucus_consumer *")
            native.sink = writer.sink
            self._state = native
        else:
            self._state = RewriteState()
        self.started = False
        self._ssrc = ssrc
        self._rtx_ssrc = rtx_ssrc
        self._payload_type = 0
        self._rtx_payload_type: int | None = None
        #: (abs-send-time id, audio-level id, transport-cc id) negotiated with the
        #: subscriber.
        self.extension_ids: ExtensionIds = _interned((0, 0, 0))
        #: The extension block a retransmission carries: the transport-wide number's
        #: element alone (its writer numbers it), or none.
        self._retransmission_block = b""

        # rewrite state
        self._paused = True
        self._waiting_keyframe = False
        self._seq_offset = 0
        self._ts_offset = 0
        #: Numbers from the current source's first packet forwarded through the newest
        #: one (0 until one is forwarded): how far back a late packet may still belong.
        self._source_span = 0
        self._last_seq = random.randint(0, 0x7FFF)  # the newest number forwarded
        self._last_ts = random.getrandbits(32)
        self._last_ms = 0
        self._rtx_seq = random.randint(0, 0x7FFF)
        self._vp8 = int(producer.kind == "video" and producer.codec.mimeType.lower() == "video/vp8")
        self._pic_offset = 0
        self._tl0_offset = 0
        self._last_pic = -1
        self._last_tl0 = -1

        # feedback state
        self._nacked: dict[int, float] = {}
        self._tokens = settings.nack_rate
        self._tokens_at = time.monotonic()
        #: NACKed sequence numbers considered per second (the rest is ignored unread).
        self._nack_entries = TokenBucket(settings.nack_entries_rate)
        self.nack_entries_ignored = 0

        # counters (packets and bytes forwarded live in the rewrite state)
        self.nacks_received = 0
        self.nack_requests = 0
        self.retransmitted = 0
        self.retransmissions_suppressed = 0
        #: Padding sent as bandwidth probes (:meth:`send_padding`).
        self.padding_packets = 0
        self.padding_bytes = 0
        self.plis_received = 0
        self.firs_received = 0
        self.switches = 0
        #: Simulcast layer switches made (each on a keyframe of the layer switched to).
        self.layer_switches = 0
        #: The subscriber's latest receiver report: fraction lost (0-255) and the round
        #: trip it implies (seconds, from the report's LSR/DLSR; ``None`` until known).
        self.fraction_lost = 0
        self.report_at = 0.0  # time.monotonic() of the latest receiver report
        self.rtt: float | None = None
        self._reports_sent: dict[int, float] = {}  # middle 32 bits of the SR's NTP -> sent
        #: The simulcast layer this consumer forwards (0 lowest; ``None``: one layer).
        self.layer: int | None = None
        #: Video withheld because the subscriber's bandwidth cannot carry the lowest layer
        #: (audio goes on).
        self.paused_for_bandwidth = False
        #: The height in pixels of the subscriber's tile showing this track (``None``:
        #: unknown); caps the simulcast layer chosen.
        self.tile_height: int | None = None

        self._attach(producer)

    @property
    def mid(self) -> str | None:
        return self.transceiver.mid

    @property
    def producer_id(self) -> str | None:
        return self.producer.id if self.producer is not None else None

    @property
    def next_sequence_number(self) -> int:
        """The rewritten sequence number the next packet forwarded will carry (after a
        switch, the first packet of the new source carries it)."""
        return (self._last_seq + 1) & 0xFFFF

    def _behind(self, out_seq: int) -> int:
        """How far the rewritten ``out_seq`` lies before the newest number forwarded:
        0 for that one, negative when ``out_seq`` is newer."""
        distance = (self._last_seq - out_seq) & 0xFFFF
        return distance if distance < 0x8000 else distance - 0x10000

    # --- hot path -----------------------------------------------------------------------

    def write(
        self,
        seq: int,
        timestamp: int,
        marker: int,
        first_byte: int,
        tail: builtins.bytes,
        keyframe: bool,
        arrival_ms: int,
    ) -> None:
        if self._paused:
            if not self.started or (self._waiting_keyframe and not keyframe):
                return
            self._rebase(seq, timestamp, arrival_ms, first_byte, tail)
        if self._native:
            # the rest of this method, in C (sfu/_fastpath_build.py)
            state = self._state
            if (
                _fast_write(state, first_byte, marker, seq, timestamp, arrival_ms, tail, len(tail))
                != _FAST_NOT_BOUND
                or not self._writer.bind()
            ):
                return
            if self._writer.native:
                _fast_write(state, first_byte, marker, seq, timestamp, arrival_ms, tail, len(tail))
                return
            self._leave_native()
        out_seq = (seq + self._seq_offset) & 0xFFFF
        behind = self._behind(out_seq)
        if behind >= self._source_span:
            return  # older than the current source's first packet
        out_ts = (timestamp + self._ts_offset) & 0xFFFFFFFF
        picture = level = -1
        if self._vp8:
            tail, picture, level = self._rewrite_vp8(first_byte, tail)
        sent = self._writer.forward(
            first_byte, self._payload_type | (marker << 7), out_seq, out_ts, self._ssrc, tail
        )
        if sent:
            self.packets += 1
            self.bytes += sent
            if behind < 0:  # the newest yet; a late packet leaves the stream where it is
                self._source_span = min(self._source_span - behind, 0x8000)
                self._last_seq = out_seq
                self._last_ts = out_ts
                self._last_ms = arrival_ms
                if picture >= 0:
                    self._last_pic = picture
                if level >= 0:
                    self._last_tl0 = level

    def _rewrite_vp8(
        self, first_byte: int, tail: builtins.bytes
    ) -> tuple[builtins.bytes, int, int]:
        return rewrite_vp8(first_byte, tail, self._pic_offset, self._tl0_offset)

    def _leave_native(self) -> None:
        """Go on with the Python path, from the compiled path's state."""
        native, state = self._state, RewriteState()
        for name in RewriteState.__slots__:
            setattr(state, name, getattr(native, name))
        self._state = state
        self._native = False
        if self._source is not None:
            self._source.consumers_changed()

    def _rebase(
        self,
        seq: int,
        timestamp: int,
        arrival_ms: int,
        first_byte: int = VERSION_BYTE,
        tail: builtins.bytes = b"",
    ) -> None:
        """Continue the outgoing stream from its last packet with the source's ``seq``
        (and, VP8, from its last picture ID and TL0PICIDX with those of ``tail``)."""
        if self._last_ms:
            rate = self.producer.codec.clockRate if self.producer else 90000
            step = max(1, (arrival_ms - self._last_ms) * rate // 1000)
        else:
            step = 0
        self._seq_offset = (self._last_seq + 1 - seq) & 0xFFFF
        self._ts_offset = (self._last_ts + step - timestamp) & 0xFFFFFFFF
        if self._vp8:
            self._rebase_pictures(first_byte, tail)
        self._source_span = 0
        self._paused = False
        self._set_waiting_keyframe(False)
        self._nacked.clear()

    def _rebase_pictures(self, first_byte: int, tail: builtins.bytes) -> None:
        """The picture ID and TL0PICIDX of the first packet of a new source follow the
        last ones forwarded, so the subscriber's decoder sees one stream."""
        self._pic_offset = self._tl0_offset = 0
        start = _descriptor_start(first_byte, tail)
        if start < 0:
            return
        at, bits, level_at = vp8_picture(tail, start)
        if at >= 0 and self._last_pic >= 0:
            at += start
            if bits == 15:
                value = (tail[at] & 0x7F) << 8 | tail[at + 1]
                self._pic_offset = (self._last_pic + 1 - value) & 0x7FFF
            else:
                self._pic_offset = (self._last_pic + 1 - (tail[at] & 0x7F)) & 0x7F
        if level_at >= 0 and self._last_tl0 >= 0:
            self._tl0_offset = (self._last_tl0 + 1 - tail[start + level_at]) & 0xFF

    # --- control ------------------------------------------------------------------------

    def configure(
        self,
        payload_type: int,
        rtx_payload_type: int | None,
        extension_ids: tuple[int, int] | tuple[int, int, int],
    ) -> None:
        """Apply what the subscriber's answer negotiated for this sender: its payload
        types and header-extension ids (abs-send-time, audio level[, transport-wide
        sequence number]; 0 for one not negotiated, and for one above 14, which the
        one-byte form the SFU writes cannot carry)."""
        self._payload_type = payload_type
        self._rtx_payload_type = rtx_payload_type
        self.extension_ids = _interned(extension_ids)
        transport_cc_id = self.extension_ids[2]
        self._retransmission_block = (
            extension_block(0, None, 0, None, transport_cc_id) if transport_cc_id else b""
        )
        self.configured = True
        if self._source is not None:
            self._source.consumers_changed()

    def start(self) -> None:
        """The subscriber can receive: begin at the source's next keyframe."""
        if self.started or self.closed:
            return
        self.started = True
        self._pause()

    def switch_to(self, producer: Producer | SimulcastProducer) -> None:
        """Take packets from ``producer`` from its next keyframe on; the subscriber's
        stream stays continuous (same SSRC, contiguous sequence numbers)."""
        if producer.kind != self.kind:
            raise ValueError("a consumer switches between producers of one kind only")
        if producer is self.producer:
            return
        self._detach()
        self._attach(producer)
        self.switches += 1
        if self.started:
            self._pause()

    def source_restarted(self) -> None:
        """The producer's publisher began a new stream (new SSRC)."""
        if self.started:
            self._pause()

    def _pause(self) -> None:
        self._paused = True
        if self.kind == "video":
            self._set_waiting_keyframe(True)
            if self._source is not None:
                self._source.request_keyframe()

    def _set_waiting_keyframe(self, waiting: bool) -> None:
        if waiting == self._waiting_keyframe:
            return
        self._waiting_keyframe = waiting
        if self._source is not None:
            self._source.consumer_waits_for_keyframe(waiting)

    def _attach(self, producer: Producer | SimulcastProducer) -> None:
        self.producer = producer
        if isinstance(producer, SimulcastProducer):
            producer.add_consumer(self)
            self.layer = self._first_layer(producer)
            self.paused_for_bandwidth = False
            source = producer.layers[self.layer]
        else:
            self.layer = None
            source = producer
        self._source = source
        source.add_consumer(self, self._waiting_keyframe)

    def _detach(self) -> None:
        self._cancel_layer_switch()
        source = self._source
        if source is not None:
            source.remove_consumer(self, self._waiting_keyframe)
        self._source = None
        producer = self.producer
        if isinstance(producer, SimulcastProducer):
            producer.remove_consumer(self)
        self.producer = None

    def close(self) -> None:
        self._detach()
        self.closed = True
        self._paused = True

    # --- simulcast layers ---------------------------------------------------------------

    def _first_layer(self, producer: SimulcastProducer) -> int:
        """Start on the lowest layer arriving (the worker's layer selection climbs from
        there as the subscriber's bandwidth allows)."""
        active = producer.active_layers()
        return next((i for i, on in enumerate(active) if on), 0)

    def select_layer(self, layer: int | None) -> None:
        """Forward ``layer`` of a simulcast track from its next keyframe on (the current
        layer goes on until then: no freeze), or withhold video (``None``: the
        subscriber's bandwidth cannot carry the lowest layer) until a layer is selected
        again.  Sequence numbers, timestamps, picture IDs and TL0PICIDX stay continuous."""
        producer = self.producer
        if not isinstance(producer, SimulcastProducer) or self.closed:
            return
        if layer is not None and not 0 <= layer < len(producer.layers):
            raise ValueError(f"no layer {layer}")
        if layer is None:
            if self._source is None:
                return
            self._cancel_layer_switch()
            self._source.remove_consumer(self, self._waiting_keyframe)
            self._waiting_keyframe = False
            self._source = None
            self._paused = True
            self.layer = None
            self.paused_for_bandwidth = True
            return
        target = producer.layers[layer]
        waiter = self._waiter
        if waiter is not None:
            if waiter.source is target:
                return
            self._cancel_layer_switch()
        if target is self._source:
            return
        if self._source is None or self._paused:
            # nothing flowing: go straight to the new layer and wait for its keyframe
            if self._source is not None:
                self._source.remove_consumer(self, self._waiting_keyframe)
            self._source = target
            self.layer = layer
            self.paused_for_bandwidth = False
            target.add_consumer(self, self._waiting_keyframe)
            if self.started:
                self._pause()
            return
        self._waiter = _LayerWaiter(self, target, layer)
        target.add_consumer(self._waiter, True)  # type: ignore[arg-type]  # a stand-in
        target.request_keyframe()

    def _cancel_layer_switch(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.source.remove_consumer(waiter, True)  # type: ignore[arg-type]  # a stand-in

    def _layer_keyframe(
        self,
        waiter: _LayerWaiter,
        seq: int,
        timestamp: int,
        marker: int,
        first_byte: int,
        tail: builtins.bytes,
        arrival_ms: int,
    ) -> None:
        """The layer switched to sent a keyframe: forward it from this packet on."""
        if waiter is not self._waiter or self.closed:
            return
        self._waiter = None
        old = self._source
        target = waiter.source
        if old is not None:
            old.remove_consumer(self, self._waiting_keyframe)
        self._waiting_keyframe = False
        self._source = target
        self.layer = waiter.layer
        self.paused_for_bandwidth = False
        target.replace_consumer(waiter, self, True)
        self._paused = True  # rebased on this very packet
        self.write(seq, timestamp, marker, first_byte, tail, True, arrival_ms)
        self.layer_switches += 1

    @property
    def switching_to(self) -> int | None:
        """The layer waited for, while a switch waits for its keyframe."""
        return self._waiter.layer if self._waiter is not None else None

    # --- feedback from the subscriber --------------------------------------------------

    def on_rtcp(self, packet: object) -> None:
        if isinstance(packet, RtcpRtpfbPacket):
            if packet.fmt == RTCP_RTPFB_NACK:
                self.nacks_received += 1
                self._retransmit(packet.lost)
        elif isinstance(packet, RtcpPsfbPacket):
            if packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                if packet.fmt == RTCP_PSFB_PLI:
                    self.plis_received += 1
                else:
                    self.firs_received += 1
                if self._source is not None and not self._paused:
                    self._source.subscriber_requests_keyframe()
            elif packet.fmt == RTCP_PSFB_APP:
                try:
                    bitrate, ssrcs = unpack_remb_fci(packet.fci)
                except ValueError:
                    return
                if self._ssrc in ssrcs:
                    self.remb = bitrate
                    self.remb_at = time.monotonic()
        elif isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == self._ssrc:
                    self.fraction_lost = report.fraction_lost
                    self.report_at = time.monotonic()
                    sent = self._reports_sent.get(report.lsr) if report.lsr else None
                    if sent is not None:
                        rtt = time.time() - sent - report.dlsr / 65536
                        if 0 <= rtt < 60:
                            self.rtt = rtt

    def _retransmit(self, lost: list[int]) -> None:
        """Answer a NACK from the producer's buffer, de-duplicated and rate-limited.

        aiortc (and Chrome under loss) re-NACK every missing packet on each arrival, so a
        sequence number is resent at most once per ``nack_repeat_interval`` and at most
        ``nack_rate`` packets per second leave per consumer.
        """
        producer = self._source
        if producer is None or self._paused:
            return
        considered = self._nack_entries.take_up_to(len(lost))
        if considered < len(lost):
            self.nack_entries_ignored += len(lost) - considered
            lost = lost[:considered]
        now = time.monotonic()
        settings = self._settings
        self._tokens = min(
            settings.nack_rate, self._tokens + (now - self._tokens_at) * settings.nack_rate
        )
        self._tokens_at = now
        repeat = settings.nack_repeat_interval
        nacked = self._nacked
        for out_seq in lost:
            out_seq &= 0xFFFF  # aiortc's parser does not wrap a run past 65535
            self.nack_requests += 1
            behind = self._behind(out_seq)
            if behind < 0 or behind >= self._source_span:
                continue  # not sent yet, or before the current source: nothing to resend
            seq = (out_seq - self._seq_offset) & 0xFFFF
            sent_at = nacked.get(out_seq)
            if (sent_at is not None and now - sent_at < repeat) or self._tokens < 1:
                self.retransmissions_suppressed += 1
                continue
            entry = producer.lookup(seq)
            if entry is None:
                continue
            nacked[out_seq] = now
            self._tokens -= 1
            _, timestamp, marker, payload = entry
            out_ts = (timestamp + self._ts_offset) & 0xFFFFFFFF
            if self._vp8:  # as it was forwarded: picture ID and TL0PICIDX moved
                payload = rewrite_vp8(VERSION_BYTE, payload, self._pic_offset, self._tl0_offset)[0]
            block = self._retransmission_block
            first_byte = VERSION_BYTE_EXTENSION if block else VERSION_BYTE
            if self._rtx_payload_type is not None:
                header = FIXED_HEADER.pack(
                    first_byte,
                    self._rtx_payload_type | (marker << 7),
                    self._rtx_seq,
                    out_ts,
                    self._rtx_ssrc,
                )
                data = header + block + SEQUENCE.pack(out_seq) + payload
                self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            else:
                data = (
                    FIXED_HEADER.pack(
                        first_byte,
                        self._payload_type | (marker << 7),
                        out_seq,
                        out_ts,
                        self._ssrc,
                    )
                    + block
                    + payload
                )
            if self._writer.write_rtp(data):
                self.retransmitted += 1
        if len(nacked) > 1024:
            for key in [k for k, at in nacked.items() if now - at >= repeat]:
                del nacked[key]

    @property
    def can_pad(self) -> bool:
        """Whether :meth:`send_padding` can send: a started video consumer that sent
        media, whose subscriber negotiated retransmissions (padding travels on the RTX
        stream, which every receiver discards) and the transport-wide sequence number
        (padding is only worth what the subscriber's feedback says of it)."""
        return (
            self.kind == "video"
            and self.started
            and not self.closed
            and self._rtx_payload_type is not None
            and self.extension_ids[2] != 0
            and self.packets > 0
        )

    def send_padding(self, budget: int, cluster: int, minimum: int = 1) -> int:
        """Send padding-only RTX packets of about ``budget`` bytes in all, at least
        ``minimum`` of them: one burst of the bandwidth probe ``cluster``
        (:class:`sfu.layer_selection.Prober`).  Each carries the transport-wide number
        (and abs-send-time when negotiated) and no original sequence number, so WebRTC
        receivers count it in their feedback and drop it (RFC 4588's RTX stream: nothing
        reaches a decoder).  Returns the bytes sent."""
        if not self.can_pad or budget <= 0:
            return 0
        assert self._rtx_payload_type is not None  # can_pad
        abs_id, _, transport_cc_id = self.extension_ids
        writer = self._writer
        writer.probe_cluster = cluster
        sent = count = 0
        try:
            while sent < budget or count < minimum:
                block = extension_block(abs_id, abs_send_time(), 0, None, transport_cc_id)
                header = FIXED_HEADER.pack(
                    VERSION_BYTE_EXTENSION | 0x20,
                    self._rtx_payload_type,
                    self._rtx_seq,
                    self._last_ts,
                    self._rtx_ssrc,
                )
                data = header + block + _PADDING
                if not writer.write_rtp(data):
                    break
                self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
                sent += len(data)
                count += 1
        finally:
            writer.probe_cluster = 0
        self.padding_packets += count
        self.padding_bytes += sent
        return sent

    def send_report(self, now: float) -> None:
        """Send this sender's RTCP sender report, in the subscriber's SSRC/timestamp space
        (alone: a transport sends its consumers' reports together, see
        :meth:`sfu.transport.Transport.send_sender_reports`)."""
        data = self.sender_report(now)
        if data is not None:
            self._writer.write_rtcp(data)

    def sender_report(self, now: float) -> builtins.bytes | None:
        """This sender's RTCP sender report at ``now``, in the subscriber's SSRC/timestamp
        space, remembered as sent (its round trip is measured from the receiver report
        that answers it); ``None`` before anything was forwarded."""
        if not self.started or self.packets == 0 or self._source is None:
            return None
        ntp, rtp = self._source.sender_clock(now)
        packet = RtcpSrPacket(
            ssrc=self._ssrc,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=ntp,
                rtp_timestamp=(rtp + self._ts_offset) & 0xFFFFFFFF,
                packet_count=self.packets & 0xFFFFFFFF,
                octet_count=self.bytes & 0xFFFFFFFF,
            ),
        )
        sent = self._reports_sent
        sent[(ntp >> 16) & 0xFFFFFFFF] = now
        if len(sent) > 8:
            del sent[next(iter(sent))]
        return bytes(packet)

    def stats(self) -> dict[str, object]:
        return {
            "id": self.id,
            "producer_id": self.producer_id,
            "kind": self.kind,
            "mid": self.mid,
            "ssrc": self._ssrc,
            "started": self.started,
            "packets_forwarded": self.packets,
            "bytes_forwarded": self.bytes,
            "nacks_received": self.nacks_received,
            "nack_requests": self.nack_requests,
            "nack_entries_ignored": self.nack_entries_ignored,
            "retransmitted": self.retransmitted,
            "retransmissions_suppressed": self.retransmissions_suppressed,
            "padding_bytes": self.padding_bytes,
            "plis_received": self.plis_received,
            "firs_received": self.firs_received,
            "switches": self.switches,
            "fraction_lost": self.fraction_lost,
            "rtt_ms": round(self.rtt * 1000, 1) if self.rtt is not None else None,
            "layer": self.layer,
            "layer_switches": self.layer_switches,
            "paused_for_bandwidth": self.paused_for_bandwidth,
        }


def rewrite_vp8(
    first_byte: int, tail: builtins.bytes, pic_offset: int, tl0_offset: int
) -> tuple[builtins.bytes, int, int]:
    """``tail`` (a consumer's extension block and payload) with its VP8 picture ID and
    TL0PICIDX moved by the offsets, and the two values written (-1: none); the compiled
    path does the same (``write_consumer``)."""
    start = _descriptor_start(first_byte, tail)
    if start < 0:
        return tail, -1, -1
    at, bits, level_at = vp8_picture(tail, start)
    if at < 0 and level_at < 0:
        return tail, -1, -1
    out = bytearray(tail)
    picture = level = -1
    if at >= 0:
        at += start
        if bits == 15:
            picture = (((out[at] & 0x7F) << 8 | out[at + 1]) + pic_offset) & 0x7FFF
            out[at] = 0x80 | picture >> 8
            out[at + 1] = picture & 0xFF
        else:
            picture = ((out[at] & 0x7F) + pic_offset) & 0x7F
            out[at] = picture
    if level_at >= 0:
        level_at += start
        level = (out[level_at] + tl0_offset) & 0xFF
        out[level_at] = level
    return builtins.bytes(out), picture, level


def _descriptor_start(first_byte: int, tail: builtins.bytes) -> int:
    """Where the payload (the VP8 descriptor) begins in a consumer's ``tail``: after the
    extension block ``first_byte`` announces; -1 for a tail too short to hold it."""
    if not first_byte & 0x10:
        return 0
    if len(tail) < 4:
        return -1
    start = 4 + ((tail[2] << 8 | tail[3]) << 2)
    return start if start <= len(tail) else -1


class _LayerWaiter:
    """Stands among a layer's consumers while a :class:`Consumer` switching to that layer
    waits for its keyframe: the consumer goes on forwarding its current layer meanwhile,
    and moves over on the keyframe's first packet (:meth:`Consumer._layer_keyframe`).
    Not compiled, so the layer's packets go through Python while one waits."""

    native = None
    remb = None
    remb_at = 0.0

    def __init__(self, consumer: Consumer, source: Producer, layer: int) -> None:
        self.consumer = consumer
        self.source = source
        self.layer = layer
        self.extension_ids = consumer.extension_ids

    def write(
        self,
        seq: int,
        timestamp: int,
        marker: int,
        first_byte: int,
        tail: builtins.bytes,
        keyframe: bool,
        arrival_ms: int,
    ) -> None:
        if keyframe:
            self.consumer._layer_keyframe(
                self, seq, timestamp, marker, first_byte, tail, arrival_ms
            )
