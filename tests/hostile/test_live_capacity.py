"""Many people joining live rooms at once, across cases: each session holds media ports and
forwarding work on the process that hosts its case, so that process takes at most
``live_sessions_per_worker`` (``server_full`` beyond it, counted in the metrics); those
already in a room keep their sessions, and a place freed is taken again."""

from __future__ import annotations

from pathlib import Path

import pytest

from client import Participant, SignalError, SocketSignal
from signaling.http.state import MEDIA_WORKER, NAMESPACES
from signaling.realtime.namespaces.media import MediaNamespace
from signaling.settings import Settings
from tests.hostile.test_live_sessions import refusals
from tests.support.eventually import eventually
from tests.support.plugin import make_settings
from tests.support.world import PASSWORD, World

LIMIT = 3


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, live_sessions_per_worker=LIMIT)


async def test_a_process_holds_at_most_its_limit_of_live_sessions(world: World) -> None:
    root = world.clients["root"]
    worker = world.server.app[MEDIA_WORKER]
    before = refusals((await root.get("/metrics"))[1], "live_sessions_per_worker")
    case_a, case_b = world.cases["Case A"], world.cases["Case B"]

    created: list[Participant] = []

    def person(name: str, case_id: str) -> Participant:
        signal = SocketSignal(world.server.url, name, PASSWORD, case_id, insecure=True)
        created.append(Participant(name, signal, video=None, audio=True))
        return created[-1]

    async def enter(who: Participant) -> str | None:
        try:
            await who.join()
        except SignalError as refusal:
            assert "as many live sessions as it can" in str(refusal)
            return refusal.code
        return None

    people = {
        "nina": person("nina", case_a),
        "paula": person("paula", case_a),
        "otto": person("otto", case_b),
        "peter": person("peter", case_b),
        "carl": person("carl", case_a),
    }
    try:
        answers = {name: await enter(p) for name, p in people.items()}
        assert answers == {
            "nina": None,
            "paula": None,
            "otto": None,
            "peter": "server_full",  # another case, the same process
            "carl": "server_full",
        }
        # those in the rooms keep their sessions; the refused hold nothing on the server
        await eventually(lambda: len(worker.transports) >= 2 * LIMIT, within=20)
        assert len(worker.transports) == 2 * LIMIT  # a subscribe and a publish each
        namespace = next(n for n in world.server.app[NAMESPACES] if isinstance(n, MediaNamespace))
        assert len(namespace.live) == LIMIT
        # a place freed is taken again, and the limit holds after it
        await people["paula"].close()
        assert await enter(person("peter", case_b)) is None
        assert await enter(person("carl", case_a)) == "server_full"
    finally:
        for p in created:
            await p.close()
    after = refusals((await root.get("/metrics"))[1], "live_sessions_per_worker")
    assert after - before == 3
