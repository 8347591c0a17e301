import pytest

from sfu import Worker

from .media_support import hostile_settings, participant_factory


@pytest.fixture
async def worker():
    w = Worker(hostile_settings())
    yield w
    await w.close()


@pytest.fixture
async def participants(worker):
    created = []
    yield participant_factory(worker, created)
    for p in created:
        await p.close()
