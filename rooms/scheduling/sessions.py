"""Sessions of a case: scheduled, rescheduled and cancelled by its neutral, each a session
of the case's live room, each with a calendar entry mailed to everyone in the case.

A session's calendar entry keeps its ``UID`` for life; every change raises ``SEQUENCE``
and mails the new entry (``METHOD:REQUEST``), a cancellation mails ``METHOD:CANCEL``, so
calendar programs update the entry they have instead of adding one. Reminders go 24 hours
and 1 hour before (each once, through the outbox). Times are stored in UTC and written in
the neutral's zone."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from rooms.accounts.sessions import token_hash
from rooms.cases.cases import Case, Cases, Member
from rooms.cases.roles import NEUTRAL_ROLES
from rooms.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound
from rooms.scheduling.bookings import Bookings
from rooms.scheduling.calendar import Attendee, CalendarEvent, feed_ics, invitation_ics
from rooms.storage.outbox import enqueue
from rooms.storage.schema import (
    bookings,
    calendar_feeds,
    case_members,
    case_sessions,
    cases,
    invitations,
    neutral_profiles,
    new_id,
    users,
)
from rooms.storage.store import Store

SCHEDULED, CANCELLED = "scheduled", "cancelled"
MIN_MINUTES, MAX_MINUTES = 15, 12 * 60
DAY, HOUR = 86400.0, 3600.0


@dataclass(frozen=True)
class CaseSession:
    id: str
    case_id: str
    starts_at: float
    minutes: int
    status: str
    sequence: int

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "starts_at": self.starts_at,
            "minutes": self.minutes,
            "status": self.status,
            "sequence": self.sequence,
        }


def _session(row: Any) -> CaseSession:
    return CaseSession(row.id, row.case_id, row.starts_at, row.minutes, row.status, row.sequence)


@dataclass(frozen=True)
class Recipient:
    name: str
    email: str


class CaseSessions:
    """Owns ``case_sessions`` and the calendar feeds (``calendar_feeds``)."""

    def __init__(
        self,
        store: Store,
        cases: Cases,
        bookings: Bookings,
        *,
        public_url: str,
        organizer_email: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.cases = cases
        self.bookings = bookings
        self.public_url = public_url.rstrip("/")
        self.host = urlsplit(self.public_url).hostname or "caucus.invalid"
        self.organizer_email = organizer_email
        self.clock = clock

    # -- reading ---------------------------------------------------------------------------
    async def listing(self, case_id: str) -> list[CaseSession]:
        async with self.store.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(case_sessions)
                    .where(case_sessions.c.case_id == case_id)
                    .order_by(case_sessions.c.starts_at)
                )
            ).all()
        return [_session(r) for r in rows]

    def next_of(self, sessions: list[CaseSession]) -> CaseSession | None:
        """The session now running or coming next."""
        now = self.clock()
        for session in sessions:
            if session.status == SCHEDULED and session.starts_at + session.minutes * 60 > now:
                return session
        return None

    # -- changes by the case's neutral ---------------------------------------------------
    def _check(self, actor: Member, case_id: str, starts_at: float, minutes: int) -> None:
        if actor.case_id != case_id or actor.role not in NEUTRAL_ROLES:
            raise Forbidden("Only the case's neutral schedules its sessions.")
        if not MIN_MINUTES <= minutes <= MAX_MINUTES:
            raise InvalidInput(
                f"A session lasts {MIN_MINUTES} to {MAX_MINUTES} minutes.", code="invalid_length"
            )
        if starts_at % 60:
            raise InvalidInput("A session starts on a whole minute.", code="invalid_input")
        now = self.clock()
        if starts_at <= now:
            raise InvalidInput("A session cannot start in the past.", code="slot_unavailable")
        if starts_at > now + 3 * 365 * DAY:
            raise InvalidInput("A session is scheduled at most 3 years ahead.")

    async def schedule(
        self, case_id: str, actor: Member, starts_at: float, minutes: int
    ) -> CaseSession:
        self._check(actor, case_id, starts_at, minutes)
        case = await self.cases.get(case_id)
        if case.status != "open":
            raise Conflict("This case is closed.", code="case_closed")
        async with self.store.begin() as conn:
            session_id = await self.schedule_in(conn, case, starts_at, minutes)
        return await self.get(case_id, session_id)

    async def schedule_in(self, conn: Any, case: Case, starts_at: float, minutes: int) -> str:
        """Book the neutral's time and write the session and its mails, in the caller's
        transaction."""
        await self.bookings.lock(conn, case.neutral_id)
        session_id = new_id()
        now = self.clock()
        await conn.execute(
            sa.insert(case_sessions).values(
                id=session_id,
                case_id=case.id,
                starts_at=starts_at,
                minutes=minutes,
                status=SCHEDULED,
                sequence=0,
                created_at=now,
                updated_at=now,
            )
        )
        await self.bookings.hold(
            conn, case.neutral_id, None, starts_at, minutes, session_id=session_id
        )
        session = CaseSession(session_id, case.id, starts_at, minutes, SCHEDULED, 0)
        await self._mail_entry(conn, case, session, "session_scheduled")
        await self.cases.audit(conn, case.neutral_id, "session.schedule", case.id)
        return session_id

    async def reschedule(
        self, case_id: str, session_id: str, actor: Member, starts_at: float, minutes: int
    ) -> CaseSession:
        self._check(actor, case_id, starts_at, minutes)
        case = await self.cases.get(case_id)
        async with self.store.begin() as conn:
            await self.bookings.lock(conn, case.neutral_id)
            current = await self._open_session(conn, case_id, session_id)
            await conn.execute(sa.delete(bookings).where(bookings.c.session_id == session_id))
            await self.bookings.hold(
                conn, case.neutral_id, None, starts_at, minutes, session_id=session_id
            )
            await conn.execute(
                sa.update(case_sessions)
                .where(case_sessions.c.id == session_id)
                .values(
                    starts_at=starts_at,
                    minutes=minutes,
                    sequence=current.sequence + 1,
                    updated_at=self.clock(),
                    reminded_day_at=None,
                    reminded_hour_at=None,
                )
            )
            session = CaseSession(
                session_id, case_id, starts_at, minutes, SCHEDULED, current.sequence + 1
            )
            await self._mail_entry(conn, case, session, "session_updated")
            await self.cases.audit(conn, actor.user_id, "session.reschedule", case_id)
        return session

    async def cancel(self, case_id: str, session_id: str, actor: Member) -> CaseSession:
        if actor.case_id != case_id or actor.role not in NEUTRAL_ROLES:
            raise Forbidden("Only the case's neutral schedules its sessions.")
        case = await self.cases.get(case_id)
        async with self.store.begin() as conn:
            current = await self._open_session(conn, case_id, session_id)
            await conn.execute(sa.delete(bookings).where(bookings.c.session_id == session_id))
            await conn.execute(
                sa.update(case_sessions)
                .where(case_sessions.c.id == session_id)
                .values(status=CANCELLED, sequence=current.sequence + 1, updated_at=self.clock())
            )
            session = CaseSession(
                session_id,
                case_id,
                current.starts_at,
                current.minutes,
                CANCELLED,
                current.sequence + 1,
            )
            await self._mail_entry(conn, case, session, "session_cancelled")
            await self.cases.audit(conn, actor.user_id, "session.cancel", case_id)
        return session

    async def get(self, case_id: str, session_id: str) -> CaseSession:
        async with self.store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(case_sessions).where(
                        case_sessions.c.id == session_id, case_sessions.c.case_id == case_id
                    )
                )
            ).first()
        if row is None:
            raise NotFound("No such session.")
        return _session(row)

    async def _open_session(self, conn: Any, case_id: str, session_id: str) -> CaseSession:
        row = (
            await conn.execute(
                sa.select(case_sessions).where(
                    case_sessions.c.id == session_id, case_sessions.c.case_id == case_id
                )
            )
        ).first()
        if row is None:
            raise NotFound("No such session.")
        if row.status != SCHEDULED:
            raise Conflict("This session was cancelled.", code="session_cancelled")
        return _session(row)

    # -- calendar entries and mail ---------------------------------------------------------
    async def recipients(self, conn: Any, case_id: str) -> list[Recipient]:
        """Everyone in the case with an address: members whose address is verified, and
        people invited by mail who have not joined yet."""
        members = (
            await conn.execute(
                sa.select(case_members.c.display_name, users.c.email)
                .join(users, users.c.id == case_members.c.user_id)
                .where(
                    case_members.c.case_id == case_id,
                    users.c.email.is_not(None),
                    users.c.email_verified_at.is_not(None),
                )
                .order_by(case_members.c.joined_at)
            )
        ).all()
        invited = (
            await conn.execute(
                sa.select(invitations.c.display_name, invitations.c.email)
                .where(
                    invitations.c.case_id == case_id,
                    invitations.c.email.is_not(None),
                    invitations.c.used_at.is_(None),
                    invitations.c.revoked_at.is_(None),
                    invitations.c.expires_at > self.clock(),
                )
                .order_by(invitations.c.created_at)
            )
        ).all()
        seen: set[str] = set()
        found: list[Recipient] = []
        for name, email in [*members, *invited]:
            if email.lower() not in seen:
                seen.add(email.lower())
                found.append(Recipient(name, email))
        return found

    async def _zone_and_organizer(self, conn: Any, neutral_id: str) -> tuple[str, Attendee]:
        row = (
            await conn.execute(
                sa.select(
                    users.c.display_name,
                    users.c.email,
                    users.c.email_verified_at,
                    neutral_profiles.c.availability,
                )
                .select_from(users.outerjoin(neutral_profiles))
                .where(users.c.id == neutral_id)
            )
        ).one()
        zone = (row.availability or {}).get("time_zone", "UTC")
        email = row.email if row.email and row.email_verified_at else self.organizer_email
        return zone, Attendee(row.display_name, email, "CHAIR")

    def event(
        self,
        case: Case,
        session: CaseSession,
        zone: str,
        organizer: Attendee,
        attendees: list[Recipient],
    ) -> CalendarEvent:
        name = case.mail_name or f"a case on {self.host}"
        return CalendarEvent(
            uid=f"{session.id}@{self.host}",
            sequence=session.sequence,
            start=session.starts_at,
            minutes=session.minutes,
            summary=f"Session: {name}",
            description=f"Join from your browser: {self.public_url}/cases/{case.id}/live",
            url=f"{self.public_url}/cases/{case.id}/live",
            organizer=organizer,
            attendees=tuple(Attendee(r.name, r.email) for r in attendees),
            time_zone=zone,
            cancelled=session.status == CANCELLED,
            stamp=self.clock(),
        )

    async def _mail_entry(self, conn: Any, case: Case, session: CaseSession, kind: str) -> None:
        zone, organizer = await self._zone_and_organizer(conn, case.neutral_id)
        people = await self.recipients(conn, case.id)
        ics = invitation_ics(self.event(case, session, zone, organizer, people))
        method = "CANCEL" if session.status == CANCELLED else "REQUEST"
        for person in people:
            await enqueue(
                conn,
                kind,
                person.email,
                {
                    **case.mail_params(),
                    "path": f"/cases/{case.id}/live",
                    "starts_at": session.starts_at,
                    "minutes": session.minutes,
                    "time_zone": zone,
                    "attachments": [
                        {
                            "filename": "session.ics",
                            "content_type": "text/calendar",
                            "method": method,
                            "text": ics,
                        }
                    ],
                },
                now=self.clock(),
            )

    # -- reminders -------------------------------------------------------------------------
    async def send_reminders(self) -> int:
        """Write the reminders due now (24 hours and 1 hour before); answers how many."""
        now = self.clock()
        written = 0
        for column, lead, kind in (
            (case_sessions.c.reminded_day_at, DAY, "session_reminder_day"),
            (case_sessions.c.reminded_hour_at, HOUR, "session_reminder_hour"),
        ):
            query = (
                sa.select(case_sessions, cases.c.neutral_id)
                .join(cases, cases.c.id == case_sessions.c.case_id)
                .where(
                    case_sessions.c.status == SCHEDULED,
                    column.is_(None),
                    case_sessions.c.starts_at - lead <= now,
                    case_sessions.c.starts_at > now,
                )
                .limit(200)
            )
            if self.store.backend == "postgresql":
                # two nodes never take the same session's reminder (SQLite: one writer)
                query = query.with_for_update(of=case_sessions, skip_locked=True)
            async with self.store.begin() as conn:
                due = (await conn.execute(query)).all()
                for row in due:
                    await conn.execute(
                        sa.update(case_sessions)
                        .where(case_sessions.c.id == row.id)
                        .values({column.name: now})
                    )
                    # a day's reminder that would come within the hour's is left out
                    if lead == DAY and row.starts_at - now <= HOUR:
                        continue
                    case = await self.cases.get_in(conn, row.case_id)
                    zone, _ = await self._zone_and_organizer(conn, row.neutral_id)
                    for person in await self.recipients(conn, row.case_id):
                        await enqueue(
                            conn,
                            kind,
                            person.email,
                            {
                                **case.mail_params(),
                                "path": f"/cases/{row.case_id}/live",
                                "starts_at": row.starts_at,
                                "minutes": row.minutes,
                                "time_zone": zone,
                            },
                            now=now,
                        )
                        written += 1
        return written

    # -- calendar feeds ----------------------------------------------------------------------
    async def has_feed(self, user_id: str) -> bool:
        """Whether the user has a calendar feed address (only its hash is kept)."""
        async with self.store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(calendar_feeds.c.user_id).where(calendar_feeds.c.user_id == user_id)
                )
            ).first()
        return row is not None

    async def new_feed(self, user_id: str) -> str:
        """A new secret feed address for the user (the old one stops working); answers
        the token."""
        token = secrets.token_urlsafe(32)
        async with self.store.begin() as conn:
            await conn.execute(sa.delete(calendar_feeds).where(calendar_feeds.c.user_id == user_id))
            await conn.execute(
                sa.insert(calendar_feeds).values(
                    user_id=user_id, token_hash=token_hash(token), created_at=self.clock()
                )
            )
        return token

    async def revoke_feed(self, user_id: str) -> None:
        async with self.store.begin() as conn:
            await conn.execute(sa.delete(calendar_feeds).where(calendar_feeds.c.user_id == user_id))

    async def feed(self, token: str) -> str:
        """The calendar of every session of the feed owner's cases."""
        if not token or len(token) > 200:
            raise Gone("This calendar address does not work any more.", code="feed_invalid")
        async with self.store.connect() as conn:
            owner = (
                await conn.execute(
                    sa.select(users.c.id, users.c.display_name)
                    .join(calendar_feeds, calendar_feeds.c.user_id == users.c.id)
                    .where(calendar_feeds.c.token_hash == token_hash(token))
                )
            ).first()
            if owner is None:
                raise Gone("This calendar address does not work any more.", code="feed_invalid")
            rows = (
                await conn.execute(
                    sa.select(case_sessions)
                    .join(case_members, case_members.c.case_id == case_sessions.c.case_id)
                    .where(case_members.c.user_id == owner.id)
                    .order_by(case_sessions.c.starts_at)
                    .limit(1000)
                )
            ).all()
            events = []
            known: dict[str, tuple[Case, str, Attendee]] = {}  # each case read once
            for row in rows:
                if row.case_id not in known:
                    case = await self.cases.get_in(conn, row.case_id)
                    zone, organizer = await self._zone_and_organizer(conn, case.neutral_id)
                    known[row.case_id] = (case, zone, organizer)
                case, zone, organizer = known[row.case_id]
                events.append(self.event(case, _session(row), zone, organizer, []))
        return feed_ics(events, f"Caucus sessions of {owner.display_name}")
