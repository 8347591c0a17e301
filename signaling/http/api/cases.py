"""Case routes: the caller's cases, intake, details and invitations."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rooms.accounts.sessions import STAGE_ACTIVE, token_hash
from rooms.cases.roles import CASE_ROLES, NEUTRAL_ROLES
from rooms.errors import CaucusError
from signaling.http.access import (
    MEMBER,
    SESSION,
    access,
    client_address,
    device_token,
    read_json,
    set_device_cookie,
    set_session_cookie,
    user_of,
)
from signaling.http.state import MAIL_SENDER, REALTIME
from signaling.services import SERVICES

routes = web.RouteTableDef()

Text = Field(default="", max_length=4000)


class Closed(BaseModel):
    """A request body: no unknown fields, no type coercion, surrounding spaces trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


class PartyIntake(Closed):
    name: str = Field(min_length=1, max_length=200)
    side: Literal["claimant", "respondent", "other"] = "other"


class AttorneyIntake(Closed):
    name: str = Field(min_length=1, max_length=200)
    represents: str = Field(default="", max_length=200)


class CaseIntake(Closed):
    process: Literal["mediation", "arbitration", "other"]
    title: str = Field(min_length=1, max_length=300)
    case_type: str = Field(default="", max_length=200)
    description: str = Text
    parties: list[PartyIntake] = Field(default_factory=list, max_length=50)
    attorneys: list[AttorneyIntake] = Field(default_factory=list, max_length=50)
    filed_in_court: bool = False
    cause_number: str = Field(default="", max_length=100)
    jurisdiction: str = Field(default="", max_length=200)
    requested_dates: list[dt.date] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def court_details(self) -> CaseIntake:
        if self.filed_in_court and not (self.cause_number and self.jurisdiction):
            raise ValueError("a case filed in court needs its cause number and jurisdiction")
        return self


class InvitationBody(Closed):
    role: Literal["party", "counsel", "observer", "co_neutral"]
    display_name: str = Field(min_length=1, max_length=200)
    represents: str | None = Field(default=None, max_length=32)
    #: 1 hour to 30 days; the server's ``invitation_hours`` when left out.
    expires_in_hours: float | None = Field(default=None, ge=1, le=720)
    #: Where to mail the link (left out: the neutral hands it over).
    email: str | None = Field(default=None, max_length=320)


class MailNamingBody(Closed):
    #: The name mails give the case (empty: "a case on <site>").
    reference: str | None = Field(default=None, max_length=100)
    #: Mails may name the case by its title.
    title_in_mail: bool = False


