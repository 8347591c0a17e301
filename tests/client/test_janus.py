"""The headless client against a real Janus (Debian's ``janus``, which ``make browser``
installs): started with :mod:`client.janus_server`'s configuration, a publisher's VP8
reaches a subscriber through the VideoRoom plugin, continuously and nearly without loss;
Janus's refusals surface as :class:`client.janus.JanusError`; and ``bench/versus_janus.py``
at a tiny scale gives rows for both servers and their ratio."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from client import Participant, encode_vp8_clip
from client.janus import JanusError, JanusSignal, create_room
from client.janus_server import INSTALL_HINT, JanusServer
from client.track_stats import TrackStats, watch_receiver

ROOT = Path(__file__).resolve().parents[2]
ROOM = 4242


def need_janus() -> None:
    if shutil.which("janus"):
        return
    if os.environ.get("CI"):
        pytest.fail(f"{INSTALL_HINT} (`make browser` installs it)")
    pytest.skip(INSTALL_HINT)


@pytest.fixture
async def janus() -> AsyncIterator[JanusServer]:
    need_janus()
    async with JanusServer() as server:
        await create_room(server.url, ROOM)
        yield server


class CountingParticipant(Participant):
    """Counts received packets with :class:`TrackStats` (sequence-number loss)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.stats: dict[str, TrackStats] = {}

    def _on_track(self, track) -> None:  # type: ignore[no-untyped-def]
        super()._on_track(track)
        assert self._subscribe_pc is not None
        for transceiver in self._subscribe_pc.getTransceivers():
            if transceiver.receiver.track is track and transceiver.mid is not None:
                stats = self.stats[transceiver.mid] = TrackStats(
                    transceiver.mid, track.kind, time.monotonic(), native=False
                )
                watch_receiver(transceiver.receiver, stats)


async def test_subscriber_receives_the_publishers_vp8_through_janus(janus: JanusServer) -> None:
    clip = encode_vp8_clip(width=320, height=240, bitrate=500_000)
    subscriber = CountingParticipant(
        "viewer", JanusSignal(janus.url, ROOM), audio=False, video=None, decode=False
    )
    publisher = Participant(
        "speaker", JanusSignal(janus.url, ROOM), audio=False, video="preencoded", clip=clip
    )
    try:
        await subscriber.join()
        await publisher.join()
        async with asyncio.timeout(20):
            await subscriber.wait_until(
                lambda p: any(s.packets for s in p.stats.values())  # type: ignore[attr-defined]
            )
        assert isinstance(subscriber.signal, JanusSignal)
        (track,) = subscriber.signal.tracks.values()
        assert track["kind"] == "video" and track["display_name"] == "speaker"
        (stats,) = subscriber.stats.values()
        # continuously: packets in each of four half-second slices, then the loss
        stats.start_window()
        counts = []
        for _ in range(4):
            before = stats.packets
            deadline = time.monotonic() + 0.5
            async with asyncio.timeout(5):
                await subscriber.wait_until(
                    lambda _p, before=before, deadline=deadline: (
                        stats.packets > before and time.monotonic() >= deadline
                    )
                )
            counts.append(stats.packets - before)
        figures = stats.figures()
        assert all(count > 0 for count in counts), counts
        assert figures["packets"] > 50, figures
        assert figures["loss_pct"] < 2.0, figures
    finally:
        await publisher.close()
        await subscriber.close()


async def test_a_room_janus_does_not_have_is_a_clear_error(janus: JanusServer) -> None:
    signal = JanusSignal(janus.url, ROOM + 1)

    async def never(offer: str) -> str:
        raise AssertionError("no offer expected")

    with pytest.raises(JanusError) as raised:
        await signal.connect("lost", never)
    await signal.close()
    assert raised.value.request == "join"
    assert raised.value.code == 426  # JANUS_VIDEOROOM_ERROR_NO_SUCH_ROOM
    assert "room" in str(raised.value).lower()


async def test_a_server_that_is_not_janus_is_a_clear_error() -> None:
    """An HTTP server answering something else than Janus's JSON (a proxy's error page)."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html>502 Bad Gateway</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    signal = JanusSignal(f"http://127.0.0.1:{port}/janus", ROOM)

    async def never(offer: str) -> str:
        raise AssertionError("no offer expected")

    try:
        with pytest.raises(JanusError) as raised:
            await signal.connect("lost", never)
        await signal.close()
    finally:
        await runner.cleanup()
    assert raised.value.request == "create"
    assert "502 Bad Gateway" in raised.value.reason


def test_versus_janus_at_tiny_scale() -> None:
    need_janus()
    command = [sys.executable, str(ROOT / "bench" / "versus_janus.py"), "--json"]
    command += ["--subscribers", "1", "--max-rooms", "1", "--seconds", "2"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    rows = report["rows"]
    for step in ("fanout-1", "mix-1"):
        servers = {row["server"] for row in rows if row["step"] == step}
        assert servers == {"caucus", "janus", "ratio"}, (step, servers)
    for row in rows:
        if row["server"] == "ratio":
            assert row["cpu_us_per_packet"] is not None and row["cpu_us_per_packet"] > 0, row
        else:
            assert row["forwarded_pps"] > 0, row
            assert row["loss_pct"] < 5, row
