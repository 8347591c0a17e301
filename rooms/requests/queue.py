"""The neutral's request queue: each confirmed request with its conflict check, and the
neutral's decision on it.

The conflict check compares every name and organisation of the request with those of the
neutral's earlier matters (``rooms.requests.conflicts``): their open cases (the intake's
parties and attorneys, and the members), their other requests, and the decision records
of earlier requests, which outlive closed cases. With ``shared_practice`` every neutral's
matters are searched. A decision writes a record (who, when, which decision, on which
hits, the names involved: no case content) that survives the case's closing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from rooms.accounts.accounts import User
from rooms.errors import Conflict, InvalidInput
from rooms.requests.agreement import DateAgreement
from rooms.requests.conflicts import Hit, Matter, Person, check
from rooms.requests.records import (
    DECLINED,
    DISCLOSED,
    PENDING,
    SCHEDULING,
    UNCONFIRMED,
    CaseRequest,
    load_request,
    load_requests,
)
from rooms.storage.outbox import enqueue
from rooms.storage.schema import (
    bookings,
    case_members,
    case_requests,
    cases,
    conflict_decisions,
    new_id,
    request_people,
)
from rooms.storage.store import Store

DECISIONS = ("clear", "disclose", "decline")


def _intake_people(intake: dict[str, Any]) -> list[Person]:
    people = [
        Person(str(p.get("name", "")), "party") for p in intake.get("parties", []) if p.get("name")
    ]
    people += [
        Person(str(a.get("name", "")), "attorney", str(a.get("organisation", "")))
        for a in intake.get("attorneys", [])
        if a.get("name")
    ]
    return people


class RequestQueue:
    """Owns the neutral's view of requests and ``conflict_decisions``."""

    def __init__(
        self,
        store: Store,
        agreement: DateAgreement,
        *,
        shared_practice: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.agreement = agreement
        self.shared_practice = shared_practice
        self.clock = clock

    async def listing(self, neutral_id: str) -> list[dict[str, Any]]:
        async with self.store.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(case_requests)
                    .where(
                        case_requests.c.neutral_id == neutral_id,
                        case_requests.c.status != UNCONFIRMED,
                    )
                    .order_by(case_requests.c.created_at.desc())
                    .limit(500)
                )
            ).all()
            requests = await load_requests(conn, list(rows))
            matters = await self.matters(conn, neutral_id)
        return [
            {**r.summary(), "hits": len(self.hits(r, matters)) if r.status == PENDING else None}
            for r in requests
        ]

    async def detail(self, neutral_id: str, request_id: str) -> dict[str, Any]:
        async with self.store.connect() as conn:
            request = await load_request(conn, request_id, neutral_id)
            if request.status == UNCONFIRMED:
                raise InvalidInput("No such request.", code="not_found")
            titles: dict[str, str] = {}
            matters = await self.matters(conn, neutral_id, titles)
            decisions = (
                await conn.execute(
                    sa.select(conflict_decisions)
                    .where(conflict_decisions.c.request_reference == request.reference)
                    .order_by(conflict_decisions.c.decided_at)
                )
            ).all()
        return {
            **request.public(),
            "hits": [
                {**h.public(), "title": titles.get(h.reference)}
                for h in self.hits(request, matters)
            ],
            "decisions": [
                {
                    "decision": d.decision,
                    "note": d.note,
                    "decided_at": d.decided_at,
                    "hits": len(d.hits or []),
                }
                for d in decisions
            ],
        }

    def hits(self, request: CaseRequest, matters: list[Matter]) -> list[Hit]:
        people = [Person(p.name, p.role, p.organisation) for p in request.people]
        others = [m for m in matters if m.reference != request.reference]
        return check(people, others)

    async def matters(
        self, conn: Any, neutral_id: str, titles: dict[str, str] | None = None
    ) -> list[Matter]:
        """Every earlier matter the conflict check searches. Cases are named by their mail
        reference or ``CASE-`` and the start of their id (what a decision record keeps);
        ``titles`` receives each case's title by that name, for the neutral's screen."""
        found: list[Matter] = []
        case_query = sa.select(
            cases.c.id, cases.c.title, cases.c.mail_reference, cases.c.intake, cases.c.created_at
        )
        if not self.shared_practice:
            case_query = case_query.where(cases.c.neutral_id == neutral_id)
        case_rows = (await conn.execute(case_query)).all()
        members: dict[str, list[Person]] = {}
        member_query = sa.select(
            case_members.c.case_id, case_members.c.display_name, case_members.c.role
        ).where(
            case_members.c.case_id.in_(case_query.with_only_columns(cases.c.id).scalar_subquery()),
            case_members.c.role != "neutral",
        )
        for member in (await conn.execute(member_query)).all():
            members.setdefault(member.case_id, []).append(Person(member.display_name, member.role))
        for row in case_rows:
            people = _intake_people(dict(row.intake or {})) + members.get(row.id, [])
            reference = row.mail_reference or f"CASE-{row.id[:8].upper()}"
            if titles is not None:
                titles[reference] = row.title
            found.append(Matter(reference, "case", tuple(people), row.created_at))
        request_query = sa.select(
            case_requests.c.id, case_requests.c.reference, case_requests.c.created_at
        ).where(case_requests.c.status != UNCONFIRMED)
        if not self.shared_practice:
            request_query = request_query.where(case_requests.c.neutral_id == neutral_id)
        request_rows = (await conn.execute(request_query)).all()
        named: dict[str, list[Person]] = {}
        people_query = sa.select(
            request_people.c.request_id,
            request_people.c.name,
            request_people.c.role,
            request_people.c.organisation,
        ).where(
            request_people.c.request_id.in_(
                request_query.with_only_columns(case_requests.c.id).scalar_subquery()
            )
        )
        for person in (await conn.execute(people_query)).all():
            named.setdefault(person.request_id, []).append(
                Person(person.name, person.role, person.organisation)
            )
        for row in request_rows:
            found.append(
                Matter(row.reference, "request", tuple(named.get(row.id, [])), row.created_at)
            )
        record_query = sa.select(conflict_decisions)
        if not self.shared_practice:
            record_query = record_query.where(conflict_decisions.c.neutral_id == neutral_id)
        live = {m.reference for m in found}
        for row in (await conn.execute(record_query)).all():
            if row.request_reference in live:
                continue  # the request itself is still here
            found.append(
                Matter(
                    row.request_reference,
                    "record",
                    tuple(
                        Person(p.get("name", ""), p.get("role", ""), p.get("organisation", ""))
                        for p in row.people
                    ),
                    row.decided_at,
                )
            )
            live.add(row.request_reference)
        return found

    async def decide(
        self, neutral: User, request_id: str, decision: str, note: str
    ) -> dict[str, Any]:
        if decision not in DECISIONS:
            raise InvalidInput("Decide clear, disclose or decline.", code="invalid_input")
        note = note.strip()
        if decision == "disclose" and not note:
            raise InvalidInput(
                "Describe the potential conflict: every party reads it before consenting.",
                code="disclosure_required",
            )
        now = self.clock()
        async with self.store.begin() as conn:
            request = await load_request(conn, request_id, neutral.id)
            # a request whose disclosure someone refused can still be declined
            if request.status != PENDING and not (
                decision == "decline" and request.status == DISCLOSED
            ):
                raise Conflict("This request was decided already.", code="request_decided")
            hits = self.hits(request, await self.matters(conn, neutral.id))
            await conn.execute(
                sa.insert(conflict_decisions).values(
                    id=new_id(),
                    neutral_id=neutral.id,
                    request_reference=request.reference,
                    decided_by=neutral.id,
                    decision=decision,
                    note=note or None,
                    people=[
                        {"name": p.name, "role": p.role, "organisation": p.organisation}
                        for p in request.people
                    ],
                    hits=[h.public() for h in hits],
                    decided_at=now,
                    case_id=None,
                )
            )
            if decision == "decline":
                await conn.execute(
                    sa.update(case_requests)
                    .where(case_requests.c.id == request.id)
                    .values(status=DECLINED, decided_at=now)
                )
                await conn.execute(sa.delete(bookings).where(bookings.c.request_id == request.id))
                await enqueue(
                    conn,
                    "request_declined",
                    request.requester.email,
                    {"reference": request.reference, "neutral": neutral.display_name},
                    now=now,
                )
            else:
                status = SCHEDULING if decision == "clear" else DISCLOSED
                await conn.execute(
                    sa.update(case_requests)
                    .where(case_requests.c.id == request.id)
                    .values(
                        status=status,
                        decided_at=now,
                        disclosure=note if decision == "disclose" else None,
                    )
                )
                kind = "request_slots" if decision == "clear" else "request_disclosure"
                await self.agreement.send_links(conn, request, kind, neutral.display_name)
        return await self.detail(neutral.id, request_id)
