"""The live session state machine and its persistence on both backends."""

from __future__ import annotations

import pytest

from rooms.cases.live import MAIN, WAITING, LiveSession, LiveSessions
from rooms.errors import Conflict, InvalidInput, NotFound
from tests.rooms.case_rows import make_case

pytestmark = pytest.mark.store  # about SQL: runs on every database backend


def session_with(*users: tuple[str, str]) -> LiveSession:
    session = LiveSession("case1")
    for user, role in users:
        session.arrive(user, role)
    return session


def test_arrival_main_waiting_and_kept_place() -> None:
    s = session_with(("med", "neutral"), ("ann", "party"))
    assert s.where("med") == MAIN and s.where("ann") == MAIN
    s.waiting_area = True
    assert s.arrive("bob", "party") == WAITING
    assert s.arrive("co", "co_neutral") == MAIN
    s.admit("bob")
    assert s.where("bob") == MAIN
    with pytest.raises(Conflict):
        s.admit("bob")
    room = s.create_room("Caucus A")
    s.move("ann", room.id)
    # Reconnecting keeps the room.
    assert s.arrive("ann", "party") == room.id


def test_breakout_moves_swap_and_bring_back() -> None:
    s = session_with(("med", "neutral"), ("ann", "party"), ("cat", "counsel"), ("bob", "party"))
    a, b = s.create_room("A"), s.create_room("B")
    assert s.move_many({"ann": a.id, "cat": a.id, "bob": b.id}) == ["ann", "cat", "bob"]
    assert s.occupants(a.id) == ["ann", "cat"] and s.occupants(b.id) == ["bob"]
    s.swap("cat", "bob")
    assert s.occupants(a.id) == ["ann", "bob"] and s.occupants(b.id) == ["cat"]
    assert sorted(s.bring_all_back()) == ["ann", "bob", "cat"]
    assert s.occupants(MAIN) == ["ann", "bob", "cat", "med"]


def test_move_many_is_all_or_nothing_and_locks() -> None:
    s = session_with(("ann", "party"), ("bob", "party"))
    a = s.create_room("A")
    s.set_locked(a.id, True)
    with pytest.raises(Conflict) as locked:
        s.move_many({"bob": MAIN, "ann": a.id})
    assert locked.value.code == "room_locked"
    assert s.where("ann") == MAIN
    s.move("ann", a.id, force=True)
    with pytest.raises(NotFound):
        s.move("nobody", a.id)
    with pytest.raises(NotFound):
        s.move("ann", "no-such-room")


def test_room_names_and_closing() -> None:
    s = session_with(("ann", "party"))
    a = s.create_room("A")
    with pytest.raises(Conflict):
        s.create_room("a")
    with pytest.raises(InvalidInput):
        s.create_room("   ")
    s.rename_room(a.id, "Claimant caucus")
    s.move("ann", a.id)
    assert s.close_room(a.id) == ["ann"]
    assert s.where("ann") == MAIN and a.id not in s.rooms
    with pytest.raises(InvalidInput):
        s.close_room(MAIN)


def test_timers_warn_once_then_expire() -> None:
    s = session_with(("ann", "party"))
    a = s.create_room("A")
    s.start_timer(a.id, 120, now=1000)
    assert s.next_deadline() == 1000 + 60
    assert s.due_warnings(1059) == []
    assert [r.id for r in s.due_warnings(1061)] == [a.id]
    assert s.due_warnings(1062) == []
    s.extend_timer(a.id, 60)
    assert s.expired(1120) == [] and s.expired(1180) == [a.id]
    with pytest.raises(InvalidInput):
        s.start_timer(MAIN, 60, now=0)


async def test_persisted_and_concurrent_updates(store) -> None:
    case_id = await make_case(store)
    sessions = LiveSessions(store)
    _, room = await sessions.update(case_id, lambda s: s.create_room("A"))
    await sessions.update(case_id, lambda s: s.arrive("ann", "party"))
    await sessions.update(case_id, lambda s: s.move("ann", room.id))
    reloaded = await sessions.load(case_id)
    assert reloaded.where("ann") == room.id and reloaded.rooms[room.id].name == "A"
    # A writer holding a stale version loses and is told so.
    stale = await sessions.load(case_id)
    await sessions.update(case_id, lambda s: s.move("ann", MAIN))
    stale.move("ann", room.id)
    with pytest.raises(Conflict):
        await sessions.save(stale)
    assert (await sessions.load(case_id)).where("ann") == MAIN
