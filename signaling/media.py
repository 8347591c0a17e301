"""Live media over socket.io: the ``/media`` namespace between browsers and the SFU.

Each participant has two peer connections (the SFU's model): a *publish* connection the
client offers and the server answers (``media.publish``), and a *subscribe* connection the
server offers and the client answers (the server calls ``media.offer`` and waits for the
acknowledgement).  ICE is not trickled: both sides put their candidates in the SDP.

A socket holds at most one live session; the session is in one live room, for now the
main room of its case (``"<case_id>:main"``).  Leaving, disconnecting or a failed
subscribe connection releases both transports.  See docs/signaling.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from pydantic import Field

from rooms.cases import CASE_ROLES
from rooms.errors import Conflict
from sfu import IceServer, MediaSettings, Transport, Worker
from signaling.services import Services
from signaling.settings import Settings
from signaling.sockets import Caller, CasePayload, EventNamespace, event

log = logging.getLogger(__name__)

MAX_SDP_CHARS = 200_000
MEDIA_WORKER = web.AppKey("media_worker", Worker)


def main_room(case_id: str) -> str:
    return f"{case_id}:main"


def parse_ice_server(url: str) -> IceServer:
    """``stun:host:port``, or ``turn[s]:user:secret@host:port[?transport=udp]`` (the user
    and secret percent-encoded) as a STUN/TURN server for browsers."""
    scheme, sep, rest = url.partition(":")
    if not sep or scheme not in ("stun", "stuns", "turn", "turns") or not rest:
        raise ValueError(f"not a STUN or TURN URL: {url!r}")
    if "@" in rest and scheme.startswith("turn"):
        credentials, _, address = rest.rpartition("@")
        username, _, secret = credentials.partition(":")
        return IceServer((f"{scheme}:{address}",), unquote(username), unquote(secret))
    return IceServer((url,))


def media_settings(settings: Settings) -> MediaSettings:
    """The SFU's settings from the server's settings."""
    ports: dict[str, int] = {}
    if settings.rtc_port_min or settings.rtc_port_max:
        ports = {"udp_port_min": settings.rtc_port_min, "udp_port_max": settings.rtc_port_max}
    return MediaSettings(
        **ports,
        announced_ip=settings.rtc_announced_ip or None,
        ice_servers=tuple(parse_ice_server(url) for url in settings.rtc_ice_servers),
        srtp_profiles=tuple(settings.srtp_profiles),
    )


def browser_ice_servers(media: MediaSettings) -> list[dict[str, Any]]:
    """``RTCPeerConnection`` ``iceServers`` for the browser."""
    servers = []
    for server in media.ice_servers:
        entry: dict[str, Any] = {"urls": list(server.urls)}
        if server.username is not None:
            entry["username"] = server.username
            entry["credential"] = server.credential or ""
        servers.append(entry)
    return servers


class MediaPayload(CasePayload):
    pass


class PublishPayload(CasePayload):
    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS)


@dataclass
class LiveSession:
    """One socket's presence in a live room, and its two transports."""

    sid: str
    case_id: str
    room_id: str
    participant_id: str
    user_id: str
    display_name: str
    role: str
    subscribe: Transport | None = None
    publish: Transport | None = None
    ending: bool = False
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def person(self) -> dict[str, str]:
        return {
            "participant_id": self.participant_id,
            "display_name": self.display_name,
            "role": self.role,
        }


