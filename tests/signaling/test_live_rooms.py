"""The live rooms' controls over socket.io: only a neutral may use them, parties cannot move
anyone, timers close rooms, broadcasts and questions reach people, screens follow the
room's rule, whiteboards are validated, and a restarted server puts people back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from certs.authority import ensure_self_signed
from client import Participant, SignalError, SocketSignal
from rooms.storage.store import Store
from signaling.http.app import build_app
from signaling.http.state import MEDIA_WORKER, NAMESPACES
from signaling.realtime.namespaces.media import MediaNamespace
from signaling.services import Services
from signaling.settings import Settings
from tests.signaling.test_media import connect, publish_offer
from tests.support.world import PASSWORD, World

MEDIATOR_EVENTS: dict[str, dict[str, Any]] = {
    "live.room.create": {"name": "Sneaky"},
    "live.room.rename": {"room_id": "ROOM", "name": "Renamed"},
    "live.room.close": {"room_id": "ROOM"},
    "live.room.lock": {"room_id": "ROOM", "locked": True},
    "live.room.sharing": {"room_id": "ROOM", "allowed": False},
    "live.move": {"user_id": "PAULA", "room_id": "ROOM"},
    "live.move_many": {"moves": {"PAULA": "ROOM", "CARL": "ROOM"}},
    "live.swap": {"first": "PAULA", "second": "NINA"},
    "live.bring_back": {},
    "live.admit": {"user_id": "PAULA"},
    "live.remove": {"user_id": "NINA"},
    "live.broadcast": {"text": "everyone out"},
    "live.timer.start": {"room_id": "ROOM", "seconds": 5},
    "live.timer.extend": {"room_id": "ROOM", "seconds": 5},
    "live.hand.lower": {"user_id": "PAULA"},
}


def signal_for(world: World, name: str) -> SocketSignal:
    return SocketSignal(world.server.url, name, PASSWORD, world.cases["Case A"], insecure=True)


def media_namespace(app: web.Application) -> MediaNamespace:
    return next(n for n in app[NAMESPACES] if isinstance(n, MediaNamespace))


def person_in(signal: SocketSignal, user_id: str) -> dict[str, Any]:
    """``user_id`` as the latest ``live.state`` of ``signal`` shows them, in any room."""
    for room in signal.live.get("rooms", []):
        for person in room["occupants"]:
            if person["user_id"] == user_id:
                return dict(person)
    return {}


def fill(body: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    def sub(value: Any) -> Any:
        if isinstance(value, str):
            return ids.get(value, value)
        if isinstance(value, dict):
            return {sub(k): sub(v) for k, v in value.items()}
        return value

    return sub(body)


async def test_parties_cannot_use_the_mediators_controls(world: World) -> None:
    case_a = world.cases["Case A"]
    nina, paula, carl = (signal_for(world, n) for n in ("nina", "paula", "carl"))
    people = [
        Participant(n, s, video=None, audio=False)
        for n, s in (("nina", nina), ("paula", paula), ("carl", carl))
    ]
    try:
        for person in people:
            await person.join()
        room = await nina.call("live.room.create", {"case_id": case_a, "name": "Caucus 1"})
        ids = {
            "ROOM": room["room_id"],
            "PAULA": paula.live["you"]["user_id"],
            "CARL": carl.live["you"]["user_id"],
            "NINA": nina.live["you"]["user_id"],
        }
        namespace = media_namespace(world.server.app)
        before = (await namespace.rooms_state.load(case_a)).to_state()
        for caller in (paula, carl):
            for name, body in MEDIATOR_EVENTS.items():
                with_ids = {"case_id": case_a, **fill(body, ids)}
                try:
                    await caller.call(name, with_ids)
                except SignalError as refusal:
                    assert refusal.code == "forbidden", (name, refusal)
                else:
                    raise AssertionError(f"a party could send {name}")
        after = await namespace.rooms_state.load(case_a)
        assert after.to_state() == before
        assert not any(e == "live.broadcast" for e, _ in paula.live_events + nina.live_events)
        # the forged move of someone else changed nothing for them either
        assert paula.my_room()["id"] == "main" and carl.my_room()["id"] == "main"

        # a party sees only the room they are in; the neutral sees every room
        assert [r["id"] for r in paula.live["rooms"]] == ["main"]
        await nina.wait_until(lambda s: len(s.live["rooms"]) == 2)
        # the neutral moves the party: the party is told, and cannot come back alone
        await nina.call(
            "live.move", {"case_id": case_a, **fill({"user_id": "PAULA", "room_id": "ROOM"}, ids)}
        )
        async with asyncio.timeout(10):
            await paula.wait_until(
                lambda s: s.my_room() is not None and s.my_room()["name"] == "Caucus 1"
            )
        try:
            await paula.call(
                "live.move", {"case_id": case_a, "user_id": ids["PAULA"], "room_id": "main"}
            )
        except SignalError as refusal:
            assert refusal.code == "forbidden"
        # the party asks for the mediator from the breakout room
        reply = await paula.call("live.ask", {"case_id": case_a, "text": "A question"})
        assert reply["notified"] == 1
        async with asyncio.timeout(10):
            await nina.wait_until(lambda s: any(e == "live.asked" for e, _ in s.live_events))
        asked = next(p for e, p in nina.live_events if e == "live.asked")
        assert asked["room_name"] == "Caucus 1" and asked["text"] == "A question"
        # asking raised the party's hand, shown on the mediator's card until lowered
        async with asyncio.timeout(10):
            await nina.wait_until(
                lambda s: any(
                    e == "live.person" and p["user_id"] == ids["PAULA"] and p["hand"]
                    for e, p in s.live_events
                )
            )
        # and a new view shows it too
        await nina.call(
            "live.room.rename", {"case_id": case_a, "room_id": ids["ROOM"], "name": "C1"}
        )
        async with asyncio.timeout(10):
            await nina.wait_until(lambda s: person_in(s, ids["PAULA"]).get("hand") is True)
        await nina.call("live.hand.lower", {"case_id": case_a, "user_id": ids["PAULA"]})
        async with asyncio.timeout(10):
            await nina.wait_until(
                lambda s: any(
                    e == "live.person" and p["user_id"] == ids["PAULA"] and not p["hand"]
                    for e, p in s.live_events
                )
            )
        # the party mutes and turns the camera off: told to the neutral, never "speaking"
        # while muted
        shown = await paula.call(
            "live.status",
            {"case_id": case_a, "muted": True, "camera_off": True, "speaking": True},
        )
        assert shown == {
            "ok": True,
            "muted": True,
            "camera_off": True,
            "speaking": False,
            "hand": False,
        }
        async with asyncio.timeout(10):
            await nina.wait_until(
                lambda s: any(
                    e == "live.person" and p["muted"] and p["camera_off"] and not p["speaking"]
                    for e, p in s.live_events
                )
            )
        for forged in ({"muted": "loud"}, {"hand": [1]}):
            try:
                await paula.call("live.status", {"case_id": case_a, **forged})
            except SignalError as refusal:
                assert refusal.code == "invalid_payload", refusal
            else:
                raise AssertionError(f"live.status took {forged}")
        # a status cannot raise a hand (only asking does, which tells the neutrals)...
        shown = await paula.call("live.status", {"case_id": case_a, "hand": True})
        assert shown["hand"] is False
        # ...and one sent while a request is on its way (a speaking change) does not
        # take the request back: only the asker's own "hand: false" lowers it
        seen = len(nina.live_events)

        def paula_shown(since: int) -> list[dict[str, Any]]:
            return [
                p
                for e, p in nina.live_events[since:]
                if e == "live.person" and p["user_id"] == ids["PAULA"]
            ]

        await paula.call("live.ask", {"case_id": case_a, "text": ""})
        shown = await paula.call("live.status", {"case_id": case_a, "speaking": True})
        assert shown["hand"] is True and shown["speaking"] is True
        async with asyncio.timeout(10):
            await nina.wait_until(lambda s: any(p["speaking"] for p in paula_shown(seen)))
        assert all(p["hand"] for p in paula_shown(seen)), paula_shown(seen)
        seen = len(nina.live_events)
        shown = await paula.call("live.status", {"case_id": case_a, "hand": False})
        assert shown["hand"] is False and shown["speaking"] is False
        async with asyncio.timeout(10):
            await nina.wait_until(lambda s: any(not p["hand"] for p in paula_shown(seen)))
    finally:
        for person in people:
            await person.close()


async def test_timers_warn_and_close_rooms(world: World) -> None:
    case_a = world.cases["Case A"]
    nina, paula = signal_for(world, "nina"), signal_for(world, "paula")
    people = [
        Participant("nina", nina, video=None, audio=False),
        Participant("paula", paula, video=None, audio=False),
    ]
    try:
        for person in people:
            await person.join()
        room = (await nina.call("live.room.create", {"case_id": case_a, "name": "Short"}))[
            "room_id"
        ]
        await nina.call(
            "live.move",
            {"case_id": case_a, "user_id": paula.live["you"]["user_id"], "room_id": room},
        )
        await nina.call("live.broadcast", {"case_id": case_a, "text": "Two minutes left"})
        started = await nina.call(
            "live.timer.start", {"case_id": case_a, "room_id": room, "seconds": 1}
        )
        extended = await nina.call(
            "live.timer.extend", {"case_id": case_a, "room_id": room, "seconds": 1}
        )
        assert extended["ends_at"] == started["ends_at"] + 1
        async with asyncio.timeout(15):
            await paula.wait_until(
                lambda s: any(e == "live.timer_warning" for e, _ in s.live_events)
            )
            await paula.wait_until(lambda s: any(e == "live.broadcast" for e, _ in s.live_events))
            # the room closes by itself and its people return to the main room
            await paula.wait_until(
                lambda s: s.my_room() is not None and s.my_room()["id"] == "main"
            )
            await nina.wait_until(lambda s: [r["id"] for r in s.live["rooms"]] == ["main"])
        message = next(p for e, p in paula.live_events if e == "live.broadcast")
        assert message["text"] == "Two minutes left"
    finally:
        for person in people:
            await person.close()


async def test_screen_sharing_follows_the_rooms_rule(world: World) -> None:
    case_a = world.cases["Case A"]
    sio = await connect(world, "paula")
    nina = signal_for(world, "nina")
    mediator = Participant("nina", nina, video=None, audio=False)
    try:
        await mediator.join()
        reply = await sio.call("media.join", {"case_id": case_a}, namespace="/media", timeout=15)
        assert reply["ok"], reply
        await nina.call(
            "live.room.sharing", {"case_id": case_a, "room_id": "main", "allowed": False}
        )
        offer = await publish_offer()
        refused = await sio.call(
            "media.publish",
            {"case_id": case_a, "sdp": offer, "screen_mid": "0"},
            namespace="/media",
            timeout=15,
        )
        assert refused["error"]["code"] == "sharing_disabled"
        await nina.call(
            "live.room.sharing", {"case_id": case_a, "room_id": "main", "allowed": True}
        )
        shared = await sio.call(
            "media.publish",
            {"case_id": case_a, "sdp": offer, "screen_mid": "0"},
            namespace="/media",
            timeout=15,
        )
        assert shared["ok"], shared
        worker = world.server.app[MEDIA_WORKER]
        router = worker.router(f"{case_a}:main")
        assert router.producers and not router.blocked
        # turning sharing off stops forwarding the screen at once
        await nina.call(
            "live.room.sharing", {"case_id": case_a, "room_id": "main", "allowed": False}
        )
        assert not router.producers and router.blocked
        assert not [r for r in worker.subscriptions() if r["kind"] == "video"]
    finally:
        await sio.disconnect()
        await mediator.close()


async def test_whiteboard_strokes_are_validated_relayed_and_replayed(world: World) -> None:
    case_a = world.cases["Case A"]
    nina, paula = signal_for(world, "nina"), signal_for(world, "paula")
    people = [
        Participant("nina", nina, video=None, audio=False),
        Participant("paula", paula, video=None, audio=False),
    ]
    try:
        for person in people:
            await person.join()
        stroke = {
            "case_id": case_a,
            "points": [[0.1, 0.2], [0.3, 0.4]],
            "color": "#aa0011",
            "width": 3,
        }
        for bad in (
            {**stroke, "points": [[1.5, 0.2]]},
            {**stroke, "color": "red"},
            {**stroke, "width": 400},
            {**stroke, "points": [[0.1, 0.1]] * 501},
            {**stroke, "extra": 1},
        ):
            try:
                await paula.call("live.board.stroke", bad)
            except SignalError as refusal:
                # over the setting's 500 points: its own code; everything else malformed
                expected = "stroke_too_long" if len(bad["points"]) > 500 else "invalid_payload"
                assert refusal.code == expected
            else:
                raise AssertionError(f"accepted {bad}")
        await paula.call("live.board.stroke", stroke)
        async with asyncio.timeout(10):
            await nina.wait_until(lambda s: any(e == "live.board.stroke" for e, _ in s.live_events))
        replay = await nina.call("live.board", {"case_id": case_a})
        assert replay["strokes"][0]["points"] == [[0.1, 0.2], [0.3, 0.4]]
        await nina.call("live.board.clear", {"case_id": case_a})
        assert (await paula.call("live.board", {"case_id": case_a}))["strokes"] == []
    finally:
        for person in people:
            await person.close()


async def test_a_restarted_server_puts_people_back_in_their_rooms(
    world: World, settings: Settings, database_url: tuple[str, str | None], tmp_path: Path
) -> None:
    case_a = world.cases["Case A"]
    names = ("nina", "paula", "carl")
    signals = {n: signal_for(world, n) for n in names}
    people = [Participant(n, signals[n], video=None, audio=False) for n in names]
    for person in people:
        await person.join()
    nina = signals["nina"]
    room = (await nina.call("live.room.create", {"case_id": case_a, "name": "Claimant"}))["room_id"]
    users = {n: signals[n].live["you"]["user_id"] for n in names}
    await nina.call(
        "live.move_many",
        {"case_id": case_a, "moves": {users["paula"]: room, users["carl"]: room}},
    )
    await nina.call("live.room.lock", {"case_id": case_a, "room_id": room, "locked": True})
    await nina.call("live.timer.start", {"case_id": case_a, "room_id": room, "seconds": 3600})
    for person in people:
        await person.close()

    # a new application on the same database, as after a restart
    url, schema = database_url
    store = Store(url, schema=schema)
    services = Services.build(settings, store=store)
    app = build_app(services)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    cert = ensure_self_signed(tmp_path / "certs2", ["127.0.0.1"])
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=cert.ssl_context())
    await site.start()
    base = f"https://127.0.0.1:{runner.addresses[0][1]}"
    people = []
    try:
        namespace = media_namespace(app)
        assert case_a in namespace.controls._timers  # the room's timer runs again
        for name in names:
            signal = SocketSignal(base, name, PASSWORD, case_a, insecure=True)
            people.append(Participant(name, signal, video=None, audio=False))
            await people[-1].join()
        by_name = {p.id: p.signal for p in people}
        assert by_name["paula"].my_room()["id"] == room
        assert by_name["carl"].my_room()["id"] == room
        assert by_name["nina"].my_room()["id"] == "main"
        assert by_name["paula"].my_room()["locked"] is True
        worker = app[MEDIA_WORKER]
        members = worker.router(f"{case_a}:{room}").members
        assert members == {by_name["paula"].participant_id, by_name["carl"].participant_id}
    finally:
        for person in people:
            await person.close()
        await runner.cleanup()


async def test_events_before_joining_and_unknown_rooms(world: World) -> None:
    case_a = world.cases["Case A"]
    sio = await connect(world, "nina")
    try:

        async def call(event: str, payload: dict[str, Any]) -> dict[str, Any]:
            return await sio.call(event, payload, namespace="/media", timeout=10)

        assert (await call("live.board", {"case_id": case_a}))["error"]["code"] == "not_joined"
        state = await call("live.state", {"case_id": case_a})
        assert state["ok"] and [r["id"] for r in state["state"]["rooms"]] == ["main"]
        missing = await call("live.room.close", {"case_id": case_a, "room_id": "nope"})
        assert missing["error"]["code"] == "room_not_found"
        main = await call("live.room.close", {"case_id": case_a, "room_id": "main"})
        assert main["error"]["code"] == "main_room"
        nobody = await call("live.move", {"case_id": case_a, "user_id": "x", "room_id": "main"})
        assert nobody["error"]["code"] == "not_in_session"
    finally:
        await sio.disconnect()


async def test_first_arrivals_at_once_all_publish_and_receive_each_other(world: World) -> None:
    """Six members of a case enter its live session for the first time at the same moment:
    applying one arrival must not end the sessions of those whose arrival it does not
    contain yet; all of them then publish and receive each other."""
    case_a = world.cases["Case A"]
    for name in ("pia", "quinn", "rosa"):
        await world.accept(await world.invite("nina", case_a, "party"), name)
    names = ("nina", "paula", "carl", "pia", "quinn", "rosa")
    # signed in beforehand, so that the arrivals themselves overlap
    tokens = await asyncio.gather(*(signal_for(world, n).sign_in() for n in names))
    people = [
        Participant(
            name,
            SocketSignal(world.server.url, None, None, case_a, insecure=True, session_token=token),
            video=None,
            decode=False,
        )
        for name, token in zip(names, tokens, strict=True)
    ]
    namespace = media_namespace(world.server.app)
    try:
        await asyncio.gather(*(person.connect() for person in people))
        assert len(namespace.participants_of(case_a)) == len(names)
        assert all(person.signal.ended is None for person in people)
        ids = {person.signal.participant_id for person in people}

        def heard(person: Participant) -> set[str]:
            return {
                track["participant_id"]
                for mid, track in person.signal.tracks.items()
                if mid in person.tracks and person.tracks[mid].packets > 0
            }

        # Everyone publishes at once: consumers are created while other subscribe offers
        # are being made, and each must still reach its subscriber.
        await asyncio.gather(*(person.publish() for person in people))
        async with asyncio.timeout(30):
            for person in people:
                await person.wait_until(
                    lambda p=person: heard(p) == ids - {p.signal.participant_id}
                )
        for person in people:
            assert heard(person) == ids - {person.signal.participant_id}
        assert all(person.signal.ended is None for person in people)
        assert all(person.signal.my_room()["id"] == "main" for person in people)
        occupants = {p["user_id"] for p in people[0].signal.my_room()["occupants"]}
        assert occupants == {person.signal.live["you"]["user_id"] for person in people}
    finally:
        for person in people:
            await person.close()
