"""One account opening many tabs into a live room: each joining and publishing used to hold
media ports without limit.  The server keeps every user to ``live_sessions_per_user`` live
sessions (``too_many_sessions`` beyond it), whoever else is in the room."""

from __future__ import annotations

import re

from client import Participant, SignalError, SocketSignal
from signaling.http.state import MEDIA_WORKER, NAMESPACES
from signaling.realtime.namespaces.media import MediaNamespace
from tests.support.eventually import eventually
from tests.support.world import PASSWORD, World

ATTEMPTS = 8


def refusals(metrics_text: str, limit: str) -> float:
    match = re.search(rf'^caucus_refusals_total{{limit="{limit}"}} (\S+)$', metrics_text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_one_user_holds_at_most_the_limit_of_live_sessions(world: World) -> None:
    case_a = world.cases["Case A"]
    limit = world.server.services.settings.live_sessions_per_user
    assert limit == 2
    worker = world.server.app[MEDIA_WORKER]
    root = world.clients["root"]
    before = refusals((await root.get("/metrics"))[1], "live_sessions_per_user")

    def tab(name: str, number: int) -> Participant:
        signal = SocketSignal(world.server.url, name, PASSWORD, case_a, insecure=True)
        return Participant(f"{name}-{number}", signal, video=None, audio=True)

    async def enter(person: Participant) -> str | None:
        try:
            await person.join()
        except SignalError as refusal:
            return refusal.code
        return None

    tabs = [tab("paula", i) for i in range(ATTEMPTS + 2)]
    nina = tab("nina", 0)
    try:
        answers = [await enter(person) for person in tabs[:ATTEMPTS]]
        assert answers[:limit] == [None] * limit
        assert answers[limit:] == ["too_many_sessions"] * (ATTEMPTS - limit)
        # The two sessions publish; the refused tabs hold nothing on the server.
        await eventually(lambda: len(worker.transports) >= 2 * limit, within=20)
        assert len(worker.transports) == 2 * limit  # a subscribe and a publish each
        # Another member of the case joins as usual.
        assert await enter(nina) is None
        # Leaving frees a place.
        await tabs[0].close()
        assert await enter(tabs[ATTEMPTS]) is None
        assert await enter(tabs[ATTEMPTS + 1]) == "too_many_sessions"
        namespace = next(n for n in world.server.app[NAMESPACES] if isinstance(n, MediaNamespace))
        held = [s for s in namespace.live.values() if s.role == "party"]
        assert len({s.user_id for s in held}) == 1 and len(held) == limit
    finally:
        for person in [*tabs, nina]:
            await person.close()
    after = refusals((await root.get("/metrics"))[1], "live_sessions_per_user")
    assert after - before == ATTEMPTS - limit + 1
