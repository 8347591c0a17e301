"""Caucus's SFU and Janus side by side: the same load against both, in one run.

Janus is Debian's ``janus`` (``apt-get install janus``; nothing is installed here: without
it the benchmark exits 2 saying so), started with ``client/janus_server.py``'s
configuration: the VideoRoom plugin and the HTTP transport (on 127.0.0.1) only, every
other plugin, transport, event handler and logger disabled, ``event_loops`` = the number
of cores (a fixed pool of media threads), host candidates on this host's own IPv4
address (Janus never gathers on a loopback interface; the kernel delivers local
addresses through ``lo`` anyway), no STUN, TURN or 1:1 NAT, half-trickle, log level 3
to a file, no recording; everything else Janus's defaults (NACK queue 200 ms, TWCC every
200 ms, ...).  Rooms are created through the API: VP8 and Opus, no bitrate cap
(``bitrate: 0``), no periodic keyframe requests (``fir_freq: 0``), ``notify_joining``
off, not recorded.

Caucus is :class:`sfu.Worker` in a process of its own (``bench/_sfu_process.py``, as
``bench/sfu_forward.py`` runs it): what a ``caucus serve`` media worker process runs,
without the signaling node.  That keeps the comparison about the media path on both
sides: Janus's process holds its signaling too (the HTTP transport answering long polls
and keepalives, idle while measuring), Caucus's holds the little JSON-lines RPC that
stands in for the node's (idle while measuring).  Caucus's process has one event loop
on one core, as each media worker does; Janus's threads may use every core (both are as
deployed; nothing is pinned).  Each step starts each server afresh.

The clients are the same for both, in this process: the load client's machinery
(``client/loadtest.py``'s pieces): pre-encoded, time-stamped media sent straight to the
socket (``client/direct_publish.py``), received and counted in C per track
(``client/track_stats.py``, ``client/receive_poller.py``): packets, loss from RTP
sequence numbers, latency from the stamp in the payload.  They negotiate through
``bench/_sfu_process.py``'s ``RemoteSignal`` for Caucus and ``client/janus.py``'s
``JanusSignal`` (Janus's VideoRoom API over HTTP: a participant handle that publishes,
a multistream subscriber handle) for Janus.

Steps, each against Caucus then Janus (so that the machine's drift hits both):

* **fan-out** ``N`` = 1, 10, 50 (``--subscribers``): one publisher of VP8 (``FANOUT_CLIP``:
  640x480 noise, ~4.7 Mbit/s, ~480 packets/s, the clip ``bench/sfu_forward.py`` sends by
  default), N subscribers;
* **mix**: rooms of 4, everyone publishing audio (Opus, 20 ms) and video (VP8 640x360,
  ~500 kbps, the clip of ``caucus loadtest`` and ``bench/sfu_capacity.py``) and receiving
  the other three, for 1, 2, 4, 8 ... rooms (``--max-rooms`` last) until the first step
  either server fails.

A step passes with every expected stream received, loss < 1 % and p99 latency <= 50 ms.
Per server and step: ``forwarded_pps`` (packets the receivers got in the window: the
same rule for both), ``server_cpu_pct`` and ``cpu_us_per_packet`` (the server's CPU
over the window, the time its threads and its children's ran from
``/proc/<pid>/task/*/schedstat``, in nanoseconds, divided by those packets;
``cpu_us_per_packet_ticks`` the same from ``/proc/<pid>/stat``'s user + system ticks of
10 ms, as a check), loss, p50/p99 latency, the load client's CPU, and
``server_forwarded_pps`` (the server's own counter, as a cross-check: Caucus's
consumers' packets; ``null`` for Janus, whose admin API is off).  Then a ``ratio`` row
per step: Caucus / Janus, µs of server CPU per forwarded packet (below 1: Caucus is the
cheaper).

    .venv/bin/python bench/versus_janus.py --json [--seconds 15] [--subscribers 1 10 50]
        [--max-rooms 64] > docs/bench/versus_janus.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from _sfu_process import FANOUT_CLIP, SfuProcess  # noqa: E402
from aiortc import (  # noqa: E402
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
)

from client.direct_publish import (  # noqa: E402
    PacketizedClip,
    packetize_opus,
    packetize_vp8,
)
from client.janus import JanusSignal, create_room  # noqa: E402
from client.janus_server import INSTALL_HINT, JanusMissing, JanusServer, janus_binary  # noqa: E402
from client.loadtest import LoadParticipant  # noqa: E402
from client.media import encode_vp8_clip  # noqa: E402
from client.receive_poller import ReceivePoller  # noqa: E402
from client.stamped import make_clips  # noqa: E402
from client.track_stats import percentile  # noqa: E402
from sfu import rtc  # noqa: E402

PER_ROOM = 4
MAX_LOSS_PCT = 1.0
MAX_P99_MS = 50.0
MIX_VIDEO_BITRATE = 500_000
#: Joins per second in the mix (as bench/sfu_capacity.py's load test).
RAMP = 10.0
SETTLE_TIMEOUT = 30.0
JOIN_TIMEOUT = 30.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- CPU from /proc --------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    found = [pid]
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/task/{task}/children") as children:
                    for child in children.read().split():
                        found.extend(_descendants(int(child)))
    return found


def process_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its live descendants, to the nanosecond: the time each
    of their threads ran (``/proc/<pid>/task/<tid>/schedstat``, user and system alike).
    A thread that ended meanwhile takes its time with it, so :func:`process_cpu_ticks`
    is recorded beside it as a check."""
    total = 0
    for each in _descendants(pid):
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{each}/task"):
                with contextlib.suppress(OSError, ValueError):
                    with open(f"/proc/{each}/task/{task}/schedstat") as schedstat:
                        total += int(schedstat.read().split()[0])
    return total / 1e9


