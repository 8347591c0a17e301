"""``caucus loadtest`` against a real ``caucus serve`` process: a short run that receives
every track, and a run whose server is killed midway (a clear error and a partial
report, not a hang)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import start_serve_sync

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "metrics token of the load test"
NEW_ADMIN_PASSWORD = "orange kettle 7 drums"


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    accounts: Path


def caucus(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-m", "signaling.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def start_server(tmp: Path, rooms: int, per_room: int) -> Server:
    served = start_serve_sync(
        tmp,
        env={"CAUCUS_LOG_LEVEL": "WARNING", "CAUCUS_METRICS_TOKEN": TOKEN},
        stderr=subprocess.DEVNULL,
    )
    process = served.process
    admin_password = served.ready.admin_password
    assert admin_password
    url = served.url
    accounts = tmp / "accounts.json"
    result = caucus(
        "loadtest",
        "--setup",
        "--url",
        url,
        "--insecure",
        "--rooms",
        str(rooms),
        "--publishers",
        str(per_room),
        "--accounts",
        str(accounts),
        env={
            "CAUCUS_LOADTEST_ADMIN_PASSWORD": admin_password,
            "CAUCUS_LOADTEST_ADMIN_NEW_PASSWORD": NEW_ADMIN_PASSWORD,
        },
    )
    assert result.returncode == 0, result.stderr
    assert oct(accounts.stat().st_mode & 0o777) == "0o600"
    return Server(url, process, accounts)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path, rooms=1, per_room=3)
    yield running
    stop(running.process)


def loadtest_args(server: Server, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "signaling.cli",
        "loadtest",
        "--url",
        server.url,
        "--insecure",
        "--accounts",
        str(server.accounts),
        "--metrics-token",
        TOKEN,
        "--json",
        str(out),
        *extra,
    ]


def test_short_run_receives_every_track(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    began = time.monotonic()
    result = subprocess.run(
        loadtest_args(server, out, "--publishers", "2", "--subscribers", "1", "--duration", "5"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tracks received       8/8" in result.stdout
    assert time.monotonic() - began < 90
    report = json.loads(out.read_text())
    summary = report["summary"]
    # each publisher receives the other's audio and video; the subscriber receives all 4
    assert summary["tracks_expected"] == summary["tracks_received"] == 8
    assert report["participants"] == {
        **report["participants"],
        "expected": 3,
        "joined": 3,
        "join_errors": [],
    }
    assert report["aborted"] is None
    assert 4.5 < report["window_seconds"] < 10
    rows = report["tracks"]
    assert len(rows) == 8
    for row in rows:
        assert row["expected"] and row["received"], row
        assert row["packets"] > 0 and row["frames"] > 0
        assert row["latency_samples"] > 0 and 0 <= row["latency_p50_ms"] < 1000
        assert row["time_to_first_frame_ms"] is not None
        assert 0 <= row["loss_pct"] <= 100
        expected_rate = 30 if row["kind"] == "video" else 50
        assert row["frames"] >= expected_rate * 5 * 0.5, row  # frames per second, loosely
    assert {(r["subscriber"], r["kind"]) for r in rows if r["publisher"] == "Load r1 p1"} == {
        ("Load r1 p2", "audio"),
        ("Load r1 p2", "video"),
        ("Load r1 p3", "audio"),
        ("Load r1 p3", "video"),
    }
    assert summary["latency_p99_ms"] is not None and summary["total_bitrate_kbps"] > 0
    client = report["client"]
    assert client["publishers"] == 2 and client["cpu_ms_per_s_per_publisher"] > 0
    server_figures = report["server"]
    assert server_figures["forwarded_pps"] > 0
    assert server_figures["cpu_us_per_forwarded_packet"] > 0
    assert server_figures["forwarded_pps_per_core"] > 0
    assert server_figures["participants"] == 3


def test_killed_server_ends_the_run_with_a_partial_report(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    tester = subprocess.Popen(
        loadtest_args(server, out, "--publishers", "2", "--duration", "120"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # the progress line says when the measurement started
        deadline = time.monotonic() + 90
        while "measuring" not in tester.stderr.readline():
            assert time.monotonic() < deadline and tester.poll() is None
        server.process.kill()
        killed_at = time.monotonic()
        stdout, stderr = tester.communicate(timeout=30)
        assert time.monotonic() - killed_at < 30
    finally:
        if tester.poll() is None:
            tester.kill()
            tester.wait()
    assert tester.returncode == 3, stdout + stderr
    assert "lost the server" in stderr
    assert "ABORTED" in stdout
    report = json.loads(out.read_text())
    assert report["aborted"].startswith("lost the server")
    assert report["summary"]["tracks_expected"] == 4
    assert report["summary"]["packets_received"] > 0
    assert all(row["packets_total"] > 0 for row in report["tracks"])
    assert report["window_seconds"] < 60
