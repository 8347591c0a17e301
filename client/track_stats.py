"""What one received track delivered, measured from its RTP packets without decoding.

:func:`watch_receiver` hooks a subscribe connection's receiver (through the SFU's aiortc
adapter, which replaces aiortc's jitter buffer and decoder with a plain callback), so a
load client pays a few microseconds of Python per packet on top of SRTP; with
:func:`sfu.aiortc_adapter.receive_directly` on the subscribe connection (the load
client's), packets reach it straight from the socket, as the SFU's publish connections
do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiortc import RTCRtpReceiver

from sfu import aiortc_adapter
from sfu.rtp_header import payload_bounds, read_fixed_header

from .stamped import stamp_ending_at

CLOCK_RATES = {"audio": 48000, "video": 90000}


@dataclass
class Window:
    """Counters at the start of a measurement window."""

    at: float
    packets: int
    bytes: int
    expected: int
    frames: int


@dataclass
class TrackStats:
    """Counters of one received track (one m-line of the subscribe connection).

    Loss comes from RTP sequence numbers (expected minus received, RFC 3550 §A.3),
    jitter is RFC 3550's interarrival jitter, frames are counted by the marker bit for
    video (every packet is a frame for audio), and latency is arrival time minus the send
    time the publisher stamped into the payload (see :mod:`client.stamped`).
    """

    mid: str
    kind: str
    #: when the track appeared on the subscribe connection (``time.monotonic()``)
    appeared_at: float
    packets: int = 0
    bytes: int = 0
    frames: int = 0
    first_frame_at: float | None = None
    last_packet_at: float | None = None
    jitter_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    window: Window | None = None
    _ssrc: int | None = None
    _base_seq: int = 0
    _max_seq: int = -1  # extended
    _cycles: int = 0
    _last_transit: float | None = None
    _clock_rate: int = field(init=False)
    _every_packet_a_frame: bool = field(init=False)

    def __post_init__(self) -> None:
        self._clock_rate = CLOCK_RATES.get(self.kind, 90000)
        self._every_packet_a_frame = self.kind == "audio"

    @property
    def expected(self) -> int:
        return 0 if self._max_seq < 0 else self._max_seq - self._base_seq + 1

    def on_data(self, data: bytes, _arrival_time_ms: int = 0) -> None:
        """Count one decrypted RTP packet, given as its bytes (see :func:`watch_receiver`)."""
        if len(data) < 12:
            return
        now = time.time()
        first, second, sequence_number, timestamp, ssrc = read_fixed_header(data)
        start, end = payload_bounds(data, first)
        if self._ssrc is None:
            self._ssrc = ssrc
            self._base_seq = sequence_number
            self._max_seq = sequence_number - 1
        elif ssrc != self._ssrc:
            return  # a retransmission stream; this probe never asks for one
        self.packets += 1
        self.bytes += end - start
        seq = sequence_number + self._cycles
        if seq < self._max_seq - 0x8000:
            self._cycles += 0x10000
            seq += 0x10000
        if seq > self._max_seq:
            self._max_seq = seq
        transit = now - timestamp / self._clock_rate
        if self._last_transit is not None:
            self.jitter_s += (abs(transit - self._last_transit) - self.jitter_s) / 16
        self._last_transit = transit
        self.last_packet_at = time.monotonic()
        if second & 0x80 or self._every_packet_a_frame:
            self.frames += 1
            if self.first_frame_at is None:
                self.first_frame_at = self.last_packet_at
            sent_us = stamp_ending_at(data, start, end)
            if sent_us is not None:
                self.latencies_ms.append((now * 1e6 - sent_us) / 1000)

    def start_window(self) -> None:
        """Start measuring: window figures count from here; latencies are kept from here."""
        self.window = Window(time.monotonic(), self.packets, self.bytes, self.expected, self.frames)
        self.latencies_ms.clear()

    def figures(self, until: float | None = None) -> dict[str, float | int | None]:
        """Counters since :meth:`start_window` (whole-track ones when none was started)."""
        start = self.window or Window(self.appeared_at, 0, 0, 0, 0)
        now = until if until is not None else time.monotonic()
        elapsed = max(1e-6, now - start.at)
        packets = self.packets - start.packets
        expected = self.expected - start.expected
        lost = max(0, expected - packets)
        ttff = None if self.first_frame_at is None else self.first_frame_at - self.appeared_at
        return {
            "packets": packets,
            "bytes": self.bytes - start.bytes,
            "frames": self.frames - start.frames,
            "bitrate_kbps": round((self.bytes - start.bytes) * 8 / elapsed / 1000, 1),
            "packets_lost": lost,
            "loss_pct": round(100 * lost / expected, 3) if expected > 0 else 0.0,
            "jitter_ms": round(self.jitter_s * 1000, 2),
            "time_to_first_frame_ms": None if ttff is None else round(ttff * 1000, 1),
            "latency_samples": len(self.latencies_ms),
            "latency_p50_ms": percentile(self.latencies_ms, 50),
            "latency_p99_ms": percentile(self.latencies_ms, 99),
        }


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile, rounded to 0.01 ms; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[rank], 2)


def watch_receiver(receiver: RTCRtpReceiver, stats: TrackStats) -> None:
    """Feed ``receiver``'s decrypted RTP packets to ``stats`` instead of aiortc's decoder.

    With :func:`sfu.aiortc_adapter.receive_directly` on the peer connection, they arrive
    straight from the socket, as bytes, without aiortc's queue, task and parser."""
    aiortc_adapter.intercept_rtp_data(receiver, stats.on_data)
