"""Where media workers are and which worker hosts which case.

A case's live rooms (main room and breakouts) are placed together on one worker: moves
between a case's rooms stay inside one process, where they are synchronous (no packet of
a room a participant left reaches them after the move, see ``sfu/router.py``), and a
mediation of a handful of people fits one core many times over.  A case is placed when
its first event arrives, on the least-loaded worker that is not draining, and stays there
while that worker lives; a lost worker's cases are placed again when their participants
come back.

Two directories, one interface: :class:`MemoryDirectory` for one node without Redis (the
node's own supervisor registers the workers it started), :class:`RedisDirectory` for a
cluster (workers register themselves with a heartbeat; placements and drain flags are
shared by every signaling node).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

#: A worker that has not renewed its registration for this long is gone.
HEARTBEAT_SECONDS = 1.0
REGISTRATION_TTL_SECONDS = 4


@dataclass
class WorkerInfo:
    """A registered media worker: where signaling nodes reach it, and its load."""

    id: str
    node: str
    host: str
    port: int
    pid: int = 0
    started: float = field(default_factory=time.time)
    #: ``{"cases", "participants", "consumers", "forwarded_pps", "cpu_seconds"}``
    load: dict[str, float] = field(default_factory=dict)
    #: Whether each compiled media path is in use there (``sfu.rtc.native_paths()``).
    native: dict[str, bool] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> WorkerInfo:
        return cls(**json.loads(text))


#: Forwarded packets/s a consumer is counted for until it is measured: a subscriber's
#: Opus (50/s) and VP8 (~70/s at 500 kbit/s) are two consumers.
PPS_PER_CONSUMER = 60.0
#: Loads closer than this are equal (then participants and cases decide).
PPS_STEP = 250.0


def expected_pps(worker: WorkerInfo) -> float:
    """The packets/s ``worker`` forwards once its current consumers all flow: what it
    measured, or :data:`PPS_PER_CONSUMER` per consumer where that is more."""
    load = worker.load
    return max(load.get("forwarded_pps", 0.0), load.get("consumers", 0.0) * PPS_PER_CONSUMER)


#: How long a case this node placed counts on its worker beside the worker's reported
#: load, from a whole case's weight down to none: by then its participants have joined
#: and their consumers count there.
RECENT_SECONDS = 3.0
#: What a just-placed case counts for when no worker has a case to average: a room of 4
#: publishers (24 consumers).
PPS_PER_NEW_CASE = 24 * PPS_PER_CONSUMER


class RecentPlacements:
    """Cases this node placed in the last :data:`RECENT_SECONDS`, per worker.

    A worker's reported load shows a new case only after its first event arrived there,
    and its weight only as its participants join; cases placed a moment apart (a few
    participants of different cases joining at once) would otherwise all see the same
    loads and go to the same worker."""

    def __init__(self, seconds: float = RECENT_SECONDS) -> None:
        self.seconds = seconds
        #: case id -> (time.monotonic() it was placed, worker id)
        self._placed: dict[str, tuple[float, str]] = {}

    def add(self, case_id: str, worker_id: str, now: float | None = None) -> None:
        """``case_id`` went to ``worker_id`` (again: the time of its first placement stays)."""
        then = self._placed.get(case_id, (time.monotonic() if now is None else now, ""))[0]
        self._placed[case_id] = (then, worker_id)

    def discard(self, case_id: str) -> None:
        self._placed.pop(case_id, None)

    def counts(self, now: float | None = None) -> dict[str, float]:
        """Per worker, its recent cases, each weighing 1 when just placed and less as it
        ages (its participants join and their consumers count in the worker's load)."""
        now = time.monotonic() if now is None else now
        for case_id in [c for c, (t, _w) in self._placed.items() if now - t >= self.seconds]:
            del self._placed[case_id]
        counts: dict[str, float] = {}
        for placed_at, worker_id in self._placed.values():
            weight = 1.0 - (now - placed_at) / self.seconds
            counts[worker_id] = counts.get(worker_id, 0.0) + weight
        return counts


def least_loaded(
    workers: list[WorkerInfo], recent: dict[str, float] | None = None
) -> WorkerInfo | None:
    """The worker with the least expected forwarding (:func:`expected_pps`, plus a mean
    case's for each of its ``recent`` placements, in steps of :data:`PPS_STEP`), then
    with the fewest participants, cases.

    Not the measured packets/s alone: it lags (a window of at least half a second, and a
    new consumer's media starts a second or two after its participant joined).  Cases
    placed in quick succession by it went to whichever worker measured less while its
    new cases were still ramping up: a load test joining 32 rooms of 4 at 10 joins/s left
    22 rooms on one of two workers and 10 on the other.  Consumers count at once; the
    measurement still counts where it is higher (high-bitrate video)."""
    if not workers:
        return None
    recent = recent or {}
    expected = {w.id: expected_pps(w) for w in workers}
    cases = sum(w.load.get("cases", 0.0) for w in workers)
    per_case = max(sum(expected.values()) / cases, PPS_STEP) if cases else PPS_PER_NEW_CASE
    return min(
        workers,
        key=lambda w: (
            round((expected[w.id] + recent.get(w.id, 0) * per_case) / PPS_STEP),
            w.load.get("participants", 0.0),
            w.load.get("cases", 0.0),
            w.id,
        ),
    )


class Directory(Protocol):
    #: Whether :meth:`workers` answers each worker's recent load.
    keeps_load: bool

    async def register(self, worker: WorkerInfo) -> None: ...

    async def unregister(self, worker_id: str) -> None: ...

    async def workers(self) -> list[WorkerInfo]: ...

    async def placement(self, case_id: str) -> str | None: ...

    async def claim(self, case_id: str, worker_id: str, replacing: str | None) -> str:
        """Place ``case_id`` on ``worker_id`` unless another node placed it meanwhile
        (the placement is no longer ``replacing``); answers the worker that hosts it."""
        ...

    async def release(self, case_id: str, worker_id: str) -> None: ...

    async def cases_on(self, worker_id: str) -> list[str]: ...

    async def set_draining(self, node: str, draining: bool) -> None: ...

    async def draining_nodes(self) -> set[str]: ...

    async def close(self) -> None: ...


class MemoryDirectory:
    """The directory of a single node (no Redis): in the signaling process's memory.
    It does not keep the workers' load: placement asks the workers."""

    keeps_load = False

    def __init__(self) -> None:
        self._workers: dict[str, WorkerInfo] = {}
        self._placements: dict[str, str] = {}
        self._draining: set[str] = set()

    async def register(self, worker: WorkerInfo) -> None:
        self._workers[worker.id] = worker

    async def unregister(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)

    async def workers(self) -> list[WorkerInfo]:
        return [replace(w, load={}) for w in self._workers.values()]

    async def placement(self, case_id: str) -> str | None:
        return self._placements.get(case_id)

    async def claim(self, case_id: str, worker_id: str, replacing: str | None) -> str:
        current = self._placements.get(case_id)
        if current != replacing:
            return current  # type: ignore[return-value]  # placed meanwhile
        self._placements[case_id] = worker_id
        return worker_id

    async def release(self, case_id: str, worker_id: str) -> None:
        if self._placements.get(case_id) == worker_id:
            del self._placements[case_id]

    async def cases_on(self, worker_id: str) -> list[str]:
        return sorted(c for c, w in self._placements.items() if w == worker_id)

    async def set_draining(self, node: str, draining: bool) -> None:
        if draining:
            self._draining.add(node)
        else:
            self._draining.discard(node)

    async def draining_nodes(self) -> set[str]:
        return set(self._draining)

    async def close(self) -> None:
        pass


# Compare-and-set of a placement: KEYS[1] the placement key, ARGV[1] the expected worker
# ("" for none), ARGV[2] the new worker.  Answers the worker that hosts the case.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return ARGV[2]
end
return current
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisDirectory:
    """The directory of a cluster, in Redis: ``caucus:worker:<id>`` (JSON, expiring
    unless renewed), ``caucus:placement:<case id>`` (a worker id) and
    ``caucus:drain:<node>``.  Workers renew their registration with their load."""

    keeps_load = True

    def __init__(self, url: str, prefix: str = "caucus") -> None:
        import redis.asyncio as redis

        self._redis: Any = redis.from_url(url)
        self._prefix = prefix
        self._claim = self._redis.register_script(_CLAIM)
        self._release = self._redis.register_script(_RELEASE)

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def register(self, worker: WorkerInfo) -> None:
        await self._redis.set(
            self._key("worker", worker.id), worker.to_json(), ex=REGISTRATION_TTL_SECONDS
        )

    async def unregister(self, worker_id: str) -> None:
        await self._redis.delete(self._key("worker", worker_id))

    async def workers(self) -> list[WorkerInfo]:
        keys = [key async for key in self._redis.scan_iter(match=self._key("worker", "*"))]
        if not keys:
            return []
        values = await self._redis.mget(keys)
        return [WorkerInfo.from_json(v) for v in values if v is not None]

    async def placement(self, case_id: str) -> str | None:
        value = await self._redis.get(self._key("placement", case_id))
        return value.decode() if value is not None else None

    async def claim(self, case_id: str, worker_id: str, replacing: str | None) -> str:
        winner = await self._claim(
            keys=[self._key("placement", case_id)], args=[replacing or "", worker_id]
        )
        return winner.decode() if isinstance(winner, bytes) else str(winner)

    async def release(self, case_id: str, worker_id: str) -> None:
        await self._release(keys=[self._key("placement", case_id)], args=[worker_id])

    async def cases_on(self, worker_id: str) -> list[str]:
        found = []
        prefix = self._key("placement", "")
        async for key in self._redis.scan_iter(match=self._key("placement", "*")):
            value = await self._redis.get(key)
            if value is not None and value.decode() == worker_id:
                found.append(key.decode()[len(prefix) :])
        return sorted(found)

    async def set_draining(self, node: str, draining: bool) -> None:
        if draining:
            await self._redis.set(self._key("drain", node), "1")
        else:
            await self._redis.delete(self._key("drain", node))

    async def draining_nodes(self) -> set[str]:
        prefix = self._key("drain", "")
        return {
            key.decode()[len(prefix) :]
            async for key in self._redis.scan_iter(match=self._key("drain", "*"))
        }

    async def close(self) -> None:
        await self._redis.aclose()


def directory_for(redis_url: str | None) -> Directory:
    return RedisDirectory(redis_url) if redis_url else MemoryDirectory()
