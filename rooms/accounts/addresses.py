"""Email addresses of accounts: checked for syntax (never looked up in DNS) and
normalised, so a bad address is refused at the form and never reaches a mail header."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from rooms.errors import InvalidInput

MAX_EMAIL_LENGTH = 320


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
