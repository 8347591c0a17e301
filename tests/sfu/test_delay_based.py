"""The delay-based downlink estimate (``sfu.delay_based``) on simulated links.

A subscriber behind a FIFO bottleneck (capacity in bits/s, a queue limit in bytes: what
does not fit is lost, a propagation delay, optionally random jitter), the SFU sending it a
video stream (a frame every 1/30 s in packets of at most 1,200 bytes) and audio (100 bytes
every 20 ms), and probe clusters when a test asks; the subscriber's feedback every 50 ms
on a clock of its own.  Everything runs on a fake clock (``now`` values, no sleeping).  The
rule and its numbers: the module's docstring and docs/media-quality.md.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.delay_based import DelayBasedEstimate, DelayRule, PacketResult

AUDIO_SIZE = 100
AUDIO_INTERVAL = 0.020
AUDIO_RATE = 8 * AUDIO_SIZE / AUDIO_INTERVAL  # 40 kbit/s
FRAME_INTERVAL = 1 / 30
MTU = 1_200
FEEDBACK_INTERVAL = 0.050
STEP = 0.005


# --- a simulated subscriber -----------------------------------------------------------


class Link:
    """A FIFO bottleneck of ``capacity`` bits/s holding at most ``queue_bytes`` waiting
    (a packet that does not fit is lost, as ``tc tbf`` drops it), then ``delay`` seconds of
    propagation, plus uniform random ``jitter`` (± seconds) on each arrival."""

    def __init__(
        self,
        capacity: float,
        *,
        queue_bytes: float | None = None,
        delay: float = 0.020,
        jitter: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.capacity = capacity
        # 250 ms of the link by default, as the weak-link test's tc tbf
        self.queue_bytes = queue_bytes if queue_bytes is not None else capacity * 0.25 / 8
        self.delay = delay
        self.jitter = jitter
        self.rng = random.Random(seed)
        self.busy_until = 0.0  # when the link has sent everything queued so far

    def queued(self, at: float) -> float:
        """Bytes waiting (or being sent) at ``at``."""
        return max(self.busy_until - at, 0.0) * self.capacity / 8

    def set_capacity(self, at: float, capacity: float) -> None:
        waiting = self.queued(at)
        self.capacity = capacity
        self.busy_until = at + waiting * 8 / capacity

    def carry(self, at: float, size: int) -> float | None:
        """A packet offered at ``at``: its arrival time (true time), or ``None``: lost."""
        if self.queued(at) + size > self.queue_bytes:
            return None
        self.busy_until = max(self.busy_until, at) + size * 8 / self.capacity
        arrival = self.busy_until + self.delay
        if self.jitter:
            arrival += self.rng.uniform(-self.jitter, self.jitter)
        return arrival


@dataclass
class Sent:
    send_time: float
    size: int
    cluster: int | None
    arrival: float | None  # true time


@dataclass
class Sample:
    """The estimate after the feedback delivered at ``at``."""

    at: float
    bitrate: float
    state: str
    acked: float | None


class Subscriber:
    """The SFU sending one subscriber video at ``video_rate`` and audio through ``link``; the
    subscriber's feedback (every 50 ms, arrival times on a clock ``clock_offset`` ahead of
    the SFU's) reaches the estimate ``return_delay`` later."""

    def __init__(
        self,
        link: Link,
        estimate: DelayBasedEstimate,
        *,
        video_rate: float,
        return_delay: float = 0.020,
        clock_offset: float = 12_345.678,
        paced: bool = False,
    ) -> None:
        self.link = link
        self.estimate = estimate
        self.video_rate = video_rate
        self.return_delay = return_delay
        self.clock_offset = clock_offset
        self.paced = paced
        self.t = 0.0
        self.sent: list[Sent] = []
        self.samples: list[Sample] = []
        self._reported = 0  # the first packet not yet reported
        self._next_frame = 0.0
        self._next_audio = 0.0
        self._next_feedback = FEEDBACK_INTERVAL
        self._pending: deque[tuple[float, list[PacketResult]]] = deque()
        self._padding: deque[tuple[float, int]] = deque()  # (when, cluster)
        self._probe_window: tuple[float, float, int] | None = None
        self._cluster = 0

    @property
    def media_rate(self) -> float:
        return self.video_rate + AUDIO_RATE

    def probe(self, rate: float, duration: float = 0.1) -> int:
        """A probe cluster from now: padding (1,200-byte packets) up to ``rate`` with the
        media, over ``duration`` and at least 5 padding packets; the media sent meanwhile
        belongs to the cluster too (as libwebrtc's pacer sends it).  Its id."""
        self._cluster += 1
        padding = max(rate - self.media_rate, 0.1 * rate)
        count = max(5, math.ceil(padding * duration / (8 * MTU)))
        spacing = 8 * MTU / padding
        for i in range(count):
            self._padding.append((self.t + i * spacing, self._cluster))
        self._probe_window = (self.t, self.t + count * spacing, self._cluster)
        return self._cluster

    def run(self, until: float, *, probe_every: float | None = None) -> list[Sample]:
        """Runs to ``until``; with ``probe_every``, a probe at 2 x the estimate that often,
        unless the estimate saw overuse in the last second."""
        start = len(self.samples)
        next_probe = self.t
        while self.t < until - 1e-9:
            if probe_every is not None and self.t >= next_probe - 1e-9:
                last = self.estimate.last_overuse()
                if last is None or self.t - last > 1.0:
                    self.probe(2 * self.estimate.bitrate())
                next_probe = self.t + probe_every
            self.step()
        return self.samples[start:]

    def step(self) -> None:
        t0, t1 = self.t, self.t + STEP
        outgoing: list[tuple[float, int, bool]] = []  # (when, size, padding)
        while self._next_frame < t1:
            frame = self.video_rate * FRAME_INTERVAL / 8
            count = max(math.ceil(frame / MTU), 1)
            spacing = FRAME_INTERVAL / count if self.paced else 0.0002
            for i in range(count):
                outgoing.append((self._next_frame + i * spacing, max(int(frame / count), 1), False))
            self._next_frame += FRAME_INTERVAL
        while self._next_audio < t1:
            outgoing.append((self._next_audio, AUDIO_SIZE, False))
            self._next_audio += AUDIO_INTERVAL
        padding_clusters: list[int] = []
        while self._padding and self._padding[0][0] < t1:
            when, cluster = self._padding.popleft()
            outgoing.append((when, MTU, True))
            padding_clusters.append(cluster)
        outgoing.sort(key=lambda item: item[0])
        pad = iter(padding_clusters)
        for when, size, is_padding in outgoing:
            tag = next(pad) if is_padding else self._media_cluster(when)
            self.sent.append(Sent(when, size, tag, self.link.carry(when, size)))
        while self._next_feedback < t1:
            self._feedback(self._next_feedback)
            self._next_feedback += FEEDBACK_INTERVAL
        while self._pending and self._pending[0][0] < t1:
            at, packets = self._pending.popleft()
            self.estimate.on_feedback(packets, at)
            self.samples.append(
                Sample(
                    at,
                    self.estimate.bitrate(),
                    self.estimate.state(),
                    self.estimate.acknowledged_bitrate(),
                )
            )
        self.t = round(t1, 9)
        assert t0 < self.t

    def _media_cluster(self, when: float) -> int | None:
        window = self._probe_window
        if window is not None and window[0] <= when < window[1]:
            return window[2]
        return None

    def _feedback(self, at: float) -> None:
        """The subscriber's feedback at ``at`` (true time): every packet not yet reported up
        to the last one arrived by then (a packet before it that never arrives is lost).
        With jitter, a packet before it arriving later is reported with its arrival: the
        feedback is taken as a little later for it."""
        last = None
        for index in range(self._reported, len(self.sent)):
            arrival = self.sent[index].arrival
            if arrival is not None and arrival <= at:
                last = index
        if last is None:
            return
        packets = [
            PacketResult(
                s.send_time,
                s.size,
                None if s.arrival is None else s.arrival + self.clock_offset,
                s.cluster,
            )
            for s in self.sent[self._reported : last + 1]
        ]
        self._reported = last + 1
        self._pending.append((at + self.return_delay, packets))


