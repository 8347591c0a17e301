"""The simulcast decisions (``sfu.bandwidth``): the downlink estimate, the layer chooser,
the split of a subscriber's estimate and the publisher's REMB.

Timelines run on a fake clock (``now`` values, no sleeping): a subscriber behind a
bottleneck of a given capacity with a queue (what overflows it is lost), receiver reports
every second, and optionally a REMB made the way Chromium's receiver makes it.  The rule
and its numbers: docs/media-quality.md.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.bandwidth import (
    DEFAULT_LAYER_BITRATES,
    DownlinkEstimate,
    EstimateRule,
    LayerChooser,
    LayerRule,
    VideoDemand,
    layer_cap,
    publisher_bitrate,
    split_bitrate,
)
from sfu.settings import MediaSettings

VIDEO = (150_000, 500_000, 1_200_000)  # the layers' measured bitrates in these timelines
AUDIO = 40_000
UNLIMITED = 100_000_000


# --- a simulated subscriber -----------------------------------------------------------


class Bottleneck:
    """A link of ``capacity`` bits/s with a queue of ``queue`` seconds at that rate; what
    overflows the queue is lost (a ``tc tbf`` shaper, as a fluid)."""

    def __init__(self, capacity: float, queue: float = 0.2) -> None:
        self.capacity = capacity
        self.queue = queue
        self.queued = 0.0

    def carry(self, bits: float, seconds: float) -> tuple[float, float]:
        """Offer ``bits`` over ``seconds``: (bits delivered, bits lost)."""
        self.queued += bits
        out = min(self.queued, self.capacity * seconds)
        self.queued -= out
        lost = max(self.queued - self.capacity * self.queue, 0.0)
        self.queued -= lost
        return out, lost

    @property
    def delay(self) -> float:
        return self.queued / self.capacity


class ChromiumRemb:
    """A receiver's REMB, simplified from libwebrtc's AimdRateControl: its first value is
    what it receives; on overuse (a queue building up) it falls to 0.85 x what it
    receives; otherwise it grows 8 %/s, never past 1.5 x what it receives + 10 kbit/s."""

    def __init__(self) -> None:
        self.value: float | None = None

    def update(self, received: float, overuse: bool, seconds: float) -> float:
        limit = 1.5 * received + 10_000
        if self.value is None:
            self.value = received
        elif overuse:
            self.value = min(self.value, 0.85 * received)
        elif self.value < limit:
            self.value = min(self.value * 1.08**seconds, limit)
        return self.value


@dataclass
class Track:
    speaker: bool = False
    tile_height: int | None = None
    chooser: LayerChooser = field(default_factory=LayerChooser)


@dataclass
class Sample:
    """The decisions made at ``at``."""

    at: float
    layers: dict[str, int | None]
    available: int


class Subscriber:
    """One subscriber's transport on a fake clock: every ``tick`` the SFU's decisions
    (estimate → split → one chooser per track), what it sends crosses the bottleneck, and
    every second the subscriber's receiver report (and REMB, if ``remb``) comes back."""

    def __init__(
        self,
        capacity: float,
        *,
        tracks: dict[str, Track] | None = None,
        remb: bool = False,
        tick: float = 0.5,
        audio_tracks: int = 1,
    ) -> None:
        self.link = Bottleneck(capacity)
        self.tracks = tracks if tracks is not None else {"cam": Track(speaker=True)}
        self.estimate = DownlinkEstimate()
        self.remb = ChromiumRemb() if remb else None
        self.tick = tick
        self.audio = [AUDIO] * audio_tracks
        self.now = 0.0
        self.samples: list[Sample] = []
        self._sent = self._lost = self._received = 0.0
        self._reported = 0.0
        self._overuse = False

    def run(self, until: float, capacity: float | None = None) -> list[Sample]:
        if capacity is not None:
            self.link.capacity = capacity
        start = len(self.samples)
        while self.now < until - 1e-9:
            self.step()
        return self.samples[start:]

    def step(self) -> None:
        now, estimate = self.now, self.estimate
        available = estimate.available(now)
        demands = {
            name: t.chooser.demand(VIDEO, tile_height=t.tile_height, speaker=t.speaker)
            for name, t in self.tracks.items()
        }
        shares = split_bitrate(available, self.audio, demands)
        layers = {
            name: t.chooser.choose(
                VIDEO, shares[name], now, tile_height=t.tile_height, loss=estimate.loss(now)
            )
            for name, t in self.tracks.items()
        }
        self.samples.append(Sample(now, layers, available))
        rate = sum(self.audio) + sum(VIDEO[layer] for layer in layers.values() if layer is not None)
        delivered, lost = self.link.carry(rate * self.tick, self.tick)
        self._sent += rate * self.tick
        self._lost += lost
        self._received += delivered
        self._overuse = self._overuse or self.link.delay > 0.025 or lost > 0
        self.now = now = round(now + self.tick, 9)
        estimate.on_sent(rate * self.tick / 8, now)
        if now - self._reported >= 1.0 - 1e-9:
            fraction = min(int(256 * self._lost / self._sent), 255) if self._sent else 0
            estimate.on_loss("all", fraction, now, weight=self._sent)
            if self.remb is not None:
                received = self._received / (now - self._reported)
                estimate.on_remb(self.remb.update(received, self._overuse, 1.0), now)
            self._sent = self._lost = self._received = 0.0
            self._overuse = False
            self._reported = now


def layer_of(samples: list[Sample], track: str = "cam") -> list[int | None]:
    return [s.layers[track] for s in samples]


