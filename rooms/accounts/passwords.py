"""Password policy and hashing (argon2id through argon2-cffi).

The rules follow NIST SP 800-63B: a minimum length, every printing character and spaces
accepted (a password is never trimmed), Unicode normalised (NFKC, §5.1.1.2) before it is
checked, hashed or verified, so that "é" typed as one character on one device and as "e"
and a combining accent on another is the same password, and a refusal of passwords
attackers try first: those of a breach corpus (the top 100,000 of SecLists' ten-million
list, ``data/common-passwords.txt``), one character repeated, a short pattern repeated, a
run of consecutive letters, digits or keyboard keys, and anything with the account's
username in it.  Control characters are refused too.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from itertools import pairwise
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from rooms.errors import InvalidInput

COMMON_PASSWORDS_FILE = Path(__file__).parent / "data" / "common-passwords.txt"
MAX_PASSWORD_CHARS = 1024

#: Orders whose runs ("abcdef", "987654", "qwerty", "asdfgh") make guessable passwords;
#: a run may go either way and, in the digits, wrap round ("7890123").
SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890",
    "1234567890-=",
    "qwertyuiop[]",
    "asdfghjkl;'",
    "zxcvbnm,./",
    "qwertzuiop",  # German and French layouts
    "yxcvbnm",
    "azertyuiop",
    "qsdfghjklm",
    "wxcvbn",
    "qwertyuiopasdfghjklzxcvbnm",  # the letter rows one after the other
)


@cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().lower() for line in lines if line.strip() and not line.startswith("#")
    )


@cache
def _steps() -> frozenset[tuple[str, str]]:
    """Every pair of neighbours in :data:`SEQUENCES`, both ways."""
    pairs = set()
    for sequence in SEQUENCES:
        for a, b in pairwise(sequence):
            pairs.add((a, b))
    return frozenset(pairs)


def _is_run(text: str) -> bool:
    """True when ``text`` is one run along a sequence: each character the next (or each
    the previous) of the one before."""
    if len(text) < 3:
        return False
    steps = _steps()
    pairs = list(pairwise(text))
    return all(p in steps for p in pairs) or all((b, a) in steps for a, b in pairs)


def _is_repeated_pattern(text: str) -> bool:
    """True when ``text`` is a shorter piece written again and again ("abcabcabc")."""
    size = len(text)
    for unit in range(1, size // 2 + 1):
        if size % unit == 0 and text[:unit] * (size // unit) == text:
            return True
    return False


def normalized(password: str) -> str:
    """``password`` as it is checked and hashed: Unicode NFKC (NIST SP 800-63B §5.1.1.2).
    Nothing else changes: spaces and case stay as typed."""
    return unicodedata.normalize("NFKC", password)


def _has_control_character(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


class PasswordPolicy:
    """Decides whether a new password is acceptable and hashes/verifies passwords."""

    def __init__(self, min_length: int = 12, hasher: PasswordHasher | None = None) -> None:
        self.min_length = min_length
        self.hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile
        self._dummy_hash = self.hasher.hash("caucus-timing-equaliser")

    @property
    def rules(self) -> str:
        """The rules, as the person choosing a password reads them."""
        return (
            f"A password has at least {self.min_length} characters (at most "
            f"{MAX_PASSWORD_CHARS}; spaces and every printing character count, as typed); "
            "it may not be a commonly used "
            "password, contain your username, be one character or a short pattern repeated, "
            "be a run of consecutive letters, digits or keys (like 'abcdef', '987654' or "
            "'qwerty'), or contain control characters. A few unrelated words make a good one."
        )

    def _refuse(self, reason: str) -> InvalidInput:
        return InvalidInput(f"{reason} {self.rules}", code="weak_password")

    def check(self, password: str, *, username: str = "") -> None:
        password = normalized(password)
        if len(password) < self.min_length:
            raise self._refuse(f"This password is shorter than {self.min_length} characters.")
        if len(password) > MAX_PASSWORD_CHARS:
            raise self._refuse(f"This password is longer than {MAX_PASSWORD_CHARS} characters.")
        if _has_control_character(password):
            raise self._refuse("This password contains control characters.")
        lowered = password.lower()
        if username and username.lower() in lowered:
            raise self._refuse("This password contains your username.")
        if lowered in common_passwords() or lowered.strip() in common_passwords():
            raise self._refuse("This password is among the most commonly used ones.")
        compact = "".join(lowered.split())
        if _is_repeated_pattern(compact):
            raise self._refuse("This password repeats one character or a short pattern.")
        if _is_run(compact):
            raise self._refuse("This password is a run of consecutive letters, digits or keys.")

    def hash(self, password: str) -> str:
        return self.hasher.hash(normalized(password))

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; costs the same time when there is no hash.

        A hash made before passwords were normalised holds the password as typed: a
        password whose normalised form differs is also tried as typed (then
        :meth:`needs_rehash` says to hash it again, normalised)."""
        form = normalized(password)
        if self._matches(password_hash, form):
            return True
        return form != password and self._matches(password_hash, password)

    def _matches(self, password_hash: str | None, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash or self._dummy_hash, password) and bool(
                password_hash
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str, password: str | None = None) -> bool:
        """Whether ``password_hash`` should be made again: older parameters, or (given the
        ``password`` that just matched it) a hash of the password as typed rather than
        normalised."""
        if self.hasher.check_needs_rehash(password_hash):
            return True
        if password is None:
            return False
        form = normalized(password)
        return form != password and not self._matches(password_hash, form)
