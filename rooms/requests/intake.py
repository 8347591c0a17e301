"""Filing a request through a neutral's public link, and the requester confirming their
address.

A request is written whole or not at all: its intake, the people it names, its proposed
slots and their holds on the neutral's time, and the mail with the confirmation link. Until
the requester opens that link the request is ``unconfirmed``: the neutral does not see it,
and its holds lapse after ``confirm_hours``. Filing is limited per client and per
requester address (counted in the store, so every node sees the same counts)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from rooms.accounts.addresses import normalize_email
from rooms.accounts.sessions import token_hash
from rooms.accounts.throttle import LoginThrottle, Throttled
from rooms.errors import Gone, InvalidInput
from rooms.requests.records import PENDING, UNCONFIRMED
from rooms.scheduling.availability import zone_named
from rooms.scheduling.bookings import Bookings
from rooms.scheduling.profiles import NeutralProfile
from rooms.storage.outbox import enqueue
from rooms.storage.schema import (
    bookings,
    case_requests,
    new_id,
    request_people,
    request_slots,
    users,
)
from rooms.storage.store import Store

MAX_PEOPLE = 20
MAX_SLOTS = 3
INVALID_CONFIRMATION = (
    "This confirmation link cannot be used: it was used already, has expired, or is "
    "incomplete. File the request again."
)


def check_zone(name: str) -> str:
    """``name`` when it is an IANA zone (the availability's own check), under this form's
    error code."""
    try:
        zone_named(name)
    except InvalidInput as refused:
        raise InvalidInput(refused.message, code="invalid_time_zone") from None
    return name


def new_reference() -> str:
    return "REQ-" + secrets.token_hex(3).upper()


class RequestIntake:
    """Owns the filing and confirmation of requests (``case_requests`` while unconfirmed)."""

    def __init__(
        self,
        store: Store,
        bookings: Bookings,
        throttle: LoginThrottle,
        *,
        confirm_hours: float = 24.0,
        per_client: int = 10,
        per_address: int = 3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.bookings = bookings
        self.throttle = throttle
        self.confirm_hours = confirm_hours
        self.per_client = per_client
        self.per_address = per_address
        self.clock = clock

    async def _limit(self, subject: str, allowance: int) -> None:
        wait = await self.throttle.wait_for(subject, allowance=allowance)
        if wait:
            raise Throttled(
                "Too many requests from here. Try again later.",
                retry_after=wait,
                limit="case_request",
            )

    def _people(self, form: dict[str, Any]) -> list[dict[str, Any]]:
        """The people of the request in order (parties, then attorneys), the requester
        marked: matched by address, or added to their role's list."""
        requester = form["requester"]
        requester_email = normalize_email(requester["email"])
        parties = [
            {
                "role": "party",
                "name": p["name"],
                "email": normalize_email(p["email"]),
                "organisation": p.get("organisation", ""),
                "side": p.get("side", "other"),
                "represents": None,
            }
            for p in form["parties"]
        ]
        attorneys = []
        for a in form.get("attorneys", []):
            index = a.get("represents")
            if index is not None and not 0 <= index < len(parties):
                raise InvalidInput("An attorney must represent one of the parties named.")
            attorneys.append(
                {
                    "role": "attorney",
                    "name": a["name"],
                    "email": normalize_email(a["email"]),
                    "organisation": a.get("organisation", ""),
                    "side": "other",
                    "represents": index,
                }
            )
        people = parties + attorneys
        if not parties:
            raise InvalidInput("Name at least one party.", code="invalid_input")
        if len(people) > MAX_PEOPLE:
            raise InvalidInput(f"A request names at most {MAX_PEOPLE} people.")
        if len({p["email"].lower() for p in people}) != len(people):
            raise InvalidInput("Each person needs an address of their own.")
        match = [p for p in people if p["email"].lower() == requester_email.lower()]
        if match:
            match[0]["is_requester"] = True
        else:
            added = {
                "role": requester["role"],
                "name": requester["name"],
                "email": requester_email,
                "organisation": requester.get("organisation", ""),
                "side": "other",
                "represents": None,
                "is_requester": True,
            }
            if requester["role"] == "party":
                people.insert(len(parties), added)
            else:
                people.append(added)
        return people

    async def file(self, profile: NeutralProfile, form: dict[str, Any], client: str) -> str:
        """Write the request and mail its confirmation link; answers its reference."""
        if form.get("website"):
            # the honeypot: a person never sees the field, a form-filling robot fills it
            raise InvalidInput("This request could not be accepted.", code="request_refused")
        requester_email = normalize_email(form["requester"]["email"])
        by_client, by_address = f"request-client:{client}", f"request:{requester_email.lower()}"
        await self._limit(by_client, self.per_client)
        await self._limit(by_address, self.per_address)
        if form.get("filed_in_court") and not (
            form.get("cause_number") and form.get("jurisdiction")
        ):
            raise InvalidInput(
                "A case filed in court needs its cause number and jurisdiction.",
                code="invalid_input",
            )
        zone = check_zone(form.get("time_zone") or "UTC")
        minutes = int(form["minutes"])
        if minutes not in profile.availability.lengths:
            raise InvalidInput("This session length is not offered.", code="invalid_length")
        starts = sorted({float(s) for s in form["slots"]})
        if not 1 <= len(starts) <= MAX_SLOTS:
            raise InvalidInput(f"Choose 1 to {MAX_SLOTS} times.", code="invalid_input")
        people = self._people(form)
        await self.throttle.record_failure(by_client, by_address)  # every filing counts
        intake = {
            key: form.get(key, "")
            for key in ("process", "title", "case_type", "description", "cause_number")
        }
        intake["jurisdiction"] = form.get("jurisdiction", "")
        intake["filed_in_court"] = bool(form.get("filed_in_court"))
        now = self.clock()
        token = secrets.token_urlsafe(32)
        request_id, reference = new_id(), new_reference()
        expires_at = now + self.confirm_hours * 3600
        async with self.store.begin() as conn:
            await self.bookings.lock(conn, profile.user_id)
            await conn.execute(
                sa.insert(case_requests).values(
                    id=request_id,
                    reference=reference,
                    neutral_id=profile.user_id,
                    status=UNCONFIRMED,
                    intake=intake,
                    minutes=minutes,
                    time_zone=zone,
                    confirm_hash=token_hash(token),
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            ids = [new_id() for _ in people]
            party_ids = [ids[i] for i, p in enumerate(people) if p["role"] == "party"]
            for position, (person_id, person) in enumerate(zip(ids, people, strict=True)):
                index = person["represents"]
                await conn.execute(
                    sa.insert(request_people).values(
                        id=person_id,
                        request_id=request_id,
                        position=position,
                        role=person["role"],
                        name=person["name"],
                        email=person["email"],
                        organisation=person["organisation"],
                        side=person["side"],
                        represents=party_ids[index] if index is not None else None,
                        is_requester=person.get("is_requester", False),
                    )
                )
            for start in starts:
                slot_id = new_id()
                await conn.execute(
                    sa.insert(request_slots).values(
                        id=slot_id,
                        request_id=request_id,
                        starts_at=start,
                        minutes=minutes,
                        proposed_by="requester",
                        current=True,
                        created_at=now,
                    )
                )
                await self.bookings.hold(
                    conn,
                    profile.user_id,
                    profile.availability,
                    start,
                    minutes,
                    request_id=request_id,
                    slot_id=slot_id,
                    expires_at=expires_at,
                )
            await enqueue(
                conn,
                "request_confirm",
                requester_email,
                {
                    "path": f"/request/confirm/{token}",
                    "neutral": profile.name,
                    "reference": reference,
                    "expires_at": expires_at,
                },
                now=now,
            )
        return reference

    async def confirm(self, token: str) -> dict[str, Any]:
        """The requester's address is proved: the request reaches the neutral's queue."""
        if not token or len(token) > 200:
            raise Gone(INVALID_CONFIRMATION, code="confirmation_invalid")
        now = self.clock()
        async with self.store.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(case_requests).where(
                        case_requests.c.confirm_hash == token_hash(token)
                    )
                )
            ).first()
            if (
                row is None
                or row.status != UNCONFIRMED
                or row.expires_at is None
                or row.expires_at <= now
            ):
                raise Gone(INVALID_CONFIRMATION, code="confirmation_invalid")
            await conn.execute(
                sa.update(case_requests)
                .where(case_requests.c.id == row.id)
                .values(status=PENDING, confirm_hash=None, confirmed_at=now, expires_at=None)
            )
            await conn.execute(
                sa.update(bookings).where(bookings.c.request_id == row.id).values(expires_at=None)
            )
            neutral = (
                await conn.execute(
                    sa.select(users.c.email, users.c.email_verified_at).where(
                        users.c.id == row.neutral_id
                    )
                )
            ).one()
            if neutral.email and neutral.email_verified_at:
                await enqueue(
                    conn,
                    "request_received",
                    neutral.email,
                    {"path": f"/neutral/requests/{row.id}", "reference": row.reference},
                    now=now,
                )
        return {"reference": row.reference, "status": PENDING}