def process_cpu_ticks(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (every thread, ended ones included) and its
    live descendants, in clock ticks (10 ms)."""
    total = 0
    for each in _descendants(pid):
        with contextlib.suppress(OSError):
            with open(f"/proc/{each}/stat") as stat:
                # the fields after the command (which may hold spaces) in parentheses
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


# --- the clients -----------------------------------------------------------------------


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


class BenchParticipant(LoadParticipant):
    """One simulated participant: the load client's (``client/loadtest.py``), named,
    publishing the clips it is given on :meth:`enter` (none for a fan-out subscriber),
    measuring every track it receives."""

    def __init__(self, name: str, signal: Any, poller: ReceivePoller | None) -> None:
        account = {"username": name, "display_name": name}
        super().__init__(0, "", account, True, signal, poller=poller)


# --- the servers -----------------------------------------------------------------------


class Caucus:
    """:class:`sfu.Worker` in its own process (``bench/_sfu_process.py``)."""

    name = "caucus"

    def __init__(self) -> None:
        self._sfu: SfuProcess | None = None

    async def start(self, rooms: int, per_room: int) -> None:
        self._sfu = await SfuProcess.start()

    def signal(self, room: int, http: aiohttp.ClientSession) -> Any:
        assert self._sfu is not None
        return self._sfu.signal(f"room-{room}")

    @property
    def pid(self) -> int:
        assert self._sfu is not None
        return self._sfu.pid

    async def forwarded(self) -> int | None:
        assert self._sfu is not None
        return int((await self._sfu.counters())["forwarded"])

    async def stop(self) -> None:
        if self._sfu is not None:
            await self._sfu.stop()
            self._sfu = None


class Janus:
    """A ``janus`` process (``client/janus_server.py``) and VideoRoom rooms 1001, 1002 ...;
    with ``cpus`` (``taskset`` cores) pinned there with one event loop per core given."""

    name = "janus"
    cpus: str | None = None

    def __init__(self) -> None:
        self._server: JanusServer | None = None

    async def start(self, rooms: int, per_room: int) -> None:
        loops = len(self.cpus.split(",")) if self.cpus else None
        self._server = JanusServer(event_loops=loops, cpus=self.cpus)
        await self._server.start()
        for room in range(1, rooms + 1):
            await create_room(self._server.url, 1000 + room, publishers=max(100, per_room + 10))

    def signal(self, room: int, http: aiohttp.ClientSession) -> Any:
        assert self._server is not None
        return JanusSignal(self._server.url, 1000 + room, http=http)

    @property
    def pid(self) -> int:
        assert self._server is not None
        return self._server.pid

    async def forwarded(self) -> int | None:
        return None  # the admin API (per-handle statistics) is off

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None


SERVERS: dict[str, Callable[[], Any]] = {"caucus": Caucus, "janus": Janus}


# --- one step --------------------------------------------------------------------------


@dataclass
class Clips:
    fanout_video: PacketizedClip
    mix_audio: PacketizedClip
    mix_video: PacketizedClip

    @classmethod
    def make(cls) -> Clips:
        opus, vp8 = make_clips(MIX_VIDEO_BITRATE, audio_only=False)
        assert vp8 is not None
        return cls(
            fanout_video=packetize_vp8(encode_vp8_clip(**FANOUT_CLIP)),
            mix_audio=packetize_opus(opus),
            mix_video=packetize_vp8(vp8),
        )


async def _join_all(
    joins: list[tuple[BenchParticipant, list[PacketizedClip]]], ramp: float | None
) -> None:
    """Join everyone, at ``ramp`` per second (all at once when ``None``)."""
    start = time.monotonic()

    async def join(index: int, participant: BenchParticipant, clips: list) -> None:
        if ramp:
            delay = start + index / ramp - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        try:
            async with asyncio.timeout(JOIN_TIMEOUT):
                await participant.enter(clips)
        except Exception as exc:
            participant.error = f"{type(exc).__name__}: {exc}"

    await asyncio.gather(*(join(i, p, c) for i, (p, c) in enumerate(joins)))


async def _settle(participants: list[BenchParticipant], expected: Callable[[Any], int]) -> None:
    """Until every participant's expected tracks delivered a packet (bounded)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        if all(p.flowing() >= expected(p) for p in participants if p.error is None):
            return
        await asyncio.sleep(0.2)  # counters of other connections: polled


async def run_step(
    server: Any, kind: str, size: int, seconds: float, clips: Clips
) -> dict[str, Any]:
    """One step against ``server``: ``kind`` ``"fanout"`` (``size`` subscribers) or
    ``"mix"`` (``size`` rooms of four)."""
    rooms = 1 if kind == "fanout" else size
    per_room = size + 1 if kind == "fanout" else PER_ROOM
    poller = ReceivePoller() if rtc.FASTRECEIVE else None
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
    )
    participants: list[BenchParticipant] = []
    row: dict[str, Any] = {
        "step": f"{kind}-{size}",
        "kind": kind,
        "subscribers" if kind == "fanout" else "rooms": size,
        "server": server.name,
    }
    began = time.monotonic()
    try:
        await server.start(rooms, per_room)
        if kind == "fanout":
            subscribers = [
                BenchParticipant(f"s{i}", server.signal(1, http), poller) for i in range(size)
            ]
            publisher = BenchParticipant("publisher", server.signal(1, http), poller)
            participants = [*subscribers, publisher]
            await _join_all([(s, []) for s in subscribers], RAMP * 2)
            await _join_all([(publisher, [clips.fanout_video])], None)
            receivers = subscribers
            publishers = [publisher]

            def expected(p: BenchParticipant) -> int:
                return 0 if p is publisher else 1

        else:
            participants = [
                BenchParticipant(f"r{room}p{n}", server.signal(room, http), poller)
                for room in range(1, rooms + 1)
                for n in range(PER_ROOM)
            ]
            await _join_all([(p, [clips.mix_audio, clips.mix_video]) for p in participants], RAMP)
            receivers = publishers = participants

            def expected(p: BenchParticipant) -> int:
                return 2 * (PER_ROOM - 1)

        await _settle(participants, expected)
        await asyncio.sleep(1)  # connection set-up traffic settles before measuring
        row["participants"] = len(participants)
        row["setup_seconds"] = round(time.monotonic() - began, 1)
        if poller is not None:
            poller.poll()
        forwarded_before = await server.forwarded()
        published_before = _published(publishers)
        cpu_before = process_cpu(server.pid)
        ticks_before = process_cpu_ticks(server.pid)
        client_before = _own_cpu()
        started = time.monotonic()
        for participant in receivers:
            for stats in participant.tracks.values():
                stats.start_window()
        await asyncio.sleep(seconds)
        if poller is not None:
            poller.poll()
        ended = time.monotonic()
        cpu = process_cpu(server.pid) - cpu_before
        ticks = process_cpu_ticks(server.pid) - ticks_before
        client_cpu = _own_cpu() - client_before
        published = _published(publishers) - published_before
        forwarded_after = await server.forwarded()
        elapsed = ended - started
        row.update(_figures(receivers, expected, cpu, client_cpu, elapsed, ended, published))
        forwarded_packets = row["forwarded_pps"] * elapsed
        row["cpu_us_per_packet_ticks"] = (
            round(ticks * 1e6 / forwarded_packets, 2) if forwarded_packets else None
        )
        row["server_forwarded_pps"] = (
            round((forwarded_after - forwarded_before) / elapsed, 1)
            if forwarded_after is not None and forwarded_before is not None
            else None
        )
    except Exception as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        await asyncio.gather(*(p.close() for p in participants))
        await http.close()
        if poller is not None:
            poller.close()
        with contextlib.suppress(Exception):
            await server.stop()
    errors = [p.error for p in participants if p.error]
    if errors:
        row["join_errors"] = len(errors)
        row["first_join_error"] = errors[0]
    row["passed"] = passed(row)
    return row


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _published(publishers: list[BenchParticipant]) -> int:
    return sum(
        stream.packets
        for p in publishers
        if p.publisher is not None
        for stream in p.publisher.streams
    )


