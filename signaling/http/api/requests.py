"""Request routes: a neutral's public request link (no account), the requester's address
confirmation, the personal links of the people a request names, and the neutral's queue,
availability and decisions."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rooms.errors import InvalidInput
from signaling.http.access import access, client_address, read_json, user_of
from signaling.http.state import MAIL_SENDER
from signaling.services import SERVICES

routes = web.RouteTableDef()


class Closed(BaseModel):
    """A request body: no unknown fields, surrounding spaces trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)


class RequesterForm(Closed):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320)
    role: Literal["party", "attorney"]


class PartyForm(Closed):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320)
    organisation: str = Field(default="", max_length=200)
    side: Literal["claimant", "respondent", "other"] = "other"


class AttorneyForm(Closed):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320)
    organisation: str = Field(default="", max_length=200)
    represents: int | None = Field(default=None, ge=0, le=19)


class RequestForm(Closed):
    requester: RequesterForm
    process: Literal["mediation", "arbitration", "other"]
    title: str = Field(min_length=1, max_length=300)
    case_type: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=4000)
    filed_in_court: bool = False
    cause_number: str = Field(default="", max_length=100)
    jurisdiction: str = Field(default="", max_length=200)
    parties: list[PartyForm] = Field(min_length=1, max_length=10)
    attorneys: list[AttorneyForm] = Field(default_factory=list, max_length=10)
    minutes: int = Field(ge=15, le=720)
    slots: list[float] = Field(min_length=1, max_length=3)
    time_zone: str = Field(default="UTC", max_length=64)
    #: The honeypot: hidden from people, so only a robot fills it.
    website: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def court_details(self) -> RequestForm:
        if self.filed_in_court and not (self.cause_number and self.jurisdiction):
            raise ValueError("a case filed in court needs its cause number and jurisdiction")
        return self


class ConsentBody(Closed):
    consent: bool


class AnswerBody(Closed):
    answer: Literal["accept", "decline", "propose"]
    slot_id: str | None = Field(default=None, max_length=32)
    starts_at: list[float] = Field(default_factory=list, max_length=3)


class ProfileBody(Closed):
    handle: str = Field(min_length=3, max_length=40)
    accepting: bool = True
    availability: dict[str, Any]


class DecisionBody(Closed):
    decision: Literal["clear", "disclose", "decline"]
    note: str = Field(default="", max_length=4000)


class ProposalBody(Closed):
    starts_at: list[float] = Field(min_length=1, max_length=3)


class ConfirmBody(Closed):
    slot_id: str = Field(min_length=1, max_length=32)


def _window(request: web.Request) -> dict[str, Any]:
    """The ``from``/``days`` query of a slot listing as the availability's range."""
    query = request.query
    try:
        start = float(query.get("from", "0")) or None
        days = int(query.get("days", "14"))
    except ValueError:
        raise InvalidInput("from is epoch seconds, days a whole number.") from None
    if not 1 <= days <= 62:
        raise InvalidInput("Ask for 1 to 62 days of slots.")
    if start is None:
        return {}
    return {"start": start, "end": start + days * 86400}


def _minutes(request: web.Request) -> int:
    try:
        return int(request.query.get("minutes", "60"))
    except ValueError:
        raise InvalidInput("minutes is a whole number.") from None


# -- the public request link ------------------------------------------------------------------
@routes.get("/api/request-links/{handle}")
@access("public")
async def describe_link(request: web.Request) -> web.Response:
    profile = await request.app[SERVICES].profiles.by_handle(request.match_info["handle"])
    return web.json_response(
        {
            "neutral": {
                "name": profile.name,
                "handle": profile.handle,
                "time_zone": profile.availability.time_zone,
            },
            "lengths": list(profile.availability.lengths),
            "processes": ["mediation", "arbitration", "other"],
        }
    )