def first_at(samples: list[Sample], state: str) -> float | None:
    return next((s.at for s in samples if s.state == state), None)


# --- timelines --------------------------------------------------------------------------


@pytest.mark.parametrize("phase", [0.0, 0.013, 0.027, 0.041])
def test_sending_500_kbits_into_300_kbits_is_overuse_within_300_ms_and_cuts_below_300(
    phase: float,
) -> None:
    link = Link(300_000)
    sub = Subscriber(link, DelayBasedEstimate(800_000), video_rate=160_000, paced=True)
    before = sub.run(5.0 + phase)  # 200 kbit/s: the link carries it
    assert all(s.state != "overusing" for s in before)
    assert sub.estimate.last_overuse() is None

    sub.video_rate = 460_000  # 500 kbit/s from now: the queue starts growing
    grown = sub.t
    after = sub.run(grown + 3.0)
    overuse = first_at(after, "overusing")
    assert overuse is not None and overuse - grown <= 0.3
    assert sub.estimate.last_overuse() is not None
    cut = next(s for s in after if s.bitrate < 300_000)
    # the first overuse cuts at once, to 0.85 x what arrived over the last half second
    assert cut.at == overuse
    assert cut.acked is not None and cut.bitrate == pytest.approx(0.85 * cut.acked)
    # it stays below the link while the sender keeps overshooting it, and does not collapse
    assert all(0.6 * 300_000 <= s.bitrate < 300_000 for s in after if s.at >= cut.at)


