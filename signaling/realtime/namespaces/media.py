"""Live media over socket.io: the ``/media`` namespace between browsers and the SFU.

Each participant has two peer connections (the SFU's model): a *publish* connection the
client offers and the server answers (``media.publish``), and a *subscribe* connection the
server offers and the client answers (the server calls ``media.offer`` and waits for the
acknowledgement).  ICE is not trickled: both sides put their candidates in the SDP.

A socket is at most one :class:`LiveParticipant`, in one live room of its case (router
``router_id(case_id, room_id)``: ``"<case_id>:<room_id>"``) or in its waiting area, as the
case's ``rooms.cases.live.LiveSession`` places its user; the mediator's controls
(:class:`~signaling.realtime.namespaces.live.LiveControls`, a component of this
namespace) move it.  Leaving, disconnecting or a failed subscribe connection releases
both transports.  Everyone in a room is also told who the active speaker is and how
well each connection carries the call (:class:`~signaling.realtime.namespaces.
call_indicators.CallIndicators`), and a page tells the SFU how large it shows each video
(``media.tiles``).  See docs/signaling.md.

This module names the SFU's types only for type checking: a signaling node imports it to
declare ``/media``'s events, and never loads the SFU.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

from rooms.cases.live import WAITING, LiveSessions
from rooms.cases.roles import CASE_ROLES
from rooms.errors import Conflict, Forbidden, NotFound
from signaling.realtime.events import Caller, EventNamespace, event
from signaling.realtime.ice_servers import TurnCredentials, browser_ice_servers
from signaling.realtime.namespaces.call_indicators import CallIndicators
from signaling.realtime.namespaces.live import LiveControls, LiveParticipant
from signaling.realtime.schemas.media import (
    MAX_SDP_CHARS,
    MEDIA_NAMESPACE,
    MediaPayload,
    PublishPayload,
    TilesPayload,
)
from signaling.services import Services

if TYPE_CHECKING:
    from sfu import Transport, Worker

log = logging.getLogger(__name__)


class MediaNamespace(EventNamespace):
    """Joining a case's live room, publishing and receiving media, leaving; the live
    rooms' controls are its component :attr:`controls` (a :class:`LiveControls`)."""

    components = (LiveControls,)

    def __init__(self, services: Services, worker: Worker) -> None:
        self.worker = worker
        self.live: dict[str, LiveParticipant] = {}  # sid -> participant
        self.by_participant: dict[str, LiveParticipant] = {}
        self._views = 0
        #: The case's room assignments, persisted (read by the recording namespace too).
        self.rooms_state = LiveSessions(services.store)
        #: Mints each joining user's TURN credential (``None``: no ``turn_urls`` set).
        self.turn = TurnCredentials.from_settings(services.settings)
        self.controls = LiveControls(self, services, worker, self.rooms_state)
        #: Tells the rooms who speaks and how well everyone's connection carries the call.
        self.indicators = CallIndicators(self, worker)
        super().__init__(MEDIA_NAMESPACE, services, self.controls)

    # --- events -------------------------------------------------------------------------

    @event("media.join", MediaPayload, "case", CASE_ROLES)
    async def join(self, caller: Caller, payload: MediaPayload) -> dict[str, Any]:
        if caller.sid in self.live:
            raise Conflict(
                "This connection is already in a live room; leave it first.",
                code="already_joined",
            )
        assert caller.member is not None
        self._check_sessions_of(caller.user_id)
        self._check_capacity()
        session = LiveParticipant(
            sid=caller.sid,
            case_id=payload.case_id,
            room_id="",  # placed by the case's live session below
            participant_id=uuid.uuid4().hex[:16],
            user_id=caller.user_id,
            display_name=caller.display_name,
            role=caller.member.role,
        )
        self.live[caller.sid] = session
        self.by_participant[session.participant_id] = session
        self.indicators.start()
        try:
            subscribe = await self.worker.create_transport(session.participant_id, "subscribe")
            session.subscribe = subscribe
            subscribe.negotiator = lambda offer: self._offer(session, offer)
            subscribe.on_close = lambda transport: self._transport_closed(session, transport)
            role = session.role
            await self.controls.change(payload.case_id, lambda s: s.arrive(caller.user_id, role))
            if not session.room_id:  # a newer state was applied meanwhile: place by it
                state = await self.controls.current(payload.case_id)
                target = state.where(caller.user_id) or WAITING
                self.controls.place(session, state, target)
                await self.announce_room(session.room_id)
        except BaseException:
            await self.end(session)
            raise
        log.info(
            "joined live room",
            extra={"room": session.room_id, "participant": session.participant_id},
        )
        state = await self.controls.current(payload.case_id)
        return {
            "case_id": session.case_id,
            "room_id": session.room_id,
            "participant_id": session.participant_id,
            "ice_servers": browser_ice_servers(self.worker.settings, self.turn, caller.user_id),
            "participants": self._people(session.room_id),
            "live": await self.controls.view_for(state, caller.user_id, session.role),
            **self.indicators.speaker_of(session.room_id),
        }

    def _check_sessions_of(self, user_id: str) -> None:
        """Refuse a live session beyond ``live_sessions_per_user`` for ``user_id``.

        Counted where the sessions are: this process holds every live session of the cases
        placed on it (a case's sessions never spread over workers, whichever signaling node
        their sockets use).  No await may come between this check and the new session's
        registration, so concurrent joins cannot both pass."""
        limit = self.services.settings.live_sessions_per_user
        held = sum(1 for s in self.live.values() if s.user_id == user_id and not s.ending)
        if held >= limit:
            raise Conflict(
                f"You are already in live rooms from {held} places (at most {limit}); "
                "leave one of them first.",
                code="too_many_sessions",
            )

    def _check_capacity(self) -> None:
        """Refuse a live session beyond ``live_sessions_per_worker`` on this process (its
        sessions are every session of the cases placed on it); no await between this
        check and the registration, as for :meth:`_check_sessions_of`."""
        limit = self.services.settings.live_sessions_per_worker
        held = sum(1 for s in self.live.values() if not s.ending)
        if held >= limit:
            log.warning("live sessions at this process's limit", extra={"limit": limit})
            raise Conflict(
                "This server is holding as many live sessions as it can; "
                "try again in a few minutes, or ask its operator.",
                code="server_full",
            )

    @event("media.publish", PublishPayload, "case", CASE_ROLES)
    async def publish(self, caller: Caller, payload: PublishPayload) -> dict[str, Any]:
        session = self._session(caller.sid, payload.case_id)
        if payload.screen_mid is not None and not self.controls.sharing_allowed(session):
            raise Forbidden("Screen sharing is turned off in this room.", code="sharing_disabled")
        transport = session.publish
        if transport is None or transport.closed:
            transport = await self.worker.create_transport(session.participant_id, "publish")
            transport.on_close = lambda closed: self._transport_closed(session, closed)
            session.publish = transport
            session.screen_mids.clear()
        if payload.screen_mid is not None:
            session.screen_mids.add(payload.screen_mid)
        session.screen_mid = payload.screen_mid
        # A new screen producer is forwarded as soon as the offer is applied: block it in
        # the same step when the room does not allow it (or it is no longer shared).
        answer = await transport.accept_offer(payload.sdp)
        router = self.worker.router_of(session.participant_id)
        if router is not None:
            self.controls.block_screens(session, router, self.controls.sharing_allowed(session))
        # consumers that took over parked m-lines are not renegotiated: say who they are
        await self.announce_room(session.room_id)
        return {"sdp": answer}

    @event("media.tiles", TilesPayload, "case", CASE_ROLES)
    async def tiles(self, caller: Caller, payload: TilesPayload) -> dict[str, Any]:
        """How tall the caller's page shows each video it receives (device pixels;
        ``None``: not shown).  The SFU caps the simulcast layer it sends a small tile; a
        video the page does not list counts as not shown."""
        session = self._session(caller.sid, payload.case_id)
        received = self._videos_received(session)
        heights = {tile.producer_id: tile.height for tile in payload.tiles}
        unknown = [producer for producer in heights if producer not in received]
        if unknown:
            raise NotFound(
                f"{len(unknown)} of the tiles name a video you do not receive "
                f"(first: {unknown[0]}); send the videos of your latest media.tracks.",
                code="unknown_producer",
            )
        applied = self.worker.set_tile_heights(
            session.participant_id, {producer: heights.get(producer) for producer in received}
        )
        return {"applied": applied}

    def _videos_received(self, session: LiveParticipant) -> set[str]:
        """The producer ids of the videos ``session``'s subscribe connection carries."""
        transport = session.subscribe
        if transport is None or transport.closed:
            return set()
        return {
            consumer.producer_id
            for consumer in transport.consumers.values()
            if consumer.kind == "video"
            and not consumer.closed
            and consumer.producer_id is not None
            and not self.worker.is_parked(consumer)
        }

    @event("media.leave", MediaPayload, "case", CASE_ROLES)
    async def leave(self, caller: Caller, payload: MediaPayload) -> dict[str, Any]:
        session = self._session(caller.sid, payload.case_id)
        await self.end(session)
        return {"case_id": payload.case_id}

    async def left(self, sid: str) -> None:
        self.controls.forget_watcher(sid)
        session = self.live.get(sid)
        if session is not None:
            await self.end(session)

    # --- negotiation --------------------------------------------------------------------

    async def _offer(self, session: LiveParticipant, offer: str) -> str:
        """Send a subscribe offer to the client; its acknowledgement carries the answer."""
        reply = await self.call(
            "media.offer",
            {"sdp": offer, **self._view(session)},
            to=session.sid,
            timeout=self.worker.settings.negotiation_timeout,
        )
        sdp = reply.get("sdp") if isinstance(reply, dict) else None
        if not isinstance(sdp, str) or not sdp or len(sdp) > MAX_SDP_CHARS:
            raise ValueError("the client did not answer the subscribe offer with an SDP")
        return sdp

    def _view(self, session: LiveParticipant) -> dict[str, Any]:
        """What ``session`` receives: the room's people and which mid carries whom."""
        tracks = []
        first_seq: dict[str, int] = {}
        transport = session.subscribe
        if transport is not None and not transport.closed:
            for consumer in transport.consumers.values():
                if consumer.closed or consumer.mid is None:
                    continue
                # where what this view says of the m-line begins (a parked one included)
                first = self.worker.first_sequence_number(consumer)
                if first is not None:
                    first_seq[consumer.mid] = first
                producer = consumer.producer
                owner = self.by_participant.get(producer.participant_id) if producer else None
                if producer is None or owner is None:
                    continue
                source = "screen" if producer.mid == owner.screen_mid else "camera"
                tracks.append(
                    {
                        "mid": consumer.mid,
                        "kind": consumer.kind,
                        "source": source,
                        "producer_id": producer.id,
                        **owner.person(),
                    }
                )
        tracks.sort(key=lambda track: int(track["mid"]) if track["mid"].isdigit() else 0)
        # Views can overtake each other (an offer's view is delivered after its answer is
        # made); the client keeps the one with the highest ``seq``.
        self._views += 1
        return {
            "seq": self._views,
            "participants": self._people(session.room_id),
            "tracks": tracks,
            "first_seq": first_seq,
            **self.indicators.speaker_of(session.room_id),
        }

    def _people(self, room_id: str) -> list[dict[str, Any]]:
        if room_id.endswith(":" + WAITING):  # people waiting do not see each other
            return []
        people = [s.person() for s in self.live.values() if s.room_id == room_id and not s.ending]
        return sorted(people, key=lambda person: person["display_name"])

    async def announce_room(self, room_id: str) -> None:
        """Tell everyone in ``room_id`` who is there and which tracks they receive."""
        if not room_id:
            return
        for session in [s for s in self.live.values() if s.room_id == room_id and not s.ending]:
            await self.emit("media.tracks", self._view(session), to=session.sid)

    # --- what the live controls and the indicators reach (LiveHost, IndicatorHost) -----

    def participant(self, sid: str) -> LiveParticipant | None:
        return self.live.get(sid)

    def participants_of(self, case_id: str) -> list[LiveParticipant]:
        return [s for s in self.live.values() if s.case_id == case_id and not s.ending]

    def in_rooms(self) -> dict[str, list[LiveParticipant]]:
        rooms: dict[str, list[LiveParticipant]] = {}
        for session in self.live.values():
            if session.ending or not session.room_id or session.room_id.endswith(":" + WAITING):
                continue
            rooms.setdefault(session.room_id, []).append(session)
        return rooms

    async def tell(self, sid: str, name: str, data: dict[str, Any]) -> None:
        await self.emit(name, data, to=sid)

    async def user_of(self, sid: str) -> str | None:
        saved = await self.get_session(sid)
        return saved.get("user_id") if saved else None

    # --- endings ------------------------------------------------------------------------

    def _session(self, sid: str, case_id: str) -> LiveParticipant:
        session = self.live.get(sid)
        if session is None or session.case_id != case_id:
            raise Conflict("Join the case's live room first.", code="not_joined")
        return session

    def _transport_closed(self, session: LiveParticipant, transport: Transport) -> None:
        if session.ending:
            return
        if transport is session.publish:
            session.publish = None
            return
        if transport is session.subscribe:
            # The subscribe connection failed (ICE, DTLS or negotiation): end the session
            # and say so; the client joins again.
            task = asyncio.ensure_future(self.end(session, reason="connection_failed"))
            session.tasks.add(task)
            task.add_done_callback(session.tasks.discard)

    async def end(self, session: LiveParticipant, reason: str | None = None) -> None:
        if session.ending:
            return
        session.ending = True
        self.indicators.forget(session.sid)
        self.live.pop(session.sid, None)
        self.by_participant.pop(session.participant_id, None)
        router = self.worker.router_of(session.participant_id)
        if router is not None:
            router.leave(session.participant_id)
            if not router.members:
                self.worker.close_router(router.room_id)
        for transport in (session.publish, session.subscribe):
            if transport is not None:
                await transport.close()
        log.info(
            "left live room",
            extra={"room": session.room_id, "participant": session.participant_id},
        )
        if reason is not None:
            with contextlib.suppress(Exception):
                await self.emit(
                    "media.ended", {"case_id": session.case_id, "reason": reason}, to=session.sid
                )
        await self.announce_room(session.room_id)
        await self.controls.push_state(session.case_id)

    async def end_case(self, case_id: str, reason: str) -> None:
        """End every live session of ``case_id`` here, telling each client ``reason``
        (it joins again; its place in the case's rooms is kept)."""
        for session in [s for s in self.live.values() if s.case_id == case_id]:
            await self.end(session, reason=reason)
        self.controls.forget_case(case_id)

    async def close(self) -> None:
        """End every live session (the server is stopping)."""
        await self.controls.stop_timers()
        await self.indicators.close()
        for session in list(self.live.values()):
            await self.end(session)

    def stats(self) -> dict[str, Any]:
        return {
            **self.worker.stats(),
            "participants": [
                {"case_id": s.case_id, "room_id": s.room_id, **s.person()}
                for s in self.live.values()
            ],
        }
