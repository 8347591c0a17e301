"""User accounts: creation, password login, TOTP two-factor with recovery codes.

Guessing is throttled (``rooms.accounts.throttle``): password failures count per account and client
address, per account over every client it does not know, and per client address; a browser
that completed a sign-in of the account before (``rooms.accounts.devices``) counts only its own
failures, so nobody can keep the owner out by failing on purpose.  Second-factor failures
count per account (or per trusted device) and are forgotten only when a sign-in completes,
never when a password is right.

TOTP seeds are kept sealed by the master key (``MasterKey.seal``, bound to the user's id),
so a copy of the database alone does not give anyone's second factor away."""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from rooms.accounts.addresses import VERIFY, VERIFY_LIFETIME, mail_address_link, optional_email
from rooms.accounts.devices import TrustedDevices
from rooms.accounts.passwords import PasswordPolicy
from rooms.accounts.sessions import STAGE_ACTIVE, STAGE_PASSWORD, STAGE_TOTP
from rooms.accounts.throttle import LoginThrottle
from rooms.accounts.totp import (
    match_step,
    new_recovery_code,
    new_totp_secret,
    provisioning_uri,
    recovery_hash,
)
from rooms.errors import Conflict, IntegrityFailure, InvalidInput, NotFound, Unauthenticated
from rooms.storage.outbox import enqueue
from rooms.storage.schema import new_id, recovery_codes, users
from rooms.storage.store import Store
from rooms.vault.format import VaultIntegrityError
from rooms.vault.masterkey import MasterKey, sealed_by

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
GLOBAL_ROLES = ("admin", "neutral", "member")
WRONG_CREDENTIALS = "Wrong username or password."


@dataclass(frozen=True)
class User:
    id: str
    username: str
    display_name: str
    role: str
    must_change_password: bool
    totp_enabled: bool
    email: str | None = None
    #: The address proved it receives mail; until then only its verification link is sent.
    email_verified: bool = False

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role,
            "must_change_password": self.must_change_password,
            "totp_enabled": self.totp_enabled,
            "email": self.email,
            "email_verified": self.email_verified,
        }


def _user(row: sa.Row) -> User:
    return User(
        row.id,
        row.username,
        row.display_name,
        row.role,
        bool(row.must_change_password),
        bool(row.totp_enabled),
        row.email,
        row.email_verified_at is not None,
    )


def normalize_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME_RE.fullmatch(name):
        raise InvalidInput(
            "A username has 3 to 64 characters: letters, digits, '.', '_' or '-'.",
            code="invalid_username",
        )
    return name