@routes.get("/api/request-links/{handle}/slots")
@access("public")
async def link_slots(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    profile = await services.profiles.by_handle(request.match_info["handle"])
    minutes = _minutes(request)
    if minutes not in profile.availability.lengths:
        raise InvalidInput("This session length is not offered.", code="invalid_length")
    slots = await services.bookings.open_slots(
        profile.availability, profile.user_id, minutes, limit=200, **_window(request)
    )
    return web.json_response({"slots": slots, "time_zone": profile.availability.time_zone})


@routes.post("/api/request-links/{handle}/requests")
@access("public")
async def file_request(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    profile = await services.profiles.by_handle(request.match_info["handle"])
    form = await read_json(request, RequestForm)
    reference = await services.intake.file(
        profile, form.model_dump(mode="json"), client_address(request)
    )
    request.app[MAIL_SENDER].wake()
    return web.json_response(
        {
            "status": "unconfirmed",
            "reference": reference,
            "message": "Check your mail: your request reaches the neutral once you confirm "
            "your address with the link we sent.",
        },
        status=201,
    )


@routes.post("/api/request-confirmations/{token}")
@access("public")
async def confirm_request(request: web.Request) -> web.Response:
    confirmed = await request.app[SERVICES].intake.confirm(request.match_info["token"])
    request.app[MAIL_SENDER].wake()
    return web.json_response(confirmed)


# -- personal links ----------------------------------------------------------------------------
@routes.get("/api/respond/{token}")
@access("public")
async def describe_response(request: web.Request) -> web.Response:
    return web.json_response(
        await request.app[SERVICES].agreement.describe(request.match_info["token"])
    )


@routes.get("/api/respond/{token}/slots")
@access("public")
async def response_slots(request: web.Request) -> web.Response:
    found = await request.app[SERVICES].agreement.slots_for_link(
        request.match_info["token"], limit=200, **_window(request)
    )
    return web.json_response(found)


@routes.post("/api/respond/{token}/consent")
@access("public")
async def give_consent(request: web.Request) -> web.Response:
    body = await read_json(request, ConsentBody)
    described = await request.app[SERVICES].agreement.consent(
        request.match_info["token"], body.consent
    )
    request.app[MAIL_SENDER].wake()
    return web.json_response(described)


@routes.post("/api/respond/{token}/answer")
@access("public")
async def give_answer(request: web.Request) -> web.Response:
    body = await read_json(request, AnswerBody)
    described = await request.app[SERVICES].agreement.answer(
        request.match_info["token"], body.answer, body.slot_id, body.starts_at
    )
    request.app[MAIL_SENDER].wake()
    return web.json_response(described)


# -- the neutral -----------------------------------------------------------------------------
@routes.get("/api/neutral/profile")
@access("neutral")
async def get_profile(request: web.Request) -> web.Response:
    from rooms.scheduling.profiles import DEFAULT_AVAILABILITY

    profile = await request.app[SERVICES].profiles.get(user_of(request).id)
    if profile is None:
        found = {"handle": None, "accepting": True, "availability": DEFAULT_AVAILABILITY}
        return web.json_response({"profile": {**found, "link": None}})
    return web.json_response({"profile": profile.public()})


@routes.put("/api/neutral/profile")
@access("neutral")
async def put_profile(request: web.Request) -> web.Response:
    body = await read_json(request, ProfileBody)
    profile = await request.app[SERVICES].profiles.save(
        user_of(request), body.handle, body.availability, body.accepting
    )
    return web.json_response({"profile": profile.public()})


@routes.get("/api/neutral/slots")
@access("neutral")
async def neutral_slots(request: web.Request) -> web.Response:
    found = await request.app[SERVICES].agreement.neutral_slots(
        user_of(request).id,
        _minutes(request),
        request.query.get("request"),
        limit=200,
        **_window(request),
    )
    return web.json_response(found)


@routes.get("/api/neutral/requests")
@access("neutral")
async def list_requests(request: web.Request) -> web.Response:
    items = await request.app[SERVICES].queue.listing(user_of(request).id)
    return web.json_response({"requests": items})


@routes.get("/api/neutral/requests/{request_id}")
@access("neutral")
async def get_request(request: web.Request) -> web.Response:
    detail = await request.app[SERVICES].queue.detail(
        user_of(request).id, request.match_info["request_id"]
    )
    return web.json_response({"request": detail})


@routes.post("/api/neutral/requests/{request_id}/decision")
@access("neutral")
async def decide_request(request: web.Request) -> web.Response:
    body = await read_json(request, DecisionBody)
    detail = await request.app[SERVICES].queue.decide(
        user_of(request), request.match_info["request_id"], body.decision, body.note
    )
    request.app[MAIL_SENDER].wake()
    return web.json_response({"request": detail})


@routes.post("/api/neutral/requests/{request_id}/proposals")
@access("neutral")
async def propose_slots(request: web.Request) -> web.Response:
    body = await read_json(request, ProposalBody)
    services = request.app[SERVICES]
    user = user_of(request)
    await services.agreement.propose(user, request.match_info["request_id"], body.starts_at)
    request.app[MAIL_SENDER].wake()
    detail = await services.queue.detail(user.id, request.match_info["request_id"])
    return web.json_response({"request": detail})


@routes.post("/api/neutral/requests/{request_id}/confirm")
@access("neutral")
async def confirm_slot(request: web.Request) -> web.Response:
    body = await read_json(request, ConfirmBody)
    services = request.app[SERVICES]
    user = user_of(request)
    case_id = await services.agreement.confirm(user, request.match_info["request_id"], body.slot_id)
    request.app[MAIL_SENDER].wake()
    detail = await services.queue.detail(user.id, request.match_info["request_id"])
    return web.json_response({"request": detail, "case_id": case_id})