class MediaNamespace(EventNamespace):
    """Joining a case's live room, publishing and receiving media, leaving."""

    def __init__(self, services: Services, worker: Worker) -> None:
        super().__init__("/media", services)
        self.worker = worker
        self.live: dict[str, LiveSession] = {}  # sid -> session
        self.by_participant: dict[str, LiveSession] = {}
        self._views = 0

    # --- events -------------------------------------------------------------------------

    @event("media.join", MediaPayload, "case", CASE_ROLES)
    async def join(self, caller: Caller, payload: MediaPayload) -> dict[str, Any]:
        if caller.sid in self.live:
            raise Conflict(
                "This connection is already in a live room; leave it first.",
                code="already_joined",
            )
        assert caller.member is not None
        session = LiveSession(
            sid=caller.sid,
            case_id=payload.case_id,
            room_id=main_room(payload.case_id),
            participant_id=uuid.uuid4().hex[:16],
            user_id=caller.user_id,
            display_name=caller.display_name,
            role=caller.member.role,
        )
        self.live[caller.sid] = session
        self.by_participant[session.participant_id] = session
        try:
            subscribe = await self.worker.create_transport(session.participant_id, "subscribe")
            session.subscribe = subscribe
            subscribe.negotiator = lambda offer: self._offer(session, offer)
            subscribe.on_close = lambda transport: self._transport_closed(session, transport)
            self.worker.router(session.room_id).join(session.participant_id)
        except BaseException:
            await self._end(session)
            raise
        log.info(
            "joined live room",
            extra={"room": session.room_id, "participant": session.participant_id},
        )
        await self._announce_room(session.room_id)
        return {
            "case_id": session.case_id,
            "room_id": session.room_id,
            "participant_id": session.participant_id,
            "ice_servers": browser_ice_servers(self.worker.settings),
            "participants": self._people(session.room_id),
        }

    @event("media.publish", PublishPayload, "case", CASE_ROLES)
    async def publish(self, caller: Caller, payload: PublishPayload) -> dict[str, Any]:
        session = self._session(caller.sid, payload.case_id)
        transport = session.publish
        if transport is None or transport.closed:
            transport = await self.worker.create_transport(session.participant_id, "publish")
            transport.on_close = lambda closed: self._transport_closed(session, closed)
            session.publish = transport
        answer = await transport.accept_offer(payload.sdp)
        return {"sdp": answer}

    @event("media.leave", MediaPayload, "case", CASE_ROLES)
    async def leave(self, caller: Caller, payload: MediaPayload) -> dict[str, Any]:
        session = self._session(caller.sid, payload.case_id)
        await self._end(session)
        return {"case_id": payload.case_id}

    async def left(self, sid: str) -> None:
        session = self.live.get(sid)
        if session is not None:
            await self._end(session)

    # --- negotiation --------------------------------------------------------------------

    async def _offer(self, session: LiveSession, offer: str) -> str:
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

    def _view(self, session: LiveSession) -> dict[str, Any]:
        """What ``session`` receives: the room's people and which mid carries whom."""
        tracks = []
        transport = session.subscribe
        if transport is not None and not transport.closed:
            for consumer in transport.consumers.values():
                producer = consumer.producer
                owner = self.by_participant.get(producer.participant_id) if producer else None
                if consumer.closed or consumer.mid is None or owner is None:
                    continue
                tracks.append({"mid": consumer.mid, "kind": consumer.kind, **owner.person()})
        tracks.sort(key=lambda track: int(track["mid"]) if track["mid"].isdigit() else 0)
        # Views can overtake each other (an offer's view is delivered after its answer is
        # made); the client keeps the one with the highest ``seq``.
        self._views += 1
        return {"seq": self._views, "participants": self._people(session.room_id), "tracks": tracks}

    def _people(self, room_id: str) -> list[dict[str, str]]:
        people = [s.person() for s in self.live.values() if s.room_id == room_id and not s.ending]
        return sorted(people, key=lambda person: person["display_name"])

    async def _announce_room(self, room_id: str) -> None:
        """Tell everyone in ``room_id`` who is there and which tracks they receive."""
        for session in [s for s in self.live.values() if s.room_id == room_id and not s.ending]:
            await self.emit("media.tracks", self._view(session), to=session.sid)

    # --- endings ------------------------------------------------------------------------

    def _session(self, sid: str, case_id: str) -> LiveSession:
        session = self.live.get(sid)
        if session is None or session.case_id != case_id:
            raise Conflict("Join the case's live room first.", code="not_joined")
        return session

    def _transport_closed(self, session: LiveSession, transport: Transport) -> None:
        if session.ending:
            return
        if transport is session.publish:
            session.publish = None
            return
        if transport is session.subscribe:
            # The subscribe connection failed (ICE, DTLS or negotiation): end the session
            # and say so; the client joins again.
            task = asyncio.ensure_future(self._end(session, reason="connection_failed"))
            session.tasks.add(task)
            task.add_done_callback(session.tasks.discard)

    async def _end(self, session: LiveSession, reason: str | None = None) -> None:
        if session.ending:
            return
        session.ending = True
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
        await self._announce_room(session.room_id)

    async def close(self) -> None:
        """End every live session (the server is stopping)."""
        for session in list(self.live.values()):
            await self._end(session)

    def stats(self) -> dict[str, Any]:
        return {
            **self.worker.stats(),
            "participants": [
                {"case_id": s.case_id, "room_id": s.room_id, **s.person()}
                for s in self.live.values()
            ],
        }


MEDIA_NAMESPACE = web.AppKey("media_namespace", MediaNamespace)


def media_context(namespace: MediaNamespace):
    """A cleanup context: the SFU worker lives as long as the application."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        yield
        await namespace.close()
        await namespace.worker.close()

    return context