def up_switches(samples: list[Sample], track: str = "cam") -> list[float]:
    """When the track moved to a higher layer (or resumed)."""
    times = []
    for before, after in itertools.pairwise(samples):
        a, b = before.layers[track], after.layers[track]
        if b is not None and (a is None or b > a):
            times.append(after.at)
    return times


def settled_at(samples: list[Sample], layer: int, track: str = "cam") -> float | None:
    """The first time from which the track stays at ``layer`` to the end."""
    at = None
    for s in samples:
        if s.layers[track] == layer:
            at = s.at if at is None else at
        else:
            at = None
    return at


# --- timelines --------------------------------------------------------------------------


def test_a_clean_link_starts_at_layer_1_and_reaches_layer_2_within_10_s() -> None:
    sub = Subscriber(UNLIMITED)
    samples = sub.run(20)
    assert samples[0].layers["cam"] == 1  # the start estimate carries layer 1 at once
    assert (settled_at(samples, 2) or math.inf) <= 10
    assert len(up_switches(samples)) == 1


@pytest.mark.parametrize("remb", [False, True], ids=["reports only", "with REMB"])
def test_a_300_kbits_link_gets_layer_0_and_keeps_it(remb: bool) -> None:
    """Layer 1 + audio (540 kbit/s) does not fit; layer 0 + audio (190 kbit/s) does.  The
    chooser tries layer 1 again now and then (it cannot know the link recovered
    otherwise), never sooner than the back-off allows."""
    sub = Subscriber(300_000, remb=remb)
    samples = sub.run(60)
    later = [s for s in samples if s.at > 5]
    layers = layer_of(later)
    assert 2 not in layers and None not in layers
    assert layers.count(0) / len(layers) >= 0.85
    assert layers[-1] == 0
    tries = up_switches(later)
    assert len(tries) <= 8  # 60 s / (the 8-s back-off + the time a try takes to fail)
    gaps = [second - first for first, second in itertools.pairwise(tries)]
    assert all(gap >= 6 for gap in gaps)  # never within the first back-off of a failure
    assert all(gap >= 8 for gap in gaps[1:])  # nor, after two in a row, within the cap


@pytest.mark.parametrize("queue", [0.05, 0.5], ids=["50 ms queue", "500 ms queue"])
@pytest.mark.parametrize("tick", [0.5, 1.0], ids=["decisions every 0.5 s", "every 1 s"])
@pytest.mark.parametrize("remb", [False, True], ids=["reports only", "with REMB"])
def test_a_recovered_link_is_back_at_layer_2_within_15_s(
    remb: bool, tick: float, queue: float
) -> None:
    """Whatever the moment the impairment is lifted (sweeping half-second offsets over a
    whole back-off cycle, 60-72 s into an impaired call)."""
    worst = 0.0
    for k in range(25):
        lifted = 60 + k / 2
        sub = Subscriber(300_000, remb=remb, tick=tick)
        sub.link.queue = queue
        sub.run(lifted)
        samples = sub.run(lifted + 30, capacity=UNLIMITED)
        at = settled_at(samples, 2)
        assert at is not None, f"never settled at layer 2 after a lift at {lifted} s"
        worst = max(worst, at - lifted)
    assert worst <= 15


def test_a_capacity_drop_drops_the_layer_at_the_first_report_that_shows_it() -> None:
    sub = Subscriber(UNLIMITED)
    assert layer_of(sub.run(20))[-1] == 2
    samples = sub.run(26, capacity=400_000)
    # the first receiver report after the drop (at 21 s) shows the loss: the decision made
    # then is below layer 2, and the one after the next report at layer 0
    by_time = {s.at: s.layers["cam"] for s in samples}
    assert by_time[20.5] == 2
    assert by_time[21.0] is not None and by_time[21.0] < 2
    assert by_time[22.0] == 0 and layer_of(samples)[-1] == 0


def test_a_link_below_the_lowest_layer_pauses_video_and_resumes_when_lifted() -> None:
    sub = Subscriber(150_000)  # layer 0 + audio is 190 kbit/s
    samples = sub.run(60)
    later = [s for s in samples if s.at > 5]
    assert layer_of(later).count(None) / len(later) >= 0.7  # a try lasts ~2 s every ~10 s
    assert set(layer_of(later)) == {None, 0}
    assert sub.tracks["cam"].chooser.paused == (later[-1].layers["cam"] is None)
    assert sub.tracks["cam"].chooser.retry_wait(0) == 8
    tries = up_switches(later)
    for first, second in itertools.pairwise(tries):
        assert second - first >= 8  # resuming is retried with the same back-off
    samples = sub.run(90, capacity=UNLIMITED)
    at = settled_at(samples, 2)
    assert at is not None and at - 60 <= 15


def test_a_small_tile_caps_the_layer_on_a_clean_link() -> None:
    tracks = {
        "speaker": Track(speaker=True, tile_height=720),
        "small": Track(tile_height=170),
        "medium": Track(tile_height=300),
    }
    sub = Subscriber(UNLIMITED, tracks=tracks, audio_tracks=3)
    samples = sub.run(40)
    assert samples[-1].layers == {"speaker": 2, "small": 0, "medium": 1}


