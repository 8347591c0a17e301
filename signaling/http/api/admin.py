"""Administration routes: the user list, creating staff accounts, media statistics."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from signaling.http.access import access, read_json
from signaling.http.state import MEDIA_STATS
from signaling.services import SERVICES

routes = web.RouteTableDef()


class NewUserBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    username: str = Field(min_length=3, max_length=64)
    role: Literal["admin", "neutral"]
    display_name: str | None = Field(None, max_length=200)


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
    )
    return web.json_response({"user": user.public(), "one_time_password": password}, status=201)


@routes.get("/api/admin/media")
@access("admin")
async def media_stats(request: web.Request) -> web.Response:
    """The SFU's counters: per router, per transport (with producers and consumers)."""
    return web.json_response(await request.app[MEDIA_STATS]())