class Accounts:
    """Owns the users table, recovery codes and the rules of logging in."""

    def __init__(
        self,
        store: Store,
        policy: PasswordPolicy,
        throttle: LoginThrottle,
        clock: Callable[[], float] = time.time,
        *,
        sealer: MasterKey,
        devices: TrustedDevices | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.throttle = throttle
        self.clock = clock
        #: Browsers that completed a sign-in (device cookies).
        self.devices = devices or TrustedDevices(store, clock=clock)
        #: Seals TOTP seeds at rest.
        self.sealer = sealer

    def _seal(self, user_id: str, secret: str) -> str:
        return self.sealer.seal(secret.encode("ascii"), user_id.encode())

    def _totp_secret(self, row: sa.Row) -> str:
        """The row's TOTP seed in clear (a seed stored before sealing is taken as is)."""
        stored: str = row.totp_secret
        if sealed_by(stored) is None:
            return stored
        try:
            return self.sealer.open_sealed(stored, row.id.encode()).decode("ascii")
        except VaultIntegrityError:
            raise IntegrityFailure(
                "This account's two-factor secret cannot be read (damaged, or sealed by "
                "another master key); an admin can reset two-factor sign-in.",
                code="totp_secret_unreadable",
            ) from None

    async def seal_plain_secrets(self) -> int:
        """Seal TOTP seeds stored in clear by an earlier version; answers how many."""
        async with self.store.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(users.c.id, users.c.totp_secret).where(
                        users.c.totp_secret.is_not(None)
                    )
                )
            ).all()
            plain = [r for r in rows if sealed_by(r.totp_secret) is None]
            for row in plain:
                await conn.execute(
                    sa.update(users)
                    .where(users.c.id == row.id, users.c.totp_secret == row.totp_secret)
                    .values(totp_secret=self._seal(row.id, row.totp_secret))
                )
        return len(plain)

    async def security_notice(
        self, conn: Any, email: str | None, kind: str, *, verified: bool
    ) -> None:
        """Tell the account's owner by mail, in the transaction of the change (none when
        the account has no address, or one not verified yet)."""
        if email and verified:
            await enqueue(conn, kind, email, {"at": self.clock()}, now=self.clock())

    # -- users ---------------------------------------------------------------------------
    async def create_user(
        self,
        username: str,
        password: str,
        *,
        role: str = "member",
        display_name: str | None = None,
        must_change_password: bool = False,
        check_policy: bool = True,
        email: str | None = None,
        email_verified: bool = False,
    ) -> User:
        """A new account. An address not ``email_verified`` (one an admin typed) is sent a
        verification link in the same transaction, and nothing else until it is opened."""
        name = normalize_username(username)
        address = optional_email(email)
        if role not in GLOBAL_ROLES:
            raise InvalidInput(f"Unknown role {role!r}.", code="invalid_role")
        if check_policy:
            self.policy.check(password, username=name)
        # A taken name is refused before the (deliberately slow) hashing.
        async with self.store.connect() as conn:
            if (await conn.execute(sa.select(users.c.id).where(users.c.username == name))).first():
                raise Conflict(f"The username {name!r} is taken.", code="username_taken")
        user_id = new_id()
        now = self.clock()
        row = {
            "id": user_id,
            "username": name,
            "display_name": (display_name or name).strip()[:200] or name,
            "password_hash": self.policy.hash(password),
            "role": role,
            "must_change_password": must_change_password,
            "totp_secret": None,
            "totp_enabled": False,
            "totp_last_step": None,
            "created_at": now,
            "email": address,
            "email_verified_at": now if address and email_verified else None,
        }
        async with self.store.begin() as conn:
            exists = (
                await conn.execute(sa.select(users.c.id).where(users.c.username == name))
            ).first()
            if exists:
                raise Conflict(f"The username {name!r} is taken.", code="username_taken")
            await conn.execute(sa.insert(users).values(**row))
            if address and not email_verified:
                await mail_address_link(
                    conn, user_id, address, purpose=VERIFY, lifetime=VERIFY_LIFETIME, now=now
                )
        return await self.get(user_id)

    async def resend_verification(self, user_id: str) -> User:
        """A new verification link for the account's unverified address (the earlier
        links stop working)."""
        async with self.store.begin() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).first()
            if row is None:
                raise NotFound("No such user.")
            if not row.email:
                raise Conflict("This account has no email address.", code="no_email")
            if row.email_verified_at is not None:
                raise Conflict("This address is verified already.", code="email_verified")
            await mail_address_link(
                conn, user_id, row.email, purpose=VERIFY, lifetime=VERIFY_LIFETIME, now=self.clock()
            )
        return await self.get(user_id)

    async def get(self, user_id: str) -> User:
        async with self.store.connect() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).first()
        if row is None:
            raise NotFound("No such user.")
        return _user(row)

    async def list_users(self) -> list[User]:
        async with self.store.connect() as conn:
            rows = (await conn.execute(sa.select(users).order_by(users.c.username))).all()
        return [_user(r) for r in rows]

    async def count_admins(self) -> int:
        async with self.store.connect() as conn:
            return (
                await conn.execute(
                    sa.select(sa.func.count()).select_from(users).where(users.c.role == "admin")
                )
            ).scalar_one()

    def one_time_password(self) -> str:
        return secrets.token_urlsafe(12)

    async def ensure_first_admin(self, username: str = "admin") -> str | None:
        """Create the first admin with a one-time password; ``None`` if an admin exists."""
        if await self.count_admins():
            return None
        password = self.one_time_password()
        await self.create_user(
            username,
            password,
            role="admin",
            display_name="Administrator",
            must_change_password=True,
            check_policy=False,
        )
        return password

    # -- login ---------------------------------------------------------------------------
    @staticmethod
    def _password_subjects(name: str, client: str, device: str | None) -> tuple[str, ...]:
        """What a password failure is charged to: a trusted device only its own count;
        anyone else the account from that address, the account from every unknown client,
        and the address."""
        if device is not None:
            return (f"device:{device}",)
        return (f"pair:{name}|{client}", f"user:{name}", f"addr:{client}")

    @staticmethod
    def _factor_subjects(user_id: str, device: str | None) -> tuple[str, ...]:
        """What a second-factor failure is charged to."""
        if device is not None:
            return (f"device:{device}",)
        return (f"totp:{user_id}",)

    async def _row_by_name(self, name: str) -> sa.Row | None:
        async with self.store.connect() as conn:
            return (await conn.execute(sa.select(users).where(users.c.username == name))).first()

    async def authenticate(
        self, username: str, password: str, client: str, device_token: str | None = None
    ) -> tuple[User, str]:
        """Check a password login; answer the user and the stage their session starts in.

        Throttled before the password is looked at, so a refusal (429, with when to retry)
        says nothing about whether the password was right."""
        name = username.strip().lower()[:64]
        row = await self._row_by_name(name)
        device = await self.devices.recognise(device_token, row.id) if row else None
        subjects = self._password_subjects(name, client, device)
        await self.throttle.check(*subjects, limit="login")
        ok = self.policy.verify(row.password_hash if row else None, password)
        if row is None or not ok:
            await self.throttle.record_failure(*subjects)
            raise Unauthenticated(WRONG_CREDENTIALS, code="invalid_credentials")
        if self.policy.needs_rehash(row.password_hash, password):
            await self._set_password_hash(row.id, self.policy.hash(password))
        user = _user(row)
        return user, self.stage_after_password(user)

    async def complete_sign_in(
        self, user: User, client: str, device_token: str | None = None
    ) -> str | None:
        """Every factor passed: forget this client's failures and the second factor's;
        answers a new device token for the browser, or None when it holds a valid one."""
        device = await self.devices.recognise(device_token, user.id)
        subjects = [f"pair:{user.username}|{client}", f"totp:{user.id}"]
        if device is not None:
            subjects.append(f"device:{device}")
        await self.throttle.clear(*subjects)
        if device is not None:
            await self.devices.touch(device)
            return None
        return await self.devices.issue(user.id)

    @staticmethod
    def stage_after_password(user: User) -> str:
        if user.totp_enabled:
            return STAGE_TOTP
        return STAGE_PASSWORD if user.must_change_password else STAGE_ACTIVE

    @staticmethod
    def stage_after_second_factor(user: User) -> str:
        return STAGE_PASSWORD if user.must_change_password else STAGE_ACTIVE

    async def _set_password_hash(self, user_id: str, password_hash: str) -> None:
        async with self.store.begin() as conn:
            await conn.execute(
                sa.update(users).where(users.c.id == user_id).values(password_hash=password_hash)
            )

    async def change_password(self, user_id: str, current: str, new: str) -> User:
        async with self.store.connect() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).one()
        subject = f"reauth:{user_id}"
        await self.throttle.check(subject, limit="password_confirm")
        if not self.policy.verify(row.password_hash, current):
            await self.throttle.record_failure(subject)
            raise Unauthenticated("Your current password is wrong.", code="invalid_credentials")
        await self.throttle.clear(subject)
        if hmac.compare_digest(current.encode(), new.encode()):
            raise InvalidInput(
                "Choose a new password different from the current one.", code="weak_password"
            )
        self.policy.check(new, username=row.username)
        async with self.store.begin() as conn:
            await conn.execute(
                sa.update(users)
                .where(users.c.id == user_id)
                .values(password_hash=self.policy.hash(new), must_change_password=False)
            )
            if not row.must_change_password:  # replacing a one-time password is no news
                await self.security_notice(
                    conn, row.email, "password_changed", verified=row.email_verified_at is not None
                )
        return await self.get(user_id)

    # -- TOTP ----------------------------------------------------------------------------
    def _match_step(self, secret: str, code: str) -> int | None:
        return match_step(secret, code, self.clock())

    async def verify_second_factor(
        self, user_id: str, code: str, client: str, device_token: str | None = None
    ) -> User:
        """Accept a fresh TOTP code or an unused recovery code, once.

        Failures count per account (or per trusted device); only a completed sign-in
        (:meth:`complete_sign_in`) forgets them."""
        user, _factor = await self._second_factor(user_id, code, client, device_token)
        return user

    async def reauthenticate(
        self,
        user_id: str,
        password: str,
        code: str | None,
        client: str,
        device_token: str | None = None,
    ) -> str:
        """A fresh proof of identity from a signed-in user (right before signing an
        agreement): the password, and a second-factor code when two-factor sign-in is on.

        Answers how it was proved: ``password``, ``password+totp`` or
        ``password+recovery_code``. Throttled like every password confirmation (and the
        code like every second factor), so it cannot be used to guess either."""
        async with self.store.connect() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).first()
        if row is None:
            raise Unauthenticated("Sign in first.", code="unauthenticated")
        if row.totp_enabled and not (code or "").strip():
            raise InvalidInput(
                "Two-factor sign-in is on: enter a code from your authenticator app too.",
                code="code_required",
            )
        subject = f"reauth:{user_id}"
        await self.throttle.check(subject, limit="password_confirm")
        if not self.policy.verify(row.password_hash, password):
            await self.throttle.record_failure(subject)
            raise Unauthenticated("Your password is wrong.", code="invalid_credentials")
        await self.throttle.clear(subject)
        if not row.totp_enabled:
            return "password"
        _user_row, factor = await self._second_factor(user_id, code or "", client, device_token)
        return f"password+{factor}"

    async def _second_factor(
        self, user_id: str, code: str, client: str, device_token: str | None
    ) -> tuple[User, str]:
        """:meth:`verify_second_factor`, also answering which factor it was (``totp`` or
        ``recovery_code``)."""
        async with self.store.connect() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).one()
        device = await self.devices.recognise(device_token, user_id)
        subjects = self._factor_subjects(user_id, device)
        await self.throttle.check(*subjects, limit="second_factor")
        if row.totp_enabled and row.totp_secret:
            step = self._match_step(self._totp_secret(row), code)
            if step is not None:
                async with self.store.begin() as conn:
                    # The guarded update makes a replayed or older code lose, also under races.
                    result = await conn.execute(
                        sa.update(users)
                        .where(
                            users.c.id == user_id,
                            sa.or_(users.c.totp_last_step.is_(None), users.c.totp_last_step < step),
                        )
                        .values(totp_last_step=step)
                    )
                if result.rowcount == 1:
                    return _user(row), "totp"
                await self.throttle.record_failure(*subjects)
                raise Unauthenticated(
                    "This code was already used. Wait for the next code.", code="code_reused"
                )
            if await self._use_recovery_code(user_id, code):
                return _user(row), "recovery_code"
        await self.throttle.record_failure(*subjects)
        raise Unauthenticated("The code is wrong or has expired.", code="invalid_code")

    async def _use_recovery_code(self, user_id: str, code: str) -> bool:
        if len(code) > 64:
            return False
        async with self.store.begin() as conn:
            result = await conn.execute(
                sa.update(recovery_codes)
                .where(
                    recovery_codes.c.user_id == user_id,
                    recovery_codes.c.code_hash == recovery_hash(code),
                    recovery_codes.c.used_at.is_(None),
                )
                .values(used_at=self.clock())
            )
        return result.rowcount == 1

    async def totp_begin(self, user_id: str) -> tuple[str, str]:
        """Start enrolment: a new secret (not yet enabled) and its provisioning URI."""
        user = await self.get(user_id)
        if user.totp_enabled:
            raise Conflict("Two-factor sign-in is already on.", code="totp_enabled")
        secret = new_totp_secret()
        async with self.store.begin() as conn:
            await conn.execute(
                sa.update(users)
                .where(users.c.id == user_id)
                .values(totp_secret=self._seal(user_id, secret), totp_last_step=None)
            )
        uri = provisioning_uri(secret, user.username)
        return secret, uri

    async def totp_confirm(self, user_id: str, code: str) -> list[str]:
        """Turn TOTP on after a first valid code; answer ten new recovery codes."""
        async with self.store.connect() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).one()
        if row.totp_enabled:
            raise Conflict("Two-factor sign-in is already on.", code="totp_enabled")
        if not row.totp_secret:
            raise InvalidInput("Start the enrolment first.", code="totp_not_started")
        step = self._match_step(self._totp_secret(row), code)
        if step is None:
            raise Unauthenticated("The code is wrong or has expired.", code="invalid_code")
        codes = [new_recovery_code() for _ in range(10)]
        async with self.store.begin() as conn:
            await conn.execute(
                sa.update(users)
                .where(users.c.id == user_id)
                .values(totp_enabled=True, totp_last_step=step)
            )
            await conn.execute(sa.delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
            await conn.execute(
                sa.insert(recovery_codes),
                [
                    {"id": new_id(), "user_id": user_id, "code_hash": recovery_hash(c)}
                    for c in codes
                ],
            )
            await self.security_notice(
                conn, row.email, "totp_enabled", verified=row.email_verified_at is not None
            )
        return codes

    async def totp_disable(
        self, user_id: str, password: str, code: str, client: str, device_token: str | None = None
    ) -> User:
        """Turn TOTP off with the password and a code.  Throttled first (password and
        second-factor counts alike), so a refusal does not tell a right password."""
        async with self.store.connect() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).one()
        if not row.totp_enabled:
            raise Conflict("Two-factor sign-in is off already.", code="totp_disabled")
        device = await self.devices.recognise(device_token, user_id)
        reauth = f"reauth:{user_id}"
        await self.throttle.check(
            reauth, *self._factor_subjects(user_id, device), limit="password_confirm"
        )
        if not self.policy.verify(row.password_hash, password):
            await self.throttle.record_failure(reauth)
            raise Unauthenticated("Your password is wrong.", code="invalid_credentials")
        await self.verify_second_factor(user_id, code, client, device_token)
        async with self.store.begin() as conn:
            await conn.execute(
                sa.update(users)
                .where(users.c.id == user_id)
                .values(totp_enabled=False, totp_secret=None, totp_last_step=None)
            )
            await conn.execute(sa.delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
            await self.security_notice(
                conn, row.email, "totp_disabled", verified=row.email_verified_at is not None
            )
        return await self.get(user_id)
