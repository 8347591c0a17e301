"""Sign-in, sign-out, password change and reset, and TOTP enrolment routes."""

from __future__ import annotations

import base64
import io

import segno
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from rooms.accounts.accounts import User
from rooms.accounts.passwords import MAX_PASSWORD_CHARS
from rooms.accounts.sessions import REAUTH_MAX_AGE, STAGE_ACTIVE, STAGE_PASSWORD, STAGE_TOTP
from signaling.http.access import (
    SESSION,
    USER,
    access,
    account_removed,
    clear_session_cookie,
    client_address,
    csrf_token_for,
    device_token,
    end_session_sockets,
    read_json,
    session_of,
    set_csrf_cookie,
    set_device_cookie,
    set_session_cookie,
    user_of,
)
from signaling.http.state import MAIL_SENDER
from signaling.services import SERVICES

routes = web.RouteTableDef()


class Strict(BaseModel):
    """A request body: no unknown fields, no type coercion (``"yes"`` is not a boolean),
    strings as sent (a password is never trimmed)."""

    model_config = ConfigDict(extra="forbid", str_max_length=1024, strict=True)


class LoginBody(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class CodeBody(Strict):
    code: str = Field(min_length=6, max_length=32)


class PasswordChangeBody(Strict):
    current_password: str = Field(min_length=1)
    new_password: str = Field(min_length=1)


class ForgotBody(Strict):
    email: str = Field(min_length=1, max_length=320)


class ResetBody(Strict):
    password: str = Field(min_length=1)


class EmailChangeBody(Strict):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1)


class DigestChoiceBody(Strict):
    case_id: str = Field(min_length=1, max_length=64)
    digests: bool


class ReauthBody(Strict):
    password: str = Field(min_length=1)
    code: str | None = Field(default=None, max_length=32)


class TotpDisableBody(Strict):
    password: str = Field(min_length=1)
    code: str = Field(min_length=6, max_length=32)


@routes.get("/api/session")
@access("public")
async def get_session(request: web.Request) -> web.Response:
    session, user = request[SESSION], request[USER]
    csrf, is_new = csrf_token_for(request)
    removed = session is None and await account_removed(request)
    response = web.json_response(
        {
            "csrf_token": csrf,
            "stage": session.stage if session else "anonymous",
            "user": user.public() if user else None,
            "ended": "account_removed" if removed else None,
        }
    )
    if is_new:
        set_csrf_cookie(response, csrf)
    return response


@routes.post("/api/login")
@access("public")
async def login(request: web.Request) -> web.Response:
    body = await read_json(request, LoginBody)
    services = request.app[SERVICES]
    session = request[SESSION]
    if session is not None:
        await services.sessions.end(session)
    client, device = client_address(request), device_token(request)
    user, stage = await services.accounts.authenticate(body.username, body.password, client, device)
    token = await services.sessions.create(user.id, stage)
    response = web.json_response({"stage": stage})
    set_session_cookie(response, token, int(services.sessions.lifetime))
    if stage != STAGE_TOTP:
        await signed_in(request, response, user, client, device)
    return response


async def signed_in(
    request: web.Request, response: web.StreamResponse, user: User, client: str, device: str | None
) -> None:
    """Every factor passed: the client's failures are forgotten and the browser is
    trusted (a new device cookie unless it holds a valid one)."""
    services = request.app[SERVICES]
    issued = await services.accounts.complete_sign_in(user, client, device)
    if issued is not None:
        set_device_cookie(response, issued, int(services.accounts.devices.lifetime))


@routes.post("/api/login/totp")
@access("stage", stages=(STAGE_TOTP,))
async def login_totp(request: web.Request) -> web.Response:
    body = await read_json(request, CodeBody)
    services = request.app[SERVICES]
    client, device = client_address(request), device_token(request)
    user = await services.accounts.verify_second_factor(
        user_of(request).id, body.code, client, device
    )
    stage = services.accounts.stage_after_second_factor(user)
    await services.sessions.set_stage(session_of(request), stage)
    response = web.json_response({"stage": stage})
    await signed_in(request, response, user, client, device)
    return response


@routes.post("/api/logout")
@access("session")
async def logout(request: web.Request) -> web.Response:
    await request.app[SERVICES].sessions.end(session_of(request))
    await end_session_sockets(request.app, session_of(request).token_hash)
    response = web.json_response({"stage": "anonymous"})
    clear_session_cookie(response)
    return response


@routes.post("/api/account/password")
@access("stage", stages=(STAGE_PASSWORD, STAGE_ACTIVE))
async def change_password(request: web.Request) -> web.Response:
    body = await read_json(request, PasswordChangeBody)
    services = request.app[SERVICES]
    await services.accounts.change_password(
        user_of(request).id, body.current_password, body.new_password
    )
    ended = await services.sessions.end_others(user_of(request).id, keep=session_of(request))
    await end_session_sockets(request.app, *ended)  # the other devices' sockets close
    await services.sessions.set_stage(session_of(request), STAGE_ACTIVE)
    return web.json_response({"stage": STAGE_ACTIVE})


def qr_data_uri(text: str) -> str:
    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="svg", scale=5, border=2)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


