"""Outbox rows: mail written in the same transaction as the change that causes it.

``enqueue`` takes the caller's connection, so the mail commits or rolls back with its
cause: a crash can neither send mail for a change that did not commit nor lose mail for
one that did. The sender (``signaling.mail``) claims due rows, delivers them and records
the outcome here.

Claiming is safe with several processes: on PostgreSQL the due rows are locked with
``FOR UPDATE SKIP LOCKED`` (two nodes never claim the same row); on SQLite every write
transaction takes the database's write lock at ``BEGIN``, which serialises claims. A
claim pushes the row's ``next_attempt_at`` past a lease, so a process that dies while
sending leaves the row to be claimed again once the lease runs out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from rooms.errors import Conflict, NotFound
from rooms.storage.schema import new_id, outbox
from rooms.storage.store import Store

QUEUED, SENT, FAILED = "queued", "sent", "failed"
#: The longest server answer kept as a failure's reason.
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class OutboxMail:
    """One row of the outbox as the sender and the admin page see it."""

    id: str
    kind: str
    recipient: str
    params: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    sent_at: float | None

    def public(self) -> dict[str, Any]:
        """What an admin sees: never the parameters (they may hold one-time links)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "recipient": self.recipient,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "last_error": self.last_error,
            "created_at": self.created_at,
            "sent_at": self.sent_at,
        }


def _mail(row: sa.Row) -> OutboxMail:
    return OutboxMail(
        row.id,
        row.kind,
        row.recipient,
        dict(row.params or {}),
        row.status,
        row.attempts,
        row.next_attempt_at,
        row.last_error,
        row.created_at,
        row.sent_at,
    )


async def enqueue(
    conn: AsyncConnection, kind: str, recipient: str, params: dict[str, Any], *, now: float
) -> str:
    """Write one mail into the caller's transaction; answers its id."""
    mail_id = new_id()
    await conn.execute(
        sa.insert(outbox).values(
            id=mail_id,
            kind=kind,
            recipient=recipient,
            params=params,
            status=QUEUED,
            attempts=0,
            next_attempt_at=now,
            last_error=None,
            created_at=now,
            sent_at=None,
        )
    )
    return mail_id


class Outbox:
    """The outbox table: claiming due mail, recording outcomes, the admin's view."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def claim(self, limit: int, lease_seconds: float) -> list[OutboxMail]:
        """Take up to ``limit`` due mails for one attempt each (counted now)."""
        now = self.clock()
        query = (
            sa.select(outbox)
            .where(outbox.c.status == QUEUED, outbox.c.next_attempt_at <= now)
            .order_by(outbox.c.next_attempt_at)
            .limit(limit)
        )
        if self.store.backend == "postgresql":
            query = query.with_for_update(skip_locked=True)
        async with self.store.begin() as conn:
            rows = (await conn.execute(query)).all()
            for row in rows:
                await conn.execute(
                    sa.update(outbox)
                    .where(outbox.c.id == row.id)
                    .values(attempts=row.attempts + 1, next_attempt_at=now + lease_seconds)
                )
        return [
            replace(_mail(row), attempts=row.attempts + 1, next_attempt_at=now + lease_seconds)
            for row in rows
        ]

    async def delivered(self, mail_id: str) -> None:
        """The server took the mail: its parameters are emptied."""
        async with self.store.begin() as conn:
            await conn.execute(
                sa.update(outbox)
                .where(outbox.c.id == mail_id)
                .values(status=SENT, sent_at=self.clock(), params={}, last_error=None)
            )

    async def retry_later(self, mail_id: str, error: str, delay: float) -> None:
        async with self.store.begin() as conn:
            await conn.execute(
                sa.update(outbox)
                .where(outbox.c.id == mail_id, outbox.c.status == QUEUED)
                .values(next_attempt_at=self.clock() + delay, last_error=error[:MAX_ERROR_CHARS])
            )

    async def failed(self, mail_id: str, error: str) -> None:
        """A permanent failure: kept with the reason for the admin, never tried again
        unless an admin asks."""
        async with self.store.begin() as conn:
            await conn.execute(
                sa.update(outbox)
                .where(outbox.c.id == mail_id)
                .values(status=FAILED, last_error=error[:MAX_ERROR_CHARS])
            )

    async def retry(self, mail_id: str) -> OutboxMail:
        """An admin asks for one more try of a failed mail, now."""
        async with self.store.begin() as conn:
            row = (await conn.execute(sa.select(outbox).where(outbox.c.id == mail_id))).first()
            if row is None:
                raise NotFound("No such mail.")
            if row.status == SENT:
                raise Conflict("This mail was delivered already.", code="mail_sent")
            await conn.execute(
                sa.update(outbox)
                .where(outbox.c.id == mail_id)
                .values(status=QUEUED, next_attempt_at=self.clock(), attempts=0)
            )
        return await self.get(mail_id)

    async def get(self, mail_id: str) -> OutboxMail:
        async with self.store.connect() as conn:
            row = (await conn.execute(sa.select(outbox).where(outbox.c.id == mail_id))).first()
        if row is None:
            raise NotFound("No such mail.")
        return _mail(row)

    async def listing(self, status: str, limit: int = 200) -> list[OutboxMail]:
        """Mails with ``status``, newest first."""
        async with self.store.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(outbox)
                    .where(outbox.c.status == status)
                    .order_by(outbox.c.created_at.desc())
                    .limit(limit)
                )
            ).all()
        return [_mail(r) for r in rows]

    async def counts(self) -> dict[str, int]:
        async with self.store.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)
                )
            ).all()
        found = {status: int(count) for status, count in rows}
        return {status: found.get(status, 0) for status in (QUEUED, SENT, FAILED)}