def test_frames_sent_in_bursts_are_found_overusing_later() -> None:
    """Without pacing, a frame's packets leave together and the queue lets the audio behind
    them through in a burst: one group per frame, ~18 a second at 300 kbit/s, and the
    detector needs ~7 of them."""
    link = Link(300_000)
    sub = Subscriber(link, DelayBasedEstimate(800_000), video_rate=160_000)
    sub.run(5.0)
    sub.video_rate = 460_000
    after = sub.run(8.0)
    overuse = first_at(after, "overusing")
    assert overuse is not None and overuse - 5.0 <= 0.5
    assert sub.estimate.bitrate() < 300_000


def test_steady_sending_below_the_link_grows_the_estimate_to_its_cap_and_no_further() -> None:
    link = Link(300_000)
    sub = Subscriber(link, DelayBasedEstimate(100_000), video_rate=110_000)  # 150 kbit/s
    samples = sub.run(30.0)
    assert all(s.state != "overusing" for s in samples)
    assert sub.estimate.last_overuse() is None
    acked = [s.acked for s in samples if s.acked is not None]
    assert acked and all(abs(a - 150_000) < 0.1 * 150_000 for a in acked[5:])
    # libwebrtc's cap: never grown past 1.5 x what is acknowledged + 10 kbit/s
    cap = 1.5 * max(acked) + 10_000
    assert all(s.bitrate <= cap + 1 for s in samples)
    final, acknowledged = sub.estimate.bitrate(), sub.estimate.acknowledged_bitrate()
    assert final > 100_000
    assert acknowledged is not None and final >= 0.9 * (1.5 * acknowledged + 10_000)


@pytest.mark.parametrize("start", [150_000, 300_000])
def test_a_probe_at_twice_the_rate_of_a_300_kbits_link_measures_the_link(start: int) -> None:
    link = Link(300_000)
    sub = Subscriber(link, DelayBasedEstimate(start), video_rate=150_000)
    sub.run(3.0)
    cluster = sub.probe(2 * 300_000)
    sub.run(5.0)
    result = sub.estimate.probe_result(cluster)
    assert result is not None
    assert abs(result - 300_000) <= 0.15 * 300_000


def test_a_probe_on_a_fast_link_measures_what_it_sent() -> None:
    link = Link(5_000_000)
    sub = Subscriber(link, DelayBasedEstimate(300_000), video_rate=150_000)
    sub.run(3.0)
    cluster = sub.probe(1_200_000)
    sub.run(4.0)
    result = sub.estimate.probe_result(cluster)
    assert result is not None
    assert abs(result - 1_200_000) <= 0.1 * 1_200_000
    assert sub.estimate.bitrate() >= 0.9 * 1_200_000  # above the estimate: raised to it


def test_a_lifted_link_is_found_by_probes_within_10_s() -> None:
    link = Link(300_000)
    sub = Subscriber(link, DelayBasedEstimate(800_000), video_rate=150_000)
    sub.video_rate = 460_000  # a try at layer 1 (the old rule's) overflows it first
    sub.run(2.0)
    sub.video_rate = 150_000  # back to layer 0 and audio
    before = sub.run(12.0, probe_every=2.0)
    assert sub.estimate.bitrate() < 400_000  # probes on the thin link do not inflate it
    assert all(s.bitrate < 500_000 for s in before[-60:])

    link.set_capacity(sub.t, 5_000_000)
    lifted = sub.t
    after = sub.run(lifted + 10.0, probe_every=2.0)
    reached = next((s.at for s in after if s.bitrate >= 1_800_000), None)
    assert reached is not None and reached - lifted <= 10.0


