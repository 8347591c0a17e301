"""What a participant counts of a track it does not decode: packets, their bytes, frames
by the marker bit of the media payload type, and (``arrival_times=True``) when each
packet arrived, behind a real SFU."""

from __future__ import annotations

import asyncio

import pytest

from client import LocalSignal, Participant
from client.participant import ReceivedTrack
from sfu import Worker
from tests.support.eventually import eventually
from tests.support.media import participant


def track_of(subscriber: Participant, kind: str) -> ReceivedTrack | None:
    tracks = [t for t in subscriber.tracks.values() if t.kind == kind]
    return tracks[0] if tracks else None


async def test_a_counting_subscriber_counts_bytes_frames_and_arrivals() -> None:
    worker = Worker()
    publisher = participant("pub", LocalSignal(worker, "room"))  # 30 frames/s, and audio
    counting = Participant(
        "counting",
        LocalSignal(worker, "room"),
        audio=False,
        video=None,
        decode=False,
        arrival_times=True,
    )
    checking = Participant(
        "checking",
        LocalSignal(worker, "room"),
        audio=False,
        video=None,
        decode=False,
        check_video=True,
    )
    try:
        async with asyncio.timeout(20):
            await counting.join()
            await checking.join()
            await publisher.join()

        def checked_frames() -> int:
            track = track_of(checking, "video")
            return track.check.frames_assembled if track and track.check else 0

        await eventually(lambda: checked_frames() >= 60, 30)
        await eventually(lambda: (t := track_of(counting, "video")) and t.marked >= 60, 30)

        video, audio = track_of(counting, "video"), track_of(counting, "audio")
        assert video is not None and audio is not None
        # every packet's bytes (a 12-byte header at least), one marked packet per frame
        assert video.bytes >= 12 * video.packets + video.packets
        assert 0 < video.marked <= video.packets
        assert audio.bytes >= 12 * audio.packets
        assert audio.marked == audio.packets  # aiortc marks every Opus packet (a whole frame)
        # an arrival time per packet, in order; the longest gap of a 30 frames/s stream
        assert video.arrivals is not None and len(video.arrivals) == video.packets
        assert video.arrivals == sorted(video.arrivals)
        gap = video.longest_gap(video.arrivals[0], video.arrivals[-1])
        assert gap is not None and 0 < gap < 1.0

        # a checked track counts the same packets: its marked ones are the frames assembled
        checked = track_of(checking, "video")
        assert checked is not None and checked.check is not None
        report = checked.check.report()
        assert report.lost_packets == 0
        assert checked.marked in (report.frames_assembled, report.frames_assembled + 1)
        assert checked.bytes > 0 and checked.arrivals is None  # not asked for
        assert checked.longest_gap(0, 1) is None
    finally:
        await publisher.close()
        await counting.close()
        await checking.close()
        await worker.close()


def test_the_longest_gap_counts_the_window_edges() -> None:
    track = ReceivedTrack("0", "audio", arrivals=[1.0, 1.1, 1.5, 3.0])
    assert track.longest_gap(1.0, 2.0) == pytest.approx(0.5)  # 1.5 to the window's end
    assert track.longest_gap(0.2, 1.2) == pytest.approx(0.8)  # the window's start to 1.0
    assert track.longest_gap(1.15, 1.45) == pytest.approx(0.3)  # nothing inside: all of it
    assert track.longest_gap(2.0, 1.0) is None
