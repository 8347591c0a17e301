"""How well each participant's connection carries the call, from what the SFU already
sees: its own reception counters and the RTCP receiver reports of subscribers.  Nothing
is decoded and no packet is looked at here.

For one participant (:meth:`QualityMeter.participant_quality`):

* **upstream loss** (their link to the SFU), the larger of

  - the share of their video the SFU had to ask again for since the previous sample: a
    producer NACKs every gap in its sequence numbers once (``nacks_sent``), so gaps per
    packet received is the loss on the way in (audio is not NACKed: it has no such count);
  - the loss *every* subscriber of one of their tracks reports: the least fraction lost
    among two or more subscribers' receiver reports.  What all of them miss was lost
    before the SFU (with one subscriber, loss cannot be placed and counts downstream);

* **downstream loss** (the SFU's link to them): the fraction lost of each track they
  receive (their receiver reports), less the part every subscriber of that track misses
  (above), averaged over the tracks;
* ``rtt_ms``: the median round trip of their subscribe connection (receiver reports'
  LSR/DLSR answering the SFU's sender reports);
* ``lowest_layer`` / ``highest_layer``: the simulcast layers their video consumers
  forward (``None``: single-layer video, or none);
* ``paused_for_bandwidth``: some video is withheld from them because their link cannot
  carry its lowest layer (``paused_producers``: which);
* ``level``: :func:`quality_level` of the larger loss, the round trip and the pause, by
  :class:`QualityRule`'s thresholds; ``None`` while nothing is measured.

A subscriber's figures count once it has answered a sender report (its consumer knows a
round trip): before that a consumer's fraction lost is only its initial zero.
"""

from __future__ import annotations

import statistics
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .consumer import Consumer
    from .simulcast import Track
    from .worker import Worker

GOOD = "good"
FAIR = "fair"
POOR = "poor"


@dataclass(frozen=True)
class QualityRule:
    """The thresholds of :func:`quality_level`.  *Good*: loss below ``fair_loss`` and
    round trip below ``fair_rtt_ms``; *poor*: loss at or above ``poor_loss``, round trip
    at or above ``poor_rtt_ms``, or video withheld for bandwidth; *fair* in between.
    (Speech stays intelligible to a few per cent of loss with Opus's concealment; video
    freezes visibly from several per cent; past half a second of round trip people talk
    over each other.)"""

    fair_loss: float = 0.02
    poor_loss: float = 0.08
    fair_rtt_ms: float = 250.0
    poor_rtt_ms: float = 500.0
    #: Packets a producer must have received since the previous sample for its NACK count
    #: to say anything (fewer: the sample waits, the window grows).
    min_packets: int = 20


def quality_level(
    loss: float | None,
    rtt_ms: float | None,
    paused_for_bandwidth: bool = False,
    rule: QualityRule = QualityRule(),
) -> str | None:
    """``"good"``, ``"fair"`` or ``"poor"`` by ``rule`` (see :class:`QualityRule`), from
    what is known; ``None`` when nothing is (no loss, no round trip, nothing paused)."""
    if paused_for_bandwidth:
        return POOR
    if loss is None and rtt_ms is None:
        return None
    loss = loss or 0.0
    rtt = rtt_ms or 0.0
    if loss >= rule.poor_loss or rtt >= rule.poor_rtt_ms:
        return POOR
    if loss >= rule.fair_loss or rtt >= rule.fair_rtt_ms:
        return FAIR
    return GOOD


class ReceptionWindow:
    """The SFU's own reception counters of producers between samples: per producer, the
    packets received and NACKs sent at its previous sample (held weakly)."""

    def __init__(self, rule: QualityRule = QualityRule()) -> None:
        self.rule = rule
        self._previous: weakref.WeakKeyDictionary[Track, tuple[int, int]] = (
            weakref.WeakKeyDictionary()
        )

    def loss(self, producer: Track) -> float | None:
        """The share of ``producer``'s packets missing on the way in since its previous
        sample (gaps NACKed per packet received), or ``None`` for a producer that is not
        NACKed (audio) or received too few packets since."""
        if producer.kind != "video":
            return None
        packets, nacks = producer.packets, producer.nacks_sent
        before_packets, before_nacks = self._previous.get(producer, (0, 0))
        received = packets - before_packets
        if received < self.rule.min_packets:
            return None
        self._previous[producer] = (packets, nacks)
        return min(1.0, (nacks - before_nacks) / received)


def _reported(consumer: Consumer) -> bool:
    """The subscriber answered a sender report of this consumer: its fraction lost is
    its own, not the initial zero."""
    return consumer.rtt is not None


