"""Administration routes: the user list, creating staff accounts, media statistics, the
mail queue."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from rooms.accounts.addresses import normalize_email
from rooms.storage.outbox import FAILED, QUEUED, enqueue
from signaling.http.access import access, read_json
from signaling.http.state import MAIL_SENDER, MEDIA_STATS
from signaling.services import SERVICES

routes = web.RouteTableDef()


class NewUserBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    username: str = Field(min_length=3, max_length=64)
    role: Literal["admin", "neutral"]
    display_name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)


class TestMailBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    to: str = Field(min_length=3, max_length=320)


@routes.get("/api/admin/users")
@access("admin")
async def list_users(request: web.Request) -> web.Response:
    users = await request.app[SERVICES].accounts.list_users()
    return web.json_response({"users": [u.public() for u in users]})


@routes.post("/api/admin/users")
@access("admin")
async def create_user(request: web.Request) -> web.Response:
    body = await read_json(request, NewUserBody)
    accounts = request.app[SERVICES].accounts
    password = accounts.one_time_password()
    user = await accounts.create_user(
        body.username,
        password,
        role=body.role,
        display_name=body.display_name,
        must_change_password=True,
        check_policy=False,
        email=body.email,
    )
    if user.email:
        request.app[MAIL_SENDER].wake()  # its verification link
    return web.json_response({"user": user.public(), "one_time_password": password}, status=201)


@routes.post("/api/admin/users/{user_id}/verify-email")
@access("admin")
async def resend_verification(request: web.Request) -> web.Response:
    """A new verification link to an account's unverified address (the earlier ones stop
    working)."""
    accounts = request.app[SERVICES].accounts
    user = await accounts.resend_verification(request.match_info["user_id"][:64])
    request.app[MAIL_SENDER].wake()
    return web.json_response({"user": user.public()}, status=202)


@routes.get("/api/admin/media")
@access("admin")
async def media_stats(request: web.Request) -> web.Response:
    """The SFU's counters: per router, per transport (with producers and consumers)."""
    return web.json_response(await request.app[MEDIA_STATS]())


@routes.get("/api/admin/mail")
@access("admin")
async def mail_queue(request: web.Request) -> web.Response:
    """Mail waiting to go out and mail that failed, with the server's answers."""
    outbox = request.app[SERVICES].outbox
    return web.json_response(
        {
            "transport": request.app[MAIL_SENDER].transport.describe(),
            "counts": await outbox.counts(),
            "queued": [m.public() for m in await outbox.listing(QUEUED)],
            "failed": [m.public() for m in await outbox.listing(FAILED)],
        }
    )


@routes.post("/api/admin/mail/{mail_id}/retry")
@access("admin")
async def retry_mail(request: web.Request) -> web.Response:
    """One more attempt at a failed (or waiting) mail, now."""
    services = request.app[SERVICES]
    mail = await services.outbox.retry(request.match_info["mail_id"][:64])
    request.app[MAIL_SENDER].wake()
    return web.json_response({"mail": mail.public()})


@routes.post("/api/admin/mail/test")
@access("admin")
async def test_mail(request: web.Request) -> web.Response:
    """A test mail to an address, through the outbox like every other mail."""
    body = await read_json(request, TestMailBody)
    services = request.app[SERVICES]
    recipient = normalize_email(body.to)
    async with services.store.begin() as conn:
        mail_id = await enqueue(
            conn, "admin_test", recipient, {"recipient": recipient}, now=services.outbox.clock()
        )
    request.app[MAIL_SENDER].wake()
    return web.json_response({"mail": (await services.outbox.get(mail_id)).public()}, status=202)