@pytest.mark.parametrize("seed", range(4))
def test_jitter_alone_is_no_overuse(seed: int) -> None:
    link = Link(1_000_000, delay=0.030, jitter=0.005, seed=seed)
    sub = Subscriber(link, DelayBasedEstimate(400_000), video_rate=360_000)  # 40 % load
    samples = sub.run(60.0)
    assert all(s.state != "overusing" for s in samples)
    assert sub.estimate.last_overuse() is None
    assert sub.estimate.bitrate() >= 400_000


def test_a_receiver_clock_that_jumps_reads_as_no_congestion() -> None:
    """A jump ahead by 3 s more than the SFU's clock moved, or back (arrivals before the
    previous group's, three times in a row), starts the grouping again, and the
    acknowledged bitrate's window.  (A smaller jump ahead is a step in delay, as a queue
    would make: libwebrtc reads it so.)"""
    link = Link(1_000_000)
    sub = Subscriber(link, DelayBasedEstimate(400_000), video_rate=300_000)
    sub.run(5.0)
    for jump in (3_600.0, -7_200.0, 4.0, -0.5, -4.0, 1e6, -0.02):
        sub.clock_offset += jump
        samples = sub.run(sub.t + 3.0)
        assert all(s.state != "overusing" for s in samples), jump
        assert sub.estimate.bitrate() >= 300_000
        assert sub.estimate.acknowledged_bitrate() == pytest.approx(340_000, rel=0.1)
    assert sub.estimate.last_overuse() is None


def test_loss_is_the_share_lost_over_the_last_second_of_feedback() -> None:
    link = Link(300_000, queue_bytes=3_000)
    sub = Subscriber(link, DelayBasedEstimate(300_000), video_rate=560_000)  # 2 x the link
    sub.run(5.0)
    sent = [s for s in sub.sent if s.send_time > 3.5 and s.send_time < 4.5]
    lost = sum(1 for s in sent if s.arrival is None) / len(sent)
    assert lost > 0.2
    assert abs(sub.estimate.loss() - lost) < 0.15
    sub.video_rate = 100_000
    sub.run(8.0)
    assert sub.estimate.loss() == 0.0


# --- the parts, on hand-made feedback ---------------------------------------------------


def cluster(
    count: int,
    *,
    send_spacing: float,
    arrival_spacing: float,
    size: int = 1_000,
    lost: frozenset[int] = frozenset(),
    cluster_id: int = 7,
) -> list[PacketResult]:
    return [
        PacketResult(
            10.0 + i * send_spacing,
            size,
            None if i in lost else 500.0 + i * arrival_spacing,
            cluster_id,
        )
        for i in range(count)
    ]


def test_a_probe_through_a_saturated_link_gives_95_percent_of_the_receive_rate() -> None:
    estimate = DelayBasedEstimate(300_000)
    estimate.on_feedback(cluster(10, send_spacing=0.010, arrival_spacing=0.020), 11.0)
    # sent 9 x 8,000 bits in 90 ms (800 kbit/s), received in 180 ms (400 kbit/s)
    assert estimate.probe_result(7) == pytest.approx(0.95 * 400_000)
    assert estimate.bitrate() == pytest.approx(0.95 * 400_000)  # above 300 k: raised


def test_a_probe_the_link_carried_gives_the_lower_of_the_two_rates() -> None:
    estimate = DelayBasedEstimate(300_000)
    estimate.on_feedback(cluster(10, send_spacing=0.010, arrival_spacing=0.0105), 11.0)
    assert estimate.probe_result(7) == pytest.approx(9 * 8_000 / 0.0945)  # receive rate
    estimate = DelayBasedEstimate(300_000)
    estimate.on_feedback(cluster(10, send_spacing=0.010, arrival_spacing=0.0095), 11.0)
    assert estimate.probe_result(7) == pytest.approx(800_000)  # send rate


def test_a_probe_result_below_the_estimate_leaves_it() -> None:
    estimate = DelayBasedEstimate(2_000_000)
    estimate.on_feedback(cluster(10, send_spacing=0.010, arrival_spacing=0.020), 11.0)
    assert estimate.probe_result(7) == pytest.approx(380_000)
    assert estimate.bitrate() >= 2_000_000


