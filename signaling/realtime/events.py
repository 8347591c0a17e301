"""The socket.io event framework: declared events, checked before they run.

A connection is accepted only with a valid, fully signed-in session cookie. Each area of
events is one ``EventNamespace``; every event declares its payload model and who may send
it, and the namespace validates, authorizes, acts and acknowledges with
``{"ok": true, ...}`` or ``{"ok": false, "error": {"code", "message"}}``.

This module is the leaf of ``signaling.realtime``: it knows no namespace.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any, ClassVar

import socketio
from pydantic import BaseModel, ConfigDict, Field

from rooms.accounts.sessions import STAGE_ACTIVE
from rooms.errors import CaucusError, Unauthenticated
from signaling.cookies import SESSION_COOKIE
from signaling.errors import socket_error
from signaling.refusals import REFUSALS, SOCKET_LIMITS

if TYPE_CHECKING:
    from rooms.cases.cases import Member
    from signaling.services import Services

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[dict[str, Any]]]


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
    handler: Handler


@dataclass
class Caller:
    sid: str
    user_id: str
    display_name: str
    member: Member | None


def event(
    name: str, model: type[BaseModel], kind: str, case_roles: tuple[str, ...] = ()
) -> Callable[[Handler], Handler]:
    """Declare a handler method as the event ``name`` with its payload model and rule."""

    def mark(handler: Handler) -> Handler:
        # a marker on the function, read by ``declared_events``
        marker = (name, model, EventRule(kind, case_roles))
        handler.__caucus_event__ = marker  # type: ignore[attr-defined]  # functions take attributes
        return handler

    return mark


def declared_events(owner: object) -> dict[str, Event]:
    """The events declared by the methods of ``owner`` (an instance, or a class: then the
    handlers are its plain functions)."""
    events: dict[str, Event] = {}
    for attr in dir(owner):
        handler = getattr(owner, attr)
        spec = getattr(handler, "__caucus_event__", None)
        if spec:
            name, model, rule = spec
            events[name] = Event(name, model, rule, handler)
    return events


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
    """Base of Caucus namespaces: authenticated connect, declared and checked events.

    A namespace's events are the declared methods of the namespace and of the components
    it holds (``parts``); ``components`` names their classes, so that a namespace standing
    for this one elsewhere (``signaling.realtime.namespaces.forwarding``) can declare the
    same events without building one."""

    components: ClassVar[tuple[type, ...]] = ()

    def __init__(self, namespace: str, services: Services, *parts: object) -> None:
        super().__init__(namespace)
        self.services = services
        self.sids_by_session: dict[str, set[str]] = {}
        self.events: dict[str, Event] = {}
        for owner in (self, *parts):
            self.events.update(declared_events(owner))

    @classmethod
    def declarations(cls) -> dict[str, Event]:
        """The events this namespace class serves (handlers unbound)."""
        events: dict[str, Event] = {}
        for owner in (cls, *cls.components):
            events.update(declared_events(owner))
        return events

    def present(self) -> set[tuple[str, str]]:
        """(case id, user id) of the members online in a case through this namespace on
        this node (for activity digests); none unless the namespace tracks presence."""
        return set()

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
        if rule.kind in ("case", "space"):
            case_id: str = getattr(payload, "case_id")  # noqa: B009 (declared by the rule)
            member = await self.services.cases.require_role(case_id, user.id, rule.case_roles)
            if rule.kind == "space":
                space_id: str = getattr(payload, "space_id")  # noqa: B009
                await self.services.spaces.require_member(case_id, space_id, user.id)
        elif rule.kind != "active":
            raise RuntimeError(f"unknown event rule {rule.kind!r}")
        return Caller(sid, user.id, member.display_name if member else user.display_name, member)
