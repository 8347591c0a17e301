"""The second factor: TOTP codes (RFC 6238, 30-s steps) and one-time recovery codes."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import pyotp

TOTP_ISSUER = "Caucus"
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def new_totp_secret() -> str:
    """A fresh base32 TOTP seed."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    """The ``otpauth://`` URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


def match_step(secret: str, code: str, now: float) -> int | None:
    """The 30-s step whose code equals ``code`` (one step of clock drift allowed)."""
    code = code.strip().replace(" ", "")
    if not re.fullmatch(r"\d{6}", code):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def recovery_hash(code: str) -> str:
    """What the store keeps of a recovery code (dashes, case and spaces do not matter)."""
    return hashlib.sha256(code.replace("-", "").strip().lower().encode()).hexdigest()


def new_recovery_code() -> str:
    """A fresh recovery code, ``xxxx-xxxx-xxxx``."""
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"