def test_a_subscribers_tracks_go_up_one_at_a_time_speaker_first() -> None:
    """Four tracks on a link that carries them all at layer 0 only (760 kbit/s with audio):
    the speaker tries layer 1 now and then, the others stay; lifted, no two tracks switch
    up at the same decision, the speaker first."""
    tracks = {name: Track(speaker=name == "b", tile_height=360) for name in "abcd"}
    tracks["b"].tile_height = 720
    sub = Subscriber(800_000, tracks=tracks, audio_tracks=4)
    samples = sub.run(15)
    assert all(s.layers["a"] == s.layers["c"] == s.layers["d"] == 0 for s in samples)
    assert {s.layers["b"] for s in samples} == {0, 1}
    samples = sub.run(60, capacity=UNLIMITED)
    times = [t for name in tracks for t in up_switches(samples, name)]
    assert len(times) == len(set(times)), "two tracks went up at the same decision"
    assert up_switches(samples, "b") == sorted(times)[:2]  # to layer 1, then to layer 2
    assert samples[-1].layers == {"a": 1, "b": 2, "c": 1, "d": 1}


def test_when_the_speaker_changes_the_old_tile_drops_at_once_the_new_one_follows() -> None:
    """The page shows the active speaker large: tiles swap heights with the speaker."""
    tracks = {"a": Track(speaker=True, tile_height=720), "b": Track(tile_height=240)}
    sub = Subscriber(2_000_000, tracks=tracks, audio_tracks=2)
    assert sub.run(30)[-1].layers == {"a": 2, "b": 1}
    tracks["a"].speaker, tracks["a"].tile_height = False, 240
    tracks["b"].speaker, tracks["b"].tile_height = True, 720
    samples = sub.run(30.5)
    assert samples[-1].layers == {"a": 1, "b": 1}  # the cap moves a down at once
    samples = sub.run(45)
    assert up_switches(samples, "b") and up_switches(samples, "b")[0] - 30 <= 4
    assert samples[-1].layers == {"a": 1, "b": 2}


# --- the downlink estimate --------------------------------------------------------------


def feed(estimate: DownlinkEstimate, *, at: float, fraction: int, sent_rate: float) -> None:
    """One second of sending at ``sent_rate`` ending at ``at``, and its receiver report."""
    estimate.on_sent(0, at - 1)
    estimate.on_sent(sent_rate / 8, at)
    estimate.on_loss("cam", fraction, at)


def test_the_estimate_starts_at_the_start_bitrate_and_grows_30_percent_a_second() -> None:
    estimate = DownlinkEstimate()
    assert estimate.available(0) == 800_000
    estimate.on_sent(0, 0)
    feed(estimate, at=1, fraction=0, sent_rate=540_000)
    assert estimate.available(1) == 800_000  # no growth before the first report
    assert estimate.available(3) == pytest.approx(800_000 * 1.3**2, rel=1e-6)


def test_a_fresh_delay_based_estimate_caps_the_loss_based_one() -> None:
    estimate = DownlinkEstimate()
    estimate.on_sent(0, 0)
    feed(estimate, at=1, fraction=0, sent_rate=540_000)
    estimate.on_delay_based(300_000, 1)
    assert estimate.available(1) == 300_000
    # the loss-based estimate grows meanwhile; the delay-based one still caps it
    feed(estimate, at=3, fraction=0, sent_rate=250_000)
    estimate.on_delay_based(1_500_000, 3)
    assert estimate.available(3) == pytest.approx(800_000 * 1.3**2, rel=1e-6)
    estimate.on_delay_based(400_000, 3.5)
    assert estimate.available(3.5) == 400_000
    # hostile or absurd values change nothing; floors and ceilings hold
    for value in (math.nan, math.inf, -1, 0, True, "1e6", None):
        estimate.on_delay_based(value, 3.6)  # type: ignore[arg-type]
    assert estimate.available(3.6) == 400_000
    estimate.on_delay_based(1, 3.7)
    assert estimate.available(3.7) == estimate.rule.min_bitrate
    # no feedback for longer than the feedback timeout: the cap no longer holds
    assert estimate.available(3.7 + estimate.rule.feedback_timeout + 0.1) > 400_000


def test_high_loss_cuts_to_the_sending_rate_less_half_the_loss() -> None:
    estimate = DownlinkEstimate()
    estimate.on_sent(0, 0)
    feed(estimate, at=1, fraction=77, sent_rate=540_000)  # 77/256 = 30 %
    assert estimate.available(1) == pytest.approx(540_000 * (1 - 77 / 256 / 2), rel=1e-6)
    assert estimate.loss(1) == pytest.approx(77 / 256)
    # a second stream's report of the same interval does not cut again
    estimate.on_loss("mic", 77, 1)
    assert estimate.available(1) == pytest.approx(540_000 * (1 - 77 / 256 / 2), rel=1e-6)
    # sending more than the estimate: the cut is from the estimate
    feed(estimate, at=2, fraction=77, sent_rate=5_000_000)
    assert estimate.available(2) == pytest.approx(540_000 * (1 - 77 / 256 / 2), rel=1e-6)


def test_moderate_loss_holds_and_growth_waits_for_a_clean_report_after_a_cut() -> None:
    estimate = DownlinkEstimate()
    estimate.on_sent(0, 0)
    feed(estimate, at=1, fraction=13, sent_rate=540_000)  # 5 %: hold
    assert estimate.available(5) == 800_000
    feed(estimate, at=6, fraction=64, sent_rate=540_000)  # 25 %: cut
    cut = estimate.available(6)
    assert cut == pytest.approx(540_000 * (1 - 0.25 / 2), rel=1e-6)
    assert estimate.available(6.9) == cut  # the lossy report still stands
    feed(estimate, at=7, fraction=0, sent_rate=190_000)
    assert estimate.available(7) == cut  # growth starts from this report on
    assert estimate.available(8) == pytest.approx(cut * 1.3, rel=1e-6)


