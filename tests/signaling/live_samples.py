"""Samples of the live rooms' socket.io events for the authorization walk: who may send
each, a payload that succeeds for them, and who of the case must be refused."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from rooms.cases.live import WAITING
from rooms.cases.live import LiveSession as RoomState
from signaling.http.state import NAMESPACES
from signaling.realtime.namespaces.media import MediaNamespace
from tests.support.world import World


def _rooms(w: World) -> Any:
    namespace = next(n for n in w.server.app[NAMESPACES] if isinstance(n, MediaNamespace))
    return namespace.rooms_state


async def _user(w: World, name: str) -> str:
    _, body, _ = await w.clients["nina"].get(f"/api/cases/{w.cases['Case A']}")
    roles = {"paula": "party", "carl": "counsel", "nina": "neutral"}
    return next(m["user_id"] for m in body["members"] if m["role"] == roles[name])


async def _change(w: World, change: Callable[[RoomState], Any]) -> Any:
    _, result = await _rooms(w).update(w.cases["Case A"], change)
    return result


async def _arrived(w: World, *names: str) -> list[str]:
    users = [await _user(w, name) for name in names]
    roles = {"paula": "party", "carl": "counsel", "nina": "neutral"}

    def arrive(state: RoomState) -> None:
        for name, user in zip(names, users, strict=True):
            state.arrive(user, roles[name])

    await _change(w, arrive)
    return users


async def _new_room(w: World, timer: bool = False) -> str:
    def create(state: RoomState) -> str:
        room = state.create_room(f"Sample {secrets.token_hex(3)}")
        if timer:
            state.start_timer(room.id, 600, 1e10)
        return room.id

    return await _change(w, create)


def _case(w: World, **fields: Any) -> dict[str, Any]:
    return {"case_id": w.cases["Case A"], **fields}


async def _move(w: World) -> dict[str, Any]:
    (paula,) = await _arrived(w, "paula")
    return _case(w, user_id=paula, room_id=await _new_room(w))


async def _move_many(w: World) -> dict[str, Any]:
    paula, carl = await _arrived(w, "paula", "carl")
    room = await _new_room(w)
    return _case(w, moves={paula: room, carl: "main"})


async def _swap(w: World) -> dict[str, Any]:
    paula, carl = await _arrived(w, "paula", "carl")
    return _case(w, first=paula, second=carl)


async def _admit(w: World) -> dict[str, Any]:
    (paula,) = await _arrived(w, "paula")

    def wait(state: RoomState) -> None:
        state.placement[paula] = WAITING

    await _change(w, wait)
    return _case(w, user_id=paula)


async def _remove(w: World) -> dict[str, Any]:
    (paula,) = await _arrived(w, "paula")
    return _case(w, user_id=paula)


async def _room(w: World, **fields: Any) -> dict[str, Any]:
    return _case(w, room_id=await _new_room(w), **fields)


async def _timed_room(w: World) -> dict[str, Any]:
    return _case(w, room_id=await _new_room(w, timer=True), seconds=60)


async def _raised_hand(w: World) -> dict[str, Any]:
    """Paula asked for the mediator (her hand is up)."""
    return _case(w, user_id=await _user(w, "paula"))


STROKE = {"points": [[0.1, 0.1], [0.5, 0.5]], "color": "#123456", "width": 2}

#: (namespace, event) -> (caller, payload of the world)
LIVE_EVENT_SAMPLES: dict[tuple[str, str], tuple[str, Callable[[World], Any]]] = {
    ("/media", "live.state"): ("paula", _case),
    ("/media", "live.ask"): ("paula", lambda w: _case(w, text="Please come")),
    ("/media", "live.status"): ("paula", lambda w: _case(w, muted=True, hand=True)),
    ("/media", "live.hand.lower"): ("nina", _raised_hand),
    ("/media", "live.board"): ("paula", _case),
    ("/media", "live.board.stroke"): ("paula", lambda w: _case(w, **STROKE)),
    ("/media", "live.board.clear"): ("carl", _case),
    ("/media", "live.room.create"): ("nina", lambda w: _case(w, name="Caucus room")),
    ("/media", "live.room.rename"): ("nina", lambda w: _room(w, name="Renamed")),
    ("/media", "live.room.close"): ("nina", _room),
    ("/media", "live.room.lock"): ("nina", lambda w: _room(w, locked=True)),
    ("/media", "live.room.sharing"): ("nina", lambda w: _room(w, allowed=False)),
    ("/media", "live.move"): ("nina", _move),
    ("/media", "live.move_many"): ("nina", _move_many),
    ("/media", "live.swap"): ("nina", _swap),
    ("/media", "live.bring_back"): ("nina", _case),
    ("/media", "live.admit"): ("nina", _admit),
    ("/media", "live.remove"): ("nina", _remove),
    ("/media", "live.broadcast"): ("nina", lambda w: _case(w, text="Five minutes")),
    ("/media", "live.timer.start"): ("nina", lambda w: _room(w, seconds=600)),
    ("/media", "live.timer.extend"): ("nina", _timed_room),
}
LIVE_EVENT_PRELUDES: dict[tuple[str, str], tuple[str, ...]] = {
    ("/media", "live.board"): ("media.join",),
    ("/media", "live.status"): ("media.join",),
    ("/media", "live.board.stroke"): ("media.join",),
    ("/media", "live.board.clear"): ("media.join",),
}
#: Members of the case who must be refused (``forbidden``): the mediator's controls.
LIVE_WRONG_CALLERS: dict[tuple[str, str], tuple[str, ...]] = {
    key: ("paula", "carl") for key, (caller, _) in LIVE_EVENT_SAMPLES.items() if caller == "nina"
}
