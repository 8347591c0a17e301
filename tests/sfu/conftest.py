import asyncio

import pytest

from client import LocalSignal, Participant
from sfu import Worker


@pytest.fixture
async def worker():
    w = Worker()
    yield w
    await w.close()


@pytest.fixture
async def participants(worker):
    created: list[Participant] = []

    def make(name: str, room: str = "room", **options) -> Participant:
        p = Participant(name, LocalSignal(worker, room), **options)
        created.append(p)
        return p

    yield make
    for p in created:
        await p.close()


async def wait_for(condition, within: float) -> None:
    """Poll ``condition()`` until true; ``TimeoutError`` after ``within`` seconds.

    Counters live in aiortc and SFU objects without change notifications, so polling is
    the condition wait here."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