def test_without_fresh_reports_the_estimate_does_not_grow() -> None:
    estimate = DownlinkEstimate()
    estimate.on_sent(0, 0)
    feed(estimate, at=1, fraction=0, sent_rate=540_000)
    grown = estimate.available(4)  # the report is 3 s old: still fresh
    assert grown == pytest.approx(800_000 * 1.3**3, rel=1e-6)
    assert estimate.available(30) == grown  # stale: holds
    assert estimate.loss(30) == 0.0


def test_the_loss_is_weighted_by_each_streams_traffic() -> None:
    estimate = DownlinkEstimate()
    estimate.on_sent(0, 0)
    estimate.on_sent(1_240_000 / 8, 1)
    estimate.on_loss("video", 0, 1, weight=150_000)
    estimate.on_loss("audio", 128, 1, weight=5_000)  # half of a few audio packets
    assert estimate.loss(1) == pytest.approx(0.5 * 5_000 / 155_000)
    assert estimate.available(1) == 800_000  # 1.6 %: no cut
    estimate.forget("video")
    assert estimate.loss(1) == pytest.approx(0.5)


def test_a_remb_drop_cuts_but_a_remb_that_rises_or_holds_caps_nothing() -> None:
    estimate = DownlinkEstimate()
    estimate.on_sent(0, 0)
    feed(estimate, at=1, fraction=0, sent_rate=190_000)
    estimate.on_remb(295_000, 1)  # Chromium at 1.5 x what it receives + 10 kbit/s
    feed(estimate, at=2, fraction=0, sent_rate=190_000)
    estimate.on_remb(295_000, 2)
    assert estimate.available(2) == pytest.approx(800_000 * 1.3, rel=1e-6)  # above REMB
    estimate.on_remb(290_000, 2.5)  # less than 3 % lower: not a drop
    assert estimate.available(2.5) > 295_000
    estimate.on_remb(250_000, 2.7)  # a drop, but above the 190 kbit/s sent: not congestion
    assert estimate.available(2.7) > 295_000
    estimate.on_remb(160_000, 3)  # a drop below what is sent: the receiver saw congestion
    assert estimate.available(3) == 160_000
    feed(estimate, at=4, fraction=0, sent_rate=190_000)
    assert estimate.available(5) == pytest.approx(160_000 * 1.3, rel=1e-6)


def test_an_expired_remb_is_not_compared_with() -> None:
    estimate = DownlinkEstimate(EstimateRule(remb_expiry=5.0))
    estimate.on_sent(0, 0)
    feed(estimate, at=1, fraction=0, sent_rate=540_000)
    estimate.on_remb(1_000_000, 1)
    estimate.on_remb(450_000, 4)  # 3 s later, lower, and below the 540 kbit/s sent: a drop
    assert estimate.available(4) == 450_000
    estimate.on_remb(1_000_000, 5)
    feed(estimate, at=5, fraction=0, sent_rate=540_000)
    level = estimate.available(11)
    # 6 s after the last one the REMB has expired: 600 kbit/s is not a drop from 1 Mbit/s,
    # and it is above half the 540 kbit/s sent
    estimate.on_remb(600_000, 11)
    assert estimate.available(11) == level
    # with none fresh, a REMB below half of what is sent is congestion (a receiver's
    # first REMBs run below what it receives while its estimator starts: not that)
    estimate.on_sent(0, 17)
    estimate.on_sent(540_000 / 8, 18)
    estimate.on_remb(400_000, 18)
    assert estimate.available(18) == level
    estimate.on_remb(600_000, 30)
    estimate.on_sent(0, 35)
    estimate.on_sent(540_000 / 8, 36)
    estimate.on_remb(250_000, 36)
    assert estimate.available(36) == 250_000


def test_a_remb_of_zero_means_the_floor() -> None:
    estimate = DownlinkEstimate()
    estimate.on_sent(0, 0)
    estimate.on_sent(540_000 / 8, 1)
    estimate.on_remb(0, 1)
    assert estimate.available(1) == EstimateRule().min_bitrate == 100_000


@pytest.mark.parametrize(
    "bad",
    [math.nan, math.inf, -math.inf, -1, -1e300, 1e300, 10**400, True, "1000", None, [], object()],
)
def test_hostile_numbers_are_ignored_or_clamped(bad: object) -> None:
    estimate = DownlinkEstimate()
    estimate.on_sent(0, 0)
    estimate.on_sent(bad, 1)  # type: ignore[arg-type]
    estimate.on_loss("cam", bad, 1)  # type: ignore[arg-type]
    estimate.on_loss("cam", 0, 1, weight=bad)  # type: ignore[arg-type]
    estimate.on_remb(bad, 1)  # type: ignore[arg-type]
    estimate.on_loss("cam", 0, bad)  # type: ignore[arg-type]
    value = estimate.available(bad)  # type: ignore[arg-type]
    assert 100_000 <= value <= 20_000_000
    assert 0.0 <= estimate.loss(bad) <= 1.0  # type: ignore[arg-type]
    assert 0.0 <= estimate.sending_rate <= 20_000_000


