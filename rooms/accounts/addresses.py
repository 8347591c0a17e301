"""Email addresses of accounts: checked for syntax (never looked up in DNS) and
normalised, so a bad address is refused at the form and never reaches a mail header.

An address proves it receives mail by a single-use link mailed to it (only the token's
SHA-256 is stored, in ``email_changes``): the confirmation of an address change, or the
verification of an address an admin set. Until then the account is sent nothing else."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.ext.asyncio import AsyncConnection

from rooms.accounts.sessions import token_hash
from rooms.errors import InvalidInput
from rooms.storage.outbox import enqueue
from rooms.storage.schema import email_changes

MAX_EMAIL_LENGTH = 320
#: What an address link is for: the account takes a new address, or its address is verified.
CHANGE, VERIFY = "change", "verify"
#: How long a verification link works.
VERIFY_LIFETIME = 7 * 86400.0


def normalize_email(address: str) -> str:
    """The address as stored: its domain lowercased (and IDNA-decoded), the local part
    kept as written; refused with a clear message when it is not an address."""
    text = address.strip()
    if not text or len(text) > MAX_EMAIL_LENGTH:
        raise InvalidInput("Enter an email address.", code="invalid_email")
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(
            f"This is not a usable email address: {exc}", code="invalid_email"
        ) from None
    return checked.normalized


def optional_email(address: str | None) -> str | None:
    """``normalize_email`` for an optional field: blank means none."""
    if address is None or not address.strip():
        return None
    return normalize_email(address)


async def mail_address_link(
    conn: AsyncConnection,
    user_id: str,
    email: str,
    *,
    purpose: str,
    lifetime: float,
    now: float,
) -> None:
    """Write a link proving that ``email`` receives mail, and the mail carrying it, into
    the caller's transaction. A new verification link spends the account's earlier ones."""
    if purpose == VERIFY:
        await conn.execute(
            sa.update(email_changes)
            .where(
                email_changes.c.user_id == user_id,
                email_changes.c.purpose == VERIFY,
                email_changes.c.used_at.is_(None),
            )
            .values(used_at=now)
        )
    token = secrets.token_urlsafe(32)
    await conn.execute(
        sa.insert(email_changes).values(
            token_hash=token_hash(token),
            user_id=user_id,
            new_email=email,
            created_at=now,
            expires_at=now + lifetime,
            used_at=None,
            purpose=purpose,
        )
    )
    path = f"/account/email/confirm/{token}"
    if purpose == VERIFY:
        await enqueue(
            conn, "email_verify", email, {"path": path, "days": round(lifetime / 86400)}, now=now
        )
    else:
        params = {"path": path, "hours": round(lifetime / 3600)}
        await enqueue(conn, "email_change_confirm", email, params, now=now)
