"""What one received track delivered, measured from its RTP packets without decoding.

:func:`watch_receiver` hooks a subscribe connection's receiver (through the SFU's aiortc
adapter, which replaces aiortc's jitter buffer and decoder with a plain callback).  With
:func:`sfu.rtc.receive_directly` on the subscribe connection (the load
client's) and the compiled module built, the packets after a track's first are read,
unprotected and counted in C, a batch of datagrams per readiness event, without a Python
call per packet; otherwise each reaches :meth:`TrackStats.on_data` as bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCRtpReceiver

from sfu import rtc
from sfu.rtc.native import NATIVE as _fast
from sfu.rtp_header import payload_bounds, read_fixed_header

from .stamped import stamp_ending_at

CLOCK_RATES = {"audio": 48000, "video": 90000}
#: Latency samples a compiled track counter holds between two :meth:`TrackStats.collect`.
LATENCY_BUFFER = _fast.lib.CAUCUS_TRACK_LATENCIES if _fast is not None else 0
if _fast is not None:
    _track_packet = _fast.lib.caucus_track_packet


@dataclass
class Window:
    """Counters at the start of a measurement window."""

    at: float
    packets: int
    bytes: int
    expected: int
    frames: int


class _Counters:
    """The counters of one track, in Python: the same fields and arithmetic as the
    compiled ``caucus_track`` (``sfu/_fastpath_build.py``), for a tree without it."""

    def __init__(self, clock_rate: int, every_packet_a_frame: bool) -> None:
        self.clock_rate = clock_rate
        self.every_packet_a_frame = every_packet_a_frame
        self.ssrc = 0
        self.started = False
        self.packets = 0
        self.bytes = 0
        self.frames = 0
        self.base_seq = 0
        self.max_seq = -1  # extended
        self.cycles = 0
        self.has_transit = False
        self.last_transit = 0.0
        self.jitter_s = 0.0
        self.has_first_frame = False
        self.first_frame_at = 0.0
        self.has_packet = False
        self.last_packet_at = 0.0
        self.latency_dropped = 0
        self.latencies: list[float] = []

    def packet(self, data: bytes) -> None:
        if len(data) < 12:
            return
        now = time.time()
        first, second, sequence_number, timestamp, ssrc = read_fixed_header(data)
        start, end = payload_bounds(data, first)
        if not self.started:
            self.started = True
            self.ssrc = ssrc
            self.base_seq = sequence_number
            self.max_seq = sequence_number - 1
        elif ssrc != self.ssrc:
            return  # a retransmission stream; this probe never asks for one
        self.packets += 1
        self.bytes += end - start
        seq = sequence_number + self.cycles
        if seq < self.max_seq - 0x8000:
            self.cycles += 0x10000
            seq += 0x10000
        if seq > self.max_seq:
            self.max_seq = seq
        transit = now - timestamp / self.clock_rate
        if self.has_transit:
            self.jitter_s += (abs(transit - self.last_transit) - self.jitter_s) / 16
        self.has_transit = True
        self.last_transit = transit
        self.has_packet = True
        self.last_packet_at = time.monotonic()
        if second & 0x80 or self.every_packet_a_frame:
            self.frames += 1
            if not self.has_first_frame:
                self.has_first_frame = True
                self.first_frame_at = self.last_packet_at
            sent_us = stamp_ending_at(data, start, end)
            if sent_us is not None:
                self.latencies.append((now * 1e6 - sent_us) / 1000)


class TrackStats:
    """Counters of one received track (one m-line of the subscribe connection).

    Loss comes from RTP sequence numbers (expected minus received, RFC 3550 §A.3),
    jitter is RFC 3550's interarrival jitter, frames are counted by the marker bit for
    video (every packet is a frame for audio), and latency is arrival time minus the send
    time the publisher stamped into the payload (see :mod:`client.stamped`).

    The counters live in a C struct of the compiled module (``caucus_track``) when it is
    built: :func:`watch_receiver` then lets the direct receive path count the track's
    packets in C, without a Python call per packet; latency samples wait in the struct
    (:data:`LATENCY_BUFFER` of them) until :meth:`collect` moves them here, which the
    load test does every second and every figure read does too.  ``native=False`` keeps
    them in Python (the same arithmetic; a test compares both).
    """

    def __init__(self, mid: str, kind: str, appeared_at: float, native: bool | None = None) -> None:
        self.mid = mid
        self.kind = kind
        #: when the track appeared on the subscribe connection (``time.monotonic()``)
        self.appeared_at = appeared_at
        self.window: Window | None = None
        clock_rate = CLOCK_RATES.get(kind, 90000)
        audio = kind == "audio"
        if native is None:
            native = rtc.FASTRECEIVE
        if native:
            self.native: Any = _fast.ffi.new("caucus_track *")
            self.native.clock_rate = clock_rate
            self.native.every_packet_a_frame = audio
            self._counters: Any = self.native
            self._latencies: list[float] = []
        else:
            self.native = None
            self._counters = _Counters(clock_rate, audio)
            self._latencies = self._counters.latencies

    def on_data(self, data: bytes, _arrival_time_ms: int = 0) -> None:
        """Count one decrypted RTP packet, given as its bytes (see :func:`watch_receiver`)."""
        if self.native is not None:
            _track_packet(self.native, data, len(data))
        else:
            self._counters.packet(data)

    def collect(self) -> None:
        """Move the latency samples waiting in the compiled counters to :attr:`latencies_ms`."""
        native = self.native
        if native is not None and native.latency_count:
            self._latencies.extend(_fast.ffi.unpack(native.latencies, native.latency_count))
            native.latency_count = 0

    @property
    def latencies_ms(self) -> list[float]:
        self.collect()
        return self._latencies

    @property
    def latency_dropped(self) -> int:
        """Samples lost because the compiled buffer was full between two collections."""
        return int(self._counters.latency_dropped)

    @property
    def packets(self) -> int:
        return int(self._counters.packets)

    @property
    def bytes(self) -> int:
        return int(self._counters.bytes)

    @property
    def frames(self) -> int:
        return int(self._counters.frames)

    @property
    def jitter_s(self) -> float:
        return float(self._counters.jitter_s)

    @property
    def first_frame_at(self) -> float | None:
        c = self._counters
        return float(c.first_frame_at) if c.has_first_frame else None

    @property
    def last_packet_at(self) -> float | None:
        c = self._counters
        return float(c.last_packet_at) if c.has_packet else None

    @property
    def expected(self) -> int:
        c = self._counters
        return int(c.max_seq - c.base_seq + 1) if c.started else 0

    def start_window(self) -> None:
        """Start measuring: window figures count from here; latencies are kept from here."""
        self.collect()
        self.window = Window(time.monotonic(), self.packets, self.bytes, self.expected, self.frames)
        self._latencies.clear()

    def figures(self, until: float | None = None) -> dict[str, float | int | None]:
        """Counters since :meth:`start_window` (whole-track ones when none was started)."""
        start = self.window or Window(self.appeared_at, 0, 0, 0, 0)
        now = until if until is not None else time.monotonic()
        elapsed = max(1e-6, now - start.at)
        packets = self.packets - start.packets
        expected = self.expected - start.expected
        lost = max(0, expected - packets)
        first_frame_at = self.first_frame_at
        ttff = None if first_frame_at is None else first_frame_at - self.appeared_at
        latencies = self.latencies_ms
        figures: dict[str, float | int | None] = {
            "packets": packets,
            "bytes": self.bytes - start.bytes,
            "frames": self.frames - start.frames,
            "bitrate_kbps": round((self.bytes - start.bytes) * 8 / elapsed / 1000, 1),
            "packets_lost": lost,
            "loss_pct": round(100 * lost / expected, 3) if expected > 0 else 0.0,
            "jitter_ms": round(self.jitter_s * 1000, 2),
            "time_to_first_frame_ms": None if ttff is None else round(ttff * 1000, 1),
            "latency_samples": len(latencies),
            "latency_p50_ms": percentile(latencies, 50),
            "latency_p99_ms": percentile(latencies, 99),
        }
        if self.latency_dropped:
            figures["latency_samples_dropped"] = self.latency_dropped
        return figures


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile, rounded to 0.01 ms; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[rank], 2)


def watch_receiver(
    receiver: RTCRtpReceiver,
    stats: TrackStats,
    feedback: Callable[[bytes, int], None] | None = None,
) -> None:
    """Feed ``receiver``'s decrypted RTP packets to ``stats`` instead of aiortc's decoder.

    With :func:`sfu.rtc.receive_directly` on the peer connection, they arrive
    straight from the socket, as bytes, without aiortc's queue, task and parser.  aiortc's
    receiver never sees a packet, so it has nothing to put in receiver reports: its RTCP
    loop is stopped too.

    ``feedback`` (what :meth:`client.receiver_feedback.ReceiverFeedback.watch` returned
    for the receiver's transceiver) gets every packet after ``stats``: the compiled path
    then never counts the track in C, since each packet must reach Python.  (With a
    ``ReceivePoller`` the connection must keep its SRTCP, ``receive_directly(...,
    rtcp=True)``, for the sender reports the round trip is measured from.)"""
    if feedback is None:
        rtc.intercept_rtp_data(receiver, stats.on_data, stats.native)
    else:
        on_data = stats.on_data

        def count_and_feed(data: bytes, arrival_time_ms: int) -> None:
            on_data(data, arrival_time_ms)
            feedback(data, arrival_time_ms)

        rtc.intercept_rtp_data(receiver, count_and_feed)