def _figures(
    receivers: list[BenchParticipant],
    expected: Callable[[BenchParticipant], int],
    cpu: float,
    client_cpu: float,
    elapsed: float,
    until: float,
    published: int,
) -> dict[str, Any]:
    packets = lost = 0
    latencies: list[float] = []
    received_streams = 0
    for participant in receivers:
        for stats in participant.tracks.values():
            figures = stats.figures(until)
            packets += int(figures["packets"] or 0)
            lost += int(figures["packets_lost"] or 0)
            latencies.extend(stats.latencies_ms)
            received_streams += 1 if figures["packets"] else 0
    expected_streams = sum(expected(p) for p in receivers)
    return {
        "streams_expected": expected_streams,
        "streams_received": received_streams,
        "published_pps": round(published / elapsed, 1),
        "forwarded_pps": round(packets / elapsed, 1),
        "server_cpu_pct": round(100 * cpu / elapsed, 1),
        "cpu_us_per_packet": round(cpu * 1e6 / packets, 2) if packets else None,
        "loss_pct": round(100 * lost / (packets + lost), 3) if packets + lost else 0.0,
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p99_ms": percentile(latencies, 99),
        "client_cpu_pct": round(100 * client_cpu / elapsed, 1),
        "seconds": round(elapsed, 2),
    }


