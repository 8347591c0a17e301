"""A Producer is one published track: the RTP stream one publisher sends into the SFU.

It owns the retransmission buffer, the reception statistics behind the receiver reports
sent to the publisher, and the coalescing of keyframe requests; it hands every packet
to its consumers without decoding it.
"""

from __future__ import annotations

import asyncio
import builtins
import struct
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSrPacket,
    RtpPacket,
    clamp_packets_lost,
    pack_remb_fci,
)

from .keyframes import keyframe_test
from .rtc.native import FASTPATH, NATIVE
from .rtp_header import (
    VERSION_BYTE,
    VERSION_BYTE_EXTENSION,
    abs_send_time,
    audio_level,
    extension_block,
    payload_bounds,
    read_fixed_header,
)
from .state_field import state_field

if TYPE_CHECKING:
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from .consumer import Consumer
    from .rtc.writer import RtpWriter
    from .settings import MediaSettings


class ProducerState:
    """A producer's per-packet state when the compiled module is not used: the same
    fields as its ``caucus_producer`` struct (but the buffer and the consumers)."""

    __slots__ = (
        "audio_level_id",
        "budget_at",
        "budget_depth",
        "budget_per_ms",
        "budget_tokens",
        "bytes",
        "closed",
        "cycles",
        "has_ssrc",
        "keyframe_pending",
        "keyframe_waiters",
        "last_arrival_ms",
        "last_timestamp",
        "level_packets",
        "level_sum",
        "level_voiced",
        "max_seq",
        "packets",
        "payload_type",
        "sinks",
        "ssrc",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)


#: Longest payload held for retransmission (a slot of the compiled ring; the Python
#: fallback keeps the same rule): a real packet of a browser is at most ~1200 bytes.
STORED_PAYLOAD = 1400

if FASTPATH:
    _ffi = NATIVE.ffi
    _lib = NATIVE.lib
    _store = _lib.caucus_producer_store
    #: Consumers the compiled path forwards to itself; a producer with more leaves its
    #: packets to Python.
    OUTPUTS = _lib.CAUCUS_PRODUCER_OUTPUTS
    assert _lib.CAUCUS_STORED_PAYLOAD == STORED_PAYLOAD


class ProducerSink(Protocol):
    """Receives a producer's packets without being a peer (e.g. a recorder)."""

    def on_rtp(self, packet: RtpPacket) -> None: ...

    def on_producer_closed(self, producer: Producer) -> None: ...


#: Seconds from the NTP epoch (1900) to the Unix epoch (1970).
NTP_EPOCH_OFFSET = 2_208_988_800
#: A gap larger than this is a restart or reordering storm, not loss worth NACKing.
MAX_UPSTREAM_NACK_GAP = 64


_NACK_HEADER = struct.Struct("!BBHII")
_NACK_ITEM = struct.Struct("!HH")


def nack_packet(sender_ssrc: int, media_ssrc: int, first: int, count: int) -> bytes:
    """A generic NACK (RFC 4585 §6.2.1) for ``count`` numbers from ``first``, modulo
    2**16 (aiortc's serialiser cannot write a run that wraps past 65535)."""
    items = []
    offset = 0
    while offset < count:
        pid = (first + offset) & 0xFFFF
        following = min(count - offset - 1, 16)
        items.append(_NACK_ITEM.pack(pid, (1 << following) - 1))
        offset += following + 1
    header = _NACK_HEADER.pack(0x80 | RTCP_RTPFB_NACK, 205, 2 + len(items), sender_ssrc, media_ssrc)
    return header + b"".join(items)


