"""Agreeing the date of a request's first session, and the request becoming a case.

After the conflict check, every person the request names gets a personal link (only its
SHA-256 is stored; each new mail carries a new link and the older one stops working). Through
it they consent to a disclosed conflict, then accept one of the proposed slots, decline, or
propose others from the neutral's availability. The neutral sees the answers and may
propose new slots (everyone answers again). When everyone accepted one slot and the neutral
confirms it, one transaction opens the case with the request's intake, writes an
invitation for every person (mailed), the first session with its calendar entry (mailed),
and marks the request converted: nobody types a name twice, and nothing is half-made."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from rooms.accounts.accounts import Accounts, User
from rooms.accounts.sessions import token_hash
from rooms.cases.cases import Cases
from rooms.errors import Conflict, Forbidden, Gone, InvalidInput
from rooms.requests.records import (
    ACCEPTED,
    CONVERTED,
    DECLINED_SLOT,
    DISCLOSED,
    PROPOSED,
    SCHEDULING,
    CaseRequest,
    RequestPerson,
    load_request,
)
from rooms.scheduling.bookings import Bookings
from rooms.scheduling.profiles import NeutralProfiles
from rooms.scheduling.sessions import CaseSessions
from rooms.storage.outbox import enqueue
from rooms.storage.schema import (
    bookings,
    case_requests,
    conflict_decisions,
    new_id,
    request_people,
    request_slots,
    users,
)
from rooms.storage.store import Store

INVALID_LINK = (
    "This link cannot be used: a newer mail carries your current link, or the request is closed."
)
MAX_PROPOSALS = 3


class DateAgreement:
    """Owns the personal links of request people, their answers, the slots proposed, and
    the conversion of a request into a case."""

    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        cases: Cases,
        bookings: Bookings,
        profiles: NeutralProfiles,
        sessions: CaseSessions,
        *,
        link_days: float = 30.0,
        invitation_hours: float = 14 * 24.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.cases = cases
        self.bookings = bookings
        self.profiles = profiles
        self.sessions = sessions
        self.link_days = link_days
        self.invitation_hours = invitation_hours
        self.clock = clock

    # -- mails with personal links -----------------------------------------------------------
    async def send_links(
        self,
        conn: Any,
        request: CaseRequest,
        kind: str,
        neutral_name: str,
        only: Sequence[str] | None = None,
    ) -> None:
        """Mail each person (or those in ``only``) a new personal link."""
        now = self.clock()
        zone = (await self._profile_zone(request.neutral_id)) or "UTC"
        slots = [{"starts_at": s.starts_at, "minutes": s.minutes} for s in request.current_slots()]
        for person in request.people:
            if only is not None and person.id not in only:
                continue
            token = secrets.token_urlsafe(32)
            await conn.execute(
                sa.update(request_people)
                .where(request_people.c.id == person.id)
                .values(link_hash=token_hash(token), link_expires_at=now + self.link_days * 86400)
            )
            await enqueue(
                conn,
                kind,
                person.email,
                {
                    "path": f"/respond/{token}",
                    "reference": request.reference,
                    "neutral": neutral_name,
                    "slots": slots,
                    "time_zone": zone,
                },
                now=now,
            )

    async def _profile_zone(self, neutral_id: str) -> str | None:
        profile = await self.profiles.get(neutral_id)
        return profile.availability.time_zone if profile else None

    # -- the personal link ---------------------------------------------------------------------
    async def _by_link(self, conn: Any, token: str) -> tuple[CaseRequest, RequestPerson]:
        if not token or len(token) > 200:
            raise Gone(INVALID_LINK, code="link_invalid")
        row = (
            await conn.execute(
                sa.select(request_people.c.id, request_people.c.request_id).where(
                    request_people.c.link_hash == token_hash(token),
                    request_people.c.link_expires_at > self.clock(),
                )
            )
        ).first()
        if row is None:
            raise Gone(INVALID_LINK, code="link_invalid")
        request = await load_request(conn, row.request_id)
        person = request.person(row.id)
        if person is None or request.status not in (DISCLOSED, SCHEDULING):
            raise Gone(INVALID_LINK, code="link_invalid")
        return request, person

    async def describe(self, token: str) -> dict[str, Any]:
        async with self.store.connect() as conn:
            request, person = await self._by_link(conn, token)
            neutral = (
                await conn.execute(
                    sa.select(users.c.display_name).where(users.c.id == request.neutral_id)
                )
            ).scalar_one()
        zone = (await self._profile_zone(request.neutral_id)) or "UTC"
        asks_consent = request.status == DISCLOSED
        return {
            "reference": request.reference,
            "title": request.title,
            "status": request.status,
            "neutral": {"name": neutral, "time_zone": zone},
            "me": {
                "name": person.name,
                "role": person.role,
                "consent": person.consent,
                "answer": person.answer,
                "answer_slot": person.answer_slot,
            },
            "disclosure": request.disclosure if asks_consent else None,
            "minutes": request.minutes,
            "slots": [
                {
                    "id": s.id,
                    "starts_at": s.starts_at,
                    "minutes": s.minutes,
                    "current": s.current,
                    "proposed_by_name": request.proposer_name(s),
                }
                for s in request.current_slots()
            ],
            "people": [
                {"name": p.name, "role": p.role, "answer": p.answer} for p in request.people
            ],
        }

    async def slots_for_link(self, token: str, **narrow: Any) -> dict[str, Any]:
        async with self.store.connect() as conn:
            request, _person = await self._by_link(conn, token)
        return await self.neutral_slots(request.neutral_id, request.minutes, request.id, **narrow)

    async def neutral_slots(
        self, neutral_id: str, minutes: int, request_id: str | None = None, **narrow: Any
    ) -> dict[str, Any]:
        profile = await self.profiles.get(neutral_id)
        if profile is None:
            raise Conflict("Set your availability first.", code="no_availability")
        slots = await self.bookings.open_slots(
            profile.availability, neutral_id, minutes, ignore_request=request_id, **narrow
        )
        return {"slots": slots, "time_zone": profile.availability.time_zone}

    async def consent(self, token: str, given: bool) -> dict[str, Any]:
        """A person's answer to the disclosure; once everyone consented, the date is
        agreed next (everyone gets the slots)."""
        async with self.store.begin() as conn:
            request, person = await self._by_link(conn, token)
            if request.status != DISCLOSED:
                raise Conflict("No consent is asked on this request now.", code="no_consent_asked")
            await conn.execute(
                sa.update(request_people)
                .where(request_people.c.id == person.id)
                .values(consent="given" if given else "refused", answered_at=self.clock())
            )
            request = await load_request(conn, request.id)
            if all(p.consent == "given" for p in request.people):
                await conn.execute(
                    sa.update(case_requests)
                    .where(case_requests.c.id == request.id)
                    .values(status=SCHEDULING)
                )
                neutral = await self.accounts.get(request.neutral_id)
                others = [p.id for p in request.people if p.id != person.id]
                await self.send_links(conn, request, "request_slots", neutral.display_name, others)
            await self._tell_neutral(conn, request, "request_answer")
        return await self.describe(token)

    async def answer(
        self,
        token: str,
        answer: str,
        slot_id: str | None = None,
        starts: Sequence[float] = (),
    ) -> dict[str, Any]:
        async with self.store.begin() as conn:
            request, person = await self._by_link(conn, token)
            if request.status != SCHEDULING:
                raise Conflict(
                    "The date is not being agreed yet: answer the disclosure first.",
                    code="not_scheduling",
                )
            values: dict[str, Any] = {"answered_at": self.clock()}
            if answer == "accept":
                if slot_id not in {s.id for s in request.current_slots()}:
                    raise InvalidInput("Accept one of the times proposed now.", code="invalid_slot")
                values.update(answer=ACCEPTED, answer_slot=slot_id)
            elif answer == "decline":
                values.update(answer=DECLINED_SLOT, answer_slot=None)
            elif answer == "propose":
                await self._add_slots(conn, request, starts, proposed_by=person.id, current=False)
                values.update(answer=PROPOSED, answer_slot=None)
            else:
                raise InvalidInput("Answer accept, decline or propose.", code="invalid_input")
            await conn.execute(
                sa.update(request_people).where(request_people.c.id == person.id).values(**values)
            )
            await self._tell_neutral(conn, request, "request_answer")
        return await self.describe(token)

    async def _add_slots(
        self,
        conn: Any,
        request: CaseRequest,
        starts: Sequence[float],
        *,
        proposed_by: str,
        current: bool,
    ) -> None:
        unique = sorted({float(s) for s in starts})
        if not 1 <= len(unique) <= MAX_PROPOSALS:
            raise InvalidInput(f"Propose 1 to {MAX_PROPOSALS} times.", code="invalid_input")
        profile = await self.profiles.get(request.neutral_id)
        if profile is None:
            raise Conflict("The neutral takes no bookings now.", code="no_availability")
        await self.bookings.lock(conn, request.neutral_id)
        now = self.clock()
        for start in unique:
            slot_id = new_id()
            await conn.execute(
                sa.insert(request_slots).values(
                    id=slot_id,
                    request_id=request.id,
                    starts_at=start,
                    minutes=request.minutes,
                    proposed_by=proposed_by,
                    current=current,
                    created_at=now,
                )
            )
            await self.bookings.hold(
                conn,
                request.neutral_id,
                profile.availability,
                start,
                request.minutes,
                request_id=request.id,
                slot_id=slot_id,
            )

    async def _tell_neutral(self, conn: Any, request: CaseRequest, kind: str) -> None:
        row = (
            await conn.execute(
                sa.select(users.c.email, users.c.email_verified_at).where(
                    users.c.id == request.neutral_id
                )
            )
        ).one()
        if row.email and row.email_verified_at:
            await enqueue(
                conn,
                kind,
                row.email,
                {"path": f"/neutral/requests/{request.id}", "reference": request.reference},
                now=self.clock(),
            )

    # -- the neutral ---------------------------------------------------------------------------
    async def propose(self, neutral: User, request_id: str, starts: Sequence[float]) -> None:
        """New slots replace the current ones; everyone answers again."""
        async with self.store.begin() as conn:
            request = await load_request(conn, request_id, neutral.id)
            if request.status != SCHEDULING:
                raise Conflict(
                    "The date of this request is not being agreed.", code="not_scheduling"
                )
            await self.bookings.lock(conn, neutral.id)
            await conn.execute(sa.delete(bookings).where(bookings.c.request_id == request.id))
            await conn.execute(
                sa.update(request_slots)
                .where(request_slots.c.request_id == request.id)
                .values(current=False)
            )
            await self._add_slots(conn, request, starts, proposed_by="neutral", current=True)
            await conn.execute(
                sa.update(request_people)
                .where(request_people.c.request_id == request.id)
                .values(answer=None, answer_slot=None, answered_at=None)
            )
            request = await load_request(conn, request.id)
            await self.send_links(conn, request, "request_slots", neutral.display_name)

    async def confirm(self, neutral: User, request_id: str, slot_id: str) -> str:
        """Open the case from the request; answers the case's id."""
        if neutral.role != "neutral":
            raise Forbidden("Only a neutral confirms requests.")
        async with self.store.begin() as conn:
            request = await load_request(conn, request_id, neutral.id)
            if request.status != SCHEDULING:
                raise Conflict(
                    "The date of this request is not being agreed.", code="not_scheduling"
                )
            if request.agreed_slot() != slot_id:
                raise Conflict(
                    "Not everyone has accepted this time yet.", code="not_everyone_accepted"
                )
            slot = next(s for s in request.slots if s.id == slot_id)
            await self.bookings.lock(conn, neutral.id)
            await conn.execute(sa.delete(bookings).where(bookings.c.request_id == request.id))
            case_id = await self.cases.open_case_in(
                conn, neutral, self._case_intake(request, slot.starts_at)
            )
            case = await self.cases.get_in(conn, case_id)
            expires_at = self.clock() + self.invitation_hours * 3600
            invited: dict[str, str] = {}
            for person in sorted(request.people, key=lambda p: p.role != "party"):
                represents = invited.get(person.represents or "")
                row, _token = await self.cases.invite_in(
                    conn,
                    case,
                    neutral.id,
                    role="party" if person.role == "party" else "counsel",
                    display_name=person.name,
                    represents=represents,
                    expires_at=expires_at,
                    email=person.email,
                )
                invited[person.id] = row["id"]
            await self.sessions.schedule_in(conn, case, slot.starts_at, slot.minutes)
            await conn.execute(
                sa.update(case_requests)
                .where(case_requests.c.id == request.id)
                .values(status=CONVERTED, case_id=case_id)
            )
            await conn.execute(
                sa.update(request_people)
                .where(request_people.c.request_id == request.id)
                .values(link_hash=None, link_expires_at=None)
            )
            await conn.execute(
                sa.update(conflict_decisions)
                .where(conflict_decisions.c.request_reference == request.reference)
                .values(case_id=case_id)
            )
            await self.cases.audit(conn, neutral.id, "request.convert", case_id)
        return case_id

    def _case_intake(self, request: CaseRequest, starts_at: float) -> dict[str, Any]:
        parties = [p for p in request.people if p.role == "party"]
        names = {p.id: p.name for p in parties}
        intake = request.intake
        return {
            "process": intake.get("process", "mediation"),
            "title": intake.get("title") or request.reference,
            "case_type": intake.get("case_type", ""),
            "description": intake.get("description", ""),
            "parties": [{"name": p.name, "side": p.side} for p in parties],
            "attorneys": [
                {
                    "name": p.name,
                    "represents": names.get(p.represents or "", ""),
                    "organisation": p.organisation,
                }
                for p in request.people
                if p.role == "attorney"
            ],
            "filed_in_court": bool(intake.get("filed_in_court")),
            "cause_number": intake.get("cause_number", ""),
            "jurisdiction": intake.get("jurisdiction", ""),
            "requested_dates": [dt.datetime.fromtimestamp(starts_at, dt.UTC).date().isoformat()],
            "request_reference": request.reference,
        }
