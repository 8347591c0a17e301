"""Login throttling: failed attempts counted per account and per client address in the store,
so every signaling node of a deployment sees the same counts."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import sqlalchemy as sa

from rooms.errors import RateLimited
from rooms.schema import login_failures
from rooms.store import Store


class LoginThrottle:
    """Refuses attempts for a subject with ``max_failures`` failures inside ``window`` seconds."""

    def __init__(
        self,
        store: Store,
        max_failures: int = 5,
        window: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.max_failures = max_failures
        self.window = window
        self.clock = clock

    async def check(self, *subjects: str) -> None:
        now = self.clock()
        since = now - self.window
        async with self.store.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        login_failures.c.subject,
                        sa.func.count(),
                        sa.func.min(login_failures.c.at),
                    )
                    .where(login_failures.c.subject.in_(subjects), login_failures.c.at > since)
                    .group_by(login_failures.c.subject)
                )
            ).all()
        for _subject, count, oldest in rows:
            if count >= self.max_failures:
                retry_after = max(1, math.ceil(oldest + self.window - now))
                raise RateLimited(
                    "Too many failed attempts. Try again later.", retry_after=retry_after
                )

    async def record_failure(self, *subjects: str) -> None:
        now = self.clock()
        async with self.store.begin() as conn:
            await conn.execute(
                sa.insert(login_failures), [{"subject": s, "at": now} for s in subjects]
            )
            await conn.execute(
                sa.delete(login_failures).where(login_failures.c.at < now - 2 * self.window)
            )

    async def clear(self, subject: str) -> None:
        async with self.store.begin() as conn:
            await conn.execute(sa.delete(login_failures).where(login_failures.c.subject == subject))