def test_absurd_values_are_clamped_and_time_never_runs_back() -> None:
    estimate = DownlinkEstimate()
    estimate.on_sent(0, 0)
    estimate.on_sent(1e15, 1)
    assert estimate.sending_rate == 20_000_000
    estimate.on_loss("cam", 10_000, 1)  # fraction lost is 0-255
    assert estimate.loss(1) == pytest.approx(255 / 256)
    estimate.on_remb(1e30, 2)
    assert estimate.available(2) <= 20_000_000
    estimate.on_loss("cam", 0, 3)
    before = estimate.available(10)
    assert estimate.available(5) == before  # earlier than already seen: taken as 10
    forever = DownlinkEstimate(EstimateRule(feedback_timeout=1e300))
    forever.on_loss("cam", 0, 0)
    assert forever.available(1e300) == 20_000_000  # a huge jump does not overflow


# --- the layer chooser ------------------------------------------------------------------


def test_a_loss_spike_takes_the_layer_down_at_the_next_decision() -> None:
    estimate, chooser = DownlinkEstimate(), LayerChooser()
    estimate.on_sent(0, 0)
    for at in range(1, 11):  # a clean link: layer 2
        feed(estimate, at=at, fraction=0, sent_rate=1_240_000)
        demand = chooser.demand(VIDEO)
        share = split_bitrate(estimate.available(at), [AUDIO], {"cam": demand})["cam"]
        layer = chooser.choose(VIDEO, share, at, loss=estimate.loss(at))
    assert layer == 2
    feed(estimate, at=11, fraction=64, sent_rate=1_240_000)  # one report of 25 % loss
    share = split_bitrate(estimate.available(11), [AUDIO], {"cam": chooser.demand(VIDEO)})
    assert chooser.choose(VIDEO, share["cam"], 11, loss=estimate.loss(11)) == 1


def test_the_first_decision_takes_the_highest_layer_the_share_carries_with_margin() -> None:
    assert LayerChooser().choose(VIDEO, 1_440_000, 0) == 2
    assert LayerChooser().choose(VIDEO, 1_439_999, 0) == 1
    assert LayerChooser().choose(VIDEO, 170_000, 0) == 0  # below the margin: still shown
    chooser = LayerChooser()
    assert chooser.choose(VIDEO, 0, 0) == 0  # no feedback yet: nothing says it won't carry
    assert chooser.choose(VIDEO, 0, 0.5) is None and chooser.paused


def test_down_at_once_to_the_highest_layer_that_fits() -> None:
    chooser = LayerChooser()
    assert chooser.choose(VIDEO, 2_000_000, 0) == 2
    assert chooser.choose(VIDEO, 1_200_000, 1) == 2  # x 1.0 still fits
    assert chooser.choose(VIDEO, 1_199_999, 2) == 1
    assert chooser.choose(VIDEO, 160_000, 3) == 0
    assert chooser.choose(VIDEO, 149_999, 4) is None and chooser.paused


def test_up_one_layer_at_a_time_after_the_share_held_for_3_s() -> None:
    chooser = LayerChooser()
    assert chooser.choose(VIDEO, 200_000, 0) == 0
    for at in (1, 2, 3):
        assert chooser.choose(VIDEO, 5_000_000, at) == 0
    assert chooser.choose(VIDEO, 5_000_000, 4) == 1  # held since 1: 3 s
    assert chooser.choose(VIDEO, 5_000_000, 5) == 1  # not straight on to 2
    assert chooser.choose(VIDEO, 5_000_000, 7) == 1
    assert chooser.choose(VIDEO, 5_000_000, 8) == 2


def test_a_dip_or_loss_restarts_the_wait() -> None:
    chooser = LayerChooser()
    assert chooser.choose(VIDEO, 200_000, 0) == 0
    assert chooser.choose(VIDEO, 600_000, 1) == 0
    assert chooser.choose(VIDEO, 599_999, 2) == 0  # below 1.2 x layer 1: start over
    assert chooser.choose(VIDEO, 600_000, 3) == 0
    assert chooser.choose(VIDEO, 600_000, 5) == 0
    assert chooser.choose(VIDEO, 600_000, 5.5, loss=0.05) == 0  # 5 % loss: start over
    assert chooser.choose(VIDEO, 600_000, 6.5) == 0
    assert chooser.choose(VIDEO, 600_000, 9.5) == 1


def test_a_failed_up_switch_backs_off_6_then_8_s_and_a_kept_one_clears_it() -> None:
    chooser = LayerChooser()
    assert chooser.choose(VIDEO, 200_000, 0) == 0
    assert chooser.choose(VIDEO, 700_000, 1) == 0
    assert chooser.choose(VIDEO, 700_000, 4) == 1
    assert chooser.choose(VIDEO, 300_000, 5) == 0  # undone within 4 s: failed
    assert chooser.retry_wait(1) == 6
    for at in range(6, 11):
        assert chooser.choose(VIDEO, 700_000, at) == 0  # 3 s held, but 6 s not yet over
    assert chooser.choose(VIDEO, 700_000, 11) == 1
    assert chooser.choose(VIDEO, 300_000, 12) == 0
    assert chooser.retry_wait(1) == 8  # 12 s doubled, capped at 8
    for at in range(13, 20):
        assert chooser.choose(VIDEO, 700_000, at) == 0
    assert chooser.choose(VIDEO, 700_000, 20) == 1
    assert chooser.choose(VIDEO, 700_000, 24) == 1  # kept for 4 s: a success
    assert chooser.retry_wait(1) == 0
    assert chooser.choose(VIDEO, 300_000, 30) == 0  # a later drop is no failure
    assert chooser.retry_wait(1) == 0


