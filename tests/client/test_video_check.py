"""A participant's received video checked frame by frame (``Participant(check_video=True)``)
behind a real SFU: the subscriber's :class:`client.vp8_check.Vp8Check` sees the
publisher's VP8, whole and decodable at its size, and counts it as the track's frames."""

from __future__ import annotations

import asyncio

import pytest

from client import LocalSignal, Participant
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
