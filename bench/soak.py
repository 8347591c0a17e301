"""Soak benchmark: a real server under continuous joins, moves and leaves, watched for leaks.

Starts ``caucus serve`` (SQLite, self-signed certificate, temporary data directory; the
default media workers, one per core, or ``--workers K``, 0 for media in the server
process), creates ``--cases`` cases, each with one neutral and ``--participants`` parties,
and runs them in rounds of :data:`ROUND_SECONDS` for ``--minutes``.  In a round everyone
joins (signs in once, then reuses the session), publishes audio and video (a pre-encoded,
looped Opus and VP8 clip, as ``caucus loadtest`` does) and receives the others of its
room; the neutral opens two breakout rooms and, about once a second per case, either
moves a party to another room or has one leave (every connection closed) and join again
1-3 s later.  At the end of a round the neutral closes the breakout rooms and everyone
leaves: a *quiet point*, once the server reports no participant and no transport and the
figures have settled (back within the bounds of the first quiet point, or
:data:`LINGER_SECONDS` after the last leave: engine.io keeps a closed socket's ping task
until its next wake-up, up to 25 s).  A run has two rounds at least, so ``--minutes 1``
takes about 80 s.

Every :data:`SAMPLE_SECONDS`, and at each quiet point, it reads for each server process
(the signaling process and each media worker, found among its child processes) and for
this process (the load): resident memory, asyncio tasks (``/metrics``:
``caucus_asyncio_tasks``, ``caucus_media_worker_asyncio_tasks``; this process's own loop),
open file descriptors (``/proc/<pid>/fd``) and UDP sockets (the process's socket inodes
found in ``/proc/<pid>/net/udp`` and ``udp6``).  Progress goes to standard error; with
``--json`` one JSON document goes to standard output::

    {"config", "tree", "machine", "bounds", "counts", "processes": {"signaling": {"pid",
     "rss_mb": {"start", "end", "min", "max", "slope_per_min", "quiet": [...],
     "quiet_slope_per_min", ...}, "tasks", "fds", "udp_sockets", "threads"}, "worker-1",
     ..., "load"}, "quiet_points", "samples", "server_log", "violations", "passed"}

``start``/``end``/``min``/``max``/``slope_per_min`` (least squares, per minute) cover the
periodic samples after the warm-up (:data:`WARMUP_SECONDS`); ``quiet`` holds the values at
the quiet points, the first of which (after the first round) is the baseline.

The bounds (exit status 1 when one is exceeded, each listed in ``violations``):

* tasks, file descriptors and UDP sockets of every process at the last quiet point are
  within :data:`RETURN_BOUNDS` of the first: what a session opens, it closes.  Quiet
  points, not samples taken mid-round: how many tasks or sockets a process holds while
  people come and go depends on the moment.
* resident memory grows by less than :data:`RSS_SLOPE_BOUND_MB_PER_MIN` per minute
  (``quiet_slope_per_min``: least squares over the quiet points after
  :data:`RSS_WARMUP_SECONDS`, when they span :data:`RSS_SLOPE_MIN_MINUTES` at least; a
  shorter run only checks the growth between its first and last quiet points against
  :data:`RSS_SHORT_RUN_GROWTH_MB`: over a minute the allocator's warm-up is as large as a
  leak of a megabyte per session);
* work happened: joins, moves, leaves and received packets are all above zero, and the
  failures (refused or timed-out joins and moves, sessions the server ended, sockets
  lost, media workers restarted) stay under :data:`MAX_FAILURE_FRACTION` of the actions.

    .venv/bin/python bench/soak.py --minutes 10 --json [--workers K] [--participants P]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from client.direct_publish import PacketizedClip, packetize_opus, packetize_vp8  # noqa: E402
from client.loadtest import LoadParticipant, LoadSignal, _get_text  # noqa: E402
from client.loadtest_setup import create_accounts  # noqa: E402
from client.receive_poller import ReceivePoller  # noqa: E402
from client.stamped import encode_opus_clip, encode_vp8_at  # noqa: E402
from sfu import rtc  # noqa: E402

TOKEN = "soak-benchmark"
ADMIN_NEW_PASSWORD = "soak bench 42 lantern meadow"
#: Seconds of activity per round (then everyone leaves: a quiet point); ``--round-seconds``.
ROUND_SECONDS = 20.0
#: Samples before this many seconds of activity are the warm-up: not in the statistics.
WARMUP_SECONDS = 20.0
SAMPLE_SECONDS = 10.0
#: How long the server may take to report no participant and no transport after a round.
QUIET_TIMEOUT = 30.0
#: How long after the last leave of a round the figures may take to settle at a quiet
#: point: the server's engine.io keeps each closed socket's ping task until its next
#: wake-up, up to its ping interval (25 s unless ``--ping-interval``) after the socket
#: closed; this is the ping interval plus 5 s.
LINGER_SECONDS = 30.0
JOIN_TIMEOUT = 30.0
#: Last quiet point minus first (after the warm-up), per process.
RETURN_BOUNDS = {"tasks": 10, "fds": 10, "udp_sockets": 2}
#: Resident memory: least-squares slope over the quiet points after the first
#: ``RSS_WARMUP_SECONDS`` (memory reaches its working set in the first 3-4 rounds), when
#: those span ``RSS_SLOPE_MIN_MINUTES`` at least.  Measured on 2 vCPUs (docs/loadtest.md,
#: "Soak"): 0.07-0.84 MB/min for every process of a tree without leaks; 7.7-8.9 MB/min for
#: media workers holding closed connections as uncollected garbage, 21-23 MB/min with
#: every closed connection kept alive.
RSS_WARMUP_SECONDS = 120.0
RSS_SLOPE_BOUND_MB_PER_MIN = 3.0
RSS_SLOPE_MIN_MINUTES = 4.0
#: A shorter run checks the growth between its first and last quiet points against this
#: instead: only gross leaks (a one-minute run of a tree without leaks grew a process by
#: 3-25 MB, its allocator's warm-up).
RSS_SHORT_RUN_GROWTH_MB = 50.0
MAX_FAILURE_FRACTION = 0.05
#: What is read of each process (threads are reported, not bounded: each thread may
#: hold a malloc arena of its own, which shows in resident memory).
METRICS = ("rss_mb", "tasks", "fds", "udp_sockets", "threads")
VIDEO = (250_000, 320, 180)  # bits/s, width, height of the looped VP8 clip (30 fps)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- what a process holds -------------------------------------------------------------


def status(pid: int) -> dict[str, float | None]:
    """Resident memory (MB) and threads of ``pid``, from ``/proc/<pid>/status``."""
    found: dict[str, float | None] = {"rss_mb": None, "threads": None}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    found["rss_mb"] = round(int(line.split()[1]) / 1024, 2)
                elif line.startswith("Threads:"):
                    found["threads"] = int(line.split()[1])
    except OSError:
        pass
    return found


def fd_targets(pid: int) -> list[str] | None:
    """What each open file descriptor of ``pid`` points at (``socket:[inode]`` …)."""
    directory = f"/proc/{pid}/fd"
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    targets = []
    for name in names:
        with contextlib.suppress(OSError):  # closed meanwhile
            targets.append(os.readlink(f"{directory}/{name}"))
    return targets


SOCKET_INODE = re.compile(r"^socket:\[(\d+)\]$")


def udp_sockets(pid: int, targets: list[str]) -> int:
    """UDP sockets (IPv4 and IPv6) among the descriptors ``targets`` of ``pid``."""
    inodes = {m.group(1) for t in targets if (m := SOCKET_INODE.match(t))}
    count = 0
    for table in ("udp", "udp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as f:
            next(f, None)  # header
            count += sum(1 for line in f if line.split()[9] in inodes)
    return count


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(c) for c in f.read().split())
    return found


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [part.decode(errors="replace") for part in f.read().split(b"\0") if part]
    except OSError:
        return []


def holdings(pid: int) -> dict[str, float | None]:
    targets = fd_targets(pid)
    return {
        **status(pid),
        "fds": len(targets) if targets is not None else None,
        "udp_sockets": udp_sockets(pid, targets) if targets is not None else None,
    }


# --- the server -----------------------------------------------------------------------


class Server:
    """One ``caucus serve`` process and its media workers; owns the process, its data
    directory's log file and the task draining its standard output."""

    def __init__(self, data_dir: Path, workers: int | None, ping_interval: float | None) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self.ping_interval = ping_interval
        self.log_path = data_dir / "server.log"
        self.url = ""
        self.admin_password = ""
        self.process: asyncio.subprocess.Process | None = None
        #: worker pids in the order first seen: name -> pid
        self.worker_pids: dict[str, int] = {}
        self.worker_restarts = 0
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        port = free_port()
        command = [sys.executable, "-m", "signaling.cli", "serve", "--host", "127.0.0.1"]
        command += ["--ready-json"]
        command += ["--port", str(port), "--data-dir", str(self.data_dir / "data")]
        if self.workers is not None:
            command += ["--workers", str(self.workers)]
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "CAUCUS_LOG_LEVEL": "WARNING",
            "CAUCUS_METRICS_TOKEN": TOKEN,
            # sign-ins are not what is watched: a cheap password hash keeps set-up short
            "CAUCUS_ARGON2_TIME_COST": "1",
            "CAUCUS_ARGON2_MEMORY_KIB": "8192",
            "CAUCUS_ARGON2_PARALLELISM": "1",
        }
        if self.ping_interval is not None:
            env["CAUCUS_SOCKET_PING_INTERVAL"] = str(self.ping_interval)
        log = self.log_path.open("wb")  # the child writes to its own copy
        try:
            self.process = await asyncio.create_subprocess_exec(
                *command,
                cwd=ROOT,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        finally:
            log.close()
        assert self.process.stdout is not None
        async with asyncio.timeout(90):
            while not self.url:
                line = (await self.process.stdout.readline()).decode().strip()
                if not line:
                    raise RuntimeError(f"the server exited; see {self.log_path}")
                if line.startswith("{"):  # --ready-json: the one machine-readable line
                    ready = json.loads(line)
                    self.url = ready["url"].rstrip("/")
                    self.admin_password = ready["admin_password"]
        self._drain = asyncio.ensure_future(self._drain_stdout())
        self.refresh_workers()

    async def _drain_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while await self.process.stdout.readline():
            pass

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def refresh_workers(self) -> None:
        """Find the media worker processes among the server's children; a pid not seen
        before in a slot already named is a restarted worker."""
        pids = [p for p in children(self.pid) if "worker" in cmdline(p)]
        for pid in pids:
            if pid in self.worker_pids.values():
                continue
            gone = next((n for n, p in self.worker_pids.items() if p not in pids), None)
            if gone is None:
                self.worker_pids[f"worker-{len(self.worker_pids) + 1}"] = pid
            else:
                self.worker_pids[gone] = pid
                self.worker_restarts += 1

    def processes(self) -> dict[str, int]:
        self.refresh_workers()
        return {"signaling": self.pid, **self.worker_pids}

    async def metrics(self) -> dict[str, Any]:
        """The figures of ``/metrics`` this benchmark reads."""
        text = await _get_text(self.url + "/metrics", True, {"Authorization": f"Bearer {TOKEN}"})
        values: dict[str, Any] = {"worker_tasks": {}, "transports": 0.0}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "caucus_media_worker_asyncio_tasks":
                    values["worker_tasks"][int(sample.labels["pid"])] = sample.value
                elif sample.name == "caucus_media_transports":
                    values["transports"] += sample.value
                elif not sample.labels:
                    values[sample.name] = sample.value
        return values

    def log_summary(self) -> dict[str, Any]:
        """Errors and tracebacks the server (and its workers) logged."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return {}
        errors = [line for line in lines if '"ERROR"' in line or " ERROR " in line]
        return {
            "lines": len(lines),
            "errors": len(errors),
            "tracebacks": sum(1 for line in lines if line.startswith("Traceback")),
            "first_errors": [line[:300] for line in errors[:5]],
        }

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            async with asyncio.timeout(30):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain


# --- the load -------------------------------------------------------------------------


@dataclass
class Counts:
    """What the load did, over the whole run."""

    rounds: int = 0
    joins: int = 0
    moves: int = 0
    leaves: int = 0
    rooms_created: int = 0
    rooms_closed: int = 0
    join_failures: int = 0
    move_failures: int = 0
    room_failures: int = 0
    sessions_ended_by_server: int = 0
    sockets_lost: int = 0
    worker_restarts: int = 0
    packets_received: int = 0

    @property
    def failures(self) -> int:
        return (
            self.join_failures
            + self.move_failures
            + self.room_failures
            + self.sessions_ended_by_server
            + self.sockets_lost
            + self.worker_restarts
        )

    @property
    def actions(self) -> int:
        return self.joins + self.moves + self.leaves + self.rooms_created + self.rooms_closed


class Media:
    """The clips every publisher loops, and the poller reading every received socket."""

    def __init__(self) -> None:
        bitrate, width, height = VIDEO
        self.audio: PacketizedClip = packetize_opus(encode_opus_clip())
        self.video: PacketizedClip = packetize_vp8(encode_vp8_at(bitrate, width, height))
        self.poller = ReceivePoller() if rtc.FASTRECEIVE else None

    def close(self) -> None:
        if self.poller is not None:
            self.poller.close()


class Seat:
    """One account of a case, in or out of its live room: at most one
    :class:`LoadParticipant` (with its signal and two peer connections) at a time."""

    def __init__(
        self, soak: Soak, case_id: str, account: dict[str, str], neutral: bool = False
    ) -> None:
        self.soak = soak
        self.case_id = case_id
        self.account = account
        self.neutral = neutral
        self.participant: LoadParticipant | None = None
        self.user_id: str | None = None
        self.room = "main"
        self.busy = False
        self._token: str | None = None

    @property
    def present(self) -> bool:
        return self.participant is not None and self.participant.joined

    def _signal(self) -> LoadSignal:
        return LoadSignal(
            self.soak.url,
            self.account["username"],
            self.account["password"],
            self.case_id,
            insecure=True,
            session_token=self._token,
            on_lost=self.soak.socket_lost,
        )

    async def enter(self) -> bool:
        """Join and publish; answers whether it did (a failure is counted)."""
        counts = self.soak.counts
        try:
            async with asyncio.timeout(JOIN_TIMEOUT):
                if self._token is None:  # sign in once; later joins reuse the session
                    self._token = await self._signal().sign_in()
                participant = LoadParticipant(
                    0, self.case_id, self.account, True, self._signal(), poller=self.soak.poller
                )
                self.participant = participant
                await participant.join(self.soak.media.audio, self.soak.media.video)
        except Exception as error:
            counts.join_failures += 1
            say(f"join of {self.account['username']} failed: {type(error).__name__}: {error}")
            await self.leave(count=False)
            return False
        counts.joins += 1
        you = participant.signal.live.get("you", {})
        self.user_id = you.get("user_id")
        self.room = you.get("room_id") or "main"
        return True

    async def leave(self, count: bool = True) -> None:
        """Close every connection (the socket too), keeping the count of packets."""
        participant, self.participant = self.participant, None
        if participant is None:
            return
        self.soak.counts.packets_received += sum(t.packets for t in participant.tracks.values())
        await participant.close()
        if count:
            self.soak.counts.leaves += 1

    def ended_by_server(self) -> bool:
        """The server ended this seat's session, or its socket dropped."""
        p = self.participant
        return p is not None and p.joined and (p.signal.ended is not None or p.signal.lost)

    def packets(self) -> int:
        p = self.participant
        return sum(t.packets for t in p.tracks.values()) if p is not None else 0


class Case:
    """One case's neutral and parties, and the breakout rooms of the current round."""

    def __init__(self, soak: Soak, room: dict[str, Any], neutral: dict[str, str]) -> None:
        self.soak = soak
        self.case_id = room["case_id"]
        self.neutral = Seat(soak, self.case_id, neutral, neutral=True)
        self.parties = [Seat(soak, self.case_id, account) for account in room["accounts"]]
        self.rooms: list[str] = []
        self.random = random.Random(self.case_id)
        self._churn: set[asyncio.Task[None]] = set()

    async def call(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        assert self.neutral.participant is not None
        return await self.neutral.participant.signal.call(
            event, {"case_id": self.case_id, **payload}
        )

    async def round(self, number: int, until: float) -> None:
        counts = self.soak.counts
        if not await self.neutral.enter():
            return
        self.rooms = []
        for name in ("A", "B"):
            try:
                made = await self.call("live.room.create", {"name": f"Breakout {name}{number}"})
            except Exception as error:
                counts.room_failures += 1
                say(f"room not created: {type(error).__name__}: {error}")
                continue
            self.rooms.append(made["room_id"])
            counts.rooms_created += 1
        for seat in self.parties:
            await seat.enter()
        while time.monotonic() < until:
            await asyncio.sleep(self.random.uniform(0.5, 1.5))
            for seat in self.parties:
                if not seat.busy and seat.ended_by_server():
                    counts.sessions_ended_by_server += 1
                    self._start(self._rejoin(seat, until, counted=False))
            ready = [s for s in self.parties if s.present and not s.busy and s.user_id]
            if not ready or time.monotonic() >= until:
                continue
            seat = self.random.choice(ready)
            if self.random.random() < 0.7:
                await self._move(seat)
            else:
                self._start(self._rejoin(seat, until))
        if self._churn:
            await asyncio.gather(*self._churn)
        for room_id in self.rooms:
            try:
                await self.call("live.room.close", {"room_id": room_id})
                counts.rooms_closed += 1
            except Exception as error:
                counts.room_failures += 1
                say(f"room not closed: {type(error).__name__}: {error}")
        await asyncio.gather(*(seat.leave() for seat in self.parties))
        await self.neutral.leave()

    def _start(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._churn.add(task)
        task.add_done_callback(self._churn.discard)

    async def _move(self, seat: Seat) -> None:
        targets = [r for r in ("main", *self.rooms) if r != seat.room]
        target = self.random.choice(targets)
        try:
            await self.call("live.move", {"user_id": seat.user_id, "room_id": target})
        except Exception as error:
            self.soak.counts.move_failures += 1
            say(f"move failed: {type(error).__name__}: {error}")
            return
        seat.room = target
        self.soak.counts.moves += 1

    async def _rejoin(self, seat: Seat, until: float, counted: bool = True) -> None:
        seat.busy = True
        try:
            await seat.leave(count=counted)
            await asyncio.sleep(self.random.uniform(1.0, 3.0))
            if time.monotonic() < until:
                await seat.enter()
        finally:
            seat.busy = False

    def packets(self) -> int:
        return sum(s.packets() for s in (self.neutral, *self.parties))


# --- the run --------------------------------------------------------------------------


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(seconds, value)`` points, per minute."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return None
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in points) / spread


class Soak:
    """One soak run: the server, the cases and their seats, the samples taken."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.server = Server(work, args.workers, args.ping_interval)
        self.round_seconds: float = args.round_seconds
        self.linger_seconds = (
            LINGER_SECONDS if args.ping_interval is None else args.ping_interval + 5.0
        )
        self.counts = Counts()
        self.cases: list[Case] = []
        self.media: Media
        self.samples: list[dict[str, Any]] = []
        self.quiet_points: list[dict[str, Any]] = []
        self.began = 0.0
        self.round = 0
        self.phase = "setup"

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def poller(self) -> ReceivePoller | None:
        return self.media.poller

    def socket_lost(self) -> None:
        self.counts.sockets_lost += 1

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    async def read(self) -> dict[str, Any]:
        """One reading of every process: ``{"t", "phase", "round", name: {...}}``."""
        metrics = await self.server.metrics()
        reading: dict[str, Any] = {
            "t": round(self.elapsed(), 1),
            "phase": self.phase,
            "round": self.round,
            "participants": int(metrics.get("caucus_media_participants", 0)),
            "transports": int(metrics["transports"]),
        }
        for name, pid in self.server.processes().items():
            figures = holdings(pid)
            if name == "signaling":
                figures["tasks"] = metrics.get("caucus_asyncio_tasks")
            else:
                figures["tasks"] = metrics["worker_tasks"].get(pid)
            reading[name] = {"pid": pid, **figures}
        load = holdings(os.getpid())
        load["tasks"] = len(asyncio.all_tasks())
        reading["load"] = {"pid": os.getpid(), **load}
        self.counts.worker_restarts = self.server.worker_restarts
        return reading

    def progress(self, reading: dict[str, Any]) -> None:
        c = self.counts
        packets = c.packets_received + sum(case.packets() for case in self.cases)
        parts = [
            f"[{reading['t']:6.1f}s] round {self.round} {reading['phase']}: joins {c.joins}"
            f" moves {c.moves} leaves {c.leaves} failures {c.failures} packets {packets:,}"
        ]
        for name in self.names(reading):
            v = reading[name]
            parts.append(
                f"{name} rss {v['rss_mb']}M tasks {v['tasks']} fds {v['fds']}"
                f" udp {v['udp_sockets']} threads {v['threads']}"
            )
        say(" | ".join(parts))

    @staticmethod
    def names(reading: dict[str, Any]) -> list[str]:
        return [k for k, v in reading.items() if isinstance(v, dict)]

    async def sampler(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            try:
                reading = await self.read()
            except Exception as error:
                say(f"sample failed: {type(error).__name__}: {error}")
                continue
            self.samples.append(reading)
            self.progress(reading)

    async def quiet_point(self, since: float, settle: bool) -> None:
        """Wait until the server holds no participant and no transport, then until every
        process's figures are back within the bounds of the first quiet point, at most
        until :data:`LINGER_SECONDS` after ``since`` (when the round's last leave
        completed), and record them.  With ``settle`` (the first and the last quiet
        point, the two compared) it always waits that long."""
        self.phase = "quiet"
        deadline = time.monotonic() + QUIET_TIMEOUT
        reading = await self.read()
        while (reading["participants"] or reading["transports"]) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            reading = await self.read()
        baseline = self.quiet_points[0] if self.quiet_points else None
        while time.monotonic() - since < self.linger_seconds:
            if not settle and baseline is not None and self._within(baseline, reading):
                break
            await asyncio.sleep(1.0)
            reading = await self.read()
        reading["phase"] = "quiet"
        reading["settle_seconds"] = round(time.monotonic() - since, 1)
        self.progress(reading)
        self.quiet_points.append(reading)

    @staticmethod
    def _within(baseline: dict[str, Any], reading: dict[str, Any]) -> bool:
        for name in Soak.names(reading):
            for key, bound in RETURN_BOUNDS.items():
                before, now = baseline.get(name, {}).get(key), reading[name].get(key)
                if before is not None and now is not None and now - before > bound:
                    return False
        return True

    async def run(self) -> dict[str, Any]:
        args = self.args
        load_at_start = [round(x, 2) for x in os.getloadavg()]
        say("starting the server…")
        await self.server.start()
        sampler: asyncio.Task[None] | None = None
        try:
            accounts = await create_accounts(
                self.url,
                rooms=args.cases,
                per_room=args.participants,
                admin_user="admin",
                admin_password=self.server.admin_password,
                admin_new_password=ADMIN_NEW_PASSWORD,
                insecure=True,
            )
            neutral = {**accounts["neutral"], "display_name": "Soak neutral"}
            self.cases = [Case(self, room, neutral) for room in accounts["rooms"]]
            self.media = Media()
            say(
                f"server {self.url}: processes {self.server.processes()}; "
                f"{args.cases} cases of 1 neutral + {args.participants} parties"
            )
            self.began = time.monotonic()
            deadline = self.began + args.minutes * 60
            sampler = asyncio.ensure_future(self.sampler())
            while True:
                self.round += 1
                self.phase = "active"
                until = time.monotonic() + self.round_seconds
                last = self.round >= 2 and until + self.round_seconds > deadline
                await asyncio.gather(*(case.round(self.round, until) for case in self.cases))
                self.counts.rounds += 1
                await self.quiet_point(time.monotonic(), settle=self.round == 1 or last)
                if last:
                    break
        finally:
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            for case in self.cases:
                for seat in (case.neutral, *case.parties):
                    with contextlib.suppress(Exception):
                        await seat.leave(count=False)
            if hasattr(self, "media"):
                self.media.close()
            await self.server.stop()
        return self.report(load_at_start)

    # --- the report -------------------------------------------------------------------

    def statistics(self, name: str) -> dict[str, Any]:
        after = [s for s in self.samples if s["t"] >= WARMUP_SECONDS and name in s]
        quiet = [q for q in self.quiet_points if name in q]
        pid = next((s[name]["pid"] for s in [*after, *quiet]), None)
        figures: dict[str, Any] = {"pid": pid}
        for key in METRICS:
            points = [(s["t"], s[name][key]) for s in after if s[name][key] is not None]
            values = [v for _, v in points]
            quiet_points = [(q["t"], q[name][key]) for q in quiet if q[name][key] is not None]
            slope = slope_per_minute(points)
            figures[key] = {
                "start": values[0] if values else None,
                "end": values[-1] if values else None,
                "min": min(values, default=None),
                "max": max(values, default=None),
                "slope_per_min": round(slope, 3) if slope is not None else None,
                "quiet": [v for _, v in quiet_points],
            }
            if key == "rss_mb":
                late = [(t, v) for t, v in quiet_points if t >= RSS_WARMUP_SECONDS]
                quiet_slope = slope_per_minute(late)
                figures[key]["quiet_after_warmup_minutes"] = (
                    round((late[-1][0] - late[0][0]) / 60, 2) if late else 0.0
                )
                figures[key]["quiet_slope_per_min"] = (
                    round(quiet_slope, 3) if quiet_slope is not None else None
                )
        return figures

    def check(self, processes: dict[str, Any]) -> list[str]:
        violations = []
        for name, figures in processes.items():
            for key, bound in RETURN_BOUNDS.items():
                quiet = figures[key]["quiet"]
                if len(quiet) < 2:
                    violations.append(f"{name} {key}: fewer than two quiet points")
                    continue
                if quiet[-1] - quiet[0] > bound:
                    violations.append(
                        f"{name} {key}: {quiet[0]} at the first quiet point, {quiet[-1]} at the "
                        f"last (bound: +{bound})"
                    )
            rss = figures["rss_mb"]
            quiet = rss["quiet"]
            if len(quiet) < 2:
                continue
            span = rss["quiet_after_warmup_minutes"]
            if span >= RSS_SLOPE_MIN_MINUTES:
                slope = rss["quiet_slope_per_min"]
                if slope is not None and slope > RSS_SLOPE_BOUND_MB_PER_MIN:
                    violations.append(
                        f"{name} rss: {slope} MB/min over {span:.1f} min "
                        f"(bound: {RSS_SLOPE_BOUND_MB_PER_MIN})"
                    )
            elif quiet[-1] - quiet[0] > RSS_SHORT_RUN_GROWTH_MB:
                violations.append(
                    f"{name} rss: +{quiet[-1] - quiet[0]:.1f} MB between quiet points "
                    f"(bound: {RSS_SHORT_RUN_GROWTH_MB})"
                )
        c = self.counts
        for what in ("joins", "moves", "leaves", "packets_received"):
            if getattr(c, what) <= 0:
                violations.append(f"no {what.replace('_', ' ')}")
        if c.failures > MAX_FAILURE_FRACTION * max(1, c.actions):
            violations.append(
                f"{c.failures} failures in {c.actions} actions (bound: {MAX_FAILURE_FRACTION:.0%})"
            )
        return violations

    def report(self, load_at_start: list[float]) -> dict[str, Any]:
        names: list[str] = []
        for reading in [*self.samples, *self.quiet_points]:
            names.extend(n for n in self.names(reading) if n not in names)
        processes = {name: self.statistics(name) for name in names}
        violations = self.check(processes)
        return {
            "config": {
                "minutes": self.args.minutes,
                "workers": self.args.workers,
                "cases": self.args.cases,
                "parties_per_case": self.args.participants,
                "round_seconds": self.round_seconds,
                "socket_ping_interval": self.args.ping_interval,
                "linger_seconds": self.linger_seconds,
                "warmup_seconds": WARMUP_SECONDS,
                "sample_seconds": SAMPLE_SECONDS,
                "video": f"VP8 {VIDEO[1]}x{VIDEO[2]} 30 fps ~{VIDEO[0] // 1000} kbps + Opus 20 ms,"
                " pre-encoded",
                "compiled_receive": rtc.FASTRECEIVE,
            },
            "tree": revision(),
            "machine": {
                "cpus": os.cpu_count(),
                "load_average_at_start": load_at_start,
                "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                "run_seconds": round(self.elapsed(), 1),
            },
            "bounds": {
                "return_to_baseline": RETURN_BOUNDS,
                "rss_warmup_seconds": RSS_WARMUP_SECONDS,
                "rss_slope_mb_per_min": RSS_SLOPE_BOUND_MB_PER_MIN,
                "rss_slope_min_minutes": RSS_SLOPE_MIN_MINUTES,
                "rss_short_run_growth_mb": RSS_SHORT_RUN_GROWTH_MB,
                "max_failure_fraction": MAX_FAILURE_FRACTION,
            },
            "counts": {
                **asdict(self.counts),
                "failures": self.counts.failures,
                "actions": self.counts.actions,
            },
            "processes": processes,
            "quiet_points": self.quiet_points,
            "samples": self.samples,
            "server_log": self.server.log_summary(),
            "violations": violations,
            "passed": not violations,
        }


def revision() -> dict[str, Any]:
    """The commit of the tree measured, and whether it had uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout
    except OSError:
        return {}
    return {"commit": commit, "uncommitted_changes": bool(status.strip())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="media worker processes (default: the server's, one per core; 0: media in the "
        "server process)",
    )
    parser.add_argument(
        "--round-seconds",
        type=float,
        default=ROUND_SECONDS,
        help=f"seconds of activity per round (default {ROUND_SECONDS:g})",
    )
    parser.add_argument(
        "--ping-interval",
        type=float,
        default=None,
        help="the server's socket.io ping interval in seconds (default: the server's, 25); "
        "quiet points wait this plus 5 s for closed sockets' ping tasks",
    )
    parser.add_argument("--cases", type=int, default=2, help="cases (live sessions)")
    parser.add_argument(
        "--participants", type=int, default=3, help="parties per case (besides its neutral)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="caucus-soak-") as work:
        report = asyncio.run(Soak(args, Path(work)).run())
    if args.json:
        print(json.dumps(report, indent=2))
    for violation in report["violations"]:
        say(f"bound exceeded: {violation}")
    c = report["counts"]
    say(
        f"{'passed' if report['passed'] else 'FAILED'}: {c['rounds']} rounds, {c['joins']} joins, "
        f"{c['moves']} moves, {c['leaves']} leaves, {c['failures']} failures, "
        f"{c['packets_received']:,} packets received"
    )
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
