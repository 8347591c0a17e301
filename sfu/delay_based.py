"""The delay-based downlink estimate: what a subscriber's link carries, from how the
one-way delay of the packets the SFU sends it grows or shrinks (transport-wide congestion
control feedback, transport-cc).

Every packet sent to a subscriber carries a transport-wide sequence number; the SFU keeps
each one's send time and size, and the subscriber's feedback (every ~50 ms) gives each
packet's arrival time on the subscriber's clock, or says it was lost.  A queue building
up at the bottleneck shows as arrivals spreading out more than the sends did, long before
the queue overflows: a thin link is found while audio is still on time, not after a
keyframe has stalled it.  The rule is libwebrtc's send-side estimator (GoogCC, the
delay-based part; draft-ietf-rmcat-gcc-02 describes its ancestor):

1. *Inter-arrival groups*: packets sent within **5 ms** of a group's first packet form one
   group (a frame's packets, a burst of the pacer).  Each new group gives one sample: the
   time between the two groups' last sends vs. between their last arrivals.  A packet that
   arrives at most **5 ms** after the group's last one and closer than it was sent (the
   propagation delta is negative: it waited behind the others in a queue that has just
   drained) joins the group, up to **100 ms** of arrivals, so that a burst let through at
   once does not read as a sudden drop in delay.  Packets are taken in arrival order (as
   libwebrtc's ``SortedByReceiveTime``); one sent before the current group's first packet
   is reordered and skipped.  A receiver clock that jumps ahead by **3 s** more than the
   SFU's clock did between the two groups, or **3** groups in a row that arrive before the
   previous one (a clock that ran back), start the grouping again; no feedback for **2 s**
   starts the grouping and the trend again (the stream stopped).
2. *Trendline*: each sample's delay change (arrival delta - send delta, ms) is accumulated,
   smoothed (**0.9** of the previous smoothed value) and the slope of the last **20**
   smoothed points over their arrival times is fitted by least squares: 0 when the delay
   holds, (sent - capacity) / capacity when a queue grows.  The slope is scaled by
   min(samples, **60**) x **4** (the *modified trend*): early samples weigh less, and the
   window's slope becomes comparable to a threshold in ms.
3. *Overuse detector*: a modified trend above the threshold for more than **10 ms** of send
   time (at least two samples) while the slope is not falling is *overusing*; below -the
   threshold *underusing*; otherwise *normal*.  The threshold adapts to the trend (it moves
   towards |modified trend| by **0.0087**/ms when below it, **0.039**/ms when above, at most
   100 ms a step, and not for a spike more than **15** past it), starts at **12.5** and stays
   within **6..600**: on a path whose delay varies by itself (Wi-Fi, a shared uplink) it
   rises and stops reading that variation as a queue, but a real queue is still faster.
4. *AIMD rate control*: overusing cuts the estimate to **0.85** x the acknowledged bitrate
   (what the subscriber received, so the queue drains), at most once per round trip
   (clamped to 10-200 ms) unless the acknowledged bitrate fell below half the estimate;
   then it holds until the detector says normal.  Normal grows it: by **8 %/s** (at least 1
   kbit/s a feedback) while the link's capacity is unknown, and *additively* — one average
   packet (a 30-frame/s stream's frame in packets of at most 1,200 bytes) per response
   time, 2 x (round trip + 100 ms), at least **4 kbit/s per second** — once overuse has
   shown where the capacity is (the *link capacity estimate*: the acknowledged bitrate at
   each overuse, smoothed by **0.05**, with its deviation; it is forgotten when the
   acknowledged bitrate leaves 3 standard deviations around it: the link changed).
   Underusing holds (the queue is draining; growing now would overshoot).  The estimate
   never grows past **1.5** x the acknowledged bitrate + **10 kbit/s**: with no traffic to
   prove it, an estimate that kept growing would be a guess — exactly how the loss-based
   estimate misled the layer choice on a 300 kbit/s home link (an up-switch try sent a 13
   KB keyframe into it and audio stalled 330 ms).  Only probes go beyond what is sent.
   The round trip is **200 ms** until :meth:`DelayBasedEstimate.on_rtt` says otherwise.
5. *Acknowledged bitrate*: the bytes of the packets received over the last **0.5 s** of
   arrival time (the subscriber's clock), once the arrivals span that long.  libwebrtc
   smooths 150-ms windows with a Bayesian filter to a similar reaction time; a plain
   window is simpler to reason about and its error is one packet in the window (~6 % at
   300 kbit/s, ~1 % at 1.2 Mbit/s).  A gap of more than the window, or an arrival more
   than the window before the newest (a receiver clock that ran back), starts it again;
   the last value stands until the window is full again.
6. *Loss*: lost / reported packets over the feedback of the last **1 s** (libwebrtc hands
   its loss-based controller the counts of about a second).  The caller combines the two:
   libwebrtc's loss-based estimate caps the delay-based one.
7. *Probes*: a packet may belong to a probe cluster (a burst the SFU sends faster than
   the media to learn whether the link carries more).  Once **5** packets of a cluster were
   reported and **80 %** of them received, its result is: the send rate (the bytes of its
   received packets but the last sent, over the first to the last send) and the receive
   rate (the bytes but the first received, over the first to the last arrival); a receive
   rate below **0.9** x the send rate means the link saturated and the result is **0.95** x
   the receive rate (what the link carries, with room so as not to overuse at once);
   otherwise the smaller of the two.  Intervals of 0 or over **1 s**, or a receive rate over
   **2** x the send rate (arrivals bunched by something else), give no result.  A result
   above the estimate raises it to the result (past the 1.5 x cap: a probe *is* the proof)
   unless the detector says overusing; a cluster not reported on for **1 s** is forgotten.

The estimate stays within **5 kbit/s** (libwebrtc's floor: a delay-based estimate may
say a link carries almost nothing; the caller's own floor applies on top) and **20
Mbit/s** (as :class:`sfu.bandwidth.EstimateRule`: more than a subscriber is ever sent).

Where this deviates from libwebrtc, and why: (a) overuse before any acknowledged bitrate
halves the estimate at most once per round trip since the last cut (libwebrtc's default
guard there always passes and would halve at every feedback; this is its
``initial_backoff_interval`` option); (b) a probe result only ever raises the estimate
(the caller probes to learn whether to go up; overuse, which a saturating probe causes,
is what lowers it); (c) the elapsed time of an additive increase is capped at 1 s, like
the multiplicative one's (a long gap between feedbacks must not read as a long growth).

No networking, no clocks: :meth:`DelayBasedEstimate.on_feedback` takes ``now``
(``time.monotonic()`` in the SFU, a plain number in tests).  Send times are the SFU's
records, on the same clock as ``now``; the rest comes from a peer and is hostile: a packet
whose numbers are not finite, whose size is not a packet's, whose send time is after
``now`` or before one already reported (sequence order is send order: such a packet is a
repeat), or that repeats the one before it, is ignored; nothing here raises on a bad
number, and every history is bounded whatever the peer reports.  The numbers and their
reasons: docs/media-quality.md ("The delay-based estimate").
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .bandwidth import SteadyClock
from .bandwidth import _number as _finite

#: A packet on the wire is 1..65,535 bytes (an IP datagram's limit); any other size is not
#: a packet the SFU sent.
MAX_PACKET_SIZE = 65_535
#: A transport-cc feedback reports at most 65,535 packets (its status count is 16 bits);
#: entries past that in one call are ignored.
MAX_FEEDBACK_PACKETS = 65_535
#: A time (seconds, either clock) beyond this is absurd, not a clock reading (31 years).
ABSURD_TIME = 1e9
#: Probe clusters followed at once (the SFU runs one at a time; a few overlap at most), and
#: probe results remembered for :meth:`DelayBasedEstimate.probe_result`.
MAX_CLUSTERS = 32
MAX_PROBE_RESULTS = 64
#: Received packets held for the acknowledged bitrate: 0.5 s of 100-byte packets at 26
#: Mbit/s, more than the ceiling; past that the oldest go (the window only gets shorter).
MAX_ACKED_PACKETS = 16_384
#: Feedbacks held for the loss (1 s of them every 4 ms; receivers send one every 50-100 ms).
MAX_LOSS_FEEDBACKS = 256

Usage = Literal["normal", "overusing", "underusing"]
_NORMAL: Usage = "normal"
_OVERUSING: Usage = "overusing"
_UNDERUSING: Usage = "underusing"


@dataclass(frozen=True, slots=True)
class PacketResult:
    """One packet of a transport-cc feedback: what the SFU recorded when it sent it, and what
    the subscriber reported."""

    send_time: float  # seconds, the SFU's monotonic clock
    size: int  # bytes on the wire
    arrival_time: float | None  # seconds, receiver's clock (arbitrary offset), None: lost
    probe_cluster: int | None = None


@dataclass(frozen=True)
class DelayRule:
    """The numbers of :class:`DelayBasedEstimate`, libwebrtc's unless said otherwise (the
    module docstring and docs/media-quality.md say why each).  Times are seconds; the
    detector's threshold quantities are in libwebrtc's units (ms of modified trend)."""

    #: The estimate stays within these (bits/s).
    min_bitrate: float = 5_000
    max_bitrate: float = 20_000_000

    #: Inter-arrival grouping: a group is the packets sent within ``group_length`` of its
    #: first; a packet arriving within ``burst_interval`` of the group's last, sooner than
    #: it was sent, joins it while the group's arrivals span under ``max_burst_duration``.
    group_length: float = 0.005
    burst_interval: float = 0.005
    max_burst_duration: float = 0.100
    #: The receiver's clock ran ahead of the SFU's by this much between two groups: start
    #: again.  So do ``reordered_reset`` groups in a row that arrive before the previous one,
    #: and a pause of ``stream_timeout`` between feedbacks with packets.
    clock_jump: float = 3.0
    reordered_reset: int = 3
    stream_timeout: float = 2.0

    #: Trendline filter: the slope of the last ``trend_window`` smoothed delays
    #: (``trend_smoothing`` of the previous), scaled by min(samples, ``trend_max_samples``)
    #: x ``trend_gain``.
    trend_window: int = 20
    trend_smoothing: float = 0.9
    trend_gain: float = 4.0
    trend_max_samples: int = 60

    #: Overuse detector: the adaptive threshold (ms) starts at ``threshold``, moves towards
    #: |modified trend| by ``threshold_up`` / ``threshold_down`` per ms (above / below it),
    #: ignores spikes more than ``threshold_spike`` past it and stays within
    #: ``min_threshold``..``max_threshold``.  Overuse needs the trend above it for more than
    #: ``overuse_time`` seconds of send time.
    threshold: float = 12.5
    threshold_up: float = 0.0087
    threshold_down: float = 0.039
    threshold_spike: float = 15.0
    min_threshold: float = 6.0
    max_threshold: float = 600.0
    overuse_time: float = 0.010

    #: AIMD: grow by ``increase`` a second (at least ``min_increase`` bits/s a feedback)
    #: with the capacity unknown; near it, one average packet (of a ``frame_rate`` stream in
    #: packets of at most ``packet_size`` bytes) per 2 x (round trip + ``detector_delay``),
    #: at least ``min_additive_increase`` bits/s per second.  Overuse cuts to ``backoff`` x
    #: the acknowledged bitrate.  Growth stops at ``throughput_cap`` x the acknowledged
    #: bitrate + ``throughput_offset``.  ``rtt`` is the round trip until one is reported.
    increase: float = 0.08
    min_increase: float = 1_000
    min_additive_increase: float = 4_000
    frame_rate: float = 30.0
    packet_size: int = 1_200
    detector_delay: float = 0.100
    backoff: float = 0.85
    throughput_cap: float = 1.5
    throughput_offset: float = 10_000
    rtt: float = 0.200
    #: Link capacity estimate: the acknowledged bitrate at overuse, smoothed by
    #: ``capacity_smoothing``; its normalized variance stays within
    #: ``min_capacity_variance``..``max_capacity_variance`` (kbit/s: ~14-35 kbit/s of
    #: deviation at 500 kbit/s); it is forgotten outside ``capacity_deviations`` deviations.
    capacity_smoothing: float = 0.05
    min_capacity_variance: float = 0.4
    max_capacity_variance: float = 2.5
    capacity_deviations: float = 3.0

    #: The acknowledged bitrate: bytes received over this much arrival time.
    acked_window: float = 0.5
    #: The loss: over the feedback of this long.
    loss_window: float = 1.0

    #: Probes: a result once ``probe_min_packets`` were reported and ``probe_min_received``
    #: of them received; intervals within (0, ``probe_max_interval``]; receive / send rate
    #: at most ``probe_max_ratio``; below ``probe_saturation`` the link saturated and the
    #: result is ``probe_utilization`` x the receive rate.  A cluster not reported on for
    #: ``probe_timeout`` is forgotten.
    probe_min_packets: int = 5
    probe_min_received: float = 0.8
    probe_max_interval: float = 1.0
    probe_max_ratio: float = 2.0
    probe_saturation: float = 0.9
    probe_utilization: float = 0.95
    probe_timeout: float = 1.0

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if _finite(value) is None:
                raise ValueError(f"{name} must be a finite number")
        if not 0 < self.min_bitrate <= self.max_bitrate:
            raise ValueError("need 0 < min_bitrate <= max_bitrate")
        positive = (
            "group_length",
            "burst_interval",
            "max_burst_duration",
            "clock_jump",
            "stream_timeout",
            "threshold_up",
            "threshold_down",
            "min_threshold",
            "frame_rate",
            "packet_size",
            "throughput_cap",
            "acked_window",
            "loss_window",
            "probe_max_interval",
            "probe_max_ratio",
            "probe_timeout",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        non_negative = (
            "overuse_time",
            "threshold_spike",
            "increase",
            "min_increase",
            "min_additive_increase",
            "detector_delay",
            "throughput_offset",
            "rtt",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        counts = ("reordered_reset", "trend_window", "trend_max_samples", "probe_min_packets")
        for name in counts:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int")
        if self.trend_window < 2 or self.probe_min_packets < 2:
            raise ValueError("a slope and a probe's rates need at least two points")
        if not 0 <= self.min_threshold <= self.threshold <= self.max_threshold:
            raise ValueError("need min_threshold <= threshold <= max_threshold")
        shares = (
            "trend_smoothing",
            "backoff",
            "capacity_smoothing",
            "probe_min_received",
            "probe_saturation",
            "probe_utilization",
        )
        for name in shares:
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} is a share, 0 < {name} <= 1")
        if not 0 < self.min_capacity_variance <= self.max_capacity_variance:
            raise ValueError("need 0 < min_capacity_variance <= max_capacity_variance")
        if self.trend_gain <= 0 or self.capacity_deviations <= 0:
            raise ValueError("trend_gain and capacity_deviations must be positive")


# --- inter-arrival groups ---------------------------------------------------------------


class _Group:
    """Packets sent within ``group_length`` of the first (or let through in one burst)."""

    __slots__ = ("arrival", "first_arrival", "first_send", "send", "system")

    def __init__(self, send: float, arrival: float, system: float) -> None:
        self.first_send = self.send = send
        self.first_arrival = self.arrival = arrival
        self.system = system  # the SFU's clock when the group's last packet was reported


class _InterArrival:
    """Turns packets (in arrival order) into (send delta, arrival delta) between groups."""

    def __init__(self, rule: DelayRule) -> None:
        self._rule = rule
        self._current: _Group | None = None
        self._previous: _Group | None = None
        self._reordered = 0

    def add(self, send: float, arrival: float, system: float) -> tuple[float, float] | None:
        """A received packet; the deltas (seconds) when it completes a group."""
        current = self._current
        if current is None:
            self._current = _Group(send, arrival, system)
            return None
        if send < current.first_send:  # sent before the group that arrived: reordered
            return None
        deltas = None
        if self._new_group(send, arrival, current):
            previous = self._previous
            if previous is not None:
                send_delta = current.send - previous.send
                arrival_delta = current.arrival - previous.arrival
                system_delta = current.system - previous.system
                if arrival_delta - system_delta >= self._rule.clock_jump:
                    self._restart()
                    return None
                if arrival_delta < 0:
                    self._reordered += 1
                    if self._reordered >= self._rule.reordered_reset:
                        self._restart()
                    return None
                self._reordered = 0
                deltas = (send_delta, arrival_delta)
            self._previous = current
            self._current = _Group(send, arrival, system)
            return deltas
        current.send = max(current.send, send)
        current.arrival = arrival
        current.system = system
        return None

    def _new_group(self, send: float, arrival: float, current: _Group) -> bool:
        if self._in_burst(send, arrival, current):
            return False
        return send - current.first_send > self._rule.group_length

    def _in_burst(self, send: float, arrival: float, current: _Group) -> bool:
        arrival_delta = arrival - current.arrival
        send_delta = send - current.send
        if send_delta == 0:
            return True
        return (
            arrival_delta - send_delta < 0
            and arrival_delta <= self._rule.burst_interval
            and arrival - current.first_arrival < self._rule.max_burst_duration
        )

    def _restart(self) -> None:
        self._current = self._previous = None
        self._reordered = 0


# --- the trendline filter and the overuse detector -------------------------------------


class _Trendline:
    """The delay trend over the last groups and the overuse hypothesis it gives."""

    def __init__(self, rule: DelayRule) -> None:
        self._rule = rule
        self._samples = 0
        self._first_arrival: float | None = None
        self._accumulated = 0.0
        self._smoothed = 0.0
        self._history: deque[tuple[float, float]] = deque(maxlen=rule.trend_window)
        self._trend = 0.0
        self._threshold = rule.threshold
        self._last_update: float | None = None
        self._time_over: float | None = None
        self._over_count = 0
        self.state: Usage = _NORMAL

    def update(self, send_delta_ms: float, arrival_delta_ms: float, arrival_ms: float) -> None:
        rule = self._rule
        self._samples = min(self._samples + 1, 1000)
        if self._first_arrival is None:
            self._first_arrival = arrival_ms
        self._accumulated += arrival_delta_ms - send_delta_ms
        smoothing = rule.trend_smoothing
        self._smoothed = smoothing * self._smoothed + (1 - smoothing) * self._accumulated
        self._history.append((arrival_ms - self._first_arrival, self._smoothed))
        trend = self._trend
        if len(self._history) == rule.trend_window:
            slope = _slope(self._history)
            if slope is not None:
                trend = slope
        self._detect(trend, send_delta_ms, arrival_ms)

    def _detect(self, trend: float, send_delta_ms: float, now_ms: float) -> None:
        rule = self._rule
        if self._samples < 2:
            self.state = _NORMAL
            return
        modified = min(self._samples, rule.trend_max_samples) * trend * rule.trend_gain
        if modified > self._threshold:
            if self._time_over is None:
                self._time_over = send_delta_ms / 2  # over half the time since the last one
            else:
                self._time_over += send_delta_ms
            self._over_count += 1
            if (
                self._time_over > rule.overuse_time * 1000
                and self._over_count > 1
                and trend >= self._trend
            ):
                self._time_over = 0.0
                self._over_count = 0
                self.state = _OVERUSING
        elif modified < -self._threshold:
            self._time_over = None
            self._over_count = 0
            self.state = _UNDERUSING
        else:
            self._time_over = None
            self._over_count = 0
            self.state = _NORMAL
        self._trend = trend
        self._adapt(modified, now_ms)

    def _adapt(self, modified: float, now_ms: float) -> None:
        rule = self._rule
        last, self._last_update = self._last_update, now_ms
        if last is None or abs(modified) > self._threshold + rule.threshold_spike:
            return  # a latency spike (a sudden capacity drop) must not raise the threshold
        k = rule.threshold_down if abs(modified) < self._threshold else rule.threshold_up
        elapsed = min(max(now_ms - last, 0.0), 100.0)
        self._threshold += k * (abs(modified) - self._threshold) * elapsed
        self._threshold = min(max(self._threshold, rule.min_threshold), rule.max_threshold)


def _slope(points: deque[tuple[float, float]]) -> float | None:
    """The least-squares slope of ``points``, or ``None`` when the x values do not vary."""
    n = len(points)
    x_mean = sum(x for x, _ in points) / n
    y_mean = sum(y for _, y in points) / n
    numerator = sum((x - x_mean) * (y - y_mean) for x, y in points)
    denominator = sum((x - x_mean) ** 2 for x, _ in points)
    if denominator <= 0:
        return None
    slope = numerator / denominator
    return slope if math.isfinite(slope) else None


# --- the acknowledged bitrate -----------------------------------------------------------


class _Throughput:
    """Bytes received over the last ``window`` seconds of arrival time."""

    def __init__(self, window: float) -> None:
        self._window = window
        self._packets: deque[tuple[float, float]] = deque()
        self._bytes = 0.0
        self._since: float | None = None  # the first arrival since the window started
        self._newest: float | None = None

    def add(self, arrival: float, size: float) -> None:
        newest = self._newest
        if newest is not None and (
            arrival > newest + self._window or arrival < newest - self._window
        ):
            self._packets.clear()  # a pause, or the receiver's clock jumped: start again
            self._bytes = 0.0
            self._since = newest = None
        if self._since is None:
            self._since = arrival
        if newest is None or arrival > newest:
            self._newest = newest = arrival
        self._packets.append((arrival, size))
        self._bytes += size
        horizon = newest - self._window
        packets = self._packets
        while packets and (packets[0][0] <= horizon or len(packets) > MAX_ACKED_PACKETS):
            gone, size_gone = packets.popleft()
            self._bytes -= size_gone
            if len(packets) >= MAX_ACKED_PACKETS:
                self._since = max(self._since, gone)
        if not packets:
            self._bytes = 0.0

    def rate(self) -> float | None:
        """Bits/s over the window, once the arrivals span it."""
        if self._since is None or self._newest is None:
            return None
        if self._newest - self._since < self._window:
            return None
        return 8 * max(self._bytes, 0.0) / self._window


# --- probe clusters ---------------------------------------------------------------------


class _Cluster:
    """What the feedback said so far about one probe cluster's packets."""

    __slots__ = (
        "bytes",
        "first_arrival",
        "first_arrival_size",
        "first_send",
        "last_arrival",
        "last_send",
        "last_send_size",
        "received",
        "reported",
        "seen",
    )

    def __init__(self, seen: float) -> None:
        self.seen = seen
        self.reported = self.received = 0
        self.bytes = 0.0
        self.first_send = self.first_arrival = math.inf
        self.last_send = self.last_arrival = -math.inf
        self.last_send_size = self.first_arrival_size = 0.0

    def add(self, send: float, size: float, arrival: float | None) -> None:
        self.reported += 1
        if arrival is None:
            return
        self.received += 1
        self.bytes += size
        self.first_send = min(self.first_send, send)
        if send > self.last_send:
            self.last_send, self.last_send_size = send, size
        if arrival < self.first_arrival:
            self.first_arrival, self.first_arrival_size = arrival, size
        self.last_arrival = max(self.last_arrival, arrival)


