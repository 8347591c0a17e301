"""Live sessions of a case: one main room, named breakout rooms, a waiting area, timers.

``LiveSession`` is the pure state machine: who is where, which rooms are locked, which
timers run. It knows nothing of media or sockets; the signaling layer applies its answers
to the SFU and pushes the new state to participants. ``LiveSessions`` loads and saves it
in the store (one JSON document per case with a version for optimistic concurrency), so a
server restart or a reconnecting browser restores the room assignments.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from rooms.cases.roles import NEUTRAL_ROLES
from rooms.errors import Conflict, Forbidden, InvalidInput, NotFound
from rooms.storage.schema import live_sessions
from rooms.storage.store import Store

MAIN = "main"
WAITING = "waiting"
MAX_ROOMS = 50
TIMER_WARNING_SECONDS = 60


@dataclass
class LiveRoom:
    id: str
    name: str
    locked: bool = False
    sharing_allowed: bool = True
    timer_ends_at: float | None = None
    timer_warned: bool = False

    @property
    def is_main(self) -> bool:
        return self.id == MAIN


@dataclass
class LiveSession:
    """Where every participant of one case's live session is."""

    case_id: str
    rooms: dict[str, LiveRoom] = field(default_factory=dict)
    placement: dict[str, str] = field(default_factory=dict)  # user id -> room id | WAITING
    waiting_area: bool = False
    version: int = 0

    def __post_init__(self) -> None:
        self.rooms.setdefault(MAIN, LiveRoom(MAIN, "Main room"))

    # -- reading -------------------------------------------------------------------------
    def room(self, room_id: str) -> LiveRoom:
        room = self.rooms.get(room_id)
        if room is None:
            raise NotFound("No such room.", code="room_not_found")
        return room

    def occupants(self, room_id: str) -> list[str]:
        return sorted(u for u, r in self.placement.items() if r == room_id)

    def where(self, user_id: str) -> str | None:
        return self.placement.get(user_id)

    def snapshot(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "version": self.version,
            "waiting_area": self.waiting_area,
            "rooms": [
                {**asdict(room), "occupants": self.occupants(room.id)}
                for room in self.rooms.values()
            ],
            "waiting": self.occupants(WAITING),
        }

    # -- arriving and leaving ------------------------------------------------------------
    def arrive(self, user_id: str, role: str) -> str:
        """Where a participant lands when they join: their kept place, else the main room
        (or the waiting area when it is on or the main room is locked). Neutrals always
        enter, into their kept place or the main room."""
        kept = self.placement.get(user_id)
        if kept is not None and (kept == WAITING or kept in self.rooms):
            return kept
        if role in NEUTRAL_ROLES:
            target = MAIN
        elif self.waiting_area or self.rooms[MAIN].locked:
            target = WAITING
        else:
            target = MAIN
        self.placement[user_id] = target
        return target

    def remove(self, user_id: str) -> None:
        """Take a participant out of the session (they may be admitted again later)."""
        if self.placement.pop(user_id, None) is None:
            raise NotFound("This participant is not in the session.", code="not_in_session")

    def admit(self, user_id: str, room_id: str = MAIN) -> None:
        if self.placement.get(user_id) != WAITING:
            raise Conflict("This participant is not waiting.", code="not_waiting")
        self.room(room_id)
        self.placement[user_id] = room_id

    # -- rooms ---------------------------------------------------------------------------
    def create_room(self, name: str) -> LiveRoom:
        name = name.strip()
        if not name or len(name) > 80:
            raise InvalidInput("A room name has 1 to 80 characters.")
        if len(self.rooms) >= MAX_ROOMS:
            raise Conflict(f"A session has at most {MAX_ROOMS} rooms.", code="too_many_rooms")
        if any(r.name.lower() == name.lower() for r in self.rooms.values()):
            raise Conflict(f"A room named {name!r} exists.", code="room_exists")
        room = LiveRoom(secrets.token_hex(6), name)
        self.rooms[room.id] = room
        return room

    def rename_room(self, room_id: str, name: str) -> None:
        room = self.room(room_id)
        name = name.strip()
        if not name or len(name) > 80:
            raise InvalidInput("A room name has 1 to 80 characters.")
        if any(r.name.lower() == name.lower() and r.id != room_id for r in self.rooms.values()):
            raise Conflict(f"A room named {name!r} exists.", code="room_exists")
        room.name = name

    def close_room(self, room_id: str) -> list[str]:
        """Close a breakout room; its occupants return to the main room. Answers them."""
        if room_id == MAIN:
            raise InvalidInput("The main room cannot be closed.", code="main_room")
        self.room(room_id)
        moved = self.occupants(room_id)
        for user_id in moved:
            self.placement[user_id] = MAIN
        del self.rooms[room_id]
        return moved

    def set_locked(self, room_id: str, locked: bool) -> None:
        self.room(room_id).locked = locked

    def set_sharing(self, room_id: str, allowed: bool) -> None:
        self.room(room_id).sharing_allowed = allowed

    # -- moves ---------------------------------------------------------------------------
    def _check_target(self, user_id: str, room_id: str, force: bool) -> None:
        if user_id not in self.placement:
            raise NotFound("This participant is not in the session.", code="not_in_session")
        room = self.room(room_id)
        if room.locked and not force and self.placement[user_id] != room_id:
            raise Conflict(f"The room {room.name!r} is locked.", code="room_locked")

    def move(self, user_id: str, room_id: str, *, force: bool = False) -> bool:
        """Move one participant; answers whether anything changed."""
        self._check_target(user_id, room_id, force)
        changed = self.placement[user_id] != room_id
        self.placement[user_id] = room_id
        return changed

    def move_many(self, moves: dict[str, str], *, force: bool = False) -> list[str]:
        """Apply several moves at once, all or nothing. Answers who changed room."""
        for user_id, room_id in moves.items():
            self._check_target(user_id, room_id, force)
        changed = [u for u, r in moves.items() if self.placement[u] != r]
        self.placement.update(moves)
        return changed

    def swap(self, first: str, second: str) -> None:
        for user_id in (first, second):
            if user_id not in self.placement:
                raise NotFound("This participant is not in the session.", code="not_in_session")
        self.placement[first], self.placement[second] = (
            self.placement[second],
            self.placement[first],
        )

    def bring_all_back(self) -> list[str]:
        """Everyone in a breakout room returns to the main room; answers who moved."""
        moved = [u for u, r in self.placement.items() if r not in (MAIN, WAITING)]
        for user_id in moved:
            self.placement[user_id] = MAIN
        return moved

    # -- timers --------------------------------------------------------------------------
    def start_timer(self, room_id: str, seconds: float, now: float) -> None:
        if room_id == MAIN:
            raise InvalidInput("Timers run in breakout rooms.", code="main_room")
        if not 1 <= seconds <= 24 * 3600:
            raise InvalidInput("A timer runs 1 second to 24 hours.")
        room = self.room(room_id)
        room.timer_ends_at = now + seconds
        room.timer_warned = seconds <= TIMER_WARNING_SECONDS

    def extend_timer(self, room_id: str, seconds: float) -> None:
        room = self.room(room_id)
        if room.timer_ends_at is None:
            raise Conflict("No timer runs in this room.", code="no_timer")
        if not 1 <= seconds <= 24 * 3600:
            raise InvalidInput("Extend by 1 second to 24 hours.")
        room.timer_ends_at += seconds
        room.timer_warned = False

    def due_warnings(self, now: float) -> list[LiveRoom]:
        """Rooms whose timer has entered its last minute (each warned once)."""
        due = []
        for room in self.rooms.values():
            if room.timer_ends_at and not room.timer_warned:
                if room.timer_ends_at - now <= TIMER_WARNING_SECONDS:
                    room.timer_warned = True
                    due.append(room)
        return due

    def expired(self, now: float) -> list[str]:
        return [r.id for r in self.rooms.values() if r.timer_ends_at and r.timer_ends_at <= now]

    def next_deadline(self) -> float | None:
        times = []
        for room in self.rooms.values():
            if room.timer_ends_at:
                times.append(room.timer_ends_at)
                if not room.timer_warned:
                    times.append(room.timer_ends_at - TIMER_WARNING_SECONDS)
        return min(times) if times else None

    # -- persistence ---------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "rooms": [asdict(r) for r in self.rooms.values()],
            "placement": dict(self.placement),
            "waiting_area": self.waiting_area,
        }

    @classmethod
    def from_state(cls, case_id: str, state: dict[str, Any], version: int) -> LiveSession:
        rooms = {r["id"]: LiveRoom(**r) for r in state.get("rooms", [])}
        return cls(
            case_id,
            rooms,
            dict(state.get("placement", {})),
            bool(state.get("waiting_area", False)),
            version,
        )


