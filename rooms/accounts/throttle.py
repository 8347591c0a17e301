"""Throttling of guesses: failed attempts counted per subject in the store, so every
signaling node of a deployment sees the same counts.

A subject is what a failure is charged to: an account from one client address, an account
from every client it does not know, a client address, a trusted device, a second factor, an
invitation.  Each subject may fail ``max_failures`` times (inside ``window`` seconds)
without delay; after that each further attempt waits ``base_delay`` seconds after the last
failure, doubling with every failure, at most ``max_delay`` seconds (OWASP's exponential
back-off rather than a lockout: the account's owner is slowed like everyone else from an
unknown client, never shut out; from a trusted device they are not slowed by others).
Attempts refused by the throttle are not checked and not counted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import sqlalchemy as sa

from rooms.errors import RateLimited
from rooms.storage.schema import login_failures
from rooms.storage.store import Store


class Throttled(RateLimited):
    """A refusal of the throttle; ``limit`` names which limit was hit (for the metrics)."""

    def __init__(self, message: str, *, retry_after: int, limit: str) -> None:
        super().__init__(message, retry_after=retry_after)
        self.limit = limit


class LoginThrottle:
    """Owns the failure counts (``login_failures``) and the delays they impose."""

    def __init__(
        self,
        store: Store,
        max_failures: int = 5,
        window: float = 900.0,
        clock: Callable[[], float] = time.time,
        *,
        base_delay: float = 30.0,
        max_delay: float = 900.0,
    ) -> None:
        self.store = store
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self.base_delay = base_delay
        self.max_delay = max_delay

    def delay(self, failures: int, allowance: int | None = None) -> float:
        """Seconds to wait after the last of ``failures`` failures (0: no wait)."""
        free = self.max_failures if allowance is None else allowance
        if failures < free:
            return 0.0
        # 2 ** n with n capped: a huge count must not overflow a float
        steps = min(failures - free, 60)
        return min(self.max_delay, self.base_delay * 2.0**steps)

    async def wait_for(self, *subjects: str, allowance: int | None = None) -> int:
        """Whole seconds before the next attempt for ``subjects`` is allowed (0: now)."""
        now = self.clock()
        since = now - self.window
        async with self.store.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        login_failures.c.subject,
                        sa.func.count(),
                        sa.func.max(login_failures.c.at),
                    )
                    .where(login_failures.c.subject.in_(subjects), login_failures.c.at > since)
                    .group_by(login_failures.c.subject)
                )
            ).all()
        wait = 0.0
        for _subject, count, last in rows:
            delay = self.delay(count, allowance)
            if delay:  # (a failure recorded after ``now`` was read is no reason to wait)
                wait = max(wait, last + delay - now)
        return math.ceil(wait) if wait > 0 else 0

    async def check(self, *subjects: str, limit: str = "login", allowance: int | None = None):
        """Refuse (:class:`Throttled`, with when to retry: the ``Retry-After`` of the
        answer) while any subject must wait."""
        wait = await self.wait_for(*subjects, allowance=allowance)
        if wait:
            raise Throttled(
                "Too many failed attempts. Try again later.", retry_after=wait, limit=limit
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

    async def clear(self, *subjects: str) -> None:
        async with self.store.begin() as conn:
            await conn.execute(
                sa.delete(login_failures).where(login_failures.c.subject.in_(subjects))
            )