class AcceptBody(BaseModel):
    """The invitee's new account.  The password is taken as typed, exactly as sign-in
    takes it (never trimmed)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    username: str = Field(min_length=3, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


@routes.get("/api/cases")
@access("active")
async def list_cases(request: web.Request) -> web.Response:
    pairs = await request.app[SERVICES].cases.cases_of(user_of(request).id)
    return web.json_response(
        {
            "cases": [
                {
                    "id": c.id,
                    "title": c.title,
                    "process": c.process,
                    "status": c.status,
                    "my_role": role,
                }
                for c, role in pairs
            ]
        }
    )


@routes.post("/api/cases")
@access("neutral")
async def open_case(request: web.Request) -> web.Response:
    body = await read_json(request, CaseIntake)
    case = await request.app[SERVICES].cases.open_case(
        user_of(request), body.model_dump(mode="json")
    )
    return web.json_response({"case": case.public()}, status=201)


@routes.get("/api/cases/{case_id}")
@access("case", case_roles=CASE_ROLES)
async def get_case(request: web.Request) -> web.Response:
    cases = request.app[SERVICES].cases
    case = await cases.get(request.match_info["case_id"])
    members = await cases.members(case.id)
    return web.json_response(
        {
            "case": case.public(),
            "members": [m.public() for m in members],
            "my_role": request[MEMBER].role,
        }
    )


@routes.get("/api/cases/{case_id}/invitations")
@access("case", case_roles=NEUTRAL_ROLES)
async def list_invitations(request: web.Request) -> web.Response:
    items = await request.app[SERVICES].cases.invitations(request.match_info["case_id"])
    return web.json_response({"invitations": items})


@routes.post("/api/cases/{case_id}/invitations")
@access("case", case_roles=NEUTRAL_ROLES)
async def create_invitation(request: web.Request) -> web.Response:
    body = await read_json(request, InvitationBody)
    services = request.app[SERVICES]
    invitation, token = await services.cases.invite(
        request.match_info["case_id"],
        request[MEMBER],
        role=body.role,
        display_name=body.display_name,
        represents=body.represents,
        expires_in_hours=body.expires_in_hours or services.settings.invitation_hours,
        email=body.email,
    )
    if invitation["email"]:
        request.app[MAIL_SENDER].wake()
    return web.json_response(
        {"invitation": invitation, "token": token, "url": f"/invite/{token}"}, status=201
    )


@routes.post("/api/cases/{case_id}/invitations/{invitation_id}/resend")
@access("case", case_roles=NEUTRAL_ROLES)
async def resend_invitation(request: web.Request) -> web.Response:
    """Mail an open invitation again, with a new link (the old one stops working)."""
    services = request.app[SERVICES]
    invitation = await services.cases.resend_invitation(
        request.match_info["case_id"],
        request.match_info["invitation_id"],
        request[MEMBER],
        services.settings.invitation_hours,
    )
    request.app[MAIL_SENDER].wake()
    return web.json_response({"invitation": invitation})


@routes.post("/api/cases/{case_id}/invitations/{invitation_id}/revoke")
@access("case", case_roles=NEUTRAL_ROLES)
async def revoke_invitation(request: web.Request) -> web.Response:
    invitation = await request.app[SERVICES].cases.revoke_invitation(
        request.match_info["case_id"], request.match_info["invitation_id"], request[MEMBER]
    )
    return web.json_response({"invitation": invitation})


@routes.post("/api/cases/{case_id}/mail-naming")
@access("case", case_roles=NEUTRAL_ROLES)
async def set_mail_naming(request: web.Request) -> web.Response:
    body = await read_json(request, MailNamingBody)
    case = await request.app[SERVICES].cases.set_mail_naming(
        request.match_info["case_id"], request[MEMBER], body.reference, body.title_in_mail
    )
    return web.json_response({"case": case.public()})


@routes.get("/api/invitations/{token}")
@access("public")
async def describe_invitation(request: web.Request) -> web.Response:
    info = await request.app[SERVICES].cases.describe_invitation(request.match_info["token"])
    return web.json_response(info)


@routes.post("/api/invitations/{token}/accept")
@access("public")
async def accept_invitation(request: web.Request) -> web.Response:
    """Create the invitee's account.  Failed attempts (a taken username, a weak password,
    a bad link) are throttled per invitation and per client address, before any work."""
    body = await read_json(request, AcceptBody)
    services = request.app[SERVICES]
    throttle = services.accounts.throttle
    client = client_address(request)
    subjects = (f"invite:{token_hash(request.match_info['token'])}", f"invite-addr:{client}")
    allowance = services.settings.invitation_accept_max_failures
    await throttle.check(*subjects, limit="invitation_accept", allowance=allowance)
    try:
        user, case_id = await services.cases.accept_invitation(
            request.match_info["token"], body.username, body.password
        )
    except CaucusError:
        await throttle.record_failure(*subjects)
        raise
    await request.app[REALTIME].case.members_changed(case_id)
    session = request[SESSION]
    if session is not None:
        await services.sessions.end(session)
    token = await services.sessions.create(user.id, STAGE_ACTIVE)
    response = web.json_response({"stage": STAGE_ACTIVE, "case_id": case_id}, status=201)
    set_session_cookie(response, token, int(services.sessions.lifetime))
    device = await services.accounts.complete_sign_in(user, client, device_token(request))
    if device is not None:
        set_device_cookie(response, device, int(services.accounts.devices.lifetime))
    return response
