"""Password policy and hashing (argon2id through argon2-cffi)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from rooms.errors import InvalidInput

COMMON_PASSWORDS_FILE = Path(__file__).parent / "data" / "common-passwords.txt"


@cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip())


class PasswordPolicy:
    """Decides whether a new password is acceptable and hashes/verifies passwords."""

    def __init__(self, min_length: int = 12, hasher: PasswordHasher | None = None) -> None:
        self.min_length = min_length
        self.hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile
        self._dummy_hash = self.hasher.hash("caucus-timing-equaliser")

    def check(self, password: str, *, username: str = "") -> None:
        if len(password) < self.min_length:
            raise InvalidInput(
                f"Choose a password of at least {self.min_length} characters.",
                code="weak_password",
            )
        if len(password) > 1024:
            raise InvalidInput(
                "Choose a password of at most 1024 characters.", code="weak_password"
            )
        lowered = password.lower()
        if lowered in common_passwords() or (username and username.lower() in lowered):
            raise InvalidInput(
                "This password is too common or contains your username; choose another.",
                code="weak_password",
            )

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; costs the same time when there is no hash."""
        try:
            return self.hasher.verify(password_hash or self._dummy_hash, password) and bool(
                password_hash
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)
