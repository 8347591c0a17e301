"""Changing an account's email address: confirmed by a link mailed to the new address,
with a notice to the old one at once (so a takeover of a signed-in session does not pass
silently). The password is asked first; the link works once, for ``lifetime`` seconds.

Opening a link (a change's, or the verification of an address an admin set) marks the
account's address verified and spends the account's other verification links."""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from rooms.accounts.accounts import Accounts, User
from rooms.accounts.addresses import CHANGE, VERIFY, mail_address_link, normalize_email
from rooms.accounts.sessions import token_hash
from rooms.errors import Gone, InvalidInput, Unauthenticated
from rooms.storage.schema import email_changes, users

INVALID_LINK = (
    "This confirmation link cannot be used: it was used already, has expired, or is "
    "incomplete. Change the address again from your account page, or ask an administrator "
    "to send a new verification link."
)


class EmailChanges:
    """Owns the address changes waiting for confirmation (``email_changes``)."""

    def __init__(
        self,
        accounts: Accounts,
        *,
        lifetime: float = 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.accounts = accounts
        self.store = accounts.store
        self.lifetime = lifetime
        self.clock = clock

    async def request(self, user_id: str, new_address: str, password: str) -> str:
        """Mail a confirmation link to ``new_address`` and a notice to the current one;
        answers the new address as it will be stored."""
        email = normalize_email(new_address)
        async with self.store.connect() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).one()
        subject = f"reauth:{user_id}"
        throttle = self.accounts.throttle
        await throttle.check(subject, limit="password_confirm")
        if not self.accounts.policy.verify(row.password_hash, password):
            await throttle.record_failure(subject)
            raise Unauthenticated("Your password is wrong.", code="invalid_credentials")
        await throttle.clear(subject)
        if row.email and row.email.lower() == email.lower():
            raise InvalidInput("This is your address already.", code="email_unchanged")
        now = self.clock()
        async with self.store.begin() as conn:
            await mail_address_link(
                conn, user_id, email, purpose=CHANGE, lifetime=self.lifetime, now=now
            )
            # an unverified address is sent nothing but its verification link
            await self.accounts.security_notice(
                conn, row.email, "email_change_notice", verified=row.email_verified_at is not None
            )
        return email

    async def confirm(self, token: str) -> User:
        """The address proved it receives mail: the account takes it, verified."""
        if not token or len(token) > 200:
            raise Gone(INVALID_LINK, code="email_change_invalid")
        now = self.clock()
        async with self.store.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(email_changes).where(email_changes.c.token_hash == token_hash(token))
                )
            ).first()
            if row is None or row.used_at is not None or row.expires_at <= now:
                raise Gone(INVALID_LINK, code="email_change_invalid")
            spent = await conn.execute(
                sa.update(email_changes)
                .where(
                    email_changes.c.token_hash == row.token_hash, email_changes.c.used_at.is_(None)
                )
                .values(used_at=now)
            )
            if spent.rowcount != 1:
                raise Gone(INVALID_LINK, code="email_change_invalid")
            await conn.execute(
                sa.update(email_changes)
                .where(
                    email_changes.c.user_id == row.user_id,
                    email_changes.c.purpose == VERIFY,
                    email_changes.c.used_at.is_(None),
                )
                .values(used_at=now)
            )
            await conn.execute(
                sa.update(users)
                .where(users.c.id == row.user_id)
                .values(email=row.new_email, email_verified_at=now)
            )
        return await self.accounts.get(row.user_id)
