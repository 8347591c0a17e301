"""Requests and sessions made for tests through the domain services: a neutral's request
link open around the clock, requests filed, confirmed and decided, and the personal links
and confirmation links read back from the outbox the way a mail reader finds them."""

from __future__ import annotations

import email
import email.policy
import itertools
import re
from email.message import EmailMessage
from typing import Any

import sqlalchemy as sa

from rooms.accounts.accounts import User
from rooms.scheduling.profiles import NeutralProfile
from rooms.storage.schema import outbox
from signaling.services import Services

#: Every day 00:00-23:30 UTC, hour-long sessions on the half hour, no notice, no buffer.
ALWAYS_OPEN: dict[str, Any] = {
    "time_zone": "UTC",
    "weekly": {
        day: [["00:00", "23:30"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    },
    "blocked_days": [],
    "lengths": [60, 120],
    "buffer_minutes": 0,
    "step_minutes": 30,
    "notice_hours": 0,
    "horizon_days": 60,
}

_clients = itertools.count()


async def open_link(services: Services, neutral: User, handle: str) -> NeutralProfile:
    return await services.profiles.save(neutral, handle, ALWAYS_OPEN, True)


def request_form(slots: list[float], **overrides: Any) -> dict[str, Any]:
    """A request naming two parties and an attorney for the first; the requester is that
    attorney."""
    form: dict[str, Any] = {
        "requester": {"name": "Alex Advocate", "email": "alex@law.example", "role": "attorney"},
        "process": "mediation",
        "title": "Orchard Street boundary",
        "case_type": "neighbours",
        "description": "A fence built over the line",
        "filed_in_court": True,
        "cause_number": "2027-CV-0099",
        "jurisdiction": "County Court",
        "parties": [
            {
                "name": "Jon Smith",
                "email": "jon@example.org",
                "organisation": "",
                "side": "claimant",
            },
            {
                "name": "Mary Unrelated",
                "email": "mary@example.org",
                "organisation": "",
                "side": "respondent",
            },
        ],
        "attorneys": [
            {
                "name": "Alex Advocate",
                "email": "alex@law.example",
                "organisation": "Advocate & Partners LLP",
                "represents": 0,
            }
        ],
        "minutes": 60,
        "slots": slots,
        "time_zone": "Europe/London",
        "website": "",
    }
    form.update(overrides)
    return form


async def free_slots(services: Services, profile: NeutralProfile, count: int = 1) -> list[float]:
    slots = await services.bookings.open_slots(
        profile.availability, profile.user_id, 60, limit=count
    )
    assert len(slots) == count
    return slots


async def newest_mail(
    services: Services, kind: str, recipient: str
) -> EmailMessage | dict[str, Any]:
    """The newest mail of ``kind`` to ``recipient``: its outbox parameters while queued, or
    the message the sender wrote (``<mail_path>/<row id>.eml``; the file is written before
    the row's parameters are emptied, so one of the two is always there)."""
    async with services.store.connect() as conn:
        row = (
            await conn.execute(
                sa.select(outbox.c.id, outbox.c.params)
                .where(outbox.c.kind == kind, outbox.c.recipient == recipient)
                .order_by(outbox.c.created_at.desc())
                .limit(1)
            )
        ).first()
    assert row is not None, f"no {kind} mail to {recipient}"
    if row.params:
        return dict(row.params)
    raw = (services.settings.mail_path / f"{row.id}.eml").read_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


async def newest_path(services: Services, kind: str, recipient: str) -> str:
    """The link path in the newest mail of ``kind`` to ``recipient``."""
    mail = await newest_mail(services, kind, recipient)
    if isinstance(mail, dict):
        return str(mail["path"])
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    found = re.search(
        r"https?://[^/\s]+(/(?:respond|request/confirm|invite)/[A-Za-z0-9_-]+)",
        str(body.get_content()),
    )
    assert found, f"no link in the {kind} mail to {recipient}"
    return found.group(1)


async def mail_attachments(services: Services, kind: str, recipient: str) -> list[dict[str, Any]]:
    """The attachments of the newest mail of ``kind`` to ``recipient`` (``text`` of each)."""
    mail = await newest_mail(services, kind, recipient)
    if isinstance(mail, dict):
        return list(mail.get("attachments", []))
    return [
        {"text": part.get_content(), "content_type": part.get_content_type()}
        for part in mail.iter_attachments()
    ]


async def filed(services: Services, profile: NeutralProfile, **overrides: Any) -> str:
    """File a request (each by a requester of their own, so no filing limit is met);
    answers its confirmation token."""
    n = next(_clients)
    form = request_form(await free_slots(services, profile), **overrides)
    if "requester" not in overrides:
        form["requester"] = {**form["requester"], "email": f"alex{n}@law.example"}
        form["attorneys"] = [{**form["attorneys"][0], "email": f"alex{n}@law.example"}]
    await services.intake.file(profile, form, f"client-{n}")
    path = await newest_path(services, "request_confirm", form["requester"]["email"])
    return path.rsplit("/", 1)[-1]


async def pending(services: Services, profile: NeutralProfile, **overrides: Any) -> str:
    """A confirmed request in the neutral's queue; answers its id."""
    await services.intake.confirm(await filed(services, profile, **overrides))
    items = await services.queue.listing(profile.user_id)
    return str(items[0]["id"])


async def decided(
    services: Services, profile: NeutralProfile, neutral: User, decision: str = "clear"
) -> tuple[str, dict[str, str]]:
    """A request cleared (or disclosed); answers its id and each person's link token by
    address."""
    request_id = await pending(services, profile)
    note = "I mediated for Jon Smith's employer in 2025." if decision == "disclose" else ""
    detail = await services.queue.decide(neutral, request_id, decision, note)
    kind = "request_slots" if decision == "clear" else "request_disclosure"
    tokens = {}
    for person in detail["people"]:
        path = await newest_path(services, kind, person["email"])
        tokens[person["email"]] = path.rsplit("/", 1)[-1]
    return request_id, tokens