def test_resuming_from_a_pause_follows_the_same_rule() -> None:
    chooser = LayerChooser()
    assert chooser.choose(VIDEO, 100_000, 0) == 0  # a new track is shown
    assert chooser.choose(VIDEO, 100_000, 0.5) is None
    assert chooser.retry_wait(0) == 0  # not a failed resume
    assert chooser.choose(VIDEO, 180_000, 1) is None
    assert chooser.choose(VIDEO, 180_000, 3.9) is None
    assert chooser.choose(VIDEO, 180_000, 4) == 0 and not chooser.paused
    assert chooser.choose(VIDEO, 100_000, 5) is None  # paused again within 4 s
    assert chooser.retry_wait(0) == 6
    for at in range(6, 11):
        assert chooser.choose(VIDEO, 180_000, at) is None
    assert chooser.choose(VIDEO, 180_000, 11) == 0


def test_the_tile_caps_the_layer_by_the_default_heights() -> None:
    assert [layer_cap(h) for h in (None, 0, 100, 180, 181, 360, 361, 720, 2160)] == [
        2, 0, 0, 0, 1, 1, 2, 2, 2,
    ]  # fmt: skip
    chooser = LayerChooser()
    assert chooser.choose(VIDEO, 5_000_000, 0, tile_height=180) == 0
    assert chooser.choose(VIDEO, 5_000_000, 10, tile_height=180) == 0


def test_the_tile_caps_the_layer_by_the_layers_heights_when_known() -> None:
    heights = (120, 240, 480)  # a 480p camera's layers
    assert layer_cap(200, heights) == 1
    assert layer_cap(300, heights) == 2
    assert layer_cap(300, (120, None, 480)) == 1  # one unknown: the defaults
    assert layer_cap(300, (480, 240, 120)) == 1  # not increasing: the defaults
    assert layer_cap(300, heights, count=2) == 1  # only two layers
    chooser = LayerChooser()
    assert chooser.choose(VIDEO, 5_000_000, 0, tile_height=300, heights=heights) == 2


def test_a_tile_that_shrinks_moves_down_at_once_and_is_no_failure() -> None:
    chooser = LayerChooser()
    assert chooser.choose(VIDEO, 5_000_000, 0) == 2
    assert chooser.choose(VIDEO, 5_000_000, 1, tile_height=300) == 1
    assert chooser.retry_wait(2) == 0
    # growing again: up after the wait, which counted while the cap held it back
    for at in (2, 3, 4, 5):
        assert chooser.choose(VIDEO, 5_000_000, at, tile_height=300) == 1
    assert chooser.choose(VIDEO, 5_000_000, 5.5, tile_height=None) == 2


def test_a_try_ended_by_the_tile_is_no_failure() -> None:
    chooser = LayerChooser()
    assert chooser.choose(VIDEO, 700_000, 0) == 1
    for at in (1, 2, 3):
        assert chooser.choose(VIDEO, 5_000_000, at) == 1
    assert chooser.choose(VIDEO, 5_000_000, 4) == 2  # a try at layer 2
    assert chooser.choose(VIDEO, 5_000_000, 5, tile_height=300) == 1  # the tile shrank
    assert chooser.choose(VIDEO, 400_000, 6, tile_height=300) == 0  # then bandwidth
    assert chooser.retry_wait(2) == 0 and chooser.retry_wait(1) == 0


def test_layers_that_stop_arriving() -> None:
    chooser = LayerChooser()
    assert chooser.choose(VIDEO, 5_000_000, 0) == 2
    assert chooser.choose((150_000, 500_000, None), 5_000_000, 1) == 1  # at once
    assert chooser.choose((150_000, 0, None), 5_000_000, 2) == 0
    assert chooser.choose((None, None, None), 5_000_000, 3) is None
    assert not chooser.paused  # nothing to send is not a bandwidth pause
    assert chooser.choose(VIDEO, 5_000_000, 4) == 2  # back: a fresh first decision
    only_top = (None, None, 1_200_000)
    chooser = LayerChooser()
    assert chooser.choose(only_top, 5_000_000, 0, tile_height=180) == 2  # better than none


@given(
    bitrates=st.lists(
        st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers()),
        max_size=6,
    ),
    share=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers()),
    now=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers()),
    tile=st.one_of(st.none(), st.floats(allow_nan=True), st.integers()),
    heights=st.one_of(st.none(), st.lists(st.one_of(st.none(), st.floats()), max_size=5)),
    loss=st.floats(allow_nan=True, allow_infinity=True),
)
@settings(max_examples=300, deadline=None)
def test_the_chooser_takes_any_input(bitrates, share, now, tile, heights, loss) -> None:
    chooser = LayerChooser()
    for step in range(3):
        at = now + step if isinstance(now, int) else now
        layer = chooser.choose(bitrates, share, at, tile_height=tile, heights=heights, loss=loss)
        assert layer is None or 0 <= layer < min(len(bitrates), 3)
        demand = chooser.demand(bitrates, tile_height=tile, heights=heights)
        assert all(math.isfinite(s) and s > 0 for s in demand.bitrates)


# --- the split ---------------------------------------------------------------------------


def demand(*layers: float, kept: int | None = None, speaker: bool = False, tile: float = 0):
    return VideoDemand(tuple(layers), kept, speaker, tile)


def test_audio_is_reserved_before_video() -> None:
    shares = split_bitrate(300_000, [40_000, 40_000], {"cam": demand(*VIDEO, kept=1)})
    assert shares == {"cam": 220_000}
    assert split_bitrate(60_000, [40_000, 40_000], {"cam": demand(*VIDEO)}) == {"cam": 0}
    # an audio bitrate not known yet counts as 40 kbit/s; a huge one as Opus' maximum
    assert split_bitrate(300_000, [None], {"cam": demand(*VIDEO, kept=1)}) == {"cam": 260_000}
    assert split_bitrate(600_000, [1e12], {"cam": demand(*VIDEO, kept=1)}) == {"cam": 90_000}