@pytest.mark.parametrize(
    "packets",
    [
        cluster(4, send_spacing=0.010, arrival_spacing=0.010),  # too few reported
        cluster(6, send_spacing=0.010, arrival_spacing=0.010, lost=frozenset({1, 3})),  # 67 %
        cluster(10, send_spacing=0.010, arrival_spacing=0.004),  # received 2.5 x the send rate
        cluster(10, send_spacing=0.200, arrival_spacing=0.200),  # over more than a second
        cluster(10, send_spacing=0.0, arrival_spacing=0.010),  # no send interval
    ],
)
def test_a_probe_that_proves_nothing_gives_no_result(packets: list[PacketResult]) -> None:
    estimate = DelayBasedEstimate(300_000)
    estimate.on_feedback(packets, 12.5)
    assert estimate.probe_result(7) is None
    assert estimate.bitrate() <= 300_000 * 1.05


def test_a_probe_result_is_known_once_five_are_reported_and_80_percent_received() -> None:
    packets = cluster(10, send_spacing=0.010, arrival_spacing=0.010, lost=frozenset({2}))
    estimate = DelayBasedEstimate(300_000)
    estimate.on_feedback(packets[:4], 10.1)
    assert estimate.probe_result(7) is None
    estimate.on_feedback(packets[4:5], 10.1)  # 5 reported, 4 received
    assert estimate.probe_result(7) is not None
    estimate.on_feedback(packets[5:], 10.2)  # refined with the rest
    assert estimate.probe_result(7) == pytest.approx(800_000, rel=0.15)
    assert estimate.probe_result(8) is None


def test_the_acknowledged_bitrate_is_what_arrived_over_half_a_second() -> None:
    estimate = DelayBasedEstimate(300_000)
    # 1,000 bytes every 10 ms of arrival: 800 kbit/s
    packets = [PacketResult(i * 0.010, 1_000, 7.0 + i * 0.010) for i in range(100)]
    estimate.on_feedback(packets[:40], 0.5)
    assert estimate.acknowledged_bitrate() is None  # 390 ms of arrivals
    estimate.on_feedback(packets[40:], 1.1)
    assert estimate.acknowledged_bitrate() == pytest.approx(800_000, rel=0.03)


def test_loss_counts_the_reported_packets_of_the_last_second() -> None:
    estimate = DelayBasedEstimate(300_000)
    feedback = [PacketResult(i * 0.01, 1_000, None if i < 2 else i * 0.01) for i in range(10)]
    estimate.on_feedback(feedback, 0.5)
    assert estimate.loss() == pytest.approx(0.2)
    later = [PacketResult(0.1 + i * 0.01, 1_000, 0.1 + i * 0.01) for i in range(30)]
    estimate.on_feedback(later, 1.0)
    assert estimate.loss() == pytest.approx(2 / 40)
    estimate.on_feedback([PacketResult(1.9, 1_000, None)], 2.0)  # the others over 1 s old
    assert estimate.loss() == pytest.approx(1 / 31)
    estimate.on_feedback([PacketResult(2.5, 1_000, 2.5)], 2.6)
    assert estimate.loss() == pytest.approx(1 / 2)
    estimate.on_feedback([PacketResult(3.5, 1_000, 3.5)], 3.6)
    assert estimate.loss() == 0.0


def test_packets_reported_again_count_once() -> None:
    estimate = DelayBasedEstimate(300_000)
    packets = [PacketResult(i * 0.01, 1_000, None if i % 4 == 0 else i * 0.01) for i in range(60)]
    estimate.on_feedback(packets, 0.7)
    loss, acked = estimate.loss(), estimate.acknowledged_bitrate()
    estimate.on_feedback(packets, 0.75)  # the same feedback again
    estimate.on_feedback([p for p in packets for _ in range(2)], 0.8)  # every packet twice
    assert estimate.loss() == loss == pytest.approx(0.25)
    assert estimate.acknowledged_bitrate() == acked


def test_overuse_before_any_acknowledged_bitrate_halves_the_estimate() -> None:
    estimate = DelayBasedEstimate(1_000_000)
    # a packet every 10 ms (a group each) arriving 15 ms apart: a queue growing fast, for
    # less than the half second the acknowledged bitrate needs
    packets = [PacketResult(i * 0.010, 1_200, 3.0 + i * 0.015) for i in range(32)]
    states, bitrates = [], []
    for first in range(0, 32, 4):
        estimate.on_feedback(packets[first : first + 4], packets[first + 3].send_time + 0.05)
        states.append(estimate.state())
        bitrates.append(estimate.bitrate())
    assert estimate.acknowledged_bitrate() is None
    overused = states.index("overusing")
    assert states[overused:] == ["overusing"] * (len(states) - overused)
    assert estimate.last_overuse() == pytest.approx(0.36)
    # halved at the first overuse, and not again within the round trip (200 ms)
    assert bitrates[overused] == pytest.approx(bitrates[overused - 1] / 2)
    assert bitrates[overused:] == [bitrates[overused]] * (len(bitrates) - overused)


