"""``bench/soak.py`` in two short rounds: a real server (``caucus serve`` with its media workers)
under joins, publishing, moves between rooms, leaves and re-joins returns to what it held
at the first quiet point: asyncio tasks, file descriptors and UDP sockets of every server
process and of the load, compared at quiet points (everyone left, the server holding no
participant and no transport), never mid-round."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_short_soak_returns_to_its_baseline() -> None:
    # two rounds of 8 s; the server pings sockets every 4 s, so that a closed socket's
    # ping task is gone 9 s after it closed and the quiet points settle that much sooner
    command = [sys.executable, str(ROOT / "bench" / "soak.py"), "--minutes", "0.3"]
    command += ["--round-seconds", "8", "--ping-interval", "4", "--json"]
    result = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.stdout, f"no report (exit {result.returncode}): {result.stderr[-4000:]}"
    report = json.loads(result.stdout)

    counts = report["counts"]
    assert counts["rounds"] >= 2
    assert counts["joins"] > 0 and counts["moves"] > 0 and counts["leaves"] > 0, counts
    assert counts["rooms_created"] > 0 and counts["rooms_closed"] > 0, counts
    assert counts["packets_received"] > 0, counts
    bounds = report["bounds"]
    assert counts["failures"] <= bounds["max_failure_fraction"] * counts["actions"], counts

    processes = report["processes"]
    workers = [name for name in processes if name.startswith("worker-")]
    assert "signaling" in processes and "load" in processes and workers, processes.keys()
    for name, figures in processes.items():
        # every process's task count was read, the workers' through /metrics
        assert figures["tasks"]["quiet"] and min(figures["tasks"]["quiet"]) > 0, name
        for key, bound in bounds["return_to_baseline"].items():
            quiet = figures[key]["quiet"]
            assert len(quiet) >= 2, (name, key, quiet)
            assert quiet[-1] - quiet[0] <= bound, f"{name} {key} at quiet points: {quiet}"
        rss = figures["rss_mb"]["quiet"]
        assert rss[-1] - rss[0] <= bounds["rss_short_run_growth_mb"], f"{name} RSS: {rss}"
    # at the quiet points the media workers held no peer connection's socket at all
    for point in report["quiet_points"]:
        assert point["participants"] == 0 and point["transports"] == 0, point
        assert all(point[name]["udp_sockets"] == 0 for name in workers), point

    assert report["violations"] == [] and report["passed"], report["violations"]
    assert result.returncode == 0, result.stderr[-4000:]
