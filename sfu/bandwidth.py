"""Which simulcast layer each subscriber is sent, and what each publisher is told to send.

A simulcast camera arrives as up to three VP8 layers (0 lowest: ~180p at ~150 kbit/s,
~360p at ~500 kbit/s, ~720p at ~1.2 Mbit/s); each subscriber is forwarded exactly one of
them, or none (its video is paused; audio goes on).  This module is the decision alone,
without networking, clocks or aiortc: every method takes the time as ``now`` (seconds,
``time.monotonic()`` in the SFU, a plain number in tests).

* :class:`DownlinkEstimate` (one per subscribe transport): what the subscriber's link
  carries, from its RTCP (receiver reports' loss, REMB) and the rate the SFU sent it.
* :func:`split_bitrate` divides a subscriber's estimate among the tracks it receives:
  audio first, then video by priority (the active speaker, then larger tiles).
* :class:`LayerChooser` (one per simulcast consumer): the layer for one track from its
  share, down at once, up only after the share has held for a while, with back-off.
* :func:`publisher_bitrate`: the REMB a simulcast publisher is sent.

Every number and why it was chosen: docs/media-quality.md.  Inputs come from peers and are
hostile: a value that is not a finite number is ignored, the rest is clamped; nothing here
raises on a bad number.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .settings import MediaSettings

#: The layers of a 720p camera (rids q, h, f): Chromium's targets for 180p and 360p, and
#: what the 720p layer takes under the publisher's REMB.  Decisions use measured bitrates;
#: these stand in for a layer not measured.
DEFAULT_LAYER_BITRATES: tuple[int, ...] = (150_000, 500_000, 1_200_000)
DEFAULT_LAYER_HEIGHTS: tuple[int, ...] = (180, 360, 720)
#: Layers considered per track; more (from a hostile offer) are ignored.
MAX_LAYERS = 3
#: What an audio track is assumed to take when its bitrate is not known (Opus voice,
#: ~32 kbit/s of payload + RTP/UDP/IP headers at 50 packets/s).
DEFAULT_AUDIO_BITRATE = 40_000
#: No audio track is reserved more than this (Opus' maximum).
MAX_AUDIO_BITRATE = 510_000
#: Past this, a stored bitrate is an absurd value, not a measurement.
ABSURD_BITRATE = 1e10

K = TypeVar("K", bound=Hashable)


def _number(value: object) -> float | None:
    """``value`` as a finite float, or ``None`` (not a number, bool, NaN, infinite)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        result = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return result if math.isfinite(result) else None


