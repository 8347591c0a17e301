import pytest

from client import LocalSignal, Participant
from sfu import MediaSettings, Worker
from tests.support.media import participant


@pytest.fixture
async def worker(request):
    """The SFU; ``@pytest.mark.room_video_codecs(...)`` sets the codecs its rooms forward."""
    marker = request.node.get_closest_marker("room_video_codecs")
    options = {"room_video_codecs": marker.args} if marker else {}
    fields = request.node.get_closest_marker("media_settings")
    if fields:
        options.update(fields.kwargs)
    w = Worker(MediaSettings(**options) if options else None)
    yield w
    await w.close()


@pytest.fixture
async def participants(worker):
    created: list[Participant] = []

    def make(name: str, room: str = "room", **options) -> Participant:
        """Pre-encoded media, packets counted not decoded, unless ``options`` say."""
        p = participant(name, LocalSignal(worker, room), **options)
        created.append(p)
        return p

    yield make
    for p in created:
        await p.close()