def _forwarding(worker: Worker, consumer: Consumer) -> bool:
    return not consumer.closed and consumer.started and not worker.is_parked(consumer)


class QualityMeter:
    """Samples the connection quality of a worker's participants (see the module); owns
    the reception windows between samples."""

    def __init__(self, worker: Worker, rule: QualityRule | None = None) -> None:
        self.worker = worker
        self.rule = rule or QualityRule()
        self.window = ReceptionWindow(self.rule)
        #: The upstream loss of each producer at its latest sample (kept between samples
        #: that receive too few packets to say).
        self._upstream: weakref.WeakKeyDictionary[Track, float] = weakref.WeakKeyDictionary()
        #: Each track's common loss during one :meth:`sample` (looked at once per track).
        self._common: dict[Track, float | None] | None = None

    def sample(self, participant_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """:meth:`participant_quality` of each of ``participant_ids`` (a room, say),
        reading each track's subscribers once for all of them."""
        self._common = {}
        try:
            return {pid: self.participant_quality(pid) for pid in participant_ids}
        finally:
            self._common = None

    def common_loss(self, producer: Track) -> float | None:
        """The least fraction lost (0-1) among the receiver reports of ``producer``'s
        subscribers, when two or more reported: loss before the SFU."""
        cache = self._common
        if cache is not None and producer in cache:
            return cache[producer]
        losses = [
            c.fraction_lost / 256
            for c in producer.consumers
            if _forwarding(self.worker, c) and _reported(c)
        ]
        common = min(losses) if len(losses) >= 2 else None
        if cache is not None:
            cache[producer] = common
        return common

    def upstream_loss(self, producer: Track) -> float | None:
        """``producer``'s loss on the way to the SFU (see the module), or ``None``."""
        measured = self.window.loss(producer)
        if measured is not None:
            self._upstream[producer] = measured
        nacked = self._upstream.get(producer)
        common = self.common_loss(producer)
        known = [x for x in (nacked, common) if x is not None]
        return max(known) if known else None

    def participant_quality(self, participant_id: str) -> dict[str, Any]:
        """The quality of ``participant_id``'s connection now (see the module).  Call it
        about once per sampling interval per participant: each call closes the NACK
        window of their producers."""
        producers: list[Track] = []
        consumers: list[Consumer] = []
        for transport in self.worker.transports_of(participant_id):
            if transport.closed:
                continue
            producers.extend(p for p in transport.producers.values() if not p.closed)
            consumers.extend(c for c in transport.consumers.values() if _forwarding(self.worker, c))

        upstream_each = [u for u in (self.upstream_loss(p) for p in producers) if u is not None]
        upstream = max(upstream_each) if upstream_each else None

        downstream_each: list[float] = []
        rtts: list[float] = []
        for consumer in consumers:
            if not _reported(consumer):
                continue
            assert consumer.rtt is not None
            rtts.append(consumer.rtt * 1000)
            producer = consumer.producer
            common = self.common_loss(producer) if producer is not None else None
            downstream_each.append(max(0.0, consumer.fraction_lost / 256 - (common or 0.0)))
        downstream = statistics.fmean(downstream_each) if downstream_each else None

        video = [c for c in consumers if c.kind == "video"]
        layers = [c.layer for c in video if c.layer is not None]
        paused = [c.producer_id for c in video if c.paused_for_bandwidth and c.producer_id]
        known_loss = [x for x in (upstream, downstream) if x is not None]
        loss = max(known_loss) if known_loss else None
        rtt_ms = statistics.median(rtts) if rtts else None
        return {
            "participant_id": participant_id,
            "upstream_loss": upstream,
            "downstream_loss": downstream,
            "loss": loss,
            "rtt_ms": rtt_ms,
            "lowest_layer": min(layers) if layers else None,
            "highest_layer": max(layers) if layers else None,
            "paused_for_bandwidth": bool(paused),
            "paused_producers": paused,
            "level": quality_level(loss, rtt_ms, bool(paused), self.rule),
        }


def participant_quality(worker: Worker, participant_id: str) -> dict[str, Any]:
    """One participant's quality from a fresh :class:`QualityMeter` (its NACK window is
    everything received so far); a caller sampling repeatedly keeps one meter."""
    return QualityMeter(worker).participant_quality(participant_id)


__all__ = [
    "FAIR",
    "GOOD",
    "POOR",
    "QualityMeter",
    "QualityRule",
    "ReceptionWindow",
    "participant_quality",
    "quality_level",
]
