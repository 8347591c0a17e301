import io
import os
from dataclasses import dataclass, field

import av
import pytest

import client.participant
from client import LocalSignal, Participant
from rooms.vault.format import new_data_key
from rooms.vault.store import SpaceVault
from sfu import MediaSettings, Worker
from tests.support.eventually import eventually

from .pattern import CounterPatternTrack, read_frame

CASE = "case-1"


@pytest.fixture
async def worker(request):
    """The SFU; ``@pytest.mark.room_video_codecs(...)`` sets the codecs its rooms forward."""
    marker = request.node.get_closest_marker("room_video_codecs")
    w = Worker(MediaSettings(room_video_codecs=marker.args) if marker else None)
    yield w
    await w.close()


@pytest.fixture
def pattern_video(monkeypatch):
    """Headless participants publish the counter pattern instead of the gradient."""
    monkeypatch.setattr(client.participant, "PatternVideoTrack", CounterPatternTrack)


@pytest.fixture
async def participants(worker, pattern_video):
    created: list[Participant] = []

    def make(name: str, room: str = "room", **options) -> Participant:
        p = Participant(name, LocalSignal(worker, room), **options)
        created.append(p)
        return p

    yield make
    for p in created:
        await p.close()


@pytest.fixture
def vault(tmp_path):
    return SpaceVault(tmp_path / "vault")


@pytest.fixture
def case_key():
    return new_data_key()


def producers_of(worker: Worker, participant_id: str) -> list:
    return [
        p
        for t in worker.transports_of(participant_id, "publish")
        for p in t.producers.values()
        if not p.closed
    ]


async def published(worker: Worker, participant_id: str, kinds=("audio", "video")) -> list:
    """The participant's producers once every kind in ``kinds`` is published."""
    await eventually(
        lambda: sorted(p.kind for p in producers_of(worker, participant_id)) == sorted(kinds), 10
    )
    return producers_of(worker, participant_id)


def files_under(root) -> list[bytes]:
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(directory, name), "rb") as f:
                found.append(f.read())
    return found


@dataclass
class Decoded:
    duration: float
    video_streams: int
    audio_streams: int
    codecs: list[str]
    #: (pts in seconds, counter, (Y, U, V)) per decoded video frame
    video: list[tuple[float, int, tuple[float, float, float]]] = field(default_factory=list)
    audio_frames: int = 0
    audio_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def decode(data: bytes) -> Decoded:
    """Decode every packet of a recording (in memory); decoding errors are collected."""
    with av.open(io.BytesIO(data)) as container:
        decoded = Decoded(
            duration=(container.duration or 0) / av.time_base,
            video_streams=len(container.streams.video),
            audio_streams=len(container.streams.audio),
            codecs=[s.codec_context.name for s in container.streams],
        )
        for packet in container.demux():
            if packet.size == 0:
                continue
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                decoded.errors.append(f"{packet.stream.type} pts={packet.pts}: {exc}")
                continue
            for frame in frames:
                if packet.stream.type == "video":
                    counter, colour = read_frame(frame)
                    decoded.video.append((float(frame.time), counter, colour))
                else:
                    decoded.audio_frames += 1
                    decoded.audio_seconds += frame.samples / frame.sample_rate
    return decoded
