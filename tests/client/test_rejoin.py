"""A headless participant with ``rejoin=True`` comes back by itself, like the live page:
after the server ends its session (``media.ended``, whatever the reason but ``removed``),
after its socket is dropped or its session signed out, and on another server node when
its own stops; refused attempts are retried with backoff; a participant the mediator
removed stays out."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from aiohttp import web

from certs.authority import ensure_self_signed
from client import LocalSignal, Participant, SignalError, SocketSignal
from client.signal import OfferHandler
from rooms.cases.live import WAITING
from rooms.storage.store import Store
from sfu import Worker
from signaling.http.access import end_session_sockets
from signaling.http.app import build_app
from signaling.http.state import MEDIA_NAMESPACE
from signaling.realtime.namespaces.media import MediaNamespace
from signaling.services import Services
from signaling.settings import Settings
from tests.support.world import PASSWORD, World

NAMES = ("nina", "paula", "carl")


def signal_for(world: World, name: str) -> SocketSignal:
    return SocketSignal(world.server.url, name, PASSWORD, world.cases["Case A"], insecure=True)


def media_namespace(app: web.Application) -> MediaNamespace:
    return app[MEDIA_NAMESPACE]


def heard_since(person: Participant, since: float) -> set[str]:
    """Whose video ``person`` decoded a frame of at or after ``since``."""
    assert isinstance(person.signal, SocketSignal)
    labels = person.signal.tracks
    return {
        labels[mid]["participant_id"]
        for mid, track in person.tracks.items()
        if mid in labels and track.kind == "video" and track.frames_since(since)
    }


async def everyone_hears_everyone(people: list[Participant], since: float) -> None:
    ids = {p.signal.participant_id for p in people}
    for person in people:
        others = ids - {person.signal.participant_id}
        await person.wait_until(lambda p, others=others: heard_since(p, since) == others)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_failed_subscribe_connection_is_rejoined(world: World) -> None:
    people = [Participant(n, signal_for(world, n), audio=False, rejoin=True) for n in NAMES]
    nina, paula, carl = people
    namespace = media_namespace(world.server.app)
    try:
        for person in people:
            await person.join()
        async with asyncio.timeout(60):
            await everyone_hears_everyone(people, 0.0)
        first_id = paula.signal.participant_id
        before = len(paula.tracks)
        # the server closes paula's subscribe transport, as when its ICE or DTLS fails
        session = namespace.by_participant[first_id]
        assert session.subscribe is not None
        await session.subscribe.close()
        async with asyncio.timeout(60):
            await paula.wait_until(lambda p: p.rejoins == 1)
            back = paula.rejoined_at
            assert back is not None
            # a new live session with new connections, in the same room, both ways
            await everyone_hears_everyone(people, back)
        assert [e.reason for e in paula.endings] == ["connection_failed"]
        assert paula.signal.ended is None and paula.signal.endings == ["connection_failed"]
        assert paula.signal.participant_id != first_id
        assert paula.signal.sockets_opened == 1  # the socket itself stayed
        assert paula.signal.my_room()["id"] == "main"
        assert len(paula.past_tracks) == before and all(t.frames for t in paula.past_tracks)
        assert paula.frames_from_all(2, "video", since=back)
        assert nina.rejoins == carl.rejoins == 0 and not nina.endings and not carl.endings
        assert {s.participant_id for s in namespace.live.values()} == {
            p.signal.participant_id for p in people
        }
    finally:
        for person in people:
            await person.close()


async def test_any_other_ending_is_rejoined(world: World) -> None:
    """``media.ended`` with a reason the client does not know yet (here the media
    worker's loss, told while the server still holds the session) is rejoined too."""
    case_a = world.cases["Case A"]
    nina, paula = (
        Participant(n, signal_for(world, n), video=None, audio=False, rejoin=True)
        for n in ("nina", "paula")
    )
    namespace = media_namespace(world.server.app)
    try:
        await nina.join()
        await paula.join()
        first_id = paula.signal.participant_id
        sid = namespace.by_participant[first_id].sid
        await namespace.emit(
            "media.ended", {"case_id": case_a, "reason": "media_worker_lost"}, to=sid
        )
        async with asyncio.timeout(30):
            await paula.wait_until(lambda p: p.rejoins == 1)
            now_there = {nina.signal.participant_id, paula.signal.participant_id}
            await nina.signal.wait_until(
                lambda s: {p["participant_id"] for p in s.participants} == now_there
            )
        assert [e.reason for e in paula.endings] == ["media_worker_lost"]
        assert paula.rejoin_failures == 0
        assert paula.signal.participant_id != first_id
        assert first_id not in namespace.by_participant
    finally:
        await paula.close()
        await nina.close()


async def test_a_removed_participant_stays_out(world: World) -> None:
    case_a = world.cases["Case A"]
    nina, paula = (
        Participant(n, signal_for(world, n), video=None, audio=False, rejoin=True)
        for n in ("nina", "paula")
    )
    namespace = media_namespace(world.server.app)
    try:
        await nina.join()
        await paula.join()
        assert isinstance(nina.signal, SocketSignal) and isinstance(paula.signal, SocketSignal)
        user = paula.signal.live["you"]["user_id"]
        await nina.signal.call("live.remove", {"case_id": case_a, "user_id": user})
        async with asyncio.timeout(15):
            await paula.wait_until(lambda p: p.removed)
        assert not paula.rejoining
        assert [e.reason for e in paula.endings] == ["removed"]
        assert paula.signal.ended == "removed"
        # nobody of paula's is in a live session, and she waits outside
        assert all(s.user_id != user for s in namespace.live.values())
        state = await namespace.rooms_state.load(case_a)
        assert state.where(user) == WAITING
        assert paula.rejoins == 0 and nina.rejoins == 0
    finally:
        await paula.close()
        await nina.close()


async def test_a_dropped_socket_is_reconnected_and_rejoined(world: World) -> None:
    # the first address does not answer: the signal goes on to the next one
    dead = f"https://127.0.0.1:{closed_port()}"
    people = [
        Participant(n, signal_for(world, n), audio=False, rejoin=True) for n in ("nina", "carl")
    ]
    paula_signal = SocketSignal(
        dead, "paula", PASSWORD, world.cases["Case A"], insecure=True, urls=[world.server.url]
    )
    paula = Participant("paula", paula_signal, audio=False, rejoin=True)
    people.append(paula)
    namespace = media_namespace(world.server.app)
    try:
        for person in people:
            await person.join()
        assert paula_signal.base_url == world.server.url
        async with asyncio.timeout(60):
            await everyone_hears_everyone(people, 0.0)
        first_id = paula_signal.participant_id
        token = paula_signal._token
        # the server drops paula's socket.io connection
        await namespace.disconnect(namespace.by_participant[first_id].sid)
        async with asyncio.timeout(60):
            await paula.wait_until(lambda p: p.rejoins == 1)
            back = paula.rejoined_at
            assert back is not None
            await everyone_hears_everyone(people, back)
        assert [e.reason for e in paula.endings] == ["disconnected"]
        assert paula_signal.sockets_opened == 2
        assert paula_signal._token == token  # the same session: not signed in again
        assert paula_signal.participant_id != first_id
        assert paula_signal.my_room()["id"] == "main"
    finally:
        for person in people:
            await person.close()


async def test_a_signed_out_session_signs_in_again(world: World) -> None:
    """The session ends (signed out elsewhere): its sockets close, the new socket is
    refused, and the signal signs in again before joining."""
    signal = signal_for(world, "paula")
    paula = Participant("paula", signal, video=None, audio=False, rejoin=True)
    services = world.server.services
    try:
        await paula.join()
        token = signal._token
        session = await services.sessions.find(token)
        assert session is not None
        await services.sessions.end(session)
        await end_session_sockets(world.server.app, session.token_hash)
        async with asyncio.timeout(30):
            await paula.wait_until(lambda p: p.rejoins == 1)
        assert signal._token != token and signal.sockets_opened == 2
        assert [e.reason for e in paula.endings] == ["disconnected"]
        assert paula.signal.my_room()["id"] == "main"
    finally:
        await paula.close()


async def test_a_stopped_server_node_is_replaced_by_another(
    world: World, settings: Settings, database_url: tuple[str, str | None], tmp_path: Path
) -> None:
    """Paula is connected to a second node of the same deployment (same database); when
    that node stops she goes on to the first one and joins again there."""
    url, schema = database_url
    store = Store(url, schema=schema)
    app = build_app(Services.build(settings, store=store))
    # stopping, it drops its open sockets at once, as a node that dies does
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    cert = ensure_self_signed(tmp_path / "certs-b", ["127.0.0.1"])
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=cert.ssl_context())
    await site.start()
    node_b = f"https://127.0.0.1:{runner.addresses[0][1]}"
    stopped = False
    nina = Participant("nina", signal_for(world, "nina"), video=None, audio=False)
    paula_signal = SocketSignal(
        node_b,
        "paula",
        PASSWORD,
        world.cases["Case A"],
        insecure=True,
        urls=[node_b, world.server.url],
    )
    paula = Participant("paula", paula_signal, audio=False, rejoin=True)
    try:
        await nina.join()
        await paula.join()
        assert paula_signal.base_url == node_b
        assert paula_signal.participant_id in media_namespace(app).by_participant
        await runner.cleanup()  # node B stops: its sockets close
        stopped = True
        async with asyncio.timeout(60):
            await paula.wait_until(lambda p: p.rejoins == 1)
            await nina.wait_until(
                lambda p: heard_since(p, paula.rejoined_at or 0.0) == {paula_signal.participant_id}
            )
        assert paula_signal.base_url == world.server.url
        assert paula.endings[0].reason == "disconnected"
    finally:
        await paula.close()
        await nina.close()
        if not stopped:
            await runner.cleanup()
        await store.close()