def test_every_track_keeps_its_lowest_layer_before_any_goes_higher_speaker_first() -> None:
    video = {
        "a": demand(*VIDEO, kept=2, tile=360),
        "b": demand(*VIDEO, kept=2, speaker=True, tile=720),
        "c": demand(*VIDEO, kept=2, tile=360),
    }
    shares = split_bitrate(1_200_000, [], video)
    # all keep layer 0 (3 x 150k), then layer 1 (+350k each) fits for the speaker and the
    # next; the 50k left go to the speaker, short of its layer 2: c drops to layer 0
    assert shares == {"b": 550_000, "a": 500_000, "c": 150_000}
    shares = split_bitrate(300_000, [], video)  # not enough for three lowest layers
    assert shares == {"b": 150_000, "a": 150_000, "c": 0}


def test_one_step_more_at_a_time_and_a_paused_track_resumes_first() -> None:
    video = {
        "speaker": demand(*VIDEO, kept=1, speaker=True, tile=720),
        "other": demand(*VIDEO, kept=1, tile=720),
    }
    shares = split_bitrate(10_000_000, [], video)
    # the one step up (to layer 1) is the speaker's; the rest stays short of each one's
    # next step, so the other does not start moving up as well
    assert shares == {"speaker": 1_440_000 - 1, "other": 600_000 - 1}
    video["other"] = demand(*VIDEO, kept=0, tile=720)  # paused: it resumes first
    shares = split_bitrate(10_000_000, [], video)
    assert shares == {"speaker": 600_000 - 1, "other": 600_000 - 1}
    shares = split_bitrate(150_000 + 180_000, [], video)
    assert shares == {"speaker": 150_000, "other": 180_000}


def test_a_new_track_gets_every_step_that_fits() -> None:
    shares = split_bitrate(2_000_000, [40_000], {"cam": demand(*VIDEO)})
    assert shares == {"cam": 1_440_000}  # its ceiling: more would be wasted
    shares = split_bitrate(800_000, [40_000], {"cam": demand(*VIDEO)})
    assert shares == {"cam": 760_000}


@given(
    available=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers()),
    audio=st.lists(st.one_of(st.none(), st.floats(allow_nan=True)), max_size=4),
    video=st.dictionaries(
        st.integers(0, 9),
        st.builds(
            VideoDemand,
            bitrates=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5).map(
                tuple
            ),
            kept=st.one_of(st.none(), st.integers(-3, 9)),
            speaker=st.booleans(),
            tile_height=st.floats(allow_nan=True, allow_infinity=True),
        ),
        max_size=5,
    ),
)
@settings(max_examples=300, deadline=None)
def test_the_split_takes_any_input(available, audio, video) -> None:
    shares = split_bitrate(available, audio, video)
    assert shares.keys() == video.keys()
    assert all(math.isfinite(s) and s >= 0 for s in shares.values())
    if isinstance(available, int) or math.isfinite(available):
        assert sum(shares.values()) <= max(available, 0) + 1e-6 * abs(available) + 1e-3


# --- the publisher's REMB ---------------------------------------------------------------


def test_the_publisher_is_told_what_its_highest_wanted_layer_needs() -> None:
    measured = (140_000, 480_000, 1_500_000)
    assert publisher_bitrate([2, 0, None], measured, 2_500_000) == int(1_850_000 * 1.15)
    assert publisher_bitrate([1, 0, 1], measured, 2_500_000) == int(650_000 * 1.15)
    assert publisher_bitrate([0], measured, 2_500_000) == int(150_000 * 1.15)
    # nobody wants a layer (everyone paused or nobody there): still the lowest one
    assert publisher_bitrate([], measured, 2_500_000) == int(150_000 * 1.15)
    assert publisher_bitrate([None, None], measured, 2_500_000) == int(150_000 * 1.15)


def test_the_publisher_bitrate_counts_lower_layers_above_nominal_and_caps() -> None:
    # a lower layer above its nominal bitrate counts as measured; the top one never does
    # (it follows what the publisher was allowed)
    measured = (300_000, 800_000, 2_400_000)
    assert publisher_bitrate([2], measured, 10_000_000) == int(2_300_000 * 1.15)
    assert publisher_bitrate([2], measured, 2_500_000) == 2_500_000
    # a cap below what the lowest layer needs: the lowest layer still (never paused)
    assert publisher_bitrate([2], measured, 100_000) == int(150_000 * 1.15)
    # the layers not arriving count at their nominal bitrates: asking for them back
    assert publisher_bitrate([2], (None, None, None), 5_000_000) == int(
        sum(DEFAULT_LAYER_BITRATES) * 1.15
    )


@given(
    wanted=st.lists(st.one_of(st.none(), st.integers(), st.booleans(), st.floats())),
    measured=st.lists(st.one_of(st.none(), st.floats(allow_nan=True), st.integers())),
    configured=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers()),
)
@settings(max_examples=300, deadline=None)
def test_the_publisher_bitrate_takes_any_input(wanted, measured, configured) -> None:
    value = publisher_bitrate(wanted, measured, configured)
    assert isinstance(value, int)
    assert int(150_000 * 1.15) <= value <= int(1e10)


# --- settings ---------------------------------------------------------------------------


