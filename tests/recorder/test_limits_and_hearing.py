"""Length limit, H.264 into Matroska, failures, and hearing recordings with a timeline."""

import asyncio
import json

import pytest

from recorder import COMPLETED, FAILED, HearingRecorder, Recorder, RecorderError
from tests.support.eventually import eventually

from .conftest import CASE, decode, files_under, published
from .pattern import FPS


async def test_max_length_stops_the_recording_by_itself(worker, participants, vault, case_key):
    publisher = participants("alice")
    await publisher.join()
    recorder = Recorder(vault, CASE, case_key, "short", max_seconds=2)
    await recorder.start()
    for producer in await published(worker, "alice"):
        recorder.attach(producer)
    async with asyncio.timeout(10):
        result = await recorder.wait()
    assert result.status == COMPLETED and result.reason == "max-length", result
    assert 1.5 <= result.duration_s <= 2.05, result
    decoded = decode(await vault.read_bytes(CASE, case_key, "short"))
    assert decoded.errors == [] and decoded.duration <= 2.1


@pytest.mark.room_video_codecs("video/VP8", "video/H264")
async def test_h264_is_recorded_into_matroska(worker, participants, vault, case_key):
    publisher = participants("alice", video_codec="video/H264")
    await publisher.join()
    recorder = Recorder(vault, CASE, case_key, "h264")
    await recorder.start()
    for producer in await published(worker, "alice"):
        recorder.attach(producer)
    await eventually(lambda: recorder.packets > 2 * FPS * 3, 15)
    result = await recorder.stop()
    assert result.status == COMPLETED and result.has_video, result
    data = await vault.read_bytes(CASE, case_key, "h264")
    assert b"matroska" in data[:64]
    decoded = decode(data)
    assert sorted(decoded.codecs) == ["h264", "opus"]
    assert decoded.errors == []
    assert len(decoded.video) > FPS


async def test_a_recording_without_media_fails_clearly(worker, participants, vault, case_key):
    publisher = participants("alice", audio=False)
    await publisher.join()
    [video] = await published(worker, "alice", kinds=("video",))
    recorder = Recorder(vault, CASE, case_key, "nothing")
    await recorder.start()
    result = await recorder.stop()  # stopped before anything was attached or sent
    assert result.status == FAILED and result.error == "no media was received"
    assert recorder.status == FAILED
    assert files_under(vault.root) == [] and await vault.blob_ids(CASE) == []
    with pytest.raises(RecorderError):
        recorder.attach(video)


async def test_hearing_keeps_one_file_per_participant_and_a_timeline(
    worker, participants, vault, case_key
):
    alice = participants("alice")
    bob = participants("bob", video=None)
    await alice.join()
    await bob.join()
    hearing = HearingRecorder(vault, CASE, case_key, "hearing-1")
    await hearing.start()
    a = await hearing.add_participant("alice", "main", await published(worker, "alice"))
    b = await hearing.add_participant("bob", "main", await published(worker, "bob", ("audio",)))
    await eventually(lambda: a.packets > 2 * FPS and b.packets > 100, 10)
    hearing.moved("bob", "breakout-1")
    await bob.close()
    hearing.left("bob")
    async with asyncio.timeout(10):
        bob_result = await b.wait()
    assert bob_result.reason == "publisher-left"
    result = await hearing.stop()

    assert result.status == COMPLETED, result
    assert [r.blob_id for r in result.recordings] == ["hearing-1-1", "hearing-1-2"]
    assert result.recordings[0].has_video and not result.recordings[1].has_video
    timeline = json.loads(await vault.read_bytes(CASE, case_key, "hearing-1-timeline"))
    events = [(e["event"], e["participant_id"], e["room_id"]) for e in timeline["events"]]
    assert events == [
        ("joined", "alice", "main"),
        ("joined", "bob", "main"),
        ("moved", "bob", "breakout-1"),
        ("left", "bob", None),
    ]
    assert [r["participant_id"] for r in timeline["recordings"]] == ["alice", "bob"]
    for blob_id in ("hearing-1-1", "hearing-1-2"):
        decoded = decode(await vault.read_bytes(CASE, case_key, blob_id))
        assert decoded.errors == [] and decoded.audio_frames > 0
    for data in files_under(vault.root):
        assert b"\x1a\x45\xdf\xa3" not in data and b"alice" not in data
