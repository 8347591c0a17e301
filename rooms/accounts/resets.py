"""Password reset by email: a single-use link valid ``lifetime`` seconds.

Asking always answers the same, whether or not an account has the address; each account
with the address verified gets its own link (an unverified address gets none). Only the
token's SHA-256 is stored. Requests are limited per address and per client. Using a link
sets the password, spends every link of the account and ends every session it has; a
second factor, when on, is still asked at the next sign-in (the caller starts the new
session at that stage)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from rooms.accounts.accounts import Accounts, User
from rooms.accounts.addresses import normalize_email
from rooms.accounts.sessions import token_hash
from rooms.accounts.throttle import LoginThrottle, Throttled
from rooms.errors import Gone
from rooms.storage.outbox import enqueue
from rooms.storage.schema import password_resets, sessions, users

INVALID_LINK = (
    "This password reset link cannot be used: it was used already, has expired, or is "
    "incomplete. Ask for a new one."
)


class PasswordResets:
    """Owns the reset links (``password_resets``)."""

    def __init__(
        self,
        accounts: Accounts,
        throttle: LoginThrottle,
        *,
        lifetime: float = 1800.0,
        per_address: int = 3,
        per_client: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.accounts = accounts
        self.store = accounts.store
        self.throttle = throttle
        self.lifetime = lifetime
        self.per_address = per_address
        self.per_client = per_client
        self.clock = clock

    async def _limit(self, subject: str, allowance: int) -> None:
        wait = await self.throttle.wait_for(subject, allowance=allowance)
        if wait:
            raise Throttled(
                "Too many password reset requests. Try again later.",
                retry_after=wait,
                limit="password_reset",
            )

    async def request(self, address: str, client: str) -> None:
        """Mail a reset link to every account with ``address`` (none: nothing is sent, and
        the caller answers the same)."""
        email = normalize_email(address)
        by_address, by_client = f"reset:{email.lower()}", f"reset-addr:{client}"
        await self._limit(by_client, self.per_client)
        await self._limit(by_address, self.per_address)
        await self.throttle.record_failure(by_address, by_client)  # every request counts
        now = self.clock()
        async with self.store.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(users.c.id, users.c.email).where(
                        sa.func.lower(users.c.email) == email.lower(),
                        # an unverified address is sent nothing but its verification link
                        users.c.email_verified_at.is_not(None),
                    )
                )
            ).all()
            for row in rows:
                token = secrets.token_urlsafe(32)
                await conn.execute(
                    sa.insert(password_resets).values(
                        token_hash=token_hash(token),
                        user_id=row.id,
                        created_at=now,
                        expires_at=now + self.lifetime,
                        used_at=None,
                    )
                )
                await enqueue(
                    conn,
                    "password_reset",
                    row.email,  # as the account has it
                    {"path": f"/reset/{token}", "minutes": round(self.lifetime / 60)},
                    now=now,
                )

    async def _valid(self, conn: AsyncConnection, token: str) -> sa.Row:
        if not token or len(token) > 200:
            raise Gone(INVALID_LINK, code="reset_invalid")
        row = (
            await conn.execute(
                sa.select(password_resets).where(password_resets.c.token_hash == token_hash(token))
            )
        ).first()
        if row is None or row.used_at is not None or row.expires_at <= self.clock():
            raise Gone(INVALID_LINK, code="reset_invalid")
        return row

    async def check(self, token: str) -> None:
        """Refuse (410, one message for every reason) a link that cannot be used."""
        async with self.store.connect() as conn:
            await self._valid(conn, token)

    async def complete(self, token: str, password: str) -> tuple[User, list[str]]:
        """Set the new password through the link; answers the user and the token hashes of
        the sessions ended."""
        async with self.store.connect() as conn:
            row = await self._valid(conn, token)
        user = await self.accounts.get(row.user_id)
        self.accounts.policy.check(password, username=user.username)
        password_hash = self.accounts.policy.hash(password)
        now = self.clock()
        async with self.store.begin() as conn:
            spent = await conn.execute(
                sa.update(password_resets)
                .where(
                    password_resets.c.token_hash == row.token_hash,
                    password_resets.c.used_at.is_(None),
                    password_resets.c.expires_at > now,
                )
                .values(used_at=now)
            )
            if spent.rowcount != 1:  # used by a concurrent request
                raise Gone(INVALID_LINK, code="reset_invalid")
            await conn.execute(
                sa.update(password_resets)
                .where(password_resets.c.user_id == user.id, password_resets.c.used_at.is_(None))
                .values(used_at=now)
            )
            await conn.execute(
                sa.update(users)
                .where(users.c.id == user.id)
                .values(password_hash=password_hash, must_change_password=False)
            )
            await self.accounts.security_notice(
                conn, user.email, "password_changed", verified=user.email_verified
            )
            ended = await conn.execute(
                sa.delete(sessions)
                .where(sessions.c.user_id == user.id)
                .returning(sessions.c.token_hash)
            )
            ended_hashes = [r.token_hash for r in ended]
        return await self.accounts.get(user.id), ended_hashes