def test_the_rule_refuses_numbers_that_make_no_sense() -> None:
    DelayRule()
    for fields in (
        {"min_bitrate": 0},
        {"min_bitrate": 2e7, "max_bitrate": 1e7},
        {"trend_window": 1},
        {"trend_smoothing": 1.5},
        {"backoff": 0},
        {"threshold": 3.0},  # below min_threshold
        {"acked_window": math.nan},
        {"probe_min_packets": 1},
        {"group_length": -0.005},
    ):
        with pytest.raises(ValueError):
            DelayRule(**fields)
    for start in (math.nan, math.inf, 0, -5):
        with pytest.raises(ValueError):
            DelayBasedEstimate(start)
    assert DelayBasedEstimate(1e12).bitrate() == DelayRule().max_bitrate
    assert DelayBasedEstimate(1).bitrate() == DelayRule().min_bitrate


# --- hostile feedback -------------------------------------------------------------------

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1e300, -1e300, 2**1100]),
)
packet_results = st.builds(
    PacketResult,
    send_time=numbers,
    size=st.one_of(numbers, st.sampled_from([0, -1200, 1200, 10**9])),
    arrival_time=st.one_of(st.none(), numbers),
    probe_cluster=st.one_of(st.none(), st.integers(-5, 5), st.just(True)),
)


@given(
    feedbacks=st.lists(
        st.tuples(
            st.one_of(
                st.lists(packet_results, max_size=30),
                st.sampled_from([[], (), "feedback", None, [None, 3, "x"]]),
            ),
            numbers,
        ),
        max_size=12,
    ),
    start=st.floats(min_value=1, max_value=1e9),
)
@settings(max_examples=300, deadline=None)
def test_hostile_feedback_never_raises_and_keeps_the_estimate_in_bounds(feedbacks, start) -> None:
    rule = DelayRule()
    estimate = DelayBasedEstimate(start, rule)
    for packets, now in feedbacks:
        estimate.on_feedback(packets, now)
        check_bounds(estimate, rule)
    estimate.on_rtt(math.nan)
    estimate.on_rtt(-1)
    assert estimate.probe_result([1]) is None  # type: ignore[arg-type]  # not even hashable


@given(
    jumps=st.lists(
        st.tuples(
            st.integers(0, 200),  # the packet after which the receiver's clock jumps
            st.sampled_from([math.nan, math.inf, -math.inf, 1e6, -1e6, 4.0, -4.0, 1e12]),
        ),
        max_size=6,
    ),
    sizes=st.lists(st.sampled_from([0, -1, 1_200, 10**7, 1.5]), min_size=1, max_size=5),
    duplicates=st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_a_stream_with_absurd_arrivals_and_sizes_keeps_the_estimate_in_bounds(
    jumps, sizes, duplicates
) -> None:
    rule = DelayRule()
    estimate = DelayBasedEstimate(500_000, rule)
    offset = 0.0
    jump_at = dict(jumps)
    packets: list[PacketResult] = []
    for i in range(240):
        if i in jump_at:
            offset = jump_at[i] if not math.isfinite(offset + jump_at[i]) else offset + jump_at[i]
        arrival = i * 0.01 + 0.03 + offset
        packets.append(PacketResult(i * 0.01, sizes[i % len(sizes)], arrival, i // 40))
        if duplicates:
            packets.append(packets[-1])
        if i % 5 == 4:
            estimate.on_feedback(packets, i * 0.01 + 0.05)
            check_bounds(estimate, rule)
            packets = []
    estimate.on_feedback([], 5.0)
    check_bounds(estimate, rule)


def check_bounds(estimate: DelayBasedEstimate, rule: DelayRule) -> None:
    assert rule.min_bitrate <= estimate.bitrate() <= rule.max_bitrate
    acked = estimate.acknowledged_bitrate()
    assert acked is None or 0 <= acked <= rule.max_bitrate
    assert 0.0 <= estimate.loss() <= 1.0
    assert estimate.state() in {"normal", "overusing", "underusing"}
    last = estimate.last_overuse()
    assert last is None or math.isfinite(last)
    for cluster_id in range(-5, 6):
        result = estimate.probe_result(cluster_id)
        assert result is None or rule.min_bitrate <= result <= rule.max_bitrate
