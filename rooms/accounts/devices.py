"""Trusted devices (OWASP's device cookies): a browser that completed a sign-in of an
account receives a random token; the store keeps only its SHA-256, bound to the account.

A later sign-in of that account from that browser is throttled by the failures of that
device alone, so someone guessing the account's password elsewhere cannot keep its owner
out.  The token proves nothing by itself: the password and the second factor are still
required.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import sqlalchemy as sa

from rooms.accounts.sessions import token_hash
from rooms.storage.schema import trusted_devices
from rooms.storage.store import Store

#: Devices kept per account; the least recently used are forgotten beyond it.
MAX_DEVICES_PER_USER = 20


class TrustedDevices:
    """Owns the ``trusted_devices`` table: issuing, recognising and forgetting devices."""

    def __init__(
        self, store: Store, lifetime: float = 90 * 86400, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.lifetime = lifetime
        self.clock = clock

    async def issue(self, user_id: str) -> str:
        """A new device token for ``user_id`` (the browser keeps it, the store its hash)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        async with self.store.begin() as conn:
            await conn.execute(
                sa.insert(trusted_devices).values(
                    token_hash=token_hash(token),
                    user_id=user_id,
                    created_at=now,
                    last_used_at=now,
                    expires_at=now + self.lifetime,
                )
            )
            await conn.execute(sa.delete(trusted_devices).where(trusted_devices.c.expires_at < now))
            kept = (
                sa.select(trusted_devices.c.token_hash)
                .where(trusted_devices.c.user_id == user_id)
                .order_by(trusted_devices.c.last_used_at.desc())
                .limit(MAX_DEVICES_PER_USER)
            )
            await conn.execute(
                sa.delete(trusted_devices).where(
                    trusted_devices.c.user_id == user_id,
                    trusted_devices.c.token_hash.not_in(kept.scalar_subquery()),
                )
            )
        return token

    async def recognise(self, token: str | None, user_id: str) -> str | None:
        """The device's hash when ``token`` is a live device of ``user_id``, else None."""
        if not token or len(token) > 200:
            return None
        digest = token_hash(token)
        async with self.store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(trusted_devices.c.user_id, trusted_devices.c.expires_at).where(
                        trusted_devices.c.token_hash == digest
                    )
                )
            ).first()
        if row is None or row.user_id != user_id or row.expires_at < self.clock():
            return None
        return digest

    async def touch(self, digest: str) -> None:
        async with self.store.begin() as conn:
            await conn.execute(
                sa.update(trusted_devices)
                .where(trusted_devices.c.token_hash == digest)
                .values(last_used_at=self.clock())
            )