def test_the_rules_come_from_the_media_settings() -> None:
    media = MediaSettings(
        downlink_start_bitrate=600_000,
        downlink_min_bitrate=80_000,
        layer_up_wait=2.0,
        layer_max_up_wait=6.0,
        remb_expiry=4.0,
    )
    estimate_rule = EstimateRule.from_settings(media)
    assert (estimate_rule.start_bitrate, estimate_rule.min_bitrate) == (600_000, 80_000)
    assert estimate_rule.remb_expiry == 4.0
    layer_rule = LayerRule.from_settings(media)
    assert (layer_rule.up_wait, layer_rule.max_up_wait) == (2.0, 6.0)
    with pytest.raises(ValueError, match="downlink_min_bitrate"):
        MediaSettings(downlink_min_bitrate=900_000)
    with pytest.raises(ValueError, match="layer_up_wait"):
        MediaSettings(layer_up_wait=10.0)
    with pytest.raises(ValueError, match="increasing"):
        LayerRule(layer_bitrates=(500_000, 150_000, 1_200_000))


# --- withholding video needs loss (LayerRule.pause_loss; the worker's settings) --------

PAUSING = LayerRule(pause_loss=0.10)


def test_with_pause_loss_a_share_below_the_lowest_layer_without_loss_keeps_it() -> None:
    chooser = LayerChooser(PAUSING)
    assert chooser.choose(VIDEO, 200_000, 0) == 0
    # a REMB drop cut the share below layer 0 (a keyframe queued on a thin link): no loss
    for at in (1, 2, 10, 20):
        assert chooser.choose(VIDEO, 130_000, at) == 0 and not chooser.paused
    assert chooser.choose(VIDEO, 130_000, 21, loss=0.05) == 0  # some loss, below 10 %
    assert chooser.choose(VIDEO, 130_000, 22, loss=0.10) is None and chooser.paused
    assert chooser.retry_wait(0) == 0  # not a failed resumption


def test_with_pause_loss_a_higher_layer_comes_down_to_the_lowest_before_any_pause() -> None:
    chooser = LayerChooser(PAUSING)
    assert chooser.choose(VIDEO, 700_000, 0) == 1
    assert chooser.choose(VIDEO, 100_000, 1, loss=0.5) == 0  # that loss was layer 1's
    assert chooser.choose(VIDEO, 100_000, 3, loss=0.5) == 0  # layer 0 not held 4 s yet
    assert chooser.choose(VIDEO, 100_000, 5, loss=0.5) is None  # held, and still lossy


def test_with_pause_loss_a_resumption_the_link_does_not_carry_pauses_again_at_once() -> None:
    chooser = LayerChooser(PAUSING)
    assert chooser.choose(VIDEO, 200_000, 0) == 0
    assert chooser.choose(VIDEO, 100_000, 4, loss=0.3) is None
    assert chooser.choose(VIDEO, 180_000, 5) is None
    assert chooser.choose(VIDEO, 180_000, 8) == 0  # resumed: 3 s held
    assert chooser.choose(VIDEO, 100_000, 9) == 0  # a REMB drop alone: kept
    assert chooser.choose(VIDEO, 100_000, 10, loss=0.3) is None  # its own loss: paused
    assert chooser.retry_wait(0) == 6


def remb_dips(sub: Subscriber, until: float, every: float = 2.0) -> list[Sample]:
    """Run ``sub`` with a REMB dip every ``every`` seconds, as a receiver sends when a
    keyframe queues on its link: a REMB at 200 kbit/s, then 0.85 x the 175 kbit/s it gets."""
    samples: list[Sample] = []
    while sub.now < until - 1e-9:
        samples += sub.run(min(sub.now + every, until))
        sub.estimate.on_remb(200_000, sub.now)
        samples += sub.run(min(sub.now + 0.5, until))
        sub.estimate.on_remb(0.85 * 175_000, sub.now)
    return samples


def test_with_pause_loss_remb_dips_on_a_link_that_carries_layer_0_never_pause_it() -> None:
    paused = Subscriber(300_000, tracks={"cam": Track(speaker=True)})
    kept = Subscriber(300_000, tracks={"cam": Track(speaker=True, chooser=LayerChooser(PAUSING))})
    before = [s for s in remb_dips(paused, 60) if s.at > 5]
    after = [s for s in remb_dips(kept, 60) if s.at > 5]
    assert None in layer_of(before)  # the share alone: each dip withholds the video
    assert None not in layer_of(after) and layer_of(after).count(0) / len(after) >= 0.85


def test_with_pause_loss_a_link_below_the_lowest_layer_still_pauses_and_recovers() -> None:
    sub = Subscriber(150_000, tracks={"cam": Track(speaker=True, chooser=LayerChooser(PAUSING))})
    later = [s for s in sub.run(60) if s.at > 10]
    assert layer_of(later).count(None) / len(later) >= 0.6
    assert 1 not in layer_of(later) and 2 not in layer_of(later)
    samples = sub.run(90, capacity=UNLIMITED)
    at = settled_at(samples, 2)
    assert at is not None and at - 60 <= 15


def test_the_worker_withholds_video_only_on_loss() -> None:
    assert LayerRule().pause_loss == 0.0  # the rule alone: the share decides
    assert LayerRule.from_settings(MediaSettings()).pause_loss == 0.10
    assert LayerRule.from_settings(MediaSettings(layer_pause_loss=0.2)).pause_loss == 0.2
    with pytest.raises(ValueError, match="layer_pause_loss"):
        MediaSettings(layer_pause_loss=1.5)
    with pytest.raises(ValueError, match="pause_loss"):
        LayerRule(pause_loss=-0.1)
