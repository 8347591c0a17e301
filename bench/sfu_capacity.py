"""How many mediation rooms one server core carries: ``caucus serve`` under ``caucus loadtest``.

Starts a server (a ``caucus serve`` process on a free port, temporary data directory,
pinned to core 0 with ``taskset``), creates the accounts with ``caucus loadtest --setup``,
then steps the load, pinned to core 1, each step against the server started afresh on the
same data (a step's placements, heaps and garbage do not carry into the next), in the
shape of real mediations: rooms of 4
participants, each publishing audio and video and receiving the other three; 1, 2, 4, 8 …
rooms (and ``--max-rooms`` last) until the loss exceeds 1 %, the p99 latency exceeds
50 ms or a track is missing; then the limit is bisected between the highest passing and
the lowest failing step until they are within an eighth of the failing one (e.g. 24 then
20 after 16 passed and 32 did not).
First, a calibration run with publishers only (nobody receives) measures the load
client's CPU per publisher.  Prints JSON::

    {"machine": {...}, "client_publish_calibration": {...},
     "steps": [{"rooms", "participants", "forwarded_streams", "forwarded_pps",
                "server_cpu_pct", "cpu_us_per_packet", "forwarded_pps_per_core",
                "loss_pct", "latency_p50_ms", "latency_p99_ms", "client_cpu_pct",
                "saturated", ...}, ...]}

``saturated`` names the side whose core was at least 90 % busy during the step
(``server``, ``client``, ``both`` or ``none``), ``busier`` the side that used more of its
core.  ``best_per_core_under_1pct_loss`` is the one-worker step with the most forwarded
packets/s per server core among those with every stream received and < 1 % loss.

    .venv/bin/python bench/sfu_capacity.py [--max-rooms 64] [--seconds 10] [--no-pin]
        [--workers 2] [--no-janus]

Janus beside it (``--no-janus`` leaves it out): after each one-worker step the same
rooms-of-4 step runs against Janus (``bench/versus_janus.py``'s mix step: Janus pinned
to the server's core with one event loop, its clients pinned to the client's core; the
same clips, pass rule and ``/proc`` CPU), and the row gets ``janus_*`` keys and
``ratio_cpu_us_per_packet`` (Caucus / Janus, µs of server CPU per forwarded packet), so
that the per-core figure is always quoted next to Janus measured the same hour.  The
Caucus side is a whole ``caucus serve`` (its CPU from ``/metrics``: the signaling process
and its media worker, per forwarded packet counted by the server); the Janus side is
Janus's process (its HTTP transport included), per packet counted at the receivers.
Without Janus installed the benchmark exits 2 (``apt-get install janus``).

With ``--workers N`` the same steps run a second time against a server with N media
worker processes (unpinned: the workers and the load client share the cores); every row
has a ``workers`` key, and ``workers_scaling`` compares the best step of each (forwarded
packets/s at < 1 % loss, p99 <= 50 ms, every stream received).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "capacity-benchmark"
PER_ROOM = 4
MAX_LOSS_PCT = 1.0
MAX_P99_MS = 50.0
BUSY_PCT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(core: int | None, *command: str) -> list[str]:
    if core is None or shutil.which("taskset") is None:
        return list(command)
    return ["taskset", "-c", str(core), *command]


def caucus(core: int | None, *args: str) -> list[str]:
    return pinned(core, sys.executable, "-m", "signaling.cli", *args)


def start_server(
    data: Path, core: int | None, workers: int
) -> tuple[subprocess.Popen, str, str | None]:
    """``caucus serve`` on a free port with ``data`` as its data directory; the admin's
    one-time password when this start created the admin (the first one), else ``None``."""
    port = free_port()
    env = {
        **os.environ,
        "CAUCUS_LOG_LEVEL": "WARNING",
        "CAUCUS_METRICS_TOKEN": TOKEN,
        # sign-ins are not what is measured: a cheap password hash keeps set-up short
        "CAUCUS_ARGON2_TIME_COST": "1",
        "CAUCUS_ARGON2_MEMORY_KIB": "8192",
        "CAUCUS_ARGON2_PARALLELISM": "1",
    }
    server = subprocess.Popen(
        caucus(
            core, "serve", "--port", str(port), "--data-dir", str(data), "--workers", str(workers)
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    first = server.stdout.readline().strip()
    if not first.startswith("Caucus listening"):
        server.kill()
        raise RuntimeError(f"the server did not start: {first!r}")
    password = None
    if server.stdout.readline().startswith("Admin user:"):
        password = server.stdout.readline().strip().removeprefix("One-time password: ")
    return server, f"https://127.0.0.1:{port}", password


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def loadtest(core: int | None, url: str, accounts: Path, out: Path, *args: str) -> dict:
    command = caucus(
        core,
        "loadtest",
        "--url",
        url,
        "--insecure",
        "--accounts",
        str(accounts),
        "--metrics-token",
        TOKEN,
        "--json",
        str(out),
        "--quiet",
        "--no-table",
        *args,
    )
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    if not out.exists():
        raise RuntimeError(f"caucus loadtest failed ({result.returncode}): {result.stderr}")
    return json.loads(out.read_text())


def janus_step(
    rooms: int, seconds: float, server_core: int | None, client_core: int | None
) -> dict:
    """The same rooms-of-4 step against Janus (``bench/versus_janus.py``), Janus on the
    server's core, its clients on the client's; the step's row."""
    command = [sys.executable, str(ROOT / "bench" / "versus_janus.py"), "--json"]
    command += ["--servers", "janus", "--subscribers", "--mix-rooms", str(rooms)]
    command += ["--seconds", str(seconds)]
    if server_core is not None:
        command += ["--janus-cpus", str(server_core)]
    result = subprocess.run(
        pinned(client_core, *command), cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    if result.returncode:
        return {"error": f"versus_janus.py failed ({result.returncode}): {result.stderr[-500:]}"}
    return json.loads(result.stdout)["rows"][0]


def with_janus(row: dict, janus: dict) -> dict:
    """``row`` with Janus's figures of the same step and the ratio of their costs."""
    cost = janus.get("cpu_us_per_packet")
    ours = row.get("cpu_us_per_packet")
    return {
        **row,
        "janus_forwarded_pps": janus.get("forwarded_pps"),
        "janus_server_cpu_pct": janus.get("server_cpu_pct"),
        "janus_cpu_us_per_packet": cost,
        "janus_forwarded_pps_per_core": round(1e6 / cost) if cost else None,
        "janus_loss_pct": janus.get("loss_pct"),
        "janus_latency_p99_ms": janus.get("latency_p99_ms"),
        "janus_streams_received": janus.get("streams_received"),
        "janus_passed": janus.get("passed", False),
        "janus_error": janus.get("error"),
        "ratio_cpu_us_per_packet": round(ours / cost, 3) if ours and cost else None,
    }


def saturated(server_pct: float | None, client_pct: float) -> str:
    server_busy = server_pct is not None and server_pct >= BUSY_PCT
    client_busy = client_pct >= BUSY_PCT
    return {(True, True): "both", (True, False): "server", (False, True): "client"}.get(
        (server_busy, client_busy), "none"
    )


def step_row(rooms: int, report: dict) -> dict:
    summary, client, server = report["summary"], report["client"], report["server"] or {}
    return {
        "rooms": rooms,
        "participants": rooms * PER_ROOM,
        "joined": report["participants"]["joined"],
        "forwarded_streams": summary["tracks_expected"],
        "streams_received": summary["tracks_received"],
        "forwarded_pps": server.get("forwarded_pps"),
        "forwarded_mbps": server.get("forwarded_mbps"),
        "received_pps": server.get("received_pps"),
        "server_cpu_pct": server.get("cpu_pct"),
        "cpu_us_per_packet": server.get("cpu_us_per_forwarded_packet"),
        "forwarded_pps_per_core": server.get("forwarded_pps_per_core"),
        "loss_pct": summary["loss_pct"],
        "latency_p50_ms": summary["latency_p50_ms"],
        "latency_p99_ms": summary["latency_p99_ms"],
        "client_cpu_pct": client["cpu_pct"],
        "client_us_per_received_packet": client["cpu_us_per_received_packet"],
        "nacks": server.get("nacks_received"),
        "plis": server.get("plis_received"),
        "saturated": saturated(server.get("cpu_pct"), client["cpu_pct"]),
        "busier": "server" if (server.get("cpu_pct") or 0) > client["cpu_pct"] else "client",
    }


def run_configuration(workers: int, args: argparse.Namespace, work: Path) -> dict:
    """Steps the load on a server with ``workers`` media worker processes.  With one
    worker the server (signaling and worker) is pinned to core 0 and the load client to
    core 1; with more, nothing is pinned: the workers and the client share every core."""
    pin = not args.no_pin and workers == 1
    server_core, client_core = (0, 1) if pin else (None, None)
    steps = []
    rooms = 1
    while rooms <= args.max_rooms:
        steps.append(rooms)
        rooms *= 2
    if steps[-1] < args.max_rooms:
        steps.append(args.max_rooms)
    data = work / f"data-{workers}"
    server, url, admin_password = start_server(data, server_core, workers)
    rows: list[dict] = []
    accounts = work / f"accounts-{workers}.json"
    try:
        setup = subprocess.run(
            caucus(
                client_core,
                "loadtest",
                "--setup",
                "--url",
                url,
                "--insecure",
                "--rooms",
                str(steps[-1]),
                "--publishers",
                str(PER_ROOM),
                "--accounts",
                str(accounts),
            ),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
            env={
                **os.environ,
                "CAUCUS_LOADTEST_ADMIN_PASSWORD": admin_password or "",
                "CAUCUS_LOADTEST_ADMIN_NEW_PASSWORD": "capacity bench 42 lantern",
            },
        )
        if setup.returncode:
            raise RuntimeError(f"set-up failed: {setup.stderr}")
    finally:
        stop_server(server)

    def measure(name: str, *args: str) -> dict:
        """One run of the load test against a server started for it (same data): what
        a step leaves behind (its cases' placements, the workers' heaps and garbage) does
        not weigh on the next."""
        server, url, _ = start_server(data, server_core, workers)
        try:
            return loadtest(client_core, url, accounts, work / name, *args)
        finally:
            stop_server(server)

    ramp = "10"
    # publishers alone: nobody receives, so the client's CPU is the publishing cost
    calibration_rooms = min(8, steps[-1])
    report = measure(
        f"calibration-{workers}.json",
        "--rooms",
        str(calibration_rooms),
        "--publishers",
        "1",
        "--duration",
        str(args.seconds),
        "--ramp",
        ramp,
    )
    calibration = {
        "publishers": calibration_rooms,
        "client_cpu_pct": report["client"]["cpu_pct"],
        "client_cpu_ms_per_s_per_publisher": report["client"]["cpu_ms_per_s_per_publisher"],
        "server_received_pps": (report["server"] or {}).get("received_pps"),
    }
    last_passed = 0
    first_failed: int | None = None
    queue = list(steps)
    while queue:
        rooms = queue.pop(0)
        name = f"step{rooms}-workers{workers}.json"
        report = measure(
            name,
            "--rooms",
            str(rooms),
            "--publishers",
            str(PER_ROOM),
            "--duration",
            str(args.seconds),
            "--ramp",
            ramp,
        )
        row = {"workers": workers, **step_row(rooms, report)}
        if args.janus and workers == 1:
            row = with_janus(row, janus_step(rooms, args.seconds, server_core, client_core))
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(work / name, args.keep)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        if passed(row):
            last_passed = rooms
            if first_failed is None:
                continue
        elif first_failed is None or rooms < first_failed:
            first_failed = rooms
        # bisect between the highest passing and the lowest failing step until they
        # are within an eighth of the failing one (2 rooms at least)
        if last_passed and first_failed - last_passed > max(2, first_failed // 8):
            queue = [(last_passed + first_failed) // 2]
            continue
        break
    return {"workers": workers, "pinned": pin, "calibration": calibration, "steps": rows}


def passed(row: dict) -> bool:
    """Every stream received, < 1 % loss and p99 <= 50 ms."""
    p99 = row["latency_p99_ms"]
    return (
        row["loss_pct"] <= MAX_LOSS_PCT
        and (p99 is None or p99 <= MAX_P99_MS)
        and row["streams_received"] >= row["forwarded_streams"]
    )


def best(configuration: dict) -> float:
    """Forwarded packets/s of the highest step that kept every stream, < 1 % loss and
    p99 <= 50 ms (0 when none did)."""
    good = [row["forwarded_pps"] or 0.0 for row in configuration["steps"] if passed(row)]
    return max(good, default=0.0)


def per_core(configuration: dict) -> dict | None:
    """The step with the most forwarded packets/s per server core among those with every
    stream received and < 1 % loss (the issue's figure to watch; p99 stated beside it)."""
    rows = [
        row
        for row in configuration["steps"]
        if row["loss_pct"] <= MAX_LOSS_PCT
        and row["streams_received"] >= row["forwarded_streams"]
        and row["forwarded_pps_per_core"]
    ]
    if not rows:
        return None
    top = max(rows, key=lambda row: row["forwarded_pps_per_core"])
    return {
        key: top[key]
        for key in (
            "workers",
            "rooms",
            "forwarded_pps",
            "forwarded_pps_per_core",
            "cpu_us_per_packet",
            "server_cpu_pct",
            "client_cpu_pct",
            "loss_pct",
            "latency_p99_ms",
            # Janus at the same step, measured the same hour (absent with --no-janus)
            "janus_forwarded_pps_per_core",
            "janus_cpu_us_per_packet",
            "janus_latency_p99_ms",
            "ratio_cpu_us_per_packet",
        )
        if key in top
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-rooms", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured per step")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="also measure a server with this many media workers (after one worker)",
    )
    parser.add_argument("--keep", type=Path, help="keep each step's loadtest report here")
    parser.add_argument(
        "--no-janus", dest="janus", action="store_false", help="no Janus step beside each step"
    )
    args = parser.parse_args()
    if args.janus and shutil.which("janus") is None:
        print("Janus is not installed: apt-get install janus (or pass --no-janus)", file=sys.stderr)
        sys.exit(2)
    began = time.monotonic()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    counts = [1] if args.workers <= 1 else [1, args.workers]
    with tempfile.TemporaryDirectory(prefix="caucus-capacity-") as tmp:
        configurations = [run_configuration(n, args, Path(tmp)) for n in counts]
    result: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "pinned": "server on core 0, load on core 1 with one worker; unpinned with more"
            if not args.no_pin
            else False,
            "load_average_at_start": load_at_start,
            "seconds_per_step": args.seconds,
            "video": "VP8 640x360 30 fps ~500 kbps + Opus 20 ms, pre-encoded",
            "janus": "the same step against Janus (bench/versus_janus.py), pinned like the "
            "server, one event loop"
            if args.janus
            else None,
            "run_seconds": round(time.monotonic() - began, 1),
        },
        "client_publish_calibration": configurations[0]["calibration"],
        "best_per_core_under_1pct_loss": per_core(configurations[0]),
        "steps": [row for c in configurations for row in c["steps"]],
    }
    if len(configurations) > 1:
        one, many = best(configurations[0]), best(configurations[-1])
        result["workers_scaling"] = {
            "best_forwarded_pps": {str(c["workers"]): best(c) for c in configurations},
            "ratio": round(many / one, 2) if one else None,
            "calibration_with_workers": configurations[-1]["calibration"],
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