class SteadyClock:
    """The time an estimator is told, kept from running back: each ``now`` given is read
    as a finite number (else ignored: ``None``), and one earlier than the latest reads as
    the latest (hostile or reordered input cannot move an estimator's time backwards)."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        #: The latest time read, or ``None`` before the first.
        self.now: float | None = None

    def read(self, now: object) -> float | None:
        at = _number(now)
        if at is None:
            return None
        if self.now is not None and at < self.now:
            at = self.now
        self.now = at
        return at


def _rate(value: object) -> float | None:
    """A bitrate: positive and finite (clamped to :data:`ABSURD_BITRATE`), else ``None``."""
    number = _number(value)
    if number is None or number <= 0:
        return None
    return min(number, ABSURD_BITRATE)


def _layer_rates(bitrates: object) -> list[float | None]:
    """The measured bitrate of each layer (``None``: not arriving), at most MAX_LAYERS."""
    if not isinstance(bitrates, Sequence) or isinstance(bitrates, str | bytes):
        return []
    return [_rate(value) for value in bitrates[:MAX_LAYERS]]


# --- the downlink estimate ------------------------------------------------------------


@dataclass(frozen=True)
class EstimateRule:
    """The numbers of :class:`DownlinkEstimate` (docs/media-quality.md says why each)."""

    #: The estimate before any feedback: one layer-1 stream with its margin and audio.
    start_bitrate: float = 800_000
    #: Never below this (so that one bad report cannot leave it at nothing) nor above
    #: ``max_bitrate`` (a bound for absurd values).
    min_bitrate: float = 100_000
    max_bitrate: float = 20_000_000
    #: Loss above ``high_loss`` cuts the estimate to the rate sent x (1 - loss / 2); below
    #: ``low_loss`` it grows by ``increase`` per second; in between it holds (libwebrtc's
    #: send-side loss controller).
    high_loss: float = 0.10
    low_loss: float = 0.02
    increase: float = 0.30
    #: Receiver reports older than this no longer count (no fresh report: no growth).
    feedback_timeout: float = 3.0
    #: A REMB is compared with the previous one for this long.  One at least ``remb_drop``
    #: below the previous one still fresh (or, with none fresh, below ``remb_first_share``
    #: of the rate sent), and below the rate sent, reports congestion: the estimate falls
    #: to it.
    remb_expiry: float = 5.0
    remb_drop: float = 0.03
    remb_first_share: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.min_bitrate <= self.start_bitrate <= self.max_bitrate:
            raise ValueError("need 0 < min_bitrate <= start_bitrate <= max_bitrate")
        if not 0 <= self.low_loss <= self.high_loss <= 1:
            raise ValueError("need 0 <= low_loss <= high_loss <= 1")
        if not 0 <= self.increase <= 10:
            raise ValueError("increase is a share per second, 0..10")
        if self.feedback_timeout <= 0 or self.remb_expiry <= 0:
            raise ValueError("feedback_timeout and remb_expiry must be positive")
        if not 0 <= self.remb_drop < 1 or not 0 <= self.remb_first_share <= 1:
            raise ValueError("remb_drop and remb_first_share are shares")

    @classmethod
    def from_settings(cls, settings: MediaSettings) -> EstimateRule:
        return cls(
            start_bitrate=settings.downlink_start_bitrate,
            min_bitrate=settings.downlink_min_bitrate,
            remb_expiry=settings.remb_expiry,
        )


class DownlinkEstimate:
    """The bitrate one subscriber's link carries, as the SFU sees it from its RTCP.

    Fed with the loss of each stream (receiver reports' fraction lost, 0-255), REMB values
    (bits/s) and the bytes the SFU sent the subscriber; :meth:`available` is the estimate.

    Loss drives it as libwebrtc's send-side loss controller does: above 10 % the estimate
    falls to the rate sent x (1 - loss / 2), below 2 % it grows (30 %/s), in between it
    holds.  A REMB is read as Chromium's receiver means it: a drop is congestion (the
    estimate falls to it); a REMB that rises or holds caps nothing, since Chromium never
    reports more than 1.5 x what it receives + 10 kbit/s and would otherwise keep a
    subscriber at the layer it has for good.  After a cut the estimate grows again only
    once a receiver report newer than the cut shows little loss.
    """

    def __init__(self, rule: EstimateRule | None = None) -> None:
        self.rule = rule or EstimateRule()
        self._estimate = float(self.rule.start_bitrate)
        self._time = SteadyClock()
        self._grown_at: float | None = None  # the estimate is up to date at this time
        #: stream -> (fraction lost 0..1, weight, when reported)
        self._losses: dict[Hashable, tuple[float, float, float]] = {}
        self._remb: tuple[float, float] | None = None  # (bits/s, when)
        self._cut_at = -math.inf  # the latest cut: growth waits for a report after it
        self._reported_at = -math.inf  # the latest receiver report
        self._sent_bytes = 0.0
        self._sent_since: float | None = None
        self._sending_rate = 0.0
        self._delay_based: tuple[float, float] | None = None  # (bits/s, when)

    # --- inputs -------------------------------------------------------------------------

    def on_sent(self, nbytes: float, now: float) -> None:
        """The bytes sent to the subscriber since the previous call (the first call starts
        the count).  The sending rate is taken over at least a quarter of a second."""
        at = self._time.read(now)
        count = _number(nbytes)
        if at is None or count is None or count < 0:
            return
        if self._sent_since is None:
            self._sent_since, self._sent_bytes = at, 0.0
            return
        self._sent_bytes = min(self._sent_bytes + count, ABSURD_BITRATE)
        elapsed = at - self._sent_since
        if elapsed >= 0.25:
            rate = 8 * self._sent_bytes / elapsed
            self._sending_rate = min(rate, self.rule.max_bitrate)
            self._sent_since, self._sent_bytes = at, 0.0

    def on_loss(
        self, stream: Hashable, fraction_lost: float, now: float, weight: float = 1.0
    ) -> None:
        """A receiver report's fraction lost (0-255) for one stream the subscriber receives.

        ``weight`` is that stream's part of the subscriber's traffic (say the bytes sent on
        it in the report's interval): the subscriber's loss is the weighted mean of every
        stream's latest report still fresh, so that a lossy audio packet weighs little."""
        at = self._time.read(now)
        fraction = _number(fraction_lost)
        if at is None or fraction is None:
            return
        share = _number(weight)
        self._grow(at)  # up to now under the loss that held until now
        self._losses[stream] = (
            min(max(fraction, 0.0), 255.0) / 256,
            min(max(share, 0.0), ABSURD_BITRATE) if share is not None else 0.0,
            at,
        )
        self._reported_at = at
        self._prune(at)
        loss = self._fresh_loss(at)
        if loss is not None and loss > self.rule.high_loss:
            sent = self._sending_rate if self._sending_rate > 0 else self._estimate
            self._cut(sent * (1 - loss / 2), at)

    def on_remb(self, bitrate: float, now: float) -> None:
        """A REMB from the subscriber (bits/s).  0 or below the floor counts as the floor."""
        at = self._time.read(now)
        value = _number(bitrate)
        if at is None or value is None or value < 0:
            return
        rule = self.rule
        value = self._clamp(value)
        self._grow(at)
        previous = self._remb
        if previous is not None and at - previous[1] <= rule.remb_expiry:
            congested = value < previous[0] * (1 - rule.remb_drop)
        else:
            congested = value < self._sending_rate * rule.remb_first_share
        # a receiver able to take more than it is sent is not congested, whatever its
        # REMB did (libwebrtc's follows the rate received, up to 1.5 x, and falls with it)
        if self._sending_rate > 0:
            congested = congested and value < self._sending_rate
        self._remb = (value, at)
        if congested:
            self._cut(value, at)

    def on_delay_based(self, bitrate: float, now: float) -> None:
        """The delay-based estimate of the subscriber's transport feedback (bits/s,
        :class:`sfu.delay_based.DelayBasedEstimate`): while it is fresh it caps
        :meth:`available`, as libwebrtc caps its loss-based estimate with it.  Loss alone
        cannot tell a link that carries more from one that was never tried; the delay of
        each packet's arrival can, within a feedback interval."""
        at = self._time.read(now)
        value = _rate(bitrate)
        if at is None or value is None:
            return
        self._delay_based = (self._clamp(value), at)

    def forget(self, stream: Hashable) -> None:
        """The stream ended: its reports no longer count."""
        self._losses.pop(stream, None)

    # --- outputs ------------------------------------------------------------------------

    def available(self, now: float) -> int:
        """The estimate at ``now``, bits/s."""
        at = self._time.read(now)
        if at is not None:
            self._grow(at)
        estimate = self._clamp(self._estimate)
        delay_based = self._delay_based
        if delay_based is not None and (self._time.now or 0.0) - delay_based[1] <= (
            self.rule.feedback_timeout
        ):
            estimate = min(estimate, delay_based[0])
        return int(estimate)

    def loss(self, now: float) -> float:
        """The subscriber's loss (0..1) from the reports still fresh at ``now`` (0: none)."""
        self._time.read(now)
        return self._fresh_loss(self._time.now or 0.0) or 0.0

    @property
    def sending_rate(self) -> float:
        """The rate the SFU sent the subscriber over the latest interval, bits/s."""
        return self._sending_rate

    # --- internals ----------------------------------------------------------------------

    def _cut(self, value: float, at: float) -> None:
        self._estimate = self._clamp(min(self._estimate, value))
        self._cut_at = at

    def _clamp(self, value: float) -> float:
        return min(max(value, self.rule.min_bitrate), self.rule.max_bitrate)

    def _fresh_loss(self, at: float) -> float | None:
        horizon = at - self.rule.feedback_timeout
        total = weighted = 0.0
        fresh = False
        for fraction, weight, when in self._losses.values():
            if when >= horizon:
                fresh = True
                total += weight
                weighted += weight * fraction
        if not fresh:
            return None
        if total <= 0:  # every fresh report weighs nothing: their plain mean
            fractions = [f for f, _, when in self._losses.values() if when >= horizon]
            return sum(fractions) / len(fractions)
        return weighted / total

    def _prune(self, at: float) -> None:
        horizon = at - self.rule.feedback_timeout
        losses = self._losses
        for stream in [s for s, (_, _, when) in losses.items() if when < horizon]:
            del losses[stream]
        while len(losses) > 1024:  # far more streams than a subscriber receives
            del losses[next(iter(losses))]

    def _grow(self, at: float) -> None:
        """Bring the estimate up to ``at``: growth while the loss is low and fresh."""
        since, self._grown_at = self._grown_at, at
        if since is None or at <= since or self._reported_at <= self._cut_at:
            return
        loss = self._fresh_loss(at)
        if loss is None or loss >= self.rule.low_loss:
            return
        elapsed = min(at - since, 60.0)  # a long gap cannot overflow the power
        self._estimate = self._clamp(self._estimate * (1 + self.rule.increase) ** elapsed)


# --- choosing a layer -----------------------------------------------------------------


@dataclass(frozen=True)
class LayerRule:
    """The numbers of :class:`LayerChooser`, :func:`split_bitrate` and
    :func:`publisher_bitrate` (docs/media-quality.md says why each)."""

    #: Going up to a layer needs a share of its bitrate x ``up_margin``, held for
    #: ``up_wait`` seconds with the loss below ``up_loss``; a layer is kept while the share
    #: is at least its bitrate x ``down_margin``.
    up_margin: float = 1.2
    down_margin: float = 1.0
    up_wait: float = 3.0
    up_loss: float = 0.02
    #: An up-switch undone (by bandwidth) within ``failure_window`` seconds failed: the
    #: next try at that layer waits ``up_wait`` x 2^failures since the failure, at most
    #: ``max_up_wait``.  A layer kept for ``failure_window`` clears its failures.
    failure_window: float = 4.0
    max_up_wait: float = 8.0
    #: Withholding a track's video needs loss when this is above 0: a share below the
    #: lowest layer then pauses only a track sending the lowest layer with the loss at
    #: least ``pause_loss`` (for ``failure_window`` seconds, when it came down to that
    #: layer, so that the loss is the lowest layer's); otherwise the lowest layer is
    #: sent.  A share cut by a REMB drop alone (growing delay: a keyframe queued on a thin
    #: link is enough) then takes the video down to the lowest layer but never off.  0:
    #: the share alone decides.
    pause_loss: float = 0.0
    #: Nominal bitrates and heights of the layers, for what is not measured or known.
    layer_bitrates: tuple[int, ...] = DEFAULT_LAYER_BITRATES
    layer_heights: tuple[int, ...] = DEFAULT_LAYER_HEIGHTS
    #: A publisher is told the layers' sum x ``publisher_margin``.
    publisher_margin: float = 1.15

    def __post_init__(self) -> None:
        if not 0 < self.down_margin <= self.up_margin:
            raise ValueError("need 0 < down_margin <= up_margin")
        if not 0 <= self.up_wait <= self.max_up_wait or self.failure_window < 0:
            raise ValueError("need 0 <= up_wait <= max_up_wait and failure_window >= 0")
        if not 0 <= self.up_loss <= 1 or self.publisher_margin < 1:
            raise ValueError("up_loss is a share and publisher_margin at least 1")
        if not 0 <= self.pause_loss <= 1:
            raise ValueError("pause_loss is a share")
        for table in (self.layer_bitrates, self.layer_heights):
            if len(table) != MAX_LAYERS or any(b <= a for a, b in itertools.pairwise(table)):
                raise ValueError(f"layer tables hold {MAX_LAYERS} increasing values")
            if table[0] <= 0:
                raise ValueError("layer tables hold positive values")

    @classmethod
    def from_settings(cls, settings: MediaSettings) -> LayerRule:
        return cls(
            up_wait=settings.layer_up_wait,
            max_up_wait=settings.layer_max_up_wait,
            pause_loss=settings.layer_pause_loss,
        )


def layer_cap(
    tile_height: float | None,
    heights: Sequence[float | None] | None = None,
    count: int = MAX_LAYERS,
    rule: LayerRule | None = None,
) -> int:
    """The highest layer (of ``count``) a tile ``tile_height`` pixels high needs: the
    smallest at least as high as the tile (downscaling costs nothing, upscaling blurs), by
    the layers' ``heights`` when all are known, else 180/360/720.  No tile height: no cap."""
    top = max(min(count, MAX_LAYERS), 1) - 1
    height = _number(tile_height)
    if height is None:
        return top
    table: Sequence[float] = (rule or LayerRule()).layer_heights
    if isinstance(heights, Sequence) and len(heights) > top:
        known = [h for h in (_rate(h) for h in heights[: top + 1]) if h is not None]
        if len(known) == top + 1 and known == sorted(known):
            table = known
    for layer in range(top + 1):
        if table[layer] >= height:
            return layer
    return top


class LayerChooser:
    """The simulcast layer one subscriber is sent of one track (one per consumer).

    A new track starts at the highest layer its share carries with the up margin, at
    least at the lowest.  Down fast: as soon as the share is below the current layer's
    bitrate x 1.0 (a loss
    report above 10 % cuts the estimate below what was sent, so a loss spike lands here
    at once), to the highest layer that fits, or ``None`` (video paused) when even the
    lowest does not.  Up slowly: one layer at a time, once the share has been at least the
    next layer's bitrate x 1.2, with the loss below 2 %, for 3 s.  An up-switch undone
    within 4 s failed: the next try at that layer waits 6 s, then 8 s (the cap) since the
    failure, so that an impaired link is not toggled every few seconds while a recovered
    one is back at the top layer within 15 s.  Resuming from a pause follows the same rule
    (the lowest layer is the next one).  A tile cap or a layer that stops arriving moves
    at once and is no failure.  With :attr:`LayerRule.pause_loss` (the worker's rule) a
    share below the lowest layer pauses only on loss measured on that layer.
    """

    def __init__(self, rule: LayerRule | None = None) -> None:
        self.rule = rule or LayerRule()
        #: The layer sent, or ``None``: paused or not decided yet.
        self.layer: int | None = None
        #: Video withheld because the share cannot carry the lowest layer arriving.
        self.paused = False
        self._time = SteadyClock()
        self._up_layer: int | None = None  # the layer the streak below is for
        self._up_since: float | None = None  # its share has been enough since then
        # (layer switched up to, when, whether it resumed a paused video)
        self._probe: tuple[int, float, bool] | None = None
        self._layer_since: float | None = None  # when the layer sent last changed
        self._failures: dict[int, tuple[int, float]] = {}  # layer -> (failures in a row, last)

    def choose(
        self,
        bitrates: Sequence[float | None],
        share: float,
        now: float,
        *,
        tile_height: float | None = None,
        heights: Sequence[float | None] | None = None,
        loss: float = 0.0,
    ) -> int | None:
        """The layer to send at ``now``: ``bitrates`` are the layers' measured incoming
        bitrates (``None`` or 0: not arriving), ``share`` this track's part of the
        subscriber's estimate (bits/s), ``tile_height`` the tile's height in pixels
        (caps the layer), ``heights`` the layers' heights when known, ``loss`` the
        subscriber's current loss (0..1; blocks going up).  ``None``: send no video."""
        at = self._time.read(now)
        if at is None:
            return self.layer
        rates = _layer_rates(bitrates)
        arriving = [i for i, rate in enumerate(rates) if rate is not None]
        if not arriving:  # nothing to send: start afresh when layers arrive again
            self._set(None, at, paused=False)
            return None
        budget = _number(share)
        budget = max(budget, 0.0) if budget is not None else 0.0
        lossy = _number(loss)
        lossy = lossy if lossy is not None else 0.0
        cap = layer_cap(tile_height, heights, len(rates), self.rule)
        allowed = [i for i in arriving if i <= cap] or arriving[:1]
        rule = self.rule

        def fits(layer: int, margin: float) -> bool:
            rate = rates[layer]
            return rate is not None and budget >= rate * margin

        self._settle(at)
        current = self.layer
        if current is None and not self.paused:  # the first decision: no history
            # nothing says yet that the link cannot carry the lowest layer: a new track is
            # shown, and paused only by the report that says so
            first = next((i for i in reversed(allowed) if fits(i, rule.up_margin)), allowed[0])
            self._set(first, at, paused=False)
            return first

        if current is not None and current not in allowed:  # forced: cap or layer gone
            lower = [i for i in allowed if i <= current] or allowed[:1]
            target = next((i for i in reversed(lower) if fits(i, rule.down_margin)), None)
            if self._probe is not None and (target is None or target < self._probe[0]):
                self._probe = None  # ended by the tile or the publisher: no verdict
            self._set(target, at, paused=target is None)
            return target

        if current is not None and not fits(current, rule.down_margin):  # down, at once
            below = [i for i in allowed if i < current]
            target = next((i for i in reversed(below) if fits(i, rule.down_margin)), None)
            if target is None and not self._may_pause(current, allowed[0], lossy, at):
                target = allowed[0]  # nothing says the link cannot carry the lowest layer
                if target == current:
                    self._up_layer = self._up_since = None
                    return current
            self._failed(target, at)
            self._set(target, at, paused=target is None)
            return target

        # up, slowly: the next layer arriving above the current one (the lowest allowed
        # when paused); its streak counts even above the tile cap, which may be lifted
        above = [i for i in arriving if current is None or i > current]
        if current is None:
            above = allowed[:1]
        if not above:
            self._up_layer = self._up_since = None
            return current
        candidate = above[0]
        if lossy >= rule.up_loss or not fits(candidate, rule.up_margin):
            self._up_layer = self._up_since = None
            return current
        if self._up_layer != candidate or self._up_since is None:
            self._up_layer, self._up_since = candidate, at
        if (
            candidate in allowed
            and at - self._up_since >= rule.up_wait
            and at >= self._retry_at(candidate)
        ):
            if self._probe is not None:  # the layer below carried the wait: it held
                self._failures.pop(self._probe[0], None)
            self._probe = (candidate, at, current is None)
            self._set(candidate, at, paused=False)
            return candidate
        return current

    def demand(
        self,
        bitrates: Sequence[float | None],
        *,
        tile_height: float | None = None,
        heights: Sequence[float | None] | None = None,
        speaker: bool = False,
    ) -> VideoDemand:
        """What this track asks of :func:`split_bitrate`, with these layers arriving, in
        this tile, where the chooser stands now."""
        rule = self.rule
        rates = _layer_rates(bitrates)
        arriving = [i for i, rate in enumerate(rates) if rate is not None]
        cap = layer_cap(tile_height, heights, len(rates), rule)
        allowed = [i for i in arriving if i <= cap] or arriving[:1]
        if self.layer is not None:
            kept: int | None = max(sum(1 for i in allowed if i <= self.layer), 1)
        else:
            kept = 0 if self.paused else None
        return VideoDemand(
            bitrates=tuple(rates[i] or 0.0 for i in allowed),
            kept=kept,
            speaker=bool(speaker),
            tile_height=_height(tile_height),
        )

    def retry_wait(self, layer: int) -> float:
        """How long after its latest failure ``layer`` may be tried again (0: never failed)."""
        failures = self._failures.get(layer)
        if failures is None:
            return 0.0
        return min(self.rule.up_wait * 2 ** min(failures[0], 30), self.rule.max_up_wait)

    def _retry_at(self, layer: int) -> float:
        failures = self._failures.get(layer)
        return -math.inf if failures is None else failures[1] + self.retry_wait(layer)

    def _set(self, layer: int | None, at: float, *, paused: bool) -> None:
        if layer != self.layer or paused != self.paused:
            self._up_layer = self._up_since = None
            self._layer_since = at
        self.layer, self.paused = layer, paused

    def _may_pause(self, current: int, lowest: int, loss: float, at: float) -> bool:
        """Whether a share below the lowest layer may withhold the video of a track sending
        ``current`` (see :attr:`LayerRule.pause_loss`)."""
        rule = self.rule
        if rule.pause_loss <= 0:
            return True
        if current != lowest or loss < rule.pause_loss:
            return False  # the lowest layer first: what undid a higher one says nothing of it
        probe = self._probe
        if probe is not None and probe[2] and at - probe[1] < rule.failure_window:
            return True  # a resumption the link did not carry: its loss is its own
        since = self._layer_since
        return since is not None and at - since >= rule.failure_window

    def _settle(self, at: float) -> None:
        """A probe kept for the failure window succeeded: its layer's failures are cleared."""
        probe = self._probe
        if probe is None or at - probe[1] < self.rule.failure_window:
            return
        layer = self.layer
        if layer is not None and layer >= probe[0]:
            self._failures.pop(probe[0], None)
        self._probe = None

    def _failed(self, target: int | None, at: float) -> None:
        """Going down to ``target``: an up-switch made less than the window ago failed."""
        probe = self._probe
        if probe is None:
            return
        layer, since, _ = probe
        if (target is None or target < layer) and at - since < self.rule.failure_window:
            count = self._failures.get(layer, (0, at))[0]
            self._failures[layer] = (count + 1, at)
        self._probe = None


# --- splitting a subscriber's estimate among its tracks -------------------------------


@dataclass(frozen=True)
class VideoDemand:
    """What one video track a subscriber receives asks of :func:`split_bitrate`
    (made by :meth:`LayerChooser.demand`).

    ``bitrates``: the measured bitrates of the layers it may use (arriving, within its
    tile's cap), lowest first.  ``kept``: how many of them it uses now (0: paused;
    ``None``: not decided yet).  Priority: the active speaker first, then taller tiles."""

    bitrates: tuple[float, ...]
    kept: int | None = None
    speaker: bool = False
    tile_height: float = 0.0


def split_bitrate(
    available: float,
    audio: Iterable[float | None],
    video: Mapping[K, VideoDemand],
    rule: LayerRule | None = None,
) -> dict[K, float]:
    """Each video track's share of a subscriber's estimate ``available`` (bits/s).

    Audio is reserved first (each audio track's bitrate; unknown: 40 kbit/s).  Then video,
    in priority order (the active speaker, then taller tiles, then the order given),
    lowest layers first, a layer only when it fits whole:

    1. each track keeps the layers it uses (its layer's bitrate x the down margin, 1.0); a
       new track gets the layers that fit with the up margin (1.2), as it will choose;
    2. one step more (the next layer's bitrate x the up margin) to the first track whose
       next step fits, a paused one first: a subscriber's tracks go up one at a time and
       its link is never probed by several at once;
    3. what is left goes first to the tracks that got nothing, then in priority order, each
       short of its next step: it helps a track keep its layer and never starts a move up.
    """
    rule = rule or LayerRule()
    total = _number(available)
    left = min(max(total, 0.0), ABSURD_BITRATE) if total is not None else 0.0
    for bitrate in audio:
        rate = _rate(bitrate)
        left -= min(rate, MAX_AUDIO_BITRATE) if rate is not None else DEFAULT_AUDIO_BITRATE
    left = max(left, 0.0)
    order = sorted(video, key=lambda k: (not video[k].speaker, -_height(video[k].tile_height)))
    rates: dict[K, list[float]] = {}
    keep: dict[K, int | None] = {}
    for k in order:
        known = [r for r in (_rate(x) for x in video[k].bitrates[:MAX_LAYERS]) if r is not None]
        rates[k] = [max(known[: i + 1]) for i in range(len(known))]  # never decreasing
        kept = _number(video[k].kept)
        keep[k] = None if kept is None else int(min(max(kept, 0), len(known)))
    shares = dict.fromkeys(video, 0.0)
    granted = dict.fromkeys(video, 0)

    def grant(k: K, margin: float) -> bool:
        nonlocal left
        need = rates[k][granted[k]] * margin  # the very product the chooser compares with
        more = max(need - shares[k], 0.0)
        if more > left:
            return False
        shares[k] = max(need, shares[k])
        left -= more
        granted[k] += 1
        return True

    for level in range(MAX_LAYERS):
        for k in order:
            kept = keep[k]
            if granted[k] == level < len(rates[k]) and (kept is None or level < kept):
                grant(k, rule.up_margin if kept is None else rule.down_margin)
    for k in sorted(order, key=lambda k: granted[k] > 0):  # sorted() is stable
        if granted[k] < len(rates[k]) and grant(k, rule.up_margin):
            break
    for k in sorted(order, key=lambda k: shares[k] > 0):
        if granted[k] < len(rates[k]):
            room = rates[k][granted[k]] * rule.up_margin - 1 - shares[k]
            more = min(left, max(room, 0.0))
            shares[k] += more
            left -= more
    return shares


def _height(value: object) -> float:
    height = _number(value)
    return min(max(height, 0.0), 1e6) if height is not None else 0.0


# --- the publisher's side -------------------------------------------------------------


def publisher_bitrate(
    wanted_layers: Iterable[int | None],
    layer_bitrates: Sequence[float | None],
    configured_max: float,
    rule: LayerRule | None = None,
) -> int:
    """The REMB for a simulcast publisher (bits/s): what the highest layer any subscriber
    wants needs, cumulatively (the publisher also sends every layer below it), x 1.15.

    Lower layers count at their measured bitrate or their nominal one, whichever is
    larger (a still scene must not starve the layer above); the wanted layer at its
    nominal bitrate (its measured one follows what the publisher was allowed, and would
    push the REMB up on itself).  No subscriber wanting a layer (all paused or none):
    enough for the lowest, which is also the floor, above ``configured_max`` if need be:
    the publisher is never paused entirely."""
    rule = rule or LayerRule()
    nominal = rule.layer_bitrates
    top = 0
    for layer in wanted_layers:
        if isinstance(layer, int) and not isinstance(layer, bool) and layer > top:
            top = min(layer, len(nominal) - 1)
    rates = _layer_rates(layer_bitrates)
    need = float(nominal[top])
    for layer in range(top):
        measured = rates[layer] if layer < len(rates) else None
        need += max(measured or 0.0, nominal[layer])
    need *= rule.publisher_margin
    cap = _rate(configured_max)
    if cap is not None:
        need = min(need, cap)
    return int(min(max(need, nominal[0] * rule.publisher_margin), ABSURD_BITRATE))
