"""Who may call what: every HTTP route declares its access, and one middleware enforces it.

A route without a declaration is refused (fail closed), so a forgotten check cannot ship.
The same declarations drive the authorization test that enumerates every route.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from rooms.accounts.accounts import User
from rooms.accounts.sessions import STAGE_ACTIVE, Session
from rooms.cases.cases import Member
from rooms.errors import CaucusError, Forbidden, InvalidInput, PayloadTooLarge, Unauthenticated
from signaling.cookies import CSRF_COOKIE, DEVICE_COOKIE, SESSION_COOKIE
from signaling.errors import error_body, http_error
from signaling.http.state import NODE_BUS
from signaling.services import SERVICES

log = logging.getLogger(__name__)

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SESSION = web.RequestKey[Session | None]("session")
USER = web.RequestKey[User | None]("user")
MEMBER = web.RequestKey("member", Member)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self' wss: ws:; font-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(self), "
    "geolocation=(), payment=()",
}


@dataclass(frozen=True)
class Access:
    """What a route requires.

    kind: ``public`` (anyone), ``session`` (any login session, whatever its stage),
    ``stage`` (a session in one of ``stages``), ``active`` (a fully signed-in user),
    ``admin`` / ``neutral`` (active with that global role), ``case`` (active and a member of
    the case named by the ``case_id`` path parameter with one of ``case_roles``), ``space``
    (as ``case``, and a member of the space named by the ``space_id`` path parameter).
    """

    kind: str
    stages: tuple[str, ...] = ()
    case_roles: tuple[str, ...] = ()
    csrf: bool = True


def access(
    kind: str,
    *,
    stages: tuple[str, ...] = (),
    case_roles: tuple[str, ...] = (),
    csrf: bool = True,
):
    rule = Access(kind, stages, case_roles, csrf)

    def mark(handler: H) -> H:
        # a marker on the function object, read by the middleware and the route walk
        handler.__caucus_access__ = rule  # type: ignore[attr-defined]  # functions take attributes
        return handler

    return mark


def access_of(handler: Any) -> Access | None:
    return getattr(handler, "__caucus_access__", None)


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


async def _load_session(request: web.Request) -> tuple[Session | None, User | None]:
    services = request.app[SERVICES]
    session = await services.sessions.find(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None, None
    return session, await services.accounts.get(session.user_id)


ACCOUNT_REMOVED = (
    "The case was closed, and your account, which existed only for it, was removed with it."
)


async def account_removed(request: web.Request) -> bool:
    """Whether the request's session cookie named a session whose account was deleted
    with a closed case (answered once per such session)."""
    token = request.cookies.get(SESSION_COOKIE)
    return token is not None and await request.app[SERVICES].sessions.removed_with_case(token)


def session_of(request: web.Request) -> Session:
    """The session of a request that passed a rule needing one (anything but ``public``)."""
    session = request[SESSION]
    if session is None:
        raise Unauthenticated("Sign in first.", code="unauthenticated")
    return session


def user_of(request: web.Request) -> User:
    """The signed-in user of a request that passed a rule needing one."""
    user = request[USER]
    if user is None:
        raise Unauthenticated("Sign in first.", code="unauthenticated")
    return user


async def authorize(request: web.Request, rule: Access) -> None:
    session, user = await _load_session(request)
    request[SESSION], request[USER] = session, user
    if rule.kind == "public":
        return
    if session is None and await account_removed(request):
        raise Unauthenticated(ACCOUNT_REMOVED, code="account_removed")
    if session is None or user is None:
        raise Unauthenticated("Sign in first.", code="unauthenticated")
    if rule.kind == "session":
        return
    if rule.kind == "stage":
        if session.stage not in rule.stages:
            raise Forbidden("Finish signing in first.", code="stage_incomplete")
        return
    if session.stage != STAGE_ACTIVE:
        raise Forbidden("Finish signing in first.", code="stage_incomplete")
    if rule.kind == "active":
        return
    if rule.kind in ("admin", "neutral"):
        if user.role != rule.kind:
            raise Forbidden(f"Only a user with the {rule.kind} role may do this.")
        return
    if rule.kind in ("case", "space"):
        member: Member = await request.app[SERVICES].cases.require_role(
            request.match_info["case_id"], user.id, rule.case_roles
        )
        request[MEMBER] = member
        if rule.kind == "space":
            await request.app[SERVICES].spaces.require_member(
                member.case_id, request.match_info["space_id"], user.id
            )
        return
    raise RuntimeError(f"unknown access kind {rule.kind!r}")


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return origin == f"{request.scheme}://{request.host}"


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authorization, CSRF, error mapping and security headers for every request."""
    try:
        rule = access_of(getattr(request.match_info, "handler", None))
        if rule is None and request.match_info.http_exception is None:
            raise Forbidden("This address is not open.", code="no_access_rule")
        needs_csrf = rule is None or rule.csrf
        if request.method not in SAFE_METHODS and needs_csrf:
            token = request.headers.get(CSRF_HEADER, "")
            cookie = request.cookies.get(CSRF_COOKIE, "")
            if not (token and cookie and hmac.compare_digest(token, cookie)):
                raise Forbidden(
                    "The request lacks a valid CSRF token; reload the page.", code="csrf_failed"
                )
            if not _same_origin(request):
                raise Forbidden("Cross-origin requests are refused.", code="csrf_failed")
        if rule is not None:
            await authorize(request, rule)
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            for name, value in SECURITY_HEADERS.items():
                exc.headers.setdefault(name, value)
            raise
        response = web.json_response(
            error_body(exc.reason.lower().replace(" ", "_"), exc.reason), status=exc.status
        )
    except (CaucusError, ValidationError) as exc:
        response = http_error(exc)
    except Exception:
        log.exception("request failed", extra={"method": request.method, "path": request.path})
        response = web.json_response(
            error_body("internal_error", "Something went wrong on the server; try again."),
            status=500,
        )
    if not response.prepared:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
    return response


