"""Live rooms over socket.io: breakout rooms, the mediator's controls, timers, whiteboards.

:class:`LiveControls` is a component of the ``/media`` namespace, so one socket carries a
person's media negotiation and their room: a move is applied to the SFU (synchronously,
before anyone is told) and then pushed as ``live.state``.  The room assignments are the
``rooms.cases.live.LiveSession`` of the case, persisted by ``LiveSessions``; this module
applies them to the participants of this process, whom it reaches through the
:class:`LiveHost` that holds it.  See docs/signaling.md ("Live rooms").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from rooms.cases.live import TIMER_WARNING_SECONDS, WAITING, LiveSessions
from rooms.cases.live import LiveSession as RoomState
from rooms.cases.roles import CASE_ROLES, NEUTRAL_ROLES
from rooms.errors import Conflict, Forbidden
from signaling.realtime.events import Caller, CasePayload, event
from signaling.realtime.schemas.live import (
    AdmitPayload,
    AskPayload,
    BroadcastPayload,
    CreateRoomPayload,
    LockPayload,
    MoveManyPayload,
    MovePayload,
    RenameRoomPayload,
    RoomPayload,
    SharingPayload,
    StatusPayload,
    StrokePayload,
    SwapPayload,
    TimerPayload,
    UserPayload,
)
from signaling.services import Services

if TYPE_CHECKING:
    from sfu import Router, Transport, Worker
    from sfu.simulcast import Track

log = logging.getLogger(__name__)


def router_id(case_id: str, room_id: str) -> str:
    """The SFU router id of a live room (or of the case's waiting area)."""
    return f"{case_id}:{room_id}"


def room_of(router: str) -> str:
    """The live room (or waiting area) id of a router id."""
    return router.rpartition(":")[2]


@dataclass
class LiveParticipant:
    """One socket's presence in a case's live rooms on this process: which room it is in,
    and its two transports."""

    sid: str
    case_id: str
    room_id: str  # the router id (``router_id``); "" while joining
    participant_id: str
    user_id: str
    display_name: str
    role: str
    subscribe: Transport | None = None
    publish: Transport | None = None
    screen_mid: str | None = None
    screen_mids: set[str] = field(default_factory=set)  # mids that ever carried a screen
    ending: bool = False
    #: What the participant shows of themselves (``live.status``): shown on their tile
    #: and on the mediator's room cards.
    muted: bool = False
    camera_off: bool = False
    speaking: bool = False
    hand: bool = False
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def person(self) -> dict[str, Any]:
        return {
            "participant_id": self.participant_id,
            "display_name": self.display_name,
            "role": self.role,
            **self.status(),
        }

    def status(self) -> dict[str, bool]:
        return {
            "muted": self.muted,
            "camera_off": self.camera_off,
            "speaking": self.speaking,
            "hand": self.hand,
        }


class LiveHost(Protocol):
    """What the live-room controls need of the namespace that holds them."""

    def participant(self, sid: str) -> LiveParticipant | None:
        """The live participant of socket ``sid``, if it joined."""
        ...

    def participants_of(self, case_id: str) -> list[LiveParticipant]:
        """The case's participants on this process (not those ending)."""
        ...

    async def end(self, participant: LiveParticipant, reason: str | None = None) -> None:
        """End ``participant``'s live session, telling its client ``reason``."""
        ...

    async def announce_room(self, router: str) -> None:
        """Tell everyone in the room of ``router`` who is there and what they receive."""
        ...

    async def tell(self, sid: str, name: str, data: dict[str, Any]) -> None:
        """Emit the event ``name`` to socket ``sid``."""
        ...

    async def user_of(self, sid: str) -> str | None:
        """The user signed in on socket ``sid``, while it is connected."""
        ...


def encode_stroke(stroke: dict[str, Any]) -> bytes:
    """A stroke as the compact JSON it is kept and measured in."""
    return json.dumps(stroke, separators=(",", ":"), allow_nan=False).encode()


@dataclass
class Whiteboard:
    """One live room's strokes, each kept as its compact JSON (bytes, not Python lists of
    floats), so the memory a board holds follows ``size``, the sum of their lengths,
    which ``whiteboard_max_bytes`` bounds; a clear releases it all."""

    strokes: list[bytes] = field(default_factory=list)
    size: int = 0

    def add(self, encoded: bytes) -> None:
        self.strokes.append(encoded)
        self.size += len(encoded)

    def replay(self) -> list[dict[str, Any]]:
        return [json.loads(stroke) for stroke in self.strokes]


class LiveControls:
    """The live-room half of the ``/media`` namespace: the case's room assignments as
    applied here, timers, whiteboards, and the neutrals watching without media."""

    def __init__(
        self, host: LiveHost, services: Services, worker: Worker, rooms_state: LiveSessions
    ) -> None:
        self.host = host
        self.services = services
        self.worker = worker
        self.rooms_state = rooms_state
        self._states: dict[str, RoomState] = {}  # case id -> latest applied state
        #: One writer per case on this node: concurrent changes (people arriving together)
        #: queue instead of exhausting the optimistic retries of ``LiveSessions.update``.
        self._writing: dict[str, asyncio.Lock] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._boards: dict[tuple[str, str], Whiteboard] = {}
        self._watchers: dict[str, set[str]] = {}  # case id -> sids of neutrals watching
        self._names: dict[str, dict[str, dict[str, str]]] = {}  # case -> user -> name, role
        self._live_seq = 0

    # --- reading -----------------------------------------------------------------------

    @event("live.state", CasePayload, "case", CASE_ROLES)
    async def live_state(self, caller: Caller, payload: CasePayload) -> dict[str, Any]:
        """The caller's view of the rooms; a neutral's socket also receives every later
        change (``live.state`` pushes) without joining the media."""
        assert caller.member is not None
        state = await self.current(payload.case_id)
        if caller.member.role in NEUTRAL_ROLES:
            self._watchers.setdefault(payload.case_id, set()).add(caller.sid)
        return {"state": await self.view_for(state, caller.user_id, caller.member.role)}

    @event("live.board", CasePayload, "case", CASE_ROLES)
    async def board(self, caller: Caller, payload: CasePayload) -> dict[str, Any]:
        session = self._joined(caller, payload.case_id)
        room = self._room_of(session)
        board = self._boards.get((payload.case_id, room))
        return {"room_id": room, "strokes": board.replay() if board else []}

    # --- the mediator's controls ------------------------------------------------------

    @event("live.room.create", CreateRoomPayload, "case", NEUTRAL_ROLES)
    async def create_room(self, caller: Caller, payload: CreateRoomPayload) -> dict[str, Any]:
        _, room = await self.change(payload.case_id, lambda s: s.create_room(payload.name))
        return {"room_id": room.id, "name": room.name}

    @event("live.room.rename", RenameRoomPayload, "case", NEUTRAL_ROLES)
    async def rename_room(self, caller: Caller, payload: RenameRoomPayload) -> dict[str, Any]:
        await self.change(payload.case_id, lambda s: s.rename_room(payload.room_id, payload.name))
        return {"room_id": payload.room_id}

    @event("live.room.close", RoomPayload, "case", NEUTRAL_ROLES)
    async def close_room(self, caller: Caller, payload: RoomPayload) -> dict[str, Any]:
        _, moved = await self.change(payload.case_id, lambda s: s.close_room(payload.room_id))
        return {"room_id": payload.room_id, "moved": moved}

    @event("live.room.lock", LockPayload, "case", NEUTRAL_ROLES)
    async def lock_room(self, caller: Caller, payload: LockPayload) -> dict[str, Any]:
        await self.change(payload.case_id, lambda s: s.set_locked(payload.room_id, payload.locked))
        return {"room_id": payload.room_id, "locked": payload.locked}

    @event("live.room.sharing", SharingPayload, "case", NEUTRAL_ROLES)
    async def room_sharing(self, caller: Caller, payload: SharingPayload) -> dict[str, Any]:
        await self.change(
            payload.case_id, lambda s: s.set_sharing(payload.room_id, payload.allowed)
        )
        return {"room_id": payload.room_id, "allowed": payload.allowed}

    @event("live.move", MovePayload, "case", NEUTRAL_ROLES)
    async def move(self, caller: Caller, payload: MovePayload) -> dict[str, Any]:
        # The neutral may enter a locked room; their moves of others respect the lock
        # only for parties' own requests, which do not exist: neutrals move by force.
        _, changed = await self.change(
            payload.case_id, lambda s: s.move(payload.user_id, payload.room_id, force=True)
        )
        return {"moved": [payload.user_id] if changed else []}

    @event("live.move_many", MoveManyPayload, "case", NEUTRAL_ROLES)
    async def move_many(self, caller: Caller, payload: MoveManyPayload) -> dict[str, Any]:
        _, changed = await self.change(
            payload.case_id, lambda s: s.move_many(payload.moves, force=True)
        )
        return {"moved": changed}

    @event("live.swap", SwapPayload, "case", NEUTRAL_ROLES)
    async def swap(self, caller: Caller, payload: SwapPayload) -> dict[str, Any]:
        await self.change(payload.case_id, lambda s: s.swap(payload.first, payload.second))
        return {"moved": [payload.first, payload.second]}

    @event("live.bring_back", CasePayload, "case", NEUTRAL_ROLES)
    async def bring_back(self, caller: Caller, payload: CasePayload) -> dict[str, Any]:
        _, moved = await self.change(payload.case_id, lambda s: s.bring_all_back())
        return {"moved": moved}

    @event("live.admit", AdmitPayload, "case", NEUTRAL_ROLES)
    async def admit(self, caller: Caller, payload: AdmitPayload) -> dict[str, Any]:
        await self.change(payload.case_id, lambda s: s.admit(payload.user_id, payload.room_id))
        return {"user_id": payload.user_id, "room_id": payload.room_id}

    @event("live.remove", UserPayload, "case", NEUTRAL_ROLES)
    async def remove(self, caller: Caller, payload: UserPayload) -> dict[str, Any]:
        if payload.user_id == caller.user_id:
            raise Conflict("You cannot remove yourself.", code="self_removal")

        def change(state: RoomState) -> None:
            state.remove(payload.user_id)
            # Removed people wait outside until a neutral admits them again.
            state.placement[payload.user_id] = WAITING

        await self.change(payload.case_id, change)
        for session in self.host.participants_of(payload.case_id):
            if session.user_id == payload.user_id:
                await self.host.end(session, reason="removed")
        return {"user_id": payload.user_id}

    @event("live.broadcast", BroadcastPayload, "case", NEUTRAL_ROLES)
    async def broadcast(self, caller: Caller, payload: BroadcastPayload) -> dict[str, Any]:
        message = {
            "case_id": payload.case_id,
            "text": payload.text,
            "from": caller.display_name,
            "at": time.time(),
        }
        sids = {s.sid for s in self.host.participants_of(payload.case_id)}
        sids |= self._watchers.get(payload.case_id, set())
        for sid in sids:
            await self.host.tell(sid, "live.broadcast", message)
        return {"delivered": len(sids)}

    @event("live.timer.start", TimerPayload, "case", NEUTRAL_ROLES)
    async def start_timer(self, caller: Caller, payload: TimerPayload) -> dict[str, Any]:
        now = time.time()
        state, _ = await self.change(
            payload.case_id, lambda s: s.start_timer(payload.room_id, payload.seconds, now)
        )
        room = state.room(payload.room_id)
        if payload.seconds <= TIMER_WARNING_SECONDS:
            await self._warn(state, room.id)
        return {"room_id": room.id, "ends_at": room.timer_ends_at}

    @event("live.timer.extend", TimerPayload, "case", NEUTRAL_ROLES)
    async def extend_timer(self, caller: Caller, payload: TimerPayload) -> dict[str, Any]:
        state, _ = await self.change(
            payload.case_id, lambda s: s.extend_timer(payload.room_id, payload.seconds)
        )
        return {"room_id": payload.room_id, "ends_at": state.room(payload.room_id).timer_ends_at}

    # --- participants -----------------------------------------------------------------

    @event("live.ask", AskPayload, "case", CASE_ROLES)
    async def ask(self, caller: Caller, payload: AskPayload) -> dict[str, Any]:
        """ "Ask the mediator": every neutral of the case hears of it, wherever they are."""
        state = await self.current(payload.case_id)
        room_id = state.where(caller.user_id)
        room = state.rooms.get(room_id) if room_id else None
        request = {
            "case_id": payload.case_id,
            "user_id": caller.user_id,
            "display_name": caller.display_name,
            "room_id": room_id,
            "room_name": room.name if room else "Waiting area",
            "text": payload.text,
            "at": time.time(),
        }
        sids = {
            s.sid for s in self.host.participants_of(payload.case_id) if s.role in NEUTRAL_ROLES
        }
        sids |= self._watchers.get(payload.case_id, set())
        for sid in sids:
            await self.host.tell(sid, "live.asked", request)
        for session in self.host.participants_of(payload.case_id):
            if session.user_id == caller.user_id and not session.hand:
                session.hand = True
                await self._tell_status(session)
        return {"notified": len(sids)}

    @event("live.status", StatusPayload, "case", CASE_ROLES)
    async def status(self, caller: Caller, payload: StatusPayload) -> dict[str, Any]:
        """The caller's microphone, camera and speaking state, and the lowering of their
        own raised hand, told to their room and to the neutrals (only when it changed).
        Only ``live.ask`` raises a hand: a status the page sent while its request was on
        its way (a speaking change, say) must not take the request back."""
        session = self.host.participant(caller.sid)
        if session is None or session.case_id != payload.case_id:
            raise Conflict("Join the case's live room first.", code="not_joined")
        wanted = {
            "muted": payload.muted,
            "camera_off": payload.camera_off,
            "speaking": payload.speaking and not payload.muted,
            "hand": session.hand and payload.hand is not False,
        }
        if wanted != session.status():
            session.muted = wanted["muted"]
            session.camera_off = wanted["camera_off"]
            session.speaking = wanted["speaking"]
            session.hand = wanted["hand"]
            await self._tell_status(session)
        return session.status()

    @event("live.hand.lower", UserPayload, "case", NEUTRAL_ROLES)
    async def lower_hand(self, caller: Caller, payload: UserPayload) -> dict[str, Any]:
        """A neutral answered someone's request: their raised hand comes down."""
        lowered = 0
        for session in self.host.participants_of(payload.case_id):
            if session.user_id == payload.user_id and session.hand:
                session.hand = False
                lowered += 1
                await self._tell_status(session)
        return {"lowered": lowered}

    async def _tell_status(self, session: LiveParticipant) -> None:
        message = {
            "case_id": session.case_id,
            "user_id": session.user_id,
            "participant_id": session.participant_id,
            "room_id": self._room_of(session),
            **session.status(),
        }
        await self._to_room(
            session.case_id, self._room_of(session), "live.person", message, neutrals=True
        )

    @event("live.board.stroke", StrokePayload, "case", CASE_ROLES)
    async def board_stroke(self, caller: Caller, payload: StrokePayload) -> dict[str, Any]:
        session = self._joined(caller, payload.case_id)
        room = self._room_of(session)
        settings = self.services.settings
        if len(payload.points) > settings.whiteboard_max_stroke_points:
            raise Conflict(
                f"A stroke has at most {settings.whiteboard_max_stroke_points} points; "
                "draw it in shorter pieces.",
                code="stroke_too_long",
            )
        stroke = {
            "points": [[round(x, 4), round(y, 4)] for x, y in payload.points],
            "color": payload.color.lower(),
            "width": payload.width,
            "by": session.participant_id,
        }
        encoded = encode_stroke(stroke)
        board = self._boards.setdefault((payload.case_id, room), Whiteboard())
        if board.size + len(encoded) > settings.whiteboard_max_bytes:
            raise Conflict(
                f"This whiteboard is full (at most {settings.whiteboard_max_bytes} bytes of "
                "strokes); clear it first.",
                code="board_full",
            )
        board.add(encoded)
        await self._to_room(
            payload.case_id, room, "live.board.stroke", {"room_id": room, "stroke": stroke}
        )
        return {"strokes": len(board.strokes), "bytes": board.size}

    @event("live.board.clear", CasePayload, "case", CASE_ROLES)
    async def board_clear(self, caller: Caller, payload: CasePayload) -> dict[str, Any]:
        session = self._joined(caller, payload.case_id)
        room = self._room_of(session)
        self._boards.pop((payload.case_id, room), None)
        await self._to_room(payload.case_id, room, "live.board.cleared", {"room_id": room})
        return {"room_id": room}

    # --- applying the state -----------------------------------------------------------

    async def current(self, case_id: str) -> RoomState:
        state = self._states.get(case_id)
        if state is None:
            state = await self.rooms_state.load(case_id)
            self._states.setdefault(case_id, state)
        return self._states[case_id]

    async def change(self, case_id: str, change: Any) -> tuple[RoomState, Any]:
        async with self._writing.setdefault(case_id, asyncio.Lock()):
            state, result = await self.rooms_state.update(case_id, change)
        await self._apply(state)
        return state, result

    async def _apply(self, state: RoomState) -> None:
        """Make this node's media follow ``state`` (synchronously: no packet of a room a
        participant left is written after this returns its first await), then tell
        everyone."""
        case_id = state.case_id
        known = self._states.get(case_id)
        if known is not None and known.version >= state.version:
            return  # a newer state was applied meanwhile
        self._states[case_id] = state
        touched: set[str] = set()
        removed: list[LiveParticipant] = []
        for session in self.host.participants_of(case_id):
            placed = state.where(session.user_id)
            if placed is None and not session.room_id:
                # Joining, and their arrival is not in this state (another arrival was
                # saved first): their own join applies it and places them.
                continue
            target = placed or WAITING
            key = router_id(case_id, target)
            if key != session.room_id:
                touched.update((session.room_id, key))
                self.place(session, state, target)
            if placed is None:
                removed.append(session)
        self._apply_sharing(state)
        for board in list(self._boards):
            if board[0] == case_id and board[1] not in state.rooms:
                del self._boards[board]
        self._schedule_timer(state)
        # -- from here on, only notifications --
        for session in removed:
            await self.host.end(session, reason="removed")
        for router in touched:
            await self.host.announce_room(router)
        await self.push_state(case_id)

    def place(self, session: LiveParticipant, state: RoomState, target: str) -> None:
        """Move ``session``'s media to ``target`` (a room id or the waiting area)."""
        pid = session.participant_id
        old = self.worker.router_of(pid)
        if target == WAITING or target not in state.rooms:
            if old is not None:
                old.leave(pid)
        else:
            router = self.worker.router(router_id(state.case_id, target))
            self.block_screens(session, router, state.rooms[target].sharing_allowed)
            router.join(pid)  # leaves ``old`` first
        if old is not None and not old.members:
            self.worker.close_router(old.room_id)
        session.room_id = router_id(state.case_id, target)

    def _screens(self, session: LiveParticipant) -> list[tuple[Track, bool]]:
        """The session's screen producers, each with whether it is shared now."""
        transport = session.publish
        if transport is None or transport.closed:
            return []
        return [
            (p, p.mid == session.screen_mid)
            for p in transport.producers.values()
            if p.mid in session.screen_mids
        ]

    def block_screens(self, session: LiveParticipant, router: Router, allowed: bool) -> None:
        for producer, shared in self._screens(session):
            if shared and allowed:
                router.unblock(producer)
            elif producer.id not in router.blocked:
                router.block(producer)

    def _apply_sharing(self, state: RoomState) -> list[LiveParticipant]:
        """Block or unblock screens per room; answers who lost their share."""
        stopped = []
        for session in self.host.participants_of(state.case_id):
            router = self.worker.router_of(session.participant_id)
            room = state.rooms.get(self._room_of(session))
            if router is None or room is None:
                continue
            if not room.sharing_allowed and session.screen_mid is not None:
                session.screen_mid = None
                stopped.append(session)
            self.block_screens(session, router, room.sharing_allowed)
        return stopped

    def sharing_allowed(self, session: LiveParticipant) -> bool:
        state = self._states.get(session.case_id)
        room = state.rooms.get(self._room_of(session)) if state else None
        return room is not None and room.sharing_allowed

    # --- timers -----------------------------------------------------------------------

    def _schedule_timer(self, state: RoomState) -> None:
        """One task per case, sleeping until the session's next deadline."""
        case_id = state.case_id
        task = self._timers.pop(case_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        deadline = state.next_deadline()
        if deadline is not None:
            self._timers[case_id] = asyncio.ensure_future(self._run_timer(case_id, deadline))

    async def _run_timer(self, case_id: str, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - time.time()))
        now = time.time()
        warned: list[str] = []

        def change(state: RoomState) -> None:
            warned[:] = [room.id for room in state.due_warnings(now)]
            for room_id in state.expired(now):
                state.close_room(room_id)

        try:
            state, _ = await self.change(case_id, change)
            for room_id in warned:
                if room_id in state.rooms:
                    await self._warn(state, room_id)
        except Exception:
            log.exception("live room timer failed", extra={"case": case_id})
            with contextlib.suppress(Exception):
                self._schedule_timer(await self.rooms_state.load(case_id))

    async def _warn(self, state: RoomState, room_id: str) -> None:
        room = state.room(room_id)
        message = {
            "case_id": state.case_id,
            "room_id": room.id,
            "room_name": room.name,
            "ends_at": room.timer_ends_at,
        }
        await self._to_room(state.case_id, room.id, "live.timer_warning", message, neutrals=True)

    async def resume_timers(self) -> None:
        """Restart the timers of persisted sessions (the server started)."""
        for case_id in await self.rooms_state.cases_with_sessions():
            state = await self.rooms_state.load(case_id)
            if state.next_deadline() is not None:
                self._states.setdefault(case_id, state)
                self._schedule_timer(state)

    async def resume_case(self, case_id: str) -> None:
        """Restart the timer of one case's persisted session (its first event reached a
        media worker that did not host it before)."""
        state = await self.rooms_state.load(case_id)
        if state.next_deadline() is not None:
            self._states.setdefault(case_id, state)
            self._schedule_timer(state)

    async def stop_timers(self) -> None:
        tasks = list(self._timers.values())
        self._timers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- telling people ---------------------------------------------------------------

    def _room_of(self, session: LiveParticipant) -> str:
        return room_of(session.room_id)

    def _joined(self, caller: Caller, case_id: str) -> LiveParticipant:
        session = self.host.participant(caller.sid)
        if session is None or session.case_id != case_id:
            raise Conflict("Join the case's live room first.", code="not_joined")
        if self._room_of(session) == WAITING:
            raise Forbidden("You are in the waiting area.", code="waiting")
        return session

    async def _to_room(
        self, case_id: str, room: str, name: str, message: dict[str, Any], neutrals: bool = False
    ) -> None:
        sids = {s.sid for s in self.host.participants_of(case_id) if self._room_of(s) == room}
        if neutrals:
            sids |= {s.sid for s in self.host.participants_of(case_id) if s.role in NEUTRAL_ROLES}
            sids |= self._watchers.get(case_id, set())
        for sid in sids:
            await self.host.tell(sid, name, message)

    async def _people_names(self, case_id: str) -> dict[str, dict[str, str]]:
        names = self._names.get(case_id)
        if names is None:
            members = await self.services.cases.members(case_id)
            names = {m.user_id: {"display_name": m.display_name, "role": m.role} for m in members}
            self._names[case_id] = names
        return names

    async def view_for(self, state: RoomState, user_id: str, role: str) -> dict[str, Any]:
        """What ``user_id`` may see of ``state``: everything for a neutral; their own room
        (name, people, timer) for everyone else."""
        names = await self._people_names(state.case_id)
        if any(u not in names for u in state.placement):
            self._names.pop(state.case_id, None)
            names = await self._people_names(state.case_id)
        # Views are ordered by ``seq``: build each from the newest state applied, with no
        # await between reading it and numbering the view.
        latest = self._states.get(state.case_id)
        if latest is not None and latest.version >= state.version:
            state = latest
        online = {s.user_id: s for s in self.host.participants_of(state.case_id)}

        def person(uid: str) -> dict[str, Any]:
            known = names.get(uid, {"display_name": "Former member", "role": ""})
            session = online.get(uid)
            shown = session.status() if session is not None else {}
            return {"user_id": uid, **known, "online": session is not None, **shown}

        self._live_seq += 1
        mine = state.where(user_id)
        rooms = []
        for room in state.rooms.values():
            if role not in NEUTRAL_ROLES and room.id != mine:
                continue
            rooms.append(
                {
                    "id": room.id,
                    "name": room.name,
                    "main": room.is_main,
                    "locked": room.locked,
                    "sharing_allowed": room.sharing_allowed,
                    "timer_ends_at": room.timer_ends_at,
                    "occupants": [person(u) for u in state.occupants(room.id)],
                }
            )
        view: dict[str, Any] = {
            "case_id": state.case_id,
            "seq": self._live_seq,
            "version": state.version,
            "you": {"user_id": user_id, "room_id": mine, "role": role},
            "rooms": rooms,
            "server_time": time.time(),
        }
        if role in NEUTRAL_ROLES:
            view["waiting_area"] = state.waiting_area
            view["waiting"] = [person(u) for u in state.occupants(WAITING)]
        return view

    async def push_state(self, case_id: str) -> None:
        state = self._states.get(case_id)
        if state is None:
            return
        for session in self.host.participants_of(case_id):
            if not session.room_id:
                continue  # still joining: the reply to their join carries their view
            view = await self.view_for(state, session.user_id, session.role)
            await self.host.tell(session.sid, "live.state", view)
        watchers = self._watchers.get(case_id, set())
        for sid in list(watchers):
            user_id = await self.host.user_of(sid)
            if user_id is None:
                watchers.discard(sid)
                continue
            view = await self.view_for(state, user_id, NEUTRAL_ROLES[0])
            await self.host.tell(sid, "live.state", view)

    def forget_watcher(self, sid: str) -> None:
        for sids in self._watchers.values():
            sids.discard(sid)

    def forget_case(self, case_id: str) -> None:
        """Stop the case's timer and drop its applied state (its sessions ended here)."""
        task = self._timers.pop(case_id, None)
        if task is not None:
            task.cancel()
        self._states.pop(case_id, None)
