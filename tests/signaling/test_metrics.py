"""GET /metrics: who may read it, and the SFU's counters as Prometheus text."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from client import Participant, SocketSignal, encode_vp8_clip
from sfu.rtc import native_paths
from signaling.http.metrics import _Totals
from signaling.services import SERVICES
from signaling.settings import Settings
from tests.support.plugin import make_settings
from tests.support.world import PASSWORD, World

TOKEN = "a metrics token for the test"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, metrics_token=TOKEN)


def samples(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[sample.name + (f"{{{label}}}" if label else "")] = sample.value
    return values


async def scrape(world: World) -> dict[str, float]:
    status, body, response = await world.make_client().get(
        "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert status == 200, body
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return samples(body)


async def test_token_or_admin_session_only(world: World) -> None:
    anonymous = world.make_client()
    assert (await anonymous.get("/metrics"))[0] == 401
    wrong = {"Authorization": "Bearer not the token"}
    assert (await anonymous.get("/metrics", headers=wrong))[0] == 401
    assert (await world.clients["nina"].get("/metrics"))[0] == 403
    status, body, _ = await world.clients["root"].get("/metrics")
    assert status == 200
    assert "process_cpu_seconds_total" in samples(body)


async def test_counts_rooms_tracks_and_forwarded_packets(world: World) -> None:
    before = await scrape(world)
    assert before["caucus_media_participants"] == 0
    assert before["caucus_media_forwarded_packets_total"] == 0
    native = {k: v for k, v in before.items() if k.startswith("caucus_media_native_path{")}
    worker = world.server.app[SERVICES].settings.effective_node_id
    assert native == {
        f"caucus_media_native_path{{path={path},worker={worker}}}": float(used)
        for path, used in native_paths().items()
    }
    clip = encode_vp8_clip(frames=10)
    case_a = world.cases["Case A"]
    people = [
        Participant(
            name,
            SocketSignal(world.server.url, name, PASSWORD, case_a, insecure=True),
            video="preencoded",
            clip=clip,
            decode=False,
        )
        for name in ("nina", "paula")
    ]
    try:
        for person in people:
            await person.join()
        async with asyncio.timeout(20):
            for person in people:
                await person.wait_until(
                    lambda p: sum(t.packets > 0 for t in p.tracks.values()) == 2
                )
        during = await scrape(world)
    finally:
        for person in people:
            await person.close()
    assert during["caucus_media_participants"] == 2
    assert during["caucus_media_rooms"] == 1
    assert during["caucus_media_producers{kind=video}"] == 2
    assert during["caucus_media_consumers{kind=audio}"] == 2
    assert during["caucus_media_transports{direction=subscribe}"] == 2
    assert during["caucus_media_forwarded_packets_total"] > 0
    assert (
        during["caucus_media_forwarded_bytes_total"]
        > during["caucus_media_forwarded_packets_total"]
    )
    assert during["caucus_media_received_packets_total"] > 0
    for name in ("nacks_received", "plis_received", "firs_received", "keyframe_requests_sent"):
        assert f"caucus_media_{name}_total" in during
    assert during["process_cpu_seconds_total"] > 0

    after = await scrape(world)
    assert after["caucus_media_participants"] == 0
    # Closed transports keep what the last scrape saw: counters never go back.
    for name, value in during.items():
        if name.endswith("_total"):
            assert after[name] >= value, name


def test_totals_keep_what_retired_objects_counted() -> None:
    totals = _Totals()
    assert totals.update({"a": {"packets": 5}, "b": {"packets": 2}}) == {"packets": 7}
    assert totals.update({"b": {"packets": 3}}) == {"packets": 8}
    assert totals.update({}) == {"packets": 8}