def passed(row: dict[str, Any]) -> bool:
    """Every expected stream received, loss < 1 % and p99 <= 50 ms."""
    if "error" in row or "forwarded_pps" not in row:
        return False
    p99 = row["latency_p99_ms"]
    return (
        row["streams_received"] >= row["streams_expected"]
        and row["loss_pct"] < MAX_LOSS_PCT
        and p99 is not None
        and p99 <= MAX_P99_MS
    )


def ratio_row(caucus: dict[str, Any], janus: dict[str, Any]) -> dict[str, Any]:
    def ratio(key: str) -> float | None:
        a, b = caucus.get(key), janus.get(key)
        return round(a / b, 3) if a and b else None

    row = {k: caucus[k] for k in ("step", "kind", "subscribers", "rooms") if k in caucus}
    row.update(
        {
            "server": "ratio",
            "cpu_us_per_packet": ratio("cpu_us_per_packet"),
            "caucus_cpu_us_per_packet": caucus.get("cpu_us_per_packet"),
            "janus_cpu_us_per_packet": janus.get("cpu_us_per_packet"),
            "forwarded_pps": ratio("forwarded_pps"),
            "both_passed": caucus["passed"] and janus["passed"],
        }
    )
    return row


async def compare(
    kind: str, size: int, seconds: float, clips: Clips, servers: list[str]
) -> list[dict[str, Any]]:
    """One step against each server in turn (Caucus first), then the ratio row."""
    rows = []
    for name in servers:
        say(f"versus_janus: {kind} {size} against {name} ...")
        row = await run_step(SERVERS[name](), kind, size, seconds, clips)
        say(json.dumps(row))
        rows.append(row)
    if len(rows) == 2:
        rows.append(ratio_row(rows[0], rows[1]))
        say(json.dumps(rows[-1]))
    return rows