def _set_private_cookie(response: web.StreamResponse, name: str, token: str, max_age: int) -> None:
    """A cookie scripts cannot read, sent only over HTTPS and only by this site's pages."""
    response.set_cookie(
        name, token, max_age=max_age, path="/", secure=True, httponly=True, samesite="Strict"
    )


def set_session_cookie(response: web.StreamResponse, token: str, max_age: int) -> None:
    _set_private_cookie(response, SESSION_COOKIE, token, max_age)


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")


def device_token(request: web.Request) -> str | None:
    """The browser's device cookie, if it sends one (checked against the account later)."""
    return request.cookies.get(DEVICE_COOKIE)


def set_device_cookie(response: web.StreamResponse, token: str, max_age: int) -> None:
    _set_private_cookie(response, DEVICE_COOKIE, token, max_age)


def csrf_token_for(request: web.Request) -> tuple[str, bool]:
    """The browser's CSRF token, or a new one (second value True) to be set as a cookie."""
    token = request.cookies.get(CSRF_COOKIE)
    if token and len(token) == 43:
        return token, False
    return secrets.token_urlsafe(32), True


def set_csrf_cookie(response: web.StreamResponse, token: str) -> None:
    response.set_cookie(CSRF_COOKIE, token, path="/", secure=True, httponly=True, samesite="Strict")


M = TypeVar("M", bound=BaseModel)


async def read_json(request: web.Request, model: type[M]) -> M:
    """The request body parsed into ``model``; 413 when too large, 400 when malformed."""
    limit = request.app[SERVICES].settings.max_json_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    if request.content_type != "application/json":
        raise InvalidInput("Send the request body as application/json.", code="invalid_json")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise InvalidInput("The request body is not valid JSON.", code="invalid_json") from exc
        raise


async def end_session_sockets(app: web.Application, *token_hashes: str) -> None:
    """Disconnect, on every node, the sockets opened with these (ended) sessions."""
    await app[NODE_BUS].sessions_ended(list(token_hashes))
