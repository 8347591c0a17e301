"""A neutral's taken time: slots held by requests and sessions booked in cases.

Two people can ask for the same slot at the same moment. Every booking of a neutral is
written under that neutral's lock (PostgreSQL: a transaction-scoped advisory lock on the
neutral's id; SQLite: the database's write lock, taken at ``BEGIN IMMEDIATE``), after the
slot was checked against everything already booked, so the second writer sees the first
one's row and is told the slot is taken, with the next open slots. The unique
(neutral, start) constraint is the backstop."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from rooms.errors import Conflict, InvalidInput
from rooms.scheduling.availability import Availability, open_slots, slot_problem
from rooms.storage.schema import bookings, new_id
from rooms.storage.store import Store

#: How many open slots a refusal offers instead.
NEXT_SLOTS = 6


class SlotTaken(Conflict):
    """The slot was booked by someone else; ``next_slots`` are open ones after it."""

    code = "slot_taken"

    def __init__(self, message: str, next_slots: Sequence[float]) -> None:
        super().__init__(message)
        self.next_slots = list(next_slots)
        self.extra = {"next_slots": self.next_slots}


class Bookings:
    """Owns ``bookings``: reading a neutral's busy time and booking slots under the lock."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def lock(self, conn: Any, neutral_id: str) -> None:
        """Serialise bookings of one neutral until the caller's transaction ends."""
        if self.store.backend == "postgresql":
            await conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": f"bookings:{neutral_id}"},
            )

    async def busy(
        self, conn: Any, neutral_id: str, *, ignore_request: str | None = None
    ) -> list[tuple[float, float]]:
        """The neutral's taken intervals (UTC), lapsed holds left out; ``ignore_request``:
        the holds of one request (a request may move within its own time)."""
        now = self.clock()
        query = sa.select(bookings.c.starts_at, bookings.c.ends_at).where(
            bookings.c.neutral_id == neutral_id,
            sa.or_(bookings.c.expires_at.is_(None), bookings.c.expires_at > now),
        )
        if ignore_request is not None:
            query = query.where(
                sa.or_(bookings.c.request_id.is_(None), bookings.c.request_id != ignore_request)
            )
        rows = (await conn.execute(query.order_by(bookings.c.starts_at))).all()
        return [(r.starts_at, r.ends_at) for r in rows]

    async def open_slots(
        self,
        availability: Availability,
        neutral_id: str,
        minutes: int,
        *,
        ignore_request: str | None = None,
        **narrow: Any,
    ) -> list[float]:
        """Open slots of ``minutes`` (``narrow``: ``open_slots``' range and limit), the
        holds of ``ignore_request`` counted as free."""
        async with self.store.connect() as conn:
            busy = await self.busy(conn, neutral_id, ignore_request=ignore_request)
        return open_slots(availability, minutes, busy, now=self.clock(), **narrow)

    async def hold(
        self,
        conn: Any,
        neutral_id: str,
        availability: Availability | None,
        starts_at: float,
        minutes: int,
        *,
        request_id: str | None = None,
        slot_id: str | None = None,
        session_id: str | None = None,
        expires_at: float | None = None,
    ) -> str:
        """Book ``minutes`` from ``starts_at`` for the neutral, in the caller's transaction
        (which must have taken :meth:`lock`). With ``availability`` the slot must be one
        the neutral offers; without (a neutral booking their own case's session) it only
        must be in the future and free. Raises :class:`SlotTaken` or ``InvalidInput``."""
        now = self.clock()
        await conn.execute(
            sa.delete(bookings).where(
                bookings.c.neutral_id == neutral_id,
                bookings.c.expires_at.is_not(None),
                bookings.c.expires_at <= now,
            )
        )
        same = (
            await conn.execute(
                sa.select(bookings.c.id, bookings.c.request_id).where(
                    bookings.c.neutral_id == neutral_id, bookings.c.starts_at == starts_at
                )
            )
        ).first()
        if same is not None and request_id is not None and same.request_id == request_id:
            # the request holds this start already (someone proposed it before)
            await conn.execute(
                sa.update(bookings)
                .where(bookings.c.id == same.id)
                .values(slot_id=slot_id, ends_at=starts_at + minutes * 60, expires_at=expires_at)
            )
            return str(same.id)
        busy = await self.busy(conn, neutral_id, ignore_request=request_id)
        ends_at = starts_at + minutes * 60
        if availability is not None:
            problem = slot_problem(availability, starts_at, minutes, busy, now=now)
            taken = problem == "taken"
        else:
            problem = "in the past" if starts_at <= now else None
            taken = any(start < ends_at and starts_at < end for start, end in busy)
        if taken or same is not None:
            offered = (
                open_slots(availability, minutes, busy, now=now, start=starts_at, limit=NEXT_SLOTS)
                if availability is not None
                else []
            )
            raise SlotTaken("This time has just been taken. Choose another.", offered)
        if problem is not None:
            raise InvalidInput(f"This time cannot be booked: {problem}.", code="slot_unavailable")
        booking_id = new_id()
        await conn.execute(
            sa.insert(bookings).values(
                id=booking_id,
                neutral_id=neutral_id,
                starts_at=starts_at,
                ends_at=ends_at,
                request_id=request_id,
                slot_id=slot_id,
                session_id=session_id,
                expires_at=expires_at,
                created_at=now,
            )
        )
        return booking_id
