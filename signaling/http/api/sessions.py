"""Session routes: the sessions of a case (its neutral schedules, moves and cancels them),
and each person's private calendar feed."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from rooms.cases.roles import CASE_ROLES, NEUTRAL_ROLES
from signaling.http.access import MEMBER, access, read_json, user_of
from signaling.http.state import MAIL_SENDER
from signaling.services import SERVICES

routes = web.RouteTableDef()


class SessionBody(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    starts_at: float = Field(ge=0, le=100_000_000_000)
    minutes: int = Field(ge=15, le=720)


@routes.get("/api/cases/{case_id}/sessions")
@access("case", case_roles=CASE_ROLES)
async def list_sessions(request: web.Request) -> web.Response:
    sessions = request.app[SERVICES].case_sessions
    found = await sessions.listing(request.match_info["case_id"])
    upcoming = sessions.next_of(found)
    return web.json_response(
        {
            "sessions": [s.public() for s in found],
            "next": upcoming.public() if upcoming else None,
        }
    )


@routes.post("/api/cases/{case_id}/sessions")
@access("case", case_roles=NEUTRAL_ROLES)
async def schedule_session(request: web.Request) -> web.Response:
    body = await read_json(request, SessionBody)
    session = await request.app[SERVICES].case_sessions.schedule(
        request.match_info["case_id"], request[MEMBER], body.starts_at, body.minutes
    )
    request.app[MAIL_SENDER].wake()
    return web.json_response({"session": session.public()}, status=201)


@routes.post("/api/cases/{case_id}/sessions/{session_id}/reschedule")
@access("case", case_roles=NEUTRAL_ROLES)
async def reschedule_session(request: web.Request) -> web.Response:
    body = await read_json(request, SessionBody)
    session = await request.app[SERVICES].case_sessions.reschedule(
        request.match_info["case_id"],
        request.match_info["session_id"],
        request[MEMBER],
        body.starts_at,
        body.minutes,
    )
    request.app[MAIL_SENDER].wake()
    return web.json_response({"session": session.public()})


@routes.post("/api/cases/{case_id}/sessions/{session_id}/cancel")
@access("case", case_roles=NEUTRAL_ROLES)
async def cancel_session(request: web.Request) -> web.Response:
    session = await request.app[SERVICES].case_sessions.cancel(
        request.match_info["case_id"], request.match_info["session_id"], request[MEMBER]
    )
    request.app[MAIL_SENDER].wake()
    return web.json_response({"session": session.public()})


def _feed_url(request: web.Request, token: str) -> str:
    return f"{request.app[SERVICES].settings.effective_public_url}/calendar/{token}.ics"


@routes.get("/api/calendar-feed")
@access("active")
async def get_feed(request: web.Request) -> web.Response:
    exists = await request.app[SERVICES].case_sessions.has_feed(user_of(request).id)
    # only the hash is kept: an existing address is shown once, when made
    return web.json_response({"url": None, "exists": exists})


@routes.post("/api/calendar-feed")
@access("active")
async def new_feed(request: web.Request) -> web.Response:
    token = await request.app[SERVICES].case_sessions.new_feed(user_of(request).id)
    return web.json_response({"url": _feed_url(request, token), "exists": True}, status=201)


@routes.delete("/api/calendar-feed")
@access("active")
async def revoke_feed(request: web.Request) -> web.Response:
    await request.app[SERVICES].case_sessions.revoke_feed(user_of(request).id)
    return web.json_response({"url": None, "exists": False})


@routes.get("/calendar/{token}.ics")
@access("public")
async def calendar_feed(request: web.Request) -> web.Response:
    text = await request.app[SERVICES].case_sessions.feed(request.match_info["token"])
    return web.Response(
        text=text,
        content_type="text/calendar",
        headers={"Cache-Control": "private, max-age=300"},
    )