# --- the estimate -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Packet:
    send: float
    size: float
    arrival: float | None
    cluster: int | None


class DelayBasedEstimate:
    """The bitrate one subscriber's link carries, from the delay of what the SFU sends it.

    Fed with each transport-cc feedback (:meth:`on_feedback`); :meth:`bitrate` is the
    estimate, :meth:`loss` the share lost for the caller's loss-based rule (which caps
    this one), :meth:`probe_result` what a probe cluster showed.  The rule: the module
    docstring.
    """

    def __init__(self, start_bitrate: float, rule: DelayRule | None = None) -> None:
        self.rule = rule = rule or DelayRule()
        start = _finite(start_bitrate)
        if start is None or start <= 0:
            raise ValueError("start_bitrate must be a positive finite number")
        self._estimate = self._clamp(start)
        self._time = SteadyClock()
        # grouping and detection
        self._groups = _InterArrival(rule)
        self._trendline = _Trendline(rule)
        self._received_at: float | None = None  # the latest feedback with a received packet
        self._newest_send: float | None = None
        self._last_packet: _Packet | None = None
        self._last_overuse: float | None = None
        # rate control
        self._rtt = rule.rtt
        self._increasing = False  # libwebrtc's kRcIncrease (else kRcHold)
        self._changed_at: float | None = None
        self._decreased_at: float | None = None
        self._throughput = self._estimate  # the acknowledged bitrate last used
        self._capacity: float | None = None  # kbit/s
        self._capacity_variance = rule.min_capacity_variance
        # measurements
        self._acked = _Throughput(rule.acked_window)
        self._acked_rate: float | None = None
        self._losses: deque[tuple[float, int, int]] = deque()
        self._clusters: dict[int, _Cluster] = {}
        self._results: dict[int, float] = {}

    # --- inputs -------------------------------------------------------------------------

    def on_feedback(self, packets: Sequence[PacketResult], now: float) -> None:
        """The packets of one feedback, in transport sequence order (which is send order)."""
        at = self._time.read(now)
        if at is None:
            return
        fresh = self._fresh(packets, at)
        if not fresh:
            return
        self._record_loss(at, sum(1 for p in fresh if p.arrival is None), len(fresh))
        probe = self._probe(fresh, at)
        received = sorted((p for p in fresh if p.arrival is not None), key=_arrival)
        if not received:
            return
        if self._received_at is None or at - self._received_at > self.rule.stream_timeout:
            self._restart_detection()
        self._received_at = at
        overused = False
        for packet in received:
            arrival = _arrival(packet)
            self._acked.add(arrival, packet.size)
            deltas = self._groups.add(packet.send, arrival, at)
            if deltas is not None:
                send_delta, arrival_delta = deltas
                self._trendline.update(send_delta * 1000, arrival_delta * 1000, arrival * 1000)
                overused = overused or self._trendline.state == _OVERUSING
        if overused or self._trendline.state == _OVERUSING:
            self._last_overuse = at
        acked = self._acked.rate()
        if acked is not None:
            self._acked_rate = min(acked, self.rule.max_bitrate)
        self._update(at, probe)

    def on_rtt(self, rtt: float) -> None:
        """The subscriber's round trip (seconds, from its receiver reports): how long the
        estimate waits between two cuts and how fast it grows near the capacity.  Anything
        not a finite number in 0..60 s is ignored."""
        value = _finite(rtt)
        if value is not None and 0 <= value <= 60:
            self._rtt = value

    # --- outputs ------------------------------------------------------------------------

    def bitrate(self) -> float:
        """The current estimate, bits/s."""
        return self._estimate

    def acknowledged_bitrate(self) -> float | None:
        """What the subscriber received over the last 0.5 s of arrivals, bits/s: the latest
        full window (``None`` until the arrivals first span that long)."""
        return self._acked_rate

    def loss(self) -> float:
        """The share of the packets reported lost over the last second of feedback (0..1)."""
        total = sum(count for _, _, count in self._losses)
        lost = sum(count for _, count, _ in self._losses)
        return lost / total if total > 0 else 0.0

    def state(self) -> str:
        """The detector's hypothesis: ``"normal"``, ``"overusing"`` or ``"underusing"``."""
        return self._trendline.state

    def probe_result(self, cluster: int) -> float | None:
        """What probe cluster ``cluster`` showed the link carries, bits/s, once known."""
        try:
            return self._results.get(cluster)
        except TypeError:  # not hashable
            return None

    def last_overuse(self) -> float | None:
        """The ``now`` of the latest feedback that showed overuse (``None``: never)."""
        return self._last_overuse

    # --- internals: input -----------------------------------------------------------------

    def _fresh(self, packets: object, at: float) -> list[_Packet]:
        """The valid packets not reported before, in order."""
        if not isinstance(packets, Sequence) or isinstance(packets, str | bytes):
            return []
        fresh: list[_Packet] = []
        for item in itertools.islice(packets, MAX_FEEDBACK_PACKETS):
            packet = _valid(item)
            if packet is None or packet.send > at:
                continue
            if self._newest_send is not None and packet.send < self._newest_send:
                continue  # reported before (or out of send order: not a packet of ours)
            if packet == self._last_packet:
                continue  # the same packet twice
            self._newest_send = packet.send
            self._last_packet = packet
            fresh.append(packet)
        return fresh

    def _record_loss(self, at: float, lost: int, total: int) -> None:
        losses = self._losses
        losses.append((at, lost, total))
        horizon = at - self.rule.loss_window
        while len(losses) > 1 and (losses[0][0] < horizon or len(losses) > MAX_LOSS_FEEDBACKS):
            losses.popleft()

    def _restart_detection(self) -> None:
        self._groups = _InterArrival(self.rule)
        self._trendline = _Trendline(self.rule)

    # --- internals: probes ----------------------------------------------------------------

    def _probe(self, packets: list[_Packet], at: float) -> float | None:
        """Adds the probe packets to their clusters; the newest result this feedback gave."""
        touched: list[int] = []
        for packet in packets:
            if packet.cluster is None:
                continue
            cluster = self._clusters.get(packet.cluster)
            if cluster is None:
                cluster = self._new_cluster(packet.cluster, at)
            cluster.seen = at
            cluster.add(packet.send, packet.size, packet.arrival)
            if packet.cluster not in touched:
                touched.append(packet.cluster)
        result = None
        for cluster_id in touched:
            cluster = self._clusters.get(cluster_id)  # gone if more were probed at once
            value = None if cluster is None else self._cluster_rate(cluster)
            if value is None:
                continue
            value = self._clamp(value)
            self._results.pop(cluster_id, None)
            self._results[cluster_id] = value
            while len(self._results) > MAX_PROBE_RESULTS:
                del self._results[next(iter(self._results))]
            result = value
        self._forget_clusters(at)
        return result

    def _forget_clusters(self, at: float) -> None:
        clusters = self._clusters
        for old in [c for c, s in clusters.items() if at - s.seen > self.rule.probe_timeout]:
            del clusters[old]

    def _new_cluster(self, cluster_id: int, at: float) -> _Cluster:
        self._forget_clusters(at)
        clusters = self._clusters
        while len(clusters) >= MAX_CLUSTERS:
            del clusters[min(clusters, key=lambda c: clusters[c].seen)]
        self._results.pop(cluster_id, None)  # an id used again: the old result is not this one
        cluster = clusters[cluster_id] = _Cluster(at)
        return cluster

    def _cluster_rate(self, cluster: _Cluster) -> float | None:
        rule = self.rule
        if cluster.reported < rule.probe_min_packets:
            return None
        if cluster.received < rule.probe_min_received * cluster.reported or cluster.received < 2:
            return None
        send_interval = cluster.last_send - cluster.first_send
        receive_interval = cluster.last_arrival - cluster.first_arrival
        if not (
            0 < send_interval <= rule.probe_max_interval
            and 0 < receive_interval <= rule.probe_max_interval
        ):
            return None
        send_rate = 8 * (cluster.bytes - cluster.last_send_size) / send_interval
        receive_rate = 8 * (cluster.bytes - cluster.first_arrival_size) / receive_interval
        if send_rate <= 0 or receive_rate <= 0 or receive_rate > rule.probe_max_ratio * send_rate:
            return None
        if receive_rate < rule.probe_saturation * send_rate:
            return rule.probe_utilization * receive_rate  # the link saturated: its rate
        return min(send_rate, receive_rate)

    # --- internals: rate control ------------------------------------------------------------

    def _update(self, at: float, probe: float | None) -> None:
        state = self._trendline.state
        if state == _OVERUSING:
            acked = self._acked_rate
            if acked is not None:
                if self._time_to_reduce(at, acked):
                    self._aimd(at, state, acked)
            elif (
                self._decreased_at is None or at - self._decreased_at >= self._reduction_interval()
            ):
                self._set(self._estimate / 2, at)
        elif probe is not None and probe > self._estimate:
            self._set(probe, at)
        else:
            self._aimd(at, state, self._acked_rate)

    def _reduction_interval(self) -> float:
        return min(max(self._rtt, 0.010), 0.200)

    def _time_to_reduce(self, at: float, acked: float) -> bool:
        if self._changed_at is None or at - self._changed_at >= self._reduction_interval():
            return True
        return acked < 0.5 * self._estimate

    def _set(self, bitrate: float, at: float) -> None:
        previous, self._estimate = self._estimate, self._clamp(bitrate)
        self._changed_at = at
        if self._estimate < previous:
            self._decreased_at = at

    def _aimd(self, at: float, state: Usage, acked: float | None) -> None:
        rule = self.rule
        if acked is not None:
            self._throughput = acked
        throughput = self._throughput
        if state == _NORMAL:
            if not self._increasing:
                self._increasing = True
                self._changed_at = at
        elif state == _UNDERUSING:
            self._increasing = False
        limit = rule.throughput_cap * throughput + rule.throughput_offset
        estimate = self._estimate
        if state == _OVERUSING:
            decreased = rule.backoff * throughput
            if decreased > estimate and self._capacity is not None:
                decreased = rule.backoff * self._capacity * 1000
            if decreased < estimate:
                self._estimate = self._clamp(decreased)
            low, _ = self._capacity_bounds()
            if throughput < low:
                self._capacity = None  # far below what the link carried: it changed
            self._on_capacity(throughput)
            self._increasing = False
            self._changed_at = self._decreased_at = at
        elif self._increasing:
            _, high = self._capacity_bounds()
            if throughput > high:
                self._capacity = None  # far above: the link got faster
            if estimate < limit:
                since = at if self._changed_at is None else self._changed_at
                elapsed = min(max(at - since, 0.0), 1.0)
                if self._capacity is not None:
                    grown = estimate + self._near_capacity_increase() * elapsed
                else:
                    factor = (1 + rule.increase) ** elapsed - 1
                    grown = estimate + max(estimate * factor, rule.min_increase)
                self._estimate = self._clamp(min(grown, limit))
            self._changed_at = at

    def _near_capacity_increase(self) -> float:
        """Bits/s per second near the capacity: one average packet per response time."""
        rule = self.rule
        frame_bits = self._estimate / rule.frame_rate
        packets = max(math.ceil(frame_bits / (8 * rule.packet_size)), 1)
        response_time = 2 * (self._rtt + rule.detector_delay)
        if response_time <= 0:
            return rule.min_additive_increase
        return max(rule.min_additive_increase, frame_bits / packets / response_time)

    def _capacity_bounds(self) -> tuple[float, float]:
        """(lower, upper) bounds of the link capacity, bits/s (0, inf when unknown)."""
        if self._capacity is None:
            return 0.0, math.inf
        deviation = math.sqrt(self._capacity_variance * self._capacity)
        spread = self.rule.capacity_deviations * deviation
        return (self._capacity - spread) * 1000, (self._capacity + spread) * 1000

    def _on_capacity(self, throughput: float) -> None:
        rule = self.rule
        sample = throughput / 1000
        alpha = rule.capacity_smoothing
        if self._capacity is None:
            self._capacity = sample
        else:
            self._capacity = (1 - alpha) * self._capacity + alpha * sample
        error = self._capacity - sample
        norm = max(self._capacity, 1.0)
        variance = (1 - alpha) * self._capacity_variance + alpha * error * error / norm
        self._capacity_variance = min(
            max(variance, rule.min_capacity_variance), rule.max_capacity_variance
        )

    def _clamp(self, value: float) -> float:
        return min(max(value, self.rule.min_bitrate), self.rule.max_bitrate)


def _arrival(packet: _Packet) -> float:
    return packet.arrival if packet.arrival is not None else math.inf


def _valid(item: object) -> _Packet | None:
    """``item`` as a packet with sane numbers, or ``None``."""
    if not isinstance(item, PacketResult):
        return None
    send = _finite(item.send_time)
    size = _finite(item.size)
    if send is None or abs(send) > ABSURD_TIME or size is None:
        return None
    if not 0 < size <= MAX_PACKET_SIZE:
        return None
    arrival: float | None = None
    if item.arrival_time is not None:
        arrival = _finite(item.arrival_time)
        if arrival is None or abs(arrival) > ABSURD_TIME:
            return None
    cluster = item.probe_cluster
    if isinstance(cluster, bool) or not isinstance(cluster, int):
        cluster = None
    return _Packet(send, size, arrival, cluster)