def require_neutral(role: str) -> None:
    if role not in NEUTRAL_ROLES:
        raise Forbidden("Only the case's neutral can do this.", code="not_neutral")


class LiveSessions:
    """Loads and saves live sessions; ``update`` applies a change with optimistic locking."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def load(self, case_id: str) -> LiveSession:
        async with self.store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(live_sessions).where(live_sessions.c.case_id == case_id)
                )
            ).first()
        if row is None:
            return LiveSession(case_id)
        return LiveSession.from_state(case_id, dict(row.state), row.version)

    async def save(self, session: LiveSession) -> None:
        """Write ``session``; Conflict if someone else wrote since it was loaded."""
        now = self.clock()
        async with self.store.begin() as conn:
            if session.version == 0:
                exists = (
                    await conn.execute(
                        sa.select(live_sessions.c.version).where(
                            live_sessions.c.case_id == session.case_id
                        )
                    )
                ).first()
                if exists is not None:
                    raise Conflict("The session changed; try again.", code="stale_state")
                await conn.execute(
                    sa.insert(live_sessions).values(
                        case_id=session.case_id, state=session.to_state(), version=1, updated_at=now
                    )
                )
            else:
                result = await conn.execute(
                    sa.update(live_sessions)
                    .where(
                        live_sessions.c.case_id == session.case_id,
                        live_sessions.c.version == session.version,
                    )
                    .values(state=session.to_state(), version=session.version + 1, updated_at=now)
                )
                if result.rowcount != 1:
                    raise Conflict("The session changed; try again.", code="stale_state")
        session.version += 1

    async def update(
        self, case_id: str, change: Callable[[LiveSession], Any], attempts: int = 5
    ) -> tuple[LiveSession, Any]:
        """Load, apply ``change``, save; retried when another node wrote in between."""
        for attempt in range(attempts):
            session = await self.load(case_id)
            result = change(session)
            try:
                await self.save(session)
            except Conflict:
                if attempt == attempts - 1:
                    raise
                continue
            return session, result
        raise AssertionError("unreachable")

    async def delete(self, case_id: str) -> None:
        async with self.store.begin() as conn:
            await conn.execute(sa.delete(live_sessions).where(live_sessions.c.case_id == case_id))

    async def cases_with_sessions(self) -> Iterable[str]:
        async with self.store.connect() as conn:
            return (await conn.execute(sa.select(live_sessions.c.case_id))).scalars().all()
