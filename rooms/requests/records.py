"""A case request as read from the store: its intake, the people it names and the slots
proposed for its first session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from rooms.errors import NotFound
from rooms.storage.schema import case_requests, request_people, request_slots

UNCONFIRMED, PENDING, DISCLOSED, SCHEDULING = "unconfirmed", "pending", "disclosed", "scheduling"
DECLINED, CONVERTED = "declined", "converted"
ACCEPTED, DECLINED_SLOT, PROPOSED = "accepted", "declined", "proposed"


@dataclass(frozen=True)
class RequestPerson:
    id: str
    position: int
    role: str  # party | attorney
    name: str
    email: str
    organisation: str
    side: str
    represents: str | None
    is_requester: bool
    consent: str | None
    answer: str | None
    answer_slot: str | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "name": self.name,
            "email": self.email,
            "organisation": self.organisation,
            "side": self.side,
            "represents": self.represents,
            "is_requester": self.is_requester,
            "consent": self.consent,
            "answer": self.answer,
            "answer_slot": self.answer_slot,
        }


@dataclass(frozen=True)
class RequestSlot:
    id: str
    starts_at: float
    minutes: int
    proposed_by: str  # requester | neutral | a person's id
    current: bool


@dataclass(frozen=True)
class CaseRequest:
    id: str
    reference: str
    neutral_id: str
    status: str
    intake: dict[str, Any]
    minutes: int
    time_zone: str
    created_at: float
    disclosure: str | None
    case_id: str | None
    people: tuple[RequestPerson, ...]
    slots: tuple[RequestSlot, ...]

    @property
    def title(self) -> str:
        return str(self.intake.get("title", ""))

    @property
    def requester(self) -> RequestPerson:
        return next(p for p in self.people if p.is_requester)

    def person(self, person_id: str) -> RequestPerson | None:
        return next((p for p in self.people if p.id == person_id), None)

    def current_slots(self) -> list[RequestSlot]:
        return [s for s in self.slots if s.current]

    def agreed_slot(self) -> str | None:
        """The current slot every person accepted, if there is one."""
        current = {s.id for s in self.current_slots()}
        chosen = {p.answer_slot for p in self.people if p.answer == ACCEPTED}
        if len(chosen) == 1 and all(p.answer == ACCEPTED for p in self.people):
            slot = chosen.pop()
            return slot if slot in current else None
        return None

    def proposer_name(self, slot: RequestSlot) -> str:
        if slot.proposed_by == "neutral":
            return "the neutral"
        if slot.proposed_by == "requester":
            return self.requester.name
        person = self.person(slot.proposed_by)
        return person.name if person else "someone"

    def slots_public(self) -> list[dict[str, Any]]:
        return [
            {
                "id": s.id,
                "starts_at": s.starts_at,
                "minutes": s.minutes,
                "proposed_by": s.proposed_by,
                "proposed_by_name": self.proposer_name(s),
                "current": s.current,
                "accepted_by": [
                    p.id for p in self.people if p.answer == ACCEPTED and p.answer_slot == s.id
                ],
            }
            for s in self.slots
        ]

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reference": self.reference,
            "status": self.status,
            "intake": self.intake,
            "minutes": self.minutes,
            "time_zone": self.time_zone,
            "created_at": self.created_at,
            "case_id": self.case_id,
            "disclosure": self.disclosure,
            "people": [p.public() for p in self.people],
            "slots": self.slots_public(),
            "can_confirm": self.agreed_slot() if self.status == SCHEDULING else None,
        }

    def summary(self) -> dict[str, Any]:
        requester = self.requester
        return {
            "id": self.id,
            "reference": self.reference,
            "status": self.status,
            "created_at": self.created_at,
            "title": self.title,
            "process": self.intake.get("process"),
            "requester": {"name": requester.name, "email": requester.email, "role": requester.role},
            "answers": {
                "accepted": sum(1 for p in self.people if p.answer == ACCEPTED),
                "total": len(self.people),
            },
        }


async def load_request(conn: Any, request_id: str, neutral_id: str | None = None) -> CaseRequest:
    """The request with its people and slots; ``neutral_id``: only when it is theirs (a
    request of another neutral answers as one that does not exist)."""
    query = sa.select(case_requests).where(case_requests.c.id == request_id)
    if neutral_id is not None:
        query = query.where(case_requests.c.neutral_id == neutral_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound("No such request.")
    return (await _with_people_and_slots(conn, [row]))[0]


async def load_requests(conn: Any, rows: list[Any]) -> list[CaseRequest]:
    """Requests from their ``case_requests`` rows, in that order, their people and slots
    read in two queries for all of them (a neutral's queue lists hundreds)."""
    return await _with_people_and_slots(conn, rows)


async def _with_people_and_slots(conn: Any, rows: list[Any]) -> list[CaseRequest]:
    ids = [row.id for row in rows]
    if not ids:
        return []
    people: dict[str, list[Any]] = {request_id: [] for request_id in ids}
    for p in (
        await conn.execute(
            sa.select(request_people)
            .where(request_people.c.request_id.in_(ids))
            .order_by(request_people.c.request_id, request_people.c.position)
        )
    ).all():
        people[p.request_id].append(p)
    slots: dict[str, list[Any]] = {request_id: [] for request_id in ids}
    for s in (
        await conn.execute(
            sa.select(request_slots)
            .where(request_slots.c.request_id.in_(ids))
            .order_by(
                request_slots.c.request_id, request_slots.c.created_at, request_slots.c.starts_at
            )
        )
    ).all():
        slots[s.request_id].append(s)
    return [_request(row, people[row.id], slots[row.id]) for row in rows]


def _request(row: Any, people: list[Any], slots: list[Any]) -> CaseRequest:
    return CaseRequest(
        row.id,
        row.reference,
        row.neutral_id,
        row.status,
        dict(row.intake),
        row.minutes,
        row.time_zone,
        row.created_at,
        row.disclosure,
        row.case_id,
        tuple(
            RequestPerson(
                p.id,
                p.position,
                p.role,
                p.name,
                p.email,
                p.organisation,
                p.side,
                p.represents,
                bool(p.is_requester),
                p.consent,
                p.answer,
                p.answer_slot,
            )
            for p in people
        ),
        tuple(
            RequestSlot(s.id, s.starts_at, s.minutes, s.proposed_by, bool(s.current)) for s in slots
        ),
    )
