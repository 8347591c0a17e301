"""socket.io: the authenticated real-time channel between browsers and the server.

A connection is accepted only with a valid, fully signed-in session cookie. Each area of
events is one ``EventNamespace``; every event declares its payload model and who may send
it, and the namespace validates, authorizes, acts and acknowledges with
``{"ok": true, ...}`` or ``{"ok": false, "error": {"code", "message"}}``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

import socketio
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from rooms.accounts.sessions import STAGE_ACTIVE
from rooms.cases.cases import Member
from rooms.cases.roles import CASE_ROLES
from rooms.errors import CaucusError, Unauthenticated
from sfu import Worker
from signaling.access import SESSION_COOKIE
from signaling.cluster.node_bus import NodeBus
from signaling.errors import socket_error
from signaling.refusals import REFUSALS, SOCKET_LIMITS
from signaling.services import Services
from signaling.settings import Settings

if TYPE_CHECKING:
    from signaling.cluster.gateway import MediaCluster

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventRule:
    """Who may send an event: ``active`` (any signed-in user), ``case`` (a member of the
    payload's ``case_id`` with one of ``case_roles``) or ``space`` (such a member who is
    also a member of the payload's ``space_id``)."""

    kind: str
    case_roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Event:
    name: str
    model: type[BaseModel]
    rule: EventRule
    handler: Callable[..., Awaitable[dict[str, Any]]]


@dataclass
class Caller:
    sid: str
    user_id: str
    display_name: str
    member: Member | None


def event(name: str, model: type[BaseModel], kind: str, case_roles: tuple[str, ...] = ()):
    def mark(handler: Callable[..., Awaitable[dict[str, Any]]]):
        handler.__caucus_event__ = (name, model, EventRule(kind, case_roles))  # type: ignore[attr-defined]
        return handler

    return mark


class Payload(BaseModel):
    """A socket.io event's payload: no unknown fields, no type coercion (``"yes"`` is not
    a boolean, ``"3"`` not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class CasePayload(Payload):
    case_id: str = Field(min_length=1, max_length=64)


def session_token_from_environ(environ: dict[str, Any]) -> str | None:
    cookie = SimpleCookie()
    try:
        cookie.load(environ.get("HTTP_COOKIE", ""))
    except Exception:  # a malformed header is simply no session
        return None
    morsel = cookie.get(SESSION_COOKIE)
    return morsel.value if morsel else None


class EventNamespace(socketio.AsyncNamespace):
    """Base of Caucus namespaces: authenticated connect, declared and checked events."""

    def __init__(self, namespace: str, services: Services) -> None:
        super().__init__(namespace)
        self.services = services
        self.sids_by_session: dict[str, set[str]] = {}
        self.events: dict[str, Event] = {}
        for attr in dir(self):
            handler = getattr(self, attr)
            spec = getattr(handler, "__caucus_event__", None)
            if spec:
                name, model, rule = spec
                self.events[name] = Event(name, model, rule, handler)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = session_token_from_environ(environ)
        session = await self.services.sessions.find(token)
        if session is None or session.stage != STAGE_ACTIVE:
            # message, then data: clients read ``error.data.code`` of ``connect_error``
            raise socketio.exceptions.ConnectionRefusedError(
                "Sign in first.", {"code": "unauthenticated", "message": "Sign in first."}
            )
        await self.save_session(sid, {"token": token, "user_id": session.user_id})
        self.sids_by_session.setdefault(session.token_hash, set()).add(sid)
        log.info("socket connected", extra={"namespace": self.namespace, "user": session.user_id})

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        for sids in self.sids_by_session.values():
            sids.discard(sid)
        await self.left(sid)

    async def end_session(self, token_hash: str) -> None:
        """Disconnect every socket opened with a session that has just ended."""
        for sid in list(self.sids_by_session.pop(token_hash, ())):
            await self.disconnect(sid)

    async def left(self, sid: str) -> None:
        """A connection ended; namespaces release what it held."""

    async def trigger_event(self, event_name: str, *args: Any) -> Any:
        if event_name in ("connect", "disconnect"):
            return await super().trigger_event(event_name, *args)
        sid = args[0]
        try:
            spec = self.events.get(event_name)
            if spec is None:
                return {
                    "ok": False,
                    "error": {"code": "unknown_event", "message": f"No event {event_name!r}."},
                }
            if len(args) != 2:
                raise CaucusError("Send exactly one payload object.", code="invalid_payload")
            payload = spec.model.model_validate(args[1])
            caller = await self.authorize(sid, spec.rule, payload)
        except Exception as exc:
            return socket_error(exc)
        reply = await self.handle(spec, caller, payload)
        if isinstance(reply, dict) and reply.get("ok") is False:
            limit = SOCKET_LIMITS.get(str((reply.get("error") or {}).get("code")))
            if limit is not None:
                REFUSALS.count(limit)
        return reply

    async def handle(self, spec: Event, caller: Caller, payload: BaseModel) -> dict[str, Any]:
        """Run an event that passed validation and authorization; the acknowledgement."""
        try:
            result = await spec.handler(caller, payload)
            return {"ok": True, **(result or {})}
        except Exception as exc:
            return socket_error(exc)

    async def authorize(self, sid: str, rule: EventRule, payload: BaseModel) -> Caller:
        saved = await self.get_session(sid)
        session = await self.services.sessions.find(saved.get("token"))
        if session is None or session.stage != STAGE_ACTIVE:
            raise Unauthenticated("Your session has ended; sign in again.")
        user = await self.services.accounts.get(session.user_id)
        member = None
        if rule.kind == "case":
            member = await self.services.cases.require_role(
                payload.case_id,  # type: ignore[attr-defined]
                user.id,
                rule.case_roles,
            )
        elif rule.kind == "space":
            member = await self.services.cases.require_role(
                payload.case_id,  # type: ignore[attr-defined]
                user.id,
                rule.case_roles,
            )
            await self.services.spaces.require_member(
                payload.case_id,  # type: ignore[attr-defined]
                payload.space_id,  # type: ignore[attr-defined]
                user.id,
            )
        elif rule.kind != "active":
            raise RuntimeError(f"unknown event rule {rule.kind!r}")
        return Caller(sid, user.id, member.display_name if member else user.display_name, member)


def case_room(case_id: str) -> str:
    return f"case:{case_id}"


class CaseNamespace(EventNamespace):
    """Presence in a case: who of its members is online now."""

    def __init__(self, services: Services) -> None:
        super().__init__("/case", services)
        self.online: dict[str, dict[str, str]] = {}  # case_id -> sid -> user_id

    def _online(self, case_id: str) -> list[str]:
        return sorted(set(self.online.get(case_id, {}).values()))

    @event("case.join", CasePayload, "case", CASE_ROLES)
    async def join(self, caller: Caller, payload: CasePayload) -> dict[str, Any]:
        await self.enter_room(caller.sid, case_room(payload.case_id))
        self.online.setdefault(payload.case_id, {})[caller.sid] = caller.user_id
        online = self._online(payload.case_id)
        await self.emit(
            "presence",
            {"case_id": payload.case_id, "online": online},
            room=case_room(payload.case_id),
        )
        return {"case_id": payload.case_id, "online": online}

    @event("case.leave", CasePayload, "case", CASE_ROLES)
    async def leave(self, caller: Caller, payload: CasePayload) -> dict[str, Any]:
        await self._leave(caller.sid, payload.case_id)
        return {"case_id": payload.case_id}

    async def _leave(self, sid: str, case_id: str) -> None:
        await self.leave_room(sid, case_room(case_id))
        if self.online.get(case_id, {}).pop(sid, None) is not None:
            await self.emit(
                "presence",
                {"case_id": case_id, "online": self._online(case_id)},
                room=case_room(case_id),
            )

    async def left(self, sid: str) -> None:
        for case_id in [c for c, sids in self.online.items() if sid in sids]:
            await self._leave(sid, case_id)


SOCKETS = web.AppKey("sockets", socketio.AsyncServer)
NAMESPACES = web.AppKey("namespaces", list[EventNamespace])


async def end_session_sockets(app: web.Application, *token_hashes: str) -> None:
    """Disconnect, on every node, the sockets opened with these (ended) sessions."""
    await node_bus(app).sessions_ended(list(token_hashes))


def node_bus(app: web.Application) -> NodeBus:
    from signaling.spaces_events import SpacesNamespace  # it builds on this module

    spaces = next(n for n in app[NAMESPACES] if isinstance(n, SpacesNamespace))
    return spaces.bus


def same_origin(settings: Settings) -> Callable[[str | None, dict[str, Any]], bool]:
    """The origin check of the engine.io handshake: the page must come from this server.

    The server speaks HTTPS only, but engine.io's own same-origin rule assumes ``http``
    behind aiohttp, so the check is spelled out here (plus ``public_url`` behind a proxy).
    """
    public = settings.public_url.rstrip("/") if settings.public_url else None

    def allowed(origin: str | None, environ: dict[str, Any]) -> bool:
        host = environ.get("HTTP_HOST")
        return origin is not None and (origin == f"https://{host}" or origin == public)

    return allowed


def create_socket_server(
    services: Services, worker: Worker | None = None, cluster: MediaCluster | None = None
) -> tuple[socketio.AsyncServer, list[EventNamespace]]:
    """The socket.io server and its namespaces; with an SFU ``worker`` (in this process)
    or a ``cluster`` (worker processes), also ``/media`` and ``/recording``."""
    manager = None
    if services.settings.redis_url:
        manager = socketio.AsyncRedisManager(services.settings.redis_url)
    server = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=manager,
        cors_allowed_origins=same_origin(services.settings),
        max_http_buffer_size=1_000_000,
        logger=False,
        engineio_logger=False,
    )
    namespaces: list[EventNamespace] = [CaseNamespace(services)]
    from signaling.spaces_events import SpacesNamespace  # it builds on this module

    bus = NodeBus(services.settings.redis_url)
    namespaces.append(SpacesNamespace(services, bus))

    async def end_local_sessions(token_hashes: list[str]) -> None:
        for namespace in namespaces:
            for token_hash in token_hashes:
                await namespace.end_session(token_hash)

    bus.on_sessions_ended = end_local_sessions
    if cluster is not None:
        from signaling.cluster.gateway import ForwardingNamespace
        from signaling.media import MediaNamespace  # they build on this module
        from signaling.recording import RECORDING_NAMESPACE, RecordingNamespace

        namespaces.append(ForwardingNamespace("/media", MediaNamespace, services, cluster))
        namespaces.append(
            ForwardingNamespace(RECORDING_NAMESPACE, RecordingNamespace, services, cluster)
        )
    elif worker is not None:
        from signaling.media import MediaNamespace  # it builds on this module

        media = MediaNamespace(services, worker)
        namespaces.append(media)
        from signaling.recording import RecordingNamespace  # it builds on this module

        namespaces.append(RecordingNamespace(services, worker, media))
    for namespace in namespaces:
        server.register_namespace(namespace)
    return server, namespaces