class Producer:
    """One published track (``kind`` ``"audio"`` or ``"video"``) of ``participant_id``.

    With the compiled module its per-packet state lives in a ``caucus_producer`` struct
    (:attr:`native`), which the direct receive path feeds: an ordinary packet (the
    current SSRC, in order or late, every consumer forwarding and bound, nobody waiting
    for a keyframe, no recorder, within budget) is forwarded to every consumer in C
    without reaching Python (``caucus_producer_packet``); everything else comes to
    :meth:`on_rtp_data`, which reads and writes the same fields."""

    closed = state_field("closed", "Closed: nothing is forwarded any more.")
    keyframe_waiters = state_field(
        "keyframe_waiters",
        "Consumers waiting for a keyframe; while zero, payloads are not inspected "
        "(see :meth:`consumer_waits_for_keyframe`).",
    )
    _keyframe_pending = state_field("keyframe_pending", "A keyframe request awaits an SSRC.")
    _payload_type = state_field("payload_type", "The media payload type.")
    _audio_level_id = state_field(
        "audio_level_id", "The publisher's ssrc-audio-level extension id (0: not negotiated)."
    )
    _budget_per_ms = state_field("budget_per_ms", "The byte budget's rate per ms.")
    _budget_depth = state_field("budget_depth", "The byte budget's depth.")
    _budget_tokens = state_field("budget_tokens", "Bytes the budget holds now.")
    _budget_at = state_field("budget_at", "Arrival time (ms) the budget was last filled.")
    packets = state_field("packets", "Packets received (and passed on).")
    bytes = state_field("bytes", "Payload bytes received.")
    _max_seq = state_field("max_seq", "The highest sequence number received.")
    _cycles = state_field("cycles", "Sequence number wraps, times 65536.")
    last_timestamp = state_field("last_timestamp", "The timestamp of the newest packet.")
    last_arrival_ms = state_field("last_arrival_ms", "Its arrival time (ms since 1900).")
    _level_packets = state_field("level_packets", "Packets with an audio level, since taken.")
    _level_sum = state_field("level_sum", "The sum of their levels (-dBov).")
    _level_voiced = state_field("level_voiced", "Those with the voice-activity bit.")

    @property
    def ssrc(self) -> int | None:
        """The publisher's SSRC of this track, once a packet came."""
        return self._state.ssrc if self._state.has_ssrc else None

    @ssrc.setter
    def ssrc(self, value: int | None) -> None:
        self._state.has_ssrc = int(value is not None)
        self._state.ssrc = value or 0

    def __init__(
        self,
        *,
        participant_id: str,
        kind: str,
        codec: RTCRtpCodecParameters,
        rtx_payload_type: int | None,
        rtcp_ssrc: int,
        writer: RtpWriter,
        settings: MediaSettings,
        mid: str | None = None,
        audio_level_id: int = 0,
        on_abuse: Callable[[str], None] | None = None,
        compiled: bool = True,
        layer_of: Any = None,
    ) -> None:
        """``compiled=False`` keeps the state in Python even with the compiled module;
        ``layer_of``: the :class:`~sfu.simulcast.SimulcastProducer` this is a layer of
        (its REMB is sent for all layers at once)."""
        self.id = uuid.uuid4().hex
        self.layer_of = layer_of
        self.participant_id = participant_id
        self.kind = kind
        self.codec = codec
        self.mid = mid
        size = settings.retransmission_buffer if kind == "video" else 0
        #: The compiled state (``caucus_producer *``), its retransmission ring, or None.
        self.native: Any = None
        self._ring: Any = None
        #: What the compiled receive path holds while it routes packets to ``native``.
        self.native_keep: Any = None
        self._state: Any
        if FASTPATH and compiled:
            native = self.native = self._state = _ffi.new("caucus_producer *")
            if size:
                self._ring = _ffi.new("caucus_stored[]", size)
                native.buffer = self._ring
                native.buffer_size = size
            native.outputs_complete = 1
            self.native_keep = (native, self._ring)
        else:
            self._state = ProducerState()
        self.closed = False
        self.ssrc = None
        #: Consumers currently fed by this producer, in the order they attached; changed
        #: only by :meth:`add_consumer` and :meth:`remove_consumer` (a consumer attaches
        #: itself; the router keeps which consumers it gave this producer).
        self.consumers: list[Consumer] = []
        #: Non-peer receivers of every packet (recorders); see :meth:`add_sink`.
        self.sinks: list[ProducerSink] = []

        self._payload_type = codec.payloadType if codec.payloadType is not None else -1
        self._rtx_payload_type = rtx_payload_type
        self._rtcp_ssrc = rtcp_ssrc
        #: The publisher's ssrc-audio-level extension id (0: not negotiated).
        self._audio_level_id = audio_level_id
        self._writer = writer
        self._settings = settings
        self._is_keyframe = keyframe_test(codec.mimeType)
        self.keyframe_waiters = 0

        #: Packets held for retransmission: the compiled ring, or this list without it.
        self._buffered = size > 0
        self._buffer: list[tuple[int, int, int, builtins.bytes] | None] = (
            [None] * size if size and self.native is None else []
        )
        self._buffer_mask = size - 1

        # reception statistics (RFC 3550 A.3)
        self.packets = 0
        self.bytes = 0
        self.retransmissions_received = 0
        self._base_seq: int | None = None
        self._max_seq = 0
        self._cycles = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._stream_base = 0
        self.last_timestamp = 0
        self.last_arrival_ms = 0

        # the publisher's latest sender report: (NTP, RTP timestamp, local time)
        self._sr: tuple[int, int, float] | None = None

        # feedback toward the publisher
        self.keyframe_requests_sent = 0
        self.nacks_sent = 0
        self._last_keyframe_request = -1e9
        self._keyframe_timer: asyncio.TimerHandle | None = None
        self._keyframe_retry: asyncio.TimerHandle | None = None
        self._keyframe_pending = False
        self._last_subscriber_request = -1e9
        #: Subscribers' keyframe requests not passed on (one per interval is).
        self.keyframe_requests_coalesced = 0

        # the publisher's budget (bytes/s), and how much of it was refused lately
        told = settings.max_video_bitrate if kind == "video" else settings.max_audio_bitrate
        budget = min(told * settings.publisher_budget_multiple, settings.publisher_budget_cap) / 8
        # a token bucket of bytes, one second deep, on the packets' arrival clock (ms):
        # inlined in the hot path, where a method call per packet would show
        self._budget_per_ms = budget / 1000
        self._budget_depth = budget
        self._budget_tokens = budget
        self._budget_at = 0
        #: Packets dropped over the budget.
        self.dropped_over_budget = 0
        self._on_abuse = on_abuse
        self._window_start = time.monotonic()
        self._window_packets = 0
        self._window_dropped = 0
        self._over_windows = 0

    # --- hot path -----------------------------------------------------------------------

    def on_rtp_data(self, data: builtins.bytes, arrival_time_ms: int) -> None:
        """Forward one decrypted RTP packet to every consumer (called by the receiver
        hook with the packet's bytes; only the fixed header, the payload's bounds and,
        when a consumer negotiated it, the audio level are read)."""
        if self.closed or len(data) < 12:
            return
        elapsed = arrival_time_ms - self._budget_at
        if elapsed > 0:
            self._budget_at = arrival_time_ms
            tokens = self._budget_tokens + elapsed * self._budget_per_ms
            if tokens > self._budget_depth:
                tokens = self._budget_depth
            tokens -= len(data)
        else:
            tokens = self._budget_tokens - len(data)
        if tokens < 0:
            self._over_budget()
            return
        self._budget_tokens = tokens
        first, second, seq, timestamp, ssrc = read_fixed_header(data)
        start, end = payload_bounds(data, first)
        payload_type = second & 0x7F
        if payload_type != self._payload_type:
            if payload_type != self._rtx_payload_type or self.ssrc is None:
                return
            if end - start < 2:
                return  # RTX padding used for bandwidth probing
            # unwrap the retransmission: the original sequence number leads the payload
            seq = data[start] << 8 | data[start + 1]
            start += 2
            ssrc = self.ssrc
            self.retransmissions_received += 1
        if start >= end:
            return
        payload = data[start:end]
        marker = second >> 7
        if self.sinks:
            packet = RtpPacket(
                payload_type=self._payload_type or 0,
                marker=marker,
                sequence_number=seq,
                timestamp=timestamp,
                ssrc=ssrc,
                payload=payload,
            )
            for sink in self.sinks:
                sink.on_rtp(packet)

        if ssrc != self.ssrc:
            self._restart(ssrc, seq)
        self.packets += 1
        self.bytes += end - start
        delta = (seq - self._max_seq) & 0xFFFF
        if 0 < delta < 0x8000:
            if delta > 1 and self._buffered:
                self._nack_upstream(delta - 1)
            if seq < self._max_seq:
                self._cycles += 0x10000
            self._max_seq = seq
            self.last_timestamp = timestamp
            self.last_arrival_ms = arrival_time_ms

        if self._buffered:
            self._store(seq, timestamp, marker, payload)
        level = audio_level(data, first, self._audio_level_id)
        if level is not None:
            self._level_packets += 1
            self._level_sum += level[1]
            self._level_voiced += level[0]
        keyframe = self.keyframe_waiters > 0 and self._is_keyframe(payload)
        if self._keyframe_pending:
            self._keyframe_pending = False
            self.request_keyframe()

        # consumers negotiating the same extension ids share one extensions+payload tail
        # (the ids are interned by Consumer.configure, so an identity test finds them)
        last_ids = None
        first_byte = VERSION_BYTE
        tail = payload
        tails: dict[tuple[int, int, int], tuple[int, builtins.bytes]] | None = None
        send_time = None
        for consumer in self.consumers:
            ids = consumer.extension_ids
            if ids is not last_ids:
                if tails is None:
                    tails = {}
                cached = tails.get(ids)
                if cached is None:
                    if ids[0] and send_time is None:
                        send_time = abs_send_time()
                    block = extension_block(
                        ids[0], send_time, ids[1], level if ids[1] else None, ids[2]
                    )
                    cached = tails[ids] = (
                        VERSION_BYTE_EXTENSION if block else VERSION_BYTE,
                        block + payload if block else payload,
                    )
                first_byte, tail = cached
                last_ids = ids
            consumer.write(seq, timestamp, marker, first_byte, tail, keyframe, arrival_time_ms)

    def _over_budget(self) -> None:
        """A packet over the budget: dropped.  Per ``abuse_window``: were most of the
        publisher's packets dropped?  Two such windows in a row disconnect it (one may be
        a burst of keyframes); a window without drops ends the streak."""
        self.dropped_over_budget += 1
        now = time.monotonic()
        window = self._settings.abuse_window
        if now - self._window_start < window:
            return
        if now - self._window_start > 2 * window:
            self._over_windows = 0  # the windows in between had no drop at all
        dropped = self.dropped_over_budget - self._window_dropped
        passed = self.packets - self._window_packets
        self._window_start = now
        self._window_dropped = self.dropped_over_budget
        self._window_packets = self.packets
        if dropped < self._settings.max_over_budget_share * (dropped + passed):
            self._over_windows = 0
            return
        self._over_windows += 1
        if self._over_windows >= 2 and self._on_abuse is not None:
            self._on_abuse("over-budget")

    def take_audio_level(self) -> tuple[int, float, int]:
        """What the publisher's ssrc-audio-level elements (RFC 6464, read without
        decoding) said since the last call: (packets with one, their mean level in -dBov:
        0 loudest, 127 silence, those with the voice-activity bit)."""
        packets, total, voiced = self._level_packets, self._level_sum, self._level_voiced
        self._level_packets = self._level_sum = self._level_voiced = 0
        return packets, (total / packets if packets else 127.0), voiced

    def _store(self, seq: int, timestamp: int, marker: int, payload: builtins.bytes) -> None:
        if self.native is not None:
            _store(self.native, seq, timestamp, marker, payload, len(payload))
        else:
            self._buffer[seq & self._buffer_mask] = (
                (seq, timestamp, marker, payload) if len(payload) <= STORED_PAYLOAD else None
            )

    def lookup(self, seq: int) -> tuple[int, int, int, builtins.bytes] | None:
        """The buffered (seq, timestamp, marker, payload) of ``seq``, if still held (with
        the compiled module, payloads up to ``STORED_PAYLOAD`` bytes are)."""
        if not self._buffered:
            return None
        if self.native is not None:
            slot = self._ring[seq & self._buffer_mask]
            if not slot.valid or slot.seq != seq:
                return None
            return seq, slot.timestamp, slot.marker, _ffi.buffer(slot.payload, slot.length)[:]
        entry = self._buffer[seq & self._buffer_mask]
        if entry is not None and entry[0] == seq:
            return entry
        return None

    def consumers_changed(self) -> None:
        """Give the compiled path the consumers as they are now: their rewrite states and
        negotiated extension ids (called when one attaches, detaches, is configured or
        leaves the compiled path).  With more than ``OUTPUTS`` consumers, or one not
        compiled, packets go through Python."""
        native = self.native
        if native is None:
            return
        consumers = self.consumers
        complete = len(consumers) <= OUTPUTS and all(c.native is not None for c in consumers)
        if complete:
            for output, consumer in zip(native.outputs, consumers, strict=False):
                output.consumer = consumer.native
                (
                    output.abs_send_time_id,
                    output.audio_level_id,
                    output.transport_cc_id,
                ) = consumer.extension_ids
            native.outputs_used = len(consumers)
        else:
            native.outputs_used = 0
        native.outputs_complete = int(complete)

    # --- sinks --------------------------------------------------------------------------

    def add_sink(self, sink: ProducerSink) -> None:
        """Also hand every packet (RTX unwrapped, not rewritten) to ``sink.on_rtp``, and
        call ``sink.on_producer_closed(self)`` when this producer closes.  ``on_rtp`` runs
        on the forwarding path: it must be cheap and must not raise."""
        if self.closed:
            sink.on_producer_closed(self)
        elif sink not in self.sinks:
            self.sinks.append(sink)
            self._state.sinks = len(self.sinks)

    def remove_sink(self, sink: ProducerSink) -> None:
        if sink in self.sinks:
            self.sinks.remove(sink)
            self._state.sinks = len(self.sinks)

    # --- feedback toward the publisher -------------------------------------------------

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe; at most one request per interval is sent,
        and a request made within the interval is sent when it ends."""
        if self.kind != "video" or self.closed:
            return
        if self.ssrc is None:
            self._keyframe_pending = True
            return
        loop = asyncio.get_running_loop()
        wait = self._last_keyframe_request + self._settings.keyframe_request_interval - loop.time()
        if wait <= 0:
            self._last_keyframe_request = loop.time()
            self.keyframe_requests_sent += 1
            packet = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self._rtcp_ssrc, media_ssrc=self.ssrc)
            self._writer.write_rtcp(bytes(packet))
            # A request can go unanswered: lost, or ignored by the publisher (WebRTC drops
            # requests within 300 ms of the last one it honoured).  Consumers waiting for a
            # keyframe forward nothing, so ask again until none waits.
            if self.keyframe_waiters > 0 and self._keyframe_retry is None:
                retry = 2 * self._settings.keyframe_request_interval
                self._keyframe_retry = loop.call_later(retry, self._keyframe_retry_fired)
        elif self._keyframe_timer is None:
            self._keyframe_timer = loop.call_later(wait, self._keyframe_timer_fired)

    def subscriber_requests_keyframe(self) -> None:
        """A subscriber's PLI or FIR: passed on at most once per
        ``subscriber_keyframe_interval`` whatever the number of askers (a keyframe is
        several times larger than other frames: forcing them multiplies the publisher's
        upstream), and not at all while the SFU itself is asking for one."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if (
            self.keyframe_waiters > 0
            or self._keyframe_timer is not None
            or now - self._last_subscriber_request < self._settings.subscriber_keyframe_interval
        ):
            self.keyframe_requests_coalesced += 1
            return
        self._last_subscriber_request = now
        self.request_keyframe()

    def _keyframe_timer_fired(self) -> None:
        self._keyframe_timer = None
        self.request_keyframe()

    def _keyframe_retry_fired(self) -> None:
        self._keyframe_retry = None
        if self.keyframe_waiters > 0:
            self.request_keyframe()

    def _nack_upstream(self, missing: int) -> None:
        if missing > MAX_UPSTREAM_NACK_GAP or self.ssrc is None:
            return
        first = (self._max_seq + 1) & 0xFFFF
        self.nacks_sent += 1
        self._writer.write_rtcp(nack_packet(self._rtcp_ssrc, self.ssrc, first, missing))

    def on_rtcp(self, packet: object) -> None:
        """RTCP from the publisher about this track (sender reports)."""
        if isinstance(packet, RtcpSrPacket) and packet.ssrc == self.ssrc:
            info = packet.sender_info
            self._sr = (info.ntp_timestamp, info.rtp_timestamp, time.time())

    def send_reports(self) -> None:
        """Send a receiver report (and REMB for video) to the publisher (alone: a
        transport sends its producers' reports together, see
        :meth:`sfu.transport.Transport.send_receiver_reports`)."""
        data = self.receiver_reports()
        if data is not None:
            self._writer.write_rtcp(data)

    def receiver_reports(self) -> builtins.bytes | None:
        """The receiver report (and REMB for video) due to the publisher now, as RTCP
        bytes, counted as sent; ``None`` before the first packet."""
        if self.ssrc is None or self.closed or self._base_seq is None:
            return None
        expected = self._cycles + self._max_seq - self._base_seq + 1
        expected_interval = expected - self._expected_prior
        received_interval = self.packets - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.packets
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        lsr = dlsr = 0
        if self._sr is not None:
            lsr = (self._sr[0] >> 16) & 0xFFFFFFFF
            delay = time.time() - self._sr[2]
            if 0 < delay < 65536:
                dlsr = int(delay * 65536)
        report = RtcpReceiverInfo(
            ssrc=self.ssrc,
            fraction_lost=fraction,
            packets_lost=clamp_packets_lost(expected - (self.packets - self._stream_base)),
            highest_sequence=(self._cycles + self._max_seq) & 0xFFFFFFFF,
            jitter=0,
            lsr=lsr,
            dlsr=dlsr,
        )
        data = bytes(RtcpRrPacket(ssrc=self._rtcp_ssrc, reports=[report]))
        if self.kind == "video" and self.layer_of is None:
            data += bytes(
                RtcpPsfbPacket(
                    fmt=RTCP_PSFB_APP,
                    ssrc=self._rtcp_ssrc,
                    media_ssrc=0,
                    fci=pack_remb_fci(self.estimated_bitrate(), [self.ssrc]),
                )
            )
        return data

    def estimated_bitrate(self) -> int:
        """The lowest bitrate any subscriber reported (REMB) within ``remb_expiry``
        seconds, capped by the settings and never below ``remb_floor``: one subscriber
        cannot hold a publisher at its encoder's floor for everyone, nor for ever."""
        settings = self._settings
        bitrate = settings.max_video_bitrate
        expired = time.monotonic() - settings.remb_expiry
        for consumer in self.consumers:
            remb = consumer.remb
            if remb is not None and remb < bitrate and consumer.remb_at >= expired:
                bitrate = remb
        return max(bitrate, min(settings.remb_floor, settings.max_video_bitrate))

    def sender_clock(self, now: float) -> tuple[int, int]:
        """(NTP time, RTP timestamp) of this track at wall-clock ``now``, for the sender
        reports of consumers; follows the publisher's own sender reports when known so
        that audio and video of one publisher stay in sync at the subscriber."""
        rate = self.codec.clockRate
        if self._sr is not None:
            ntp, rtp, at = self._sr
            elapsed = now - at
            # NTP time wraps at 2**64 (in 2036), as a hostile sender report can make it now
            ntp_now = (ntp + int(elapsed * (1 << 32))) & 0xFFFF_FFFF_FFFF_FFFF
            return ntp_now, (rtp + int(elapsed * rate)) & 0xFFFFFFFF
        ntp_seconds = now + NTP_EPOCH_OFFSET
        ntp_now = int(ntp_seconds * (1 << 32))
        # arrival times count milliseconds from the NTP epoch (1900), as aiortc's do
        elapsed = ntp_seconds - self.last_arrival_ms / 1000 if self.last_arrival_ms else 0.0
        return ntp_now, (self.last_timestamp + int(max(0.0, elapsed) * rate)) & 0xFFFFFFFF

    # --- lifecycle ---------------------------------------------------------------------

    def _restart(self, ssrc: int, seq: int) -> None:
        """The publisher started a new stream (first packet, or a new SSRC)."""
        first = self.ssrc is None
        self.ssrc = ssrc
        self._base_seq = seq
        self._max_seq = (seq - 1) & 0xFFFF
        self._cycles = 0
        self._expected_prior = 0
        self._received_prior = self._stream_base = self.packets
        self._sr = None
        if self.native is not None:
            _lib.caucus_producer_clear(self.native)
        elif self._buffer:
            self._buffer = [None] * len(self._buffer)
        if not first:
            for consumer in self.consumers:
                consumer.source_restarted()

    def native_route(self, ssrc: int, payload_type: int) -> tuple[Any, Any] | None:
        """(compiled state, what to keep alive) when the compiled receive path may hand
        ``ssrc``'s packets of ``payload_type`` to this producer itself: once the stream's
        first packet went through :meth:`on_rtp_data`."""
        native = self.native
        if (
            native is None
            or not native.has_ssrc
            or native.ssrc != ssrc
            or native.payload_type != payload_type
        ):
            return None
        return native, self.native_keep

    def replace_consumer(self, old: Any, new: Consumer, old_waiting: bool) -> None:
        """Put ``new`` (not waiting for a keyframe) where ``old`` is in :attr:`consumers`,
        in place: called while this producer's packet loop may be going over the list."""
        consumers = self.consumers
        consumers[consumers.index(old)] = new
        if old_waiting:
            self.keyframe_waiters -= 1
        self.consumers_changed()

    def add_consumer(self, consumer: Consumer, waiting_for_keyframe: bool) -> None:
        """Feed ``consumer`` from now on (it may be waiting for a keyframe already)."""
        self.consumers.append(consumer)
        if waiting_for_keyframe:
            self.keyframe_waiters += 1
        self.consumers_changed()

    def remove_consumer(self, consumer: Consumer, waiting_for_keyframe: bool) -> None:
        """Stop feeding ``consumer`` (``waiting_for_keyframe``: it still was)."""
        if waiting_for_keyframe:
            self.keyframe_waiters -= 1
        if consumer in self.consumers:
            self.consumers.remove(consumer)
        self.consumers_changed()

    def consumer_waits_for_keyframe(self, waiting: bool) -> None:
        """A consumer began (or stopped) waiting for a keyframe: payloads are inspected
        while any does."""
        self.keyframe_waiters += 1 if waiting else -1

    def close(self) -> None:
        self.closed = True
        for timer in (self._keyframe_timer, self._keyframe_retry):
            if timer is not None:
                timer.cancel()
        self._keyframe_timer = self._keyframe_retry = None
        sinks, self.sinks = self.sinks, []
        self._state.sinks = 0
        for sink in sinks:
            sink.on_producer_closed(self)

    def stats(self) -> dict[str, object]:
        return {
            "id": self.id,
            "participant_id": self.participant_id,
            "kind": self.kind,
            "codec": self.codec.mimeType,
            "ssrc": self.ssrc,
            "packets_received": self.packets,
            "bytes_received": self.bytes,
            "retransmissions_received": self.retransmissions_received,
            "keyframe_requests_sent": self.keyframe_requests_sent,
            "nacks_sent": self.nacks_sent,
            "keyframe_requests_coalesced": self.keyframe_requests_coalesced,
            "dropped_over_budget": self.dropped_over_budget,
            "consumers": len(self.consumers),
        }