def room_steps(max_rooms: int) -> list[int]:
    steps, rooms = [], 1
    while rooms <= max_rooms:
        steps.append(rooms)
        rooms *= 2
    if steps and steps[-1] < max_rooms:
        steps.append(max_rooms)
    return steps


async def run(args: argparse.Namespace) -> dict[str, Any]:
    began = time.monotonic()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    clips = Clips.make()
    servers = args.servers
    Janus.cpus = args.janus_cpus
    rows: list[dict[str, Any]] = []
    for n in args.subscribers:
        rows += await compare("fanout", n, args.seconds, clips, servers)
    for rooms in args.mix_rooms or room_steps(args.max_rooms):
        step = await compare("mix", rooms, args.seconds, clips, servers)
        rows += step
        if not args.mix_rooms and not all(r["passed"] for r in step if r["server"] != "ratio"):
            break
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "date": datetime.date.today().isoformat(),
            "commit": _commit(),
            "native_paths": rtc.native_paths(),
            "janus": _janus_version(),
        },
        "settings": {
            "seconds_per_step": args.seconds,
            "fanout_video": {**FANOUT_CLIP, "fps": 30, "codec": "VP8", "pre_encoded": True},
            "mix": "rooms of 4, everyone publishing Opus 20 ms + VP8 640x360 ~500 kbps "
            "(pre-encoded, stamped) and receiving the other three",
            "pass": "every stream received, loss < 1 %, p99 <= 50 ms",
            "caucus": "sfu.Worker in its own process (bench/_sfu_process.py), one event loop",
            "janus": "VideoRoom + HTTP transport only, event_loops = cpus, host candidates "
            "on the host's own address, no STUN/TURN/NAT, rooms: vp8 + opus, bitrate 0, "
            "fir_freq 0, notify_joining false, record false",
            "janus_pinned_to": args.janus_cpus,
            "cpu": "time on CPU of every thread of the server process and its children "
            "(/proc/<pid>/task/*/schedstat, ns) over the window; cpu_us_per_packet_ticks: "
            "the same from /proc/<pid>/stat utime + stime (10 ms ticks)",
            "forwarded": "packets received by the subscribers in the window (both servers)",
        },
        "rows": rows,
        "run_seconds": round(time.monotonic() - began, 1),
    }


def _commit() -> str | None:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return result.stdout.strip() or None


def _janus_version() -> str | None:
    result = subprocess.run([janus_binary(), "--version"], capture_output=True, text=True)
    first = result.stdout.splitlines()[0] if result.stdout else ""
    return first.removeprefix("Janus version: ") or None


def table(report: dict[str, Any]) -> str:
    columns = (
        "step",
        "server",
        "forwarded_pps",
        "server_cpu_pct",
        "cpu_us_per_packet",
        "loss_pct",
        "latency_p99_ms",
        "passed",
    )
    lines = ["  ".join(f"{c:>17}" for c in columns)]
    for row in report["rows"]:
        lines.append("  ".join(f"{row.get(c, '')!s:>17}" for c in columns))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured per step")
    parser.add_argument(
        "--subscribers", type=int, nargs="*", default=[1, 10, 50], help="fan-out steps"
    )
    parser.add_argument("--max-rooms", type=int, default=64, help="last mix step")
    # for bench/sfu_capacity.py: these mix steps only (no stopping rule), these servers,
    # Janus pinned to these cores (one event loop per core)
    parser.add_argument("--mix-rooms", type=int, nargs="*", help=argparse.SUPPRESS)
    parser.add_argument(
        "--servers", nargs="+", choices=list(SERVERS), default=list(SERVERS), help=argparse.SUPPRESS
    )
    parser.add_argument("--janus-cpus", help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        janus_binary()
    except JanusMissing:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    report = asyncio.run(run(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
