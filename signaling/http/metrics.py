"""``GET /metrics``: the node's figures in the Prometheus text format.

The SFU's counters are read from the media worker(s) when the route is scraped (a custom
collector, no per-packet bookkeeping here).  Counters of transports that closed since the
previous scrape keep the values seen at that scrape, so every ``_total`` only grows;
packets a transport handled between the last scrape and its closing are not counted.

Access: a ``Authorization: Bearer <metrics_token>`` header matching the ``metrics_token``
setting (for a Prometheus server), or the session of a signed-in admin.  Anyone else is
refused, so the route is declared public and checks the caller itself.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector
from prometheus_client import generate_latest as generate_text
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rooms.accounts.sessions import STAGE_ACTIVE
from rooms.errors import Forbidden, Unauthenticated
from signaling.http.access import SESSION, USER, access
from signaling.http.state import MEDIA_STATS
from signaling.refusals import REFUSALS
from signaling.services import SERVICES

routes = web.RouteTableDef()

#: (metric name, help, key in a consumer's stats) summed over every consumer.
CONSUMER_COUNTERS = (
    ("caucus_media_forwarded_packets", "RTP packets forwarded to subscribers.", "packets"),
    ("caucus_media_forwarded_bytes", "RTP bytes forwarded to subscribers.", "bytes"),
    ("caucus_media_nacks_received", "NACK messages received from subscribers.", "nacks"),
    ("caucus_media_plis_received", "PLI messages received from subscribers.", "plis"),
    ("caucus_media_firs_received", "FIR messages received from subscribers.", "firs"),
    ("caucus_media_retransmitted_packets", "Packets retransmitted after a NACK.", "rtx"),
)
PRODUCER_COUNTERS = (
    ("caucus_media_received_packets", "RTP packets received from publishers.", "packets"),
    ("caucus_media_received_bytes", "RTP bytes received from publishers.", "bytes"),
    ("caucus_media_nacks_sent", "NACK messages sent to publishers.", "nacks"),
    ("caucus_media_keyframe_requests_sent", "PLI messages sent to publishers.", "plis"),
)
TRANSPORT_COUNTERS = (
    (
        "caucus_media_dropped_packets",
        "Packets the SFU dropped because a socket buffer was full.",
        "dropped",
    ),
)


def _consumer_values(stats: dict) -> dict[str, int]:
    return {
        "packets": stats["packets_forwarded"],
        "bytes": stats["bytes_forwarded"],
        "nacks": stats["nacks_received"],
        "plis": stats["plis_received"],
        "firs": stats["firs_received"],
        "rtx": stats["retransmitted"],
    }


def _producer_values(stats: dict) -> dict[str, int]:
    return {
        "packets": stats["packets_received"],
        "bytes": stats["bytes_received"],
        "nacks": stats["nacks_sent"],
        "plis": stats["keyframe_requests_sent"],
    }


@dataclass
class _Totals:
    """Monotonic sums over objects that come and go: live values plus retired ones."""

    retired: dict[str, int] = field(default_factory=dict)
    last: dict[str, dict[str, int]] = field(default_factory=dict)

    def update(self, current: dict[str, dict[str, int]]) -> dict[str, int]:
        for gone in self.last.keys() - current.keys():
            for key, value in self.last[gone].items():
                self.retired[key] = self.retired.get(key, 0) + value
        self.last = current
        totals = dict(self.retired)
        for values in current.values():
            for key, value in values.items():
                totals[key] = totals.get(key, 0) + value
        return totals


class MediaCollector(Collector):
    """Turns the media statistics read at scrape time (:attr:`snapshot`) into metrics."""

    def __init__(self) -> None:
        #: The SFU's statistics (``Worker.stats()`` plus ``participants``; in a node with
        #: worker processes, all workers' merged, plus ``workers``), set before a scrape.
        self.snapshot: dict[str, Any] = {"routers": [], "transports": [], "participants": []}
        self._consumers = _Totals()
        self._producers = _Totals()
        self._transports = _Totals()
        self._workers = _Totals()

    def collect(self) -> Iterator[Metric]:
        stats = self.snapshot
        transports = stats["transports"]
        consumers: dict[str, dict[str, int]] = {}
        producers: dict[str, dict[str, int]] = {}
        per_transport: dict[str, dict[str, int]] = {}
        open_consumers = {"audio": 0, "video": 0}
        open_producers = {"audio": 0, "video": 0}
        directions = {"publish": 0, "subscribe": 0}
        # closed transports' refusals are kept by the worker: live + closed is monotonic
        refused_totals: dict[str, int] = dict(stats.get("refused_closed", {}))
        by_participant: dict[str, dict[str, int]] = {}
        for transport in transports:
            directions[transport["direction"]] = directions.get(transport["direction"], 0) + 1
            values = transport.get("refusals", {})
            for reason, value in values.items():
                refused_totals[reason] = refused_totals.get(reason, 0) + value
            mine = by_participant.setdefault(transport["participant_id"], {})
            for reason, value in values.items():
                mine[reason] = mine.get(reason, 0) + value
            per_transport[transport["id"]] = {"dropped": transport.get("packets_dropped", 0)}
            for consumer in transport["consumers"]:
                consumers[consumer["id"]] = _consumer_values(consumer)
                open_consumers[consumer["kind"]] = open_consumers.get(consumer["kind"], 0) + 1
            for producer in transport["producers"]:
                producers[producer["id"]] = _producer_values(producer)
                open_producers[producer["kind"]] = open_producers.get(producer["kind"], 0) + 1

        workers = stats.get("workers")
        if workers is not None:
            yield _gauge("caucus_media_workers", "Media worker processes running.", len(workers))
            cpu = self._workers.update({w["id"]: {"cpu": w["cpu_seconds"]} for w in workers})
            counter = CounterMetricFamily(
                "caucus_media_workers_cpu_seconds",
                "CPU seconds (user + system) spent by media worker processes.",
            )
            counter.add_metric([], cpu.get("cpu", 0.0))
            yield counter
            tasks = GaugeMetricFamily(
                "caucus_media_worker_asyncio_tasks",
                "Asyncio tasks of each media worker process's event loop.",
                labels=["worker", "pid"],
            )
            for worker in workers:
                tasks.add_metric([worker["id"], str(worker["pid"])], worker.get("tasks", 0.0))
            yield tasks
        native = GaugeMetricFamily(
            "caucus_media_native_path",
            "Whether each media worker forwards and receives on the compiled path (1) or "
            "on aiortc's Python path (0), per path (sfu.rtc.native_paths).",
            labels=["worker", "path"],
        )
        for worker_id, paths in sorted(stats.get("native_paths", {}).items()):
            for path, used in sorted(paths.items()):
                native.add_metric([worker_id, path], 1.0 if used else 0.0)
        yield native
        yield _gauge(  # collected by the /metrics handler, in the event loop
            "caucus_asyncio_tasks",
            "Asyncio tasks of this process's event loop.",
            len(asyncio.all_tasks()),
        )
        yield _gauge(
            "caucus_media_participants",
            "Participants in live rooms on this node.",
            len(stats["participants"]),
        )
        yield _gauge("caucus_media_rooms", "Live rooms (SFU routers).", len(stats["routers"]))
        yield _labelled(
            "caucus_media_transports", "Open peer connections.", "direction", directions
        )
        yield _labelled(
            "caucus_media_producers", "Published tracks (producers).", "kind", open_producers
        )
        yield _labelled(
            "caucus_media_consumers",
            "Forwarded tracks: (subscriber, producer) pairs.",
            "kind",
            open_consumers,
        )
        refused = CounterMetricFamily(
            "caucus_media_ingress_refused",
            "Packets, feedback items and requests the SFU refused from peers, by reason.",
            labels=["reason"],
        )
        for reason, value in sorted(refused_totals.items()):
            refused.add_metric([reason], value)
        yield refused
        offenders = GaugeMetricFamily(
            "caucus_media_participant_refused",
            "What the SFU refused from each participant now in a live room, by reason "
            "(only non-zero values).",
            labels=["participant", "reason"],
        )
        for participant, values in sorted(by_participant.items()):
            for reason, value in values.items():
                if value:
                    offenders.add_metric([participant, reason], value)
        yield offenders
        for totals, table, current in (
            (self._consumers, CONSUMER_COUNTERS, consumers),
            (self._producers, PRODUCER_COUNTERS, producers),
            (self._transports, TRANSPORT_COUNTERS, per_transport),
        ):
            sums = totals.update(current)
            for name, documentation, key in table:
                counter = CounterMetricFamily(name, documentation)
                counter.add_metric([], sums.get(key, 0))
                yield counter


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _labelled(name: str, documentation: str, label: str, values: dict[str, int]):
    gauge = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        gauge.add_metric([key], value)
    return gauge


METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
MEDIA_COLLECTOR = web.AppKey("media_collector", MediaCollector)


class RefusalCollector(Collector):
    """``caucus_refusals_total{limit}``: requests refused by a limit (signaling.refusals)."""

    def collect(self) -> Iterator[Metric]:
        counter = CounterMetricFamily(
            "caucus_refusals", "Requests refused by a limit, per limit.", labels=["limit"]
        )
        for limit, value in sorted(REFUSALS.snapshot().items()):
            counter.add_metric([limit], value)
        yield counter


def install(app: web.Application) -> None:
    """Add ``GET /metrics`` to ``app``, reading the media statistics of ``MEDIA_STATS``."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    registry.register(RefusalCollector())
    collector = MediaCollector()
    registry.register(collector)
    app[METRICS_REGISTRY] = registry
    app[MEDIA_COLLECTOR] = collector
    app.add_routes(routes)


def _bearer_matches(request: web.Request, token: str | None) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if not token or scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


@routes.get("/metrics")
@access("public")  # a bearer token or an admin session, checked below
async def metrics(request: web.Request) -> web.Response:
    token = request.app[SERVICES].settings.metrics_token
    if not _bearer_matches(request, token):
        session, user = request[SESSION], request[USER]
        if session is None or user is None:
            raise Unauthenticated(
                "Send the metrics token as a bearer token, or sign in as an admin.",
                code="unauthenticated",
            )
        if session.stage != STAGE_ACTIVE or user.role != "admin":
            raise Forbidden("Only an admin or the metrics token may read the metrics.")
    request.app[MEDIA_COLLECTOR].snapshot = await request.app[MEDIA_STATS]()
    body = generate_text(request.app[METRICS_REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
