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

A subscriber whose transport negotiated transport-wide congestion control is also
probed (:class:`Prober`): while the layers its tiles would show need more than its
estimate and the estimate has not seen congestion lately, a short cluster of padding
(~30 ms at up to twice the estimate, that no receiver decodes) is sent, and the rate at
which the subscriber's feedback says it arrived raises the delay-based estimate; that is
how a link that carries more proves it before a higher layer's keyframe is sent into it.

The rule and its numbers: docs/media-quality.md.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .bandwidth import (
    DEFAULT_AUDIO_BITRATE,
    DownlinkEstimate,
    EstimateRule,
    LayerChooser,
    LayerRule,
    VideoDemand,
    layer_cap,
    split_bitrate,
)
from .simulcast import SimulcastProducer

if TYPE_CHECKING:
    from .consumer import Consumer
    from .producer import Producer
    from .settings import MediaSettings
    from .transport import Transport


@dataclass(frozen=True)
class ProbeRule:
    """The numbers of :class:`Prober` (docs/media-quality.md says why each)."""

    #: A cluster lasts ``duration`` seconds, a burst of padding every ``spacing``
    #: seconds, at least ``min_packets`` packets in all (libwebrtc's probes: 15 ms and 5
    #: packets at the least).
    duration: float = 0.03
    spacing: float = 0.005
    min_packets: int = 6
    #: A probe asks for at most ``step`` x the estimate, and never more than what is
    #: wanted x ``want_margin``.
    step: float = 2.0
    want_margin: float = 1.25
    #: After a cluster: its result is waited for this long; a result of at least
    #: ``success_share`` of the rate asked lets the next probe go at the next round
    #: (libwebrtc's "further probing"), anything else waits ``backoff`` seconds, as does
    #: every probe after a congestion signal.
    result_wait: float = 1.0
    success_share: float = 0.7
    backoff: float = 3.0


class Prober:
    """Padding probes of one subscribe transport (see the module's docstring)."""

    __slots__ = ("_clusters", "_timer", "in_flight", "next_at", "probes", "rule", "succeeded")

    def __init__(self, rule: ProbeRule) -> None:
        self.rule = rule
        self._clusters = itertools.count(1)
        #: (cluster id, bits/s asked, when sent) of the cluster awaiting its result
        self.in_flight: tuple[int, float, float] | None = None
        self.next_at = 0.0
        self.probes = 0
        self.succeeded = 0
        self._timer: asyncio.TimerHandle | None = None

    def round(self, transport: Transport, available: float, wanted: float, now: float) -> None:
        """One layer round: read the result of the cluster sent, send the next one when
        one is due."""
        reader = transport.transport_feedback
        if reader is None:
            return
        estimate = reader.estimate
        rule = self.rule
        if self.in_flight is not None:
            cluster, rate, sent_at = self.in_flight
            result = estimate.probe_result(cluster)
            if result is None and now - sent_at < rule.result_wait:
                return
            self.in_flight = None
            if result is not None and result >= rule.success_share * rate:
                self.succeeded += 1
                self.next_at = now
            else:
                self.next_at = now + rule.backoff
        overuse = estimate.last_overuse()
        if overuse is not None:
            self.next_at = max(self.next_at, overuse + rule.backoff)
        if now < self.next_at or available >= wanted or self._timer is not None:
            return
        consumer = next((c for c in transport.consumers.values() if c.can_pad), None)
        if consumer is None:
            return
        rate = min(wanted * rule.want_margin, available * rule.step)
        if rate <= available:
            return
        cluster = next(self._clusters)
        self.in_flight = (cluster, rate, now)
        self.probes += 1
        ticks = max(int(rule.duration / rule.spacing), 1)
        per_tick = rate * rule.duration / 8 / ticks
        self._send(consumer, cluster, per_tick, ticks)

    def _send(self, consumer: Consumer, cluster: int, budget: float, ticks: int) -> None:
        """One burst of the cluster now, the rest every ``spacing`` seconds."""
        self._timer = None
        if consumer.closed or ticks <= 0:
            return
        minimum = -(-self.rule.min_packets // max(int(self.rule.duration / self.rule.spacing), 1))
        consumer.send_padding(int(budget), cluster, minimum)
        if ticks > 1:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(
                self.rule.spacing, self._send, consumer, cluster, budget, ticks - 1
            )

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Downlink:
    """What the selection keeps of one subscribe transport between rounds."""

    __slots__ = (
        "bytes_sent",
        "consumer_bytes",
        "estimate",
        "feedbacks",
        "prober",
        "remb_at",
        "report_at",
    )

    def __init__(self, rule: EstimateRule, probe_rule: ProbeRule) -> None:
        self.estimate = DownlinkEstimate(rule)
        self.bytes_sent: int | None = None
        self.consumer_bytes: dict[str, int] = {}
        self.report_at: dict[str, float] = {}
        self.remb_at = 0.0
        self.feedbacks = 0  # transport feedback packets read at the last round
        self.prober = Prober(probe_rule)


class LayerSelection:
    """The layer decisions of one worker (see the module's docstring)."""

    def __init__(self, settings: MediaSettings) -> None:
        self._estimate_rule = EstimateRule.from_settings(settings)
        self._probe_rule = ProbeRule()
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

    def estimate(self, transport: Transport) -> DownlinkEstimate | None:
        """The downlink estimate of a subscribe transport (after its first round)."""
        downlink = self._downlinks.get(transport)
        return downlink.estimate if downlink is not None else None

    def prober(self, transport: Transport) -> Prober | None:
        """The padding probes of a subscribe transport (after its first round)."""
        downlink = self._downlinks.get(transport)
        return downlink.prober if downlink is not None else None

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
                downlink = self._downlinks[transport] = _Downlink(
                    self._estimate_rule, self._probe_rule
                )
            self._feed(transport, downlink, now)
            self._decide(transport, downlink, now, measured, is_speaker)

    def _feed(self, transport: Transport, downlink: _Downlink, now: float) -> None:
        estimate = downlink.estimate
        sent = transport.bytes_sent
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
        reader = transport.transport_feedback
        if reader is not None and reader.feedbacks != downlink.feedbacks:
            downlink.feedbacks = reader.feedbacks
            rtts = [c.rtt for c in transport.consumers.values() if c.rtt is not None]
            if rtts:
                reader.estimate.on_rtt(max(rtts))
            estimate.on_delay_based(reader.estimate.bitrate(), now)
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
            return
        self._probe(transport, downlink, available, reserved, layered, now)
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

    def _probe(
        self,
        transport: Transport,
        downlink: _Downlink,
        available: float,
        reserved: list[float | None],
        layered: list[tuple[Consumer, SimulcastProducer, list[float | None]]],
        now: float,
    ) -> None:
        """Probe the subscriber when the layers its tiles would show (the audio and
        single-layer video reserved as they are) need more than its estimate."""
        if transport.transport_feedback is None:
            return
        nominal = self._layer_rule.layer_bitrates
        wanted = sum(DEFAULT_AUDIO_BITRATE if r is None else r for r in reserved)
        for consumer, producer, bitrates in layered:
            cap = layer_cap(consumer.tile_height, None, len(producer.layers), self._layer_rule)
            arriving = [i for i, rate in enumerate(bitrates[: cap + 1]) if rate is not None]
            top = arriving[-1] if arriving else 0
            rate = bitrates[top] if top < len(bitrates) else None
            wanted += (rate or nominal[min(top, len(nominal) - 1)]) * self._layer_rule.up_margin
        downlink.prober.round(transport, available, wanted, now)

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
