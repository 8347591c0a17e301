"""A participant's received video checked frame by frame (``Participant(check_video=True)``)
behind a real SFU: the subscriber's :class:`client.vp8_check.Vp8Check` sees the
publisher's VP8, whole and decodable at its size, and counts it as the track's frames;
the participant's close releases the check's decoder."""

from __future__ import annotations

import asyncio
import gc

import pytest
from av.codec.context import CodecContext

from client import LocalSignal, Participant
from client.vp8_check import Vp8Check
from sfu import Worker
from tests.support.eventually import eventually
from tests.support.media import participant


@pytest.mark.parametrize("decode", [False, True], ids=["direct-receive", "aiortc-receive"])
async def test_a_subscriber_checks_what_the_sfu_forwards(decode: bool) -> None:
    worker = Worker()
    publisher = participant("pub", LocalSignal(worker, "room"))  # a 320x240 VP8 clip
    subscriber = Participant(
        "sub",
        LocalSignal(worker, "room"),
        audio=False,
        video=None,
        decode=decode,
        check_video=True,
    )
    try:
        async with asyncio.timeout(20):
            await subscriber.join()
            await publisher.join()

        def video_check():
            tracks = [t for t in subscriber.tracks.values() if t.kind == "video"]
            return tracks[0].check if tracks else None

        await eventually(lambda: (c := video_check()) is not None and c.frames_decoded >= 40, 30)
        track = next(t for t in subscriber.tracks.values() if t.kind == "video")
        check = track.check
        assert check is not None
        report = check.report()
        assert report.clean, report
        assert report.resolutions == {(320, 240): report.frames_decoded}
        assert report.keyframes >= 1 and report.ssrc_changes == 0
        assert len(report.packets_per_ssrc) == 1
        # the track's counters are the check's: frames are the clean decoded ones
        assert track.frames >= 40 and track.packets >= report.packets
        assert subscriber.frames_from_all(1, kind="video")
        # audio is received as before (decoded by aiortc, or counted)
        assert [t.check for t in subscriber.tracks.values() if t.kind == "audio"] == [None]
    finally:
        await publisher.close()
        await subscriber.close()
        await worker.close()


async def test_with_nacks_the_check_decodes_frames_whose_lost_packets_came_back() -> None:
    """A subscriber that loses 3 % of its datagrams and NACKs them: each retransmission is
    put back in place before the check (``client.reorder``), so that the frames it
    repairs decode, as behind a browser's jitter buffer."""
    worker = Worker()
    publisher = participant("pub", LocalSignal(worker, "room"))  # 320x240, a keyframe a second
    subscriber = Participant(
        "sub",
        LocalSignal(worker, "room"),
        audio=False,
        video=None,
        decode=False,
        check_video=True,
        feedback=True,
        loss=0.03,
    )
    try:
        async with asyncio.timeout(20):
            await subscriber.join()
            await publisher.join()

        def video():
            tracks = [t for t in subscriber.tracks.values() if t.kind == "video"]
            return tracks[0] if tracks else None

        await eventually(
            lambda: (
                (t := video()) is not None
                and t.check is not None
                and t.check.frames_decoded >= 150
                and subscriber.feedback is not None
                and subscriber.feedback.recovered >= 5
            ),
            30,
        )
        track = video()
        assert track is not None and track.check is not None and track.reorder is not None
        report, reorder = track.check.report(), track.reorder
        feedback = subscriber.feedback
        assert feedback is not None
        assert reorder.unwrapped >= feedback.recovered > 0 and reorder.reordered > 0
        # the check misses only what was never recovered, and decodes everything else
        assert report.lost_packets <= feedback.abandoned + 3, (report, feedback.stats())
        assert report.frames_failed == 0 and report.malformed_packets == 0
        assert report.frames_corrupt <= report.frames_assembled // 10, report
        assert report.resolutions == {(320, 240): report.frames_decoded}
    finally:
        await publisher.close()
        await subscriber.close()
        await worker.close()


async def test_closing_the_participant_releases_its_checks_decoder() -> None:
    """The check's decoder lives as long as the subscribe connection: once the participant
    closed, it is freed (PyAV frees a codec context with its last reference) and the
    check's figures stay readable."""
    worker = Worker()
    publisher = participant("pub", LocalSignal(worker, "room"))
    subscriber = Participant(
        "sub", LocalSignal(worker, "room"), audio=False, video=None, decode=False, check_video=True
    )

    def video_check() -> Vp8Check | None:
        tracks = [t for t in subscriber.tracks.values() if t.kind == "video"]
        return tracks[0].check if tracks else None

    try:
        async with asyncio.timeout(20):
            await subscriber.join()
            await publisher.join()
        await eventually(lambda: (c := video_check()) is not None and c.frames_decoded >= 10, 30)
        check = video_check()
        assert check is not None and check.decoder is not None and check.decoder.is_open
        decoder_id = id(check.decoder)
    finally:
        await subscriber.close()
        await publisher.close()
        await worker.close()
    assert check.decoder is None
    gc.collect()
    assert decoder_id not in {id(o) for o in gc.get_objects() if isinstance(o, CodecContext)}
    report = check.report()
    assert report.frames_decoded >= 10, report
