"""Server-side login sessions. The browser holds a random token; the store holds its SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from rooms.storage.schema import removed_account_sessions, sessions
from rooms.storage.store import Store

STAGE_TOTP = "totp_required"
STAGE_PASSWORD = "password_change_required"  # noqa: S105 - a stage name
STAGE_ACTIVE = "active"
STAGES = (STAGE_TOTP, STAGE_PASSWORD, STAGE_ACTIVE)
#: How long a fresh proof of identity (``Sessions.record_reauth``) counts.
REAUTH_MAX_AGE = 300.0


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    token_hash: str
    user_id: str
    stage: str
    expires_at: float


class Sessions:
    """Creates, finds and ends login sessions."""

    def __init__(
        self, store: Store, lifetime: float = 12 * 3600, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.lifetime = lifetime
        self.clock = clock

    async def create(self, user_id: str, stage: str) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        async with self.store.begin() as conn:
            await conn.execute(
                sa.insert(sessions).values(
                    token_hash=token_hash(token),
                    user_id=user_id,
                    stage=stage,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + self.lifetime,
                )
            )
            await conn.execute(sa.delete(sessions).where(sessions.c.expires_at < now))
        return token

    async def find(self, token: str | None) -> Session | None:
        if not token or len(token) > 200:
            return None
        async with self.store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(sessions).where(sessions.c.token_hash == token_hash(token))
                )
            ).first()
        if row is None or row.expires_at < self.clock():
            return None
        return Session(row.token_hash, row.user_id, row.stage, row.expires_at)

    async def set_stage(self, session: Session, stage: str) -> Session:
        async with self.store.begin() as conn:
            await conn.execute(
                sa.update(sessions)
                .where(sessions.c.token_hash == session.token_hash)
                .values(stage=stage, last_seen_at=self.clock())
            )
        return Session(session.token_hash, session.user_id, stage, session.expires_at)

    async def record_reauth(self, session: Session, method: str) -> float:
        """The session's user proved their identity again just now (``method``: how);
        answers the time. The proof counts for ``REAUTH_MAX_AGE`` seconds, once
        (``take_fresh_proof``)."""
        now = self.clock()
        async with self.store.begin() as conn:
            await conn.execute(
                sa.update(sessions)
                .where(sessions.c.token_hash == session.token_hash)
                .values(reauth_at=now, reauth_method=method, last_seen_at=now)
            )
        return now

    async def removed_with_case(self, token: str | None) -> bool:
        """Whether ``token`` named a session whose account was deleted with a closed case
        (answered once: the record goes, as do the expired ones)."""
        if not token or len(token) > 200:
            return False
        hashed, now = token_hash(token), self.clock()
        table = removed_account_sessions
        async with self.store.begin() as conn:
            found = (
                await conn.execute(
                    sa.delete(table).where(table.c.token_hash == hashed, table.c.expires_at >= now)
                )
            ).rowcount
            await conn.execute(sa.delete(table).where(table.c.expires_at < now))
        return bool(found)

    async def end(self, session: Session) -> None:
        async with self.store.begin() as conn:
            await conn.execute(
                sa.delete(sessions).where(sessions.c.token_hash == session.token_hash)
            )

    async def end_others(self, user_id: str, keep: Session | None) -> list[str]:
        """End every session of ``user_id`` except ``keep`` (after a password change);
        answers the token hashes of the sessions ended."""
        query = sa.delete(sessions).where(sessions.c.user_id == user_id)
        if keep is not None:
            query = query.where(sessions.c.token_hash != keep.token_hash)
        async with self.store.begin() as conn:
            result = await conn.execute(query.returning(sessions.c.token_hash))
            return [row.token_hash for row in result]


@dataclass(frozen=True)
class FreshProof:
    """A proof of identity taken from a session: when it was given and how."""

    at: float
    method: str


async def take_fresh_proof(
    conn: Any, session_token_hash: str, *, now: float, max_age: float = REAUTH_MAX_AGE
) -> FreshProof | None:
    """Use up the session's proof of identity inside the caller's transaction, when it was
    given at most ``max_age`` seconds ago; ``None`` when there is none, or it is older.

    A proof is used once: the guarded update makes a second use (also a concurrent one)
    find nothing."""
    row = (
        await conn.execute(
            sa.select(sessions.c.reauth_at, sessions.c.reauth_method).where(
                sessions.c.token_hash == session_token_hash
            )
        )
    ).first()
    if row is None or row.reauth_at is None or row.reauth_method is None:
        return None
    if not now - max_age <= row.reauth_at <= now + 1.0:
        return None
    result = await conn.execute(
        sa.update(sessions)
        .where(
            sessions.c.token_hash == session_token_hash,
            sessions.c.reauth_at == row.reauth_at,
        )
        .values(reauth_at=None, reauth_method=None)
    )
    if result.rowcount != 1:
        return None
    return FreshProof(row.reauth_at, row.reauth_method)