@routes.post("/api/account/totp/begin")
@access("active")
async def totp_begin(request: web.Request) -> web.Response:
    secret, uri = await request.app[SERVICES].accounts.totp_begin(user_of(request).id)
    return web.json_response(
        {"secret": secret, "provisioning_uri": uri, "qr_svg": qr_data_uri(uri)}
    )


@routes.post("/api/account/totp/confirm")
@access("active")
async def totp_confirm(request: web.Request) -> web.Response:
    body = await read_json(request, CodeBody)
    codes = await request.app[SERVICES].accounts.totp_confirm(user_of(request).id, body.code)
    return web.json_response({"recovery_codes": codes})


@routes.post("/api/account/reauth")
@access("active")
async def reauthenticate(request: web.Request) -> web.Response:
    """A fresh proof of identity (password, and a code when two-factor sign-in is on),
    recorded on this session: signing an agreement takes it within five minutes."""
    body = await read_json(request, ReauthBody)
    services = request.app[SERVICES]
    method = await services.accounts.reauthenticate(
        user_of(request).id,
        body.password,
        body.code,
        client_address(request),
        device_token(request),
    )
    at = await services.sessions.record_reauth(session_of(request), method)
    return web.json_response(
        {"reauthenticated_at": at, "method": method, "valid_for_seconds": int(REAUTH_MAX_AGE)}
    )


@routes.post("/api/account/totp/disable")
@access("active")
async def totp_disable(request: web.Request) -> web.Response:
    body = await read_json(request, TotpDisableBody)
    user = await request.app[SERVICES].accounts.totp_disable(
        user_of(request).id,
        body.password,
        body.code,
        client_address(request),
        device_token(request),
    )
    return web.json_response({"totp_enabled": user.totp_enabled})


FORGOT_ANSWER = (
    "If an account has this address, a link to choose a new password is on its way. "
    "It works once, for a short time."
)


@routes.post("/api/password/forgot")
@access("public")
async def forgot_password(request: web.Request) -> web.Response:
    """Mail a reset link; the answer is the same whether or not an account has the address."""
    body = await read_json(request, ForgotBody)
    services = request.app[SERVICES]
    await services.resets.request(body.email, client_address(request))
    request.app[MAIL_SENDER].wake()
    return web.json_response({"message": FORGOT_ANSWER}, status=202)


@routes.get("/api/password/rules")
@access("public")
async def password_rules(request: web.Request) -> web.Response:
    """What a new password must be, as the pages state it next to every password field."""
    policy = request.app[SERVICES].accounts.policy
    return web.json_response(
        {"min_length": policy.min_length, "max_length": MAX_PASSWORD_CHARS, "rules": policy.rules}
    )


@routes.get("/api/password/reset/{token}")
@access("public")
async def check_reset(request: web.Request) -> web.Response:
    await request.app[SERVICES].resets.check(request.match_info["token"])
    return web.json_response({"valid": True})


@routes.post("/api/password/reset/{token}")
@access("public")
async def reset_password(request: web.Request) -> web.Response:
    """Set a new password through a reset link: every session of the account ends, and
    this browser is signed in (at the second factor when it is on)."""
    body = await read_json(request, ResetBody)
    services = request.app[SERVICES]
    user, ended = await services.resets.complete(request.match_info["token"], body.password)
    await end_session_sockets(request.app, *ended)
    session = request[SESSION]
    if session is not None:
        await services.sessions.end(session)
    stage = services.accounts.stage_after_password(user)
    token = await services.sessions.create(user.id, stage)
    response = web.json_response({"stage": stage})
    set_session_cookie(response, token, int(services.sessions.lifetime))
    if stage != STAGE_TOTP:
        await signed_in(request, response, user, client_address(request), device_token(request))
    return response


@routes.post("/api/account/email")
@access("active")
async def change_email(request: web.Request) -> web.Response:
    """A confirmation link to the new address, a notice to the old one; the address
    changes when the link is opened."""
    body = await read_json(request, EmailChangeBody)
    services = request.app[SERVICES]
    email = await services.email_changes.request(user_of(request).id, body.email, body.password)
    request.app[MAIL_SENDER].wake()
    return web.json_response({"pending_email": email}, status=202)


@routes.post("/api/account/email/confirm/{token}")
@access("public")
async def confirm_email(request: web.Request) -> web.Response:
    user = await request.app[SERVICES].email_changes.confirm(request.match_info["token"])
    return web.json_response({"email": user.email})


@routes.get("/api/account/notifications")
@access("active")
async def notification_choices(request: web.Request) -> web.Response:
    """The caller's cases and whether each mails them activity digests."""
    cases = await request.app[SERVICES].cases.digest_choices(user_of(request).id)
    return web.json_response({"cases": cases})


@routes.post("/api/account/notifications")
@access("active")
async def set_notification_choice(request: web.Request) -> web.Response:
    """Activity digests on or off for one of the caller's cases (another case: 404)."""
    body = await read_json(request, DigestChoiceBody)
    await request.app[SERVICES].cases.set_digests(body.case_id, user_of(request).id, body.digests)
    return web.json_response({"case_id": body.case_id, "digests": body.digests})
