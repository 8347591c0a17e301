"""Which simulcast layer each subscriber is sent: the worker's periodic decision.

Every ``layer_interval`` seconds, for each subscribe transport: its
:class:`~sfu.bandwidth.DownlinkEstimate` is fed what the SFU saw since the last round (the
bytes sent, each new receiver report's loss weighted by the bytes of its stream, each new
REMB), the estimate is split among the tracks the subscriber receives
(:func:`~sfu.bandwidth.split_bitrate`: audio and single-layer video reserved first, the
active speaker's camera before the others, taller tiles before smaller), and each
simulcast consumer's :class:`~sfu.bandwidth.LayerChooser` picks its layer from its share,
which :meth:`Consumer.select_layer` applies (on the layer's next keyframe).  Each
consumer's ``wanted_layer`` (what its subscriber's estimate and tile would carry) tells
the publisher what to send (:meth:`SimulcastProducer.estimated_bitrate`).

A subscriber below the highest layer its tile allows is **probed** first: the SFU sends it
padding (:meth:`Consumer.send_padding`, on the RTX stream) so that what it is sent rises,
step by step, to what that layer would take.  Its estimate may only grow a margin above
what was sent, so a layer is tried only once the link has carried its bitrate; a probe
that the link cannot carry shows as a REMB drop or loss, stops (at once on a REMB drop,
:meth:`LayerSelection.pad`) and is tried again after a back-off.  Padding yields to media:
it fills a token bucket at the probe's rate only with what media did not take, so a
keyframe is never queued behind padding, and audio never waits behind more than the link
was shown to carry.

The rule and its numbers: docs/media-quality.md.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from .bandwidth import (
    DownlinkEstimate,
    EstimateRule,
    LayerChooser,
    LayerRule,
    VideoDemand,
    layer_cap,
    split_bitrate,
)
from .consumer import PADDING_PACKET
from .simulcast import SimulcastProducer

if TYPE_CHECKING:
    from .consumer import Consumer
    from .producer import Producer
    from .settings import MediaSettings
    from .transport import Transport


#: A probe that failed is tried again after this many seconds x 2^(failures - 1), at most
#: :data:`PROBE_MAX_WAIT`: a thin link is probed every few seconds (one probe costs at
#: most a few tens of milliseconds of queue), a recovered one is found within seconds.
PROBE_WAIT = 1.5
PROBE_MAX_WAIT = 3.0
#: The padding's token bucket holds at most this many seconds of the probe's rate (so
#: that padding never comes in a burst) and owes at most ``PROBE_DEBT`` (media above the
#: probe's rate is not paid back with a silence longer than that).
PROBE_BURST = 0.02
PROBE_DEBT = 0.25
#: The probe aims this much above what the next layers need (the chooser's up margin
#: included), so that the estimate it proves carries them with room.
PROBE_HEADROOM = 1.05


class _Downlink:
    """What the selection keeps of one subscribe transport between rounds."""

    __slots__ = (
        "bytes_sent",
        "consumer_bytes",
        "estimate",
        "media_rate",
        "padding_bytes",
        "probe_failures",
        "probe_retry_at",
        "probe_since",
        "remb_at",
        "report_at",
        "round_at",
    )

    def __init__(self, rule: EstimateRule) -> None:
        self.estimate = DownlinkEstimate(rule)
        self.bytes_sent: int | None = None
        self.consumer_bytes: dict[str, int] = {}
        self.report_at: dict[str, float] = {}
        self.remb_at = 0.0
        self.padding_bytes = 0
        self.media_rate = 0.0  # bits/s sent without the padding, over the last round
        self.round_at: float | None = None
        self.probe_since: float | None = None  # padding on since then
        self.probe_failures = 0
        self.probe_retry_at = -math.inf


class _Padding:
    """The probe of one subscriber under way: padding sent through ``consumer`` so that
    the transport is sent ``rate`` bits/s in all."""

    __slots__ = ("at", "budget", "consumer", "rate", "remb", "sent_seen", "stopped")

    def __init__(self, consumer: Consumer, rate: float, sent: int, now: float) -> None:
        self.consumer = consumer
        self.rate = rate
        self.remb = consumer.remb
        self.budget = 0.0
        self.sent_seen = sent
        self.at = now
        self.stopped = False  # by a REMB drop: the round that follows counts a failure


class LayerSelection:
    """The layer decisions of one worker (see the module's docstring)."""

    def __init__(self, settings: MediaSettings) -> None:
        self._estimate_rule = EstimateRule.from_settings(settings)
        self._layer_rule = LayerRule.from_settings(settings)
        self._downlinks: weakref.WeakKeyDictionary[Transport, _Downlink] = (
            weakref.WeakKeyDictionary()
        )
        self._choosers: weakref.WeakKeyDictionary[Consumer, LayerChooser] = (
            weakref.WeakKeyDictionary()
        )
        # per single-layer producer: (bytes at the last round, when), for its bitrate
        self._single: weakref.WeakKeyDictionary[Producer, tuple[int, float, float]] = (
            weakref.WeakKeyDictionary()
        )
        self._padding: weakref.WeakKeyDictionary[Transport, _Padding] = weakref.WeakKeyDictionary()
        self._remb_drop = self._estimate_rule.remb_drop
        self._probes = settings.probe_interval > 0

    @property
    def probing(self) -> bool:
        """Whether any subscriber is being probed (:meth:`pad` has work)."""
        return any(not p.stopped for p in self._padding.values())

    def probe_rate(self, transport: Transport) -> float | None:
        """The rate (bits/s) ``transport`` is being padded up to, or ``None``."""
        padding = self._padding.get(transport)
        return padding.rate if padding is not None and not padding.stopped else None

    def pad(self, now: float) -> None:
        """Send each probed subscriber the padding its probe's token bucket holds (the
        worker calls this every few milliseconds while :attr:`probing`).  A REMB lower
        than the one the probe started with stops the probe at once."""
        for transport, padding in list(self._padding.items()):
            if padding.stopped:
                continue
            consumer = padding.consumer
            if transport.closed or not consumer.can_pad:
                del self._padding[transport]
                continue
            remb = consumer.remb
            if remb is not None:
                if padding.remb is not None and remb < padding.remb * (1 - self._remb_drop):
                    padding.stopped = True
                    continue
                padding.remb = max(remb, padding.remb or 0)
            sent = transport.bytes_sent
            elapsed = min(max(now - padding.at, 0.0), 1.0)
            padding.at = now
            budget = padding.budget + padding.rate * elapsed / 8 - (sent - padding.sent_seen)
            budget = max(budget, -padding.rate * PROBE_DEBT / 8)
            budget = min(budget, padding.rate * PROBE_BURST / 8 + PADDING_PACKET)
            if budget >= PADDING_PACKET:
                budget -= consumer.send_padding(int(budget))
            padding.budget = budget
            padding.sent_seen = transport.bytes_sent

    def estimate(self, transport: Transport) -> DownlinkEstimate | None:
        """The downlink estimate of a subscribe transport (after its first round)."""
        downlink = self._downlinks.get(transport)
        return downlink.estimate if downlink is not None else None

    def run(
        self,
        transports: list[Transport],
        now: float,
        is_speaker: Callable[[str], bool] = lambda _participant: False,
    ) -> None:
        """One round over every subscribe ``transports`` at ``now`` (``time.monotonic()``);
        ``is_speaker(participant_id)``: whether that publisher is its room's active
        speaker (its camera is given bandwidth first)."""
        measured: dict[int, list[float | None]] = {}
        for transport in transports:
            if transport.closed or transport.direction != "subscribe":
                continue
            downlink = self._downlinks.get(transport)
            if downlink is None:
                downlink = self._downlinks[transport] = _Downlink(self._estimate_rule)
            self._feed(transport, downlink, now)
            self._decide(transport, downlink, now, measured, is_speaker)

    def _feed(self, transport: Transport, downlink: _Downlink, now: float) -> None:
        estimate = downlink.estimate
        estimate.proven = self._probes and any(c.can_pad for c in transport.consumers.values())
        sent = transport.bytes_sent
        padding = sum(c.padding_bytes for c in transport.consumers.values())
        if downlink.bytes_sent is not None and downlink.round_at is not None:
            elapsed = now - downlink.round_at
            if elapsed > 0:
                media = (sent - downlink.bytes_sent) - (padding - downlink.padding_bytes)
                downlink.media_rate = max(media, 0) * 8 / elapsed
        downlink.padding_bytes = padding
        downlink.round_at = now
        if downlink.bytes_sent is not None:
            estimate.on_sent(max(sent - downlink.bytes_sent, 0), now)
        else:
            estimate.on_sent(0, now)
        downlink.bytes_sent = sent
        newest_remb = downlink.remb_at
        remb = None
        seen = set()
        for consumer in transport.consumers.values():
            seen.add(consumer.id)
            total = consumer.bytes
            weight = total - downlink.consumer_bytes.get(consumer.id, total)
            downlink.consumer_bytes[consumer.id] = total
            if consumer.report_at > downlink.report_at.get(consumer.id, 0.0):
                downlink.report_at[consumer.id] = consumer.report_at
                estimate.on_loss(consumer.id, consumer.fraction_lost, now, max(weight, 1))
            if consumer.remb is not None and consumer.remb_at > newest_remb:
                newest_remb, remb = consumer.remb_at, consumer.remb
        if remb is not None:
            downlink.remb_at = newest_remb
            estimate.on_remb(remb, now)
        for gone in [k for k in downlink.consumer_bytes if k not in seen]:
            del downlink.consumer_bytes[gone]
            downlink.report_at.pop(gone, None)
            estimate.forget(gone)

    def _decide(
        self,
        transport: Transport,
        downlink: _Downlink,
        now: float,
        measured: dict[int, list[float | None]],
        is_speaker: Callable[[str], bool],
    ) -> None:
        estimate = downlink.estimate
        available = estimate.available(now)
        reserved: list[float | None] = []
        demands: dict[Consumer, VideoDemand] = {}
        layered: list[tuple[Consumer, SimulcastProducer, list[float | None]]] = []
        for consumer in transport.consumers.values():
            producer = consumer.producer
            if consumer.closed or producer is None or producer.participant_id == "":
                continue
            if not isinstance(producer, SimulcastProducer):
                reserved.append(
                    self._single_bitrate(producer, now) if producer.kind == "video" else None
                )
                continue
            bitrates = measured.get(id(producer))
            if bitrates is None:
                rates = producer.measure()
                active = producer.active_layers()
                bitrates = measured[id(producer)] = [
                    rate if on and rate > 0 else None
                    for rate, on in zip(rates, active, strict=True)
                ]
            chooser = self._choosers.get(consumer)
            if chooser is None:
                chooser = self._choosers[consumer] = LayerChooser(self._layer_rule)
            demands[consumer] = chooser.demand(
                bitrates,
                tile_height=consumer.tile_height,
                speaker=is_speaker(producer.participant_id),
            )
            layered.append((consumer, producer, bitrates))
        if not layered:
            self._padding.pop(transport, None)
            return
        shares = split_bitrate(available, reserved, demands)
        loss = estimate.loss(now)
        nominal = self._layer_rule.layer_bitrates
        for consumer, producer, bitrates in layered:
            chooser = self._choosers[consumer]
            target = chooser.choose(
                bitrates,
                shares.get(consumer, 0.0),
                now,
                tile_height=consumer.tile_height,
                loss=loss,
            )
            cap = layer_cap(consumer.tile_height, None, len(producer.layers), self._layer_rule)
            consumer.wanted_layer = max(
                (i for i in range(cap + 1) if nominal[min(i, len(nominal) - 1)] <= available),
                default=0,
            )
            if not consumer.started:
                continue
            if target is not None:
                if target != consumer.layer or consumer.paused_for_bandwidth:
                    consumer.select_layer(target)
                elif consumer.switching_to is not None:
                    consumer.select_layer(target)  # a switch no longer wanted: stay
            elif chooser.paused and not consumer.paused_for_bandwidth:
                consumer.select_layer(None)
        self._probe(transport, downlink, layered, available, loss, now)

    def _probe(
        self,
        transport: Transport,
        downlink: _Downlink,
        layered: list[tuple[Consumer, SimulcastProducer, list[float | None]]],
        available: float,
        loss: float,
        now: float,
    ) -> None:
        """Start, go on with or end the probe of one subscriber (the module's docstring)."""
        if not downlink.estimate.proven:
            downlink.probe_since = None
            self._padding.pop(transport, None)
            return
        padding = self._padding.get(transport)
        if downlink.probe_since is not None:
            failed = (padding is not None and padding.stopped) or (
                downlink.estimate.cut_at >= downlink.probe_since
            )
            if failed:
                downlink.probe_failures += 1
                wait = PROBE_WAIT * 2 ** min(downlink.probe_failures - 1, 30)
                downlink.probe_retry_at = now + min(wait, PROBE_MAX_WAIT)
                downlink.probe_since = None
                self._padding.pop(transport, None)
                return
        rule = self._layer_rule
        target = 0.0
        chosen: Consumer | None = None
        if loss < rule.up_loss and now >= downlink.probe_retry_at:
            for consumer, _producer, bitrates in layered:
                chooser = self._choosers[consumer]
                current = chooser.layer
                if not consumer.can_pad or consumer.switching_to is not None:
                    continue
                cap = layer_cap(consumer.tile_height, None, len(bitrates), rule)
                above = [
                    i
                    for i, rate in enumerate(bitrates)
                    if rate is not None and i <= cap and (current is None or i > current)
                ]
                if not above or now < chooser.retry_at(above[0]):
                    continue
                rate_now = (bitrates[current] or 0.0) if current is not None else 0.0
                top = bitrates[above[-1]] or 0.0
                target = downlink.media_rate - rate_now + top * rule.up_margin * PROBE_HEADROOM
                chosen = consumer
                break
        if chosen is None or target <= downlink.media_rate:
            if downlink.probe_since is not None and chosen is None:
                downlink.probe_failures = 0  # nothing left to probe for: it went up
            downlink.probe_since = None
            self._padding.pop(transport, None)
            return
        rate = min(float(available), target)
        if padding is None or padding.consumer is not chosen:
            padding = self._padding[transport] = _Padding(chosen, rate, transport.bytes_sent, now)
        padding.rate = rate
        if downlink.probe_since is None:
            downlink.probe_since = now

    def _single_bitrate(self, producer: Producer, now: float) -> float | None:
        """A single-layer video producer's incoming bitrate (bits/s) since the last round
        that measured it (for the share it is reserved)."""
        total = producer.bytes
        last = self._single.get(producer)
        if last is None:
            self._single[producer] = (total, now, 0.0)
            return None
        bytes_then, at, rate = last
        if now - at >= 0.5:
            rate = (total - bytes_then) * 8 / (now - at)
            self._single[producer] = (total, now, rate)
        return rate or None