async def test_a_local_participant_rejoins_a_worker_after_a_failed_connection() -> None:
    worker = Worker()
    a = Participant("a", LocalSignal(worker, "room"), audio=False, rejoin=True)
    b = Participant("b", LocalSignal(worker, "room"), audio=False, rejoin=True)
    try:
        await a.join()
        await b.join()
        async with asyncio.timeout(30):
            await a.wait_until(lambda p: p.frames_from_all(1, "video"))
            await b.wait_until(lambda p: p.frames_from_all(1, "video"))
        signal = b.signal
        assert isinstance(signal, LocalSignal) and signal.subscribe_transport is not None
        await signal.subscribe_transport.close()
        async with asyncio.timeout(30):
            await b.wait_until(lambda p: p.rejoins == 1)
            back = b.rejoined_at
            assert back is not None
            await b.wait_until(lambda p: p.frames_from_all(1, "video", since=back))
            await a.wait_until(lambda p: p.frames_from_all(1, "video", since=back))
        assert [e.reason for e in b.endings] == ["connection_failed"] and a.rejoins == 0
    finally:
        await a.close()
        await b.close()
        await worker.close()


class RefusingSignal(LocalSignal):
    """Refuses the next ``refusals`` joins, as a busy server does."""

    refusals = 0

    async def connect(self, participant_id: str, on_subscribe_offer: OfferHandler) -> None:
        if self.refusals:
            self.refusals -= 1
            raise SignalError("stale_state", "try again")
        await super().connect(participant_id, on_subscribe_offer)


async def test_refused_rejoins_are_retried_with_backoff() -> None:
    worker = Worker()
    signal = RefusingSignal(worker, "room")
    a = Participant("a", LocalSignal(worker, "room"), video=None, audio=False)
    b = Participant("b", signal, audio=False, rejoin=True)
    try:
        await a.join()
        await b.join()
        signal.refusals = 3
        assert signal.subscribe_transport is not None
        ended = time.monotonic()
        await signal.subscribe_transport.close()
        async with asyncio.timeout(30):
            await b.wait_until(lambda p: p.rejoins == 1)
            await a.wait_until(lambda p: p.frames_from_all(1, "video", since=b.rejoined_at or 0))
        assert b.rejoin_failures == 3
        # waited about 0.2 + 0.5 + 1 s (each within 20 %) between the attempts
        assert (b.rejoined_at or 0) - ended >= 0.8 * (0.2 + 0.5 + 1.0)
    finally:
        await a.close()
        await b.close()
        await worker.close()
