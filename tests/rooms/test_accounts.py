"""Accounts on both backends: passwords, throttling, TOTP with replay protection, recovery."""

from __future__ import annotations

import unicodedata

import pyotp
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from rooms.accounts.accounts import Accounts
from rooms.accounts.passwords import PasswordPolicy
from rooms.accounts.sessions import STAGE_ACTIVE, STAGE_PASSWORD, STAGE_TOTP
from rooms.accounts.throttle import LoginThrottle
from rooms.errors import (
    Conflict,
    IntegrityFailure,
    InvalidInput,
    RateLimited,
    Unauthenticated,
)
from rooms.storage.schema import recovery_codes, users
from rooms.vault.masterkey import MasterKey

pytestmark = pytest.mark.store  # about SQL: runs on every database backend

GOOD = "a sound passphrase 42"
# Still argon2id; a lower cost keeps the suite quick.
FAST_ARGON2 = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(store, clock) -> Accounts:
    throttle = LoginThrottle(store, max_failures=5, window=900, clock=clock)
    return Accounts(
        store, PasswordPolicy(12, FAST_ARGON2), throttle, clock=clock, sealer=MasterKey.generate()
    )


async def test_password_hash_is_argon2id(accounts: Accounts, store) -> None:
    await accounts.create_user("alice", GOOD)
    async with store.connect() as conn:
        stored = (await conn.execute(sa.select(users.c.password_hash))).scalar_one()
    assert stored.startswith("$argon2id$")
    assert GOOD not in stored


@pytest.mark.parametrize("password", ["short", "password1234", "alice-and-more-text"])
async def test_weak_passwords_refused(accounts: Accounts, store, password: str) -> None:
    with pytest.raises(InvalidInput) as err:
        await accounts.create_user("alice", password)
    assert err.value.code == "weak_password"
    async with store.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(users))).scalar() == 0


async def test_username_rules_and_uniqueness(accounts: Accounts) -> None:
    with pytest.raises(InvalidInput):
        await accounts.create_user("a b", GOOD)
    await accounts.create_user("Alice", GOOD)
    with pytest.raises(Conflict):
        await accounts.create_user("alice", GOOD)


async def test_wrong_password_and_unknown_user_answer_alike(accounts: Accounts) -> None:
    await accounts.create_user("alice", GOOD)
    with pytest.raises(Unauthenticated) as wrong:
        await accounts.authenticate("alice", "not the password", "10.0.0.1")
    with pytest.raises(Unauthenticated) as unknown:
        await accounts.authenticate("nobody", "not the password", "10.0.0.2")
    assert (wrong.value.code, wrong.value.message) == (unknown.value.code, unknown.value.message)


async def test_a_password_is_the_same_however_its_accents_are_typed(
    accounts: Accounts, store
) -> None:
    """NFKC before hashing: "é" as one character (macOS, most keyboards) or as "e" and a
    combining accent (some phones, pasted text) is one password; a full-width digit is
    the digit."""
    composed = "Crème brûlée à 9 heures"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    await accounts.create_user("alice", decomposed)
    user, _ = await accounts.authenticate("alice", composed, "10.0.0.1")
    assert user.username == "alice"
    user, _ = await accounts.authenticate("alice", decomposed, "10.0.0.1")
    assert user.username == "alice"
    full_width_nine = "Crème brûlée à \uff19 heures"
    await accounts.create_user("bob", full_width_nine)
    user, _ = await accounts.authenticate("bob", composed, "10.0.0.2")
    assert user.username == "bob"
    with pytest.raises(Unauthenticated):
        await accounts.authenticate("alice", composed.upper(), "10.0.0.3")  # case counts


async def test_a_hash_of_the_password_as_typed_still_signs_in_and_is_made_again(
    accounts: Accounts, store
) -> None:
    """An account whose hash predates normalisation (the password as typed, decomposed)
    signs in with what it typed, and its hash is replaced by the normalised one."""
    typed = unicodedata.normalize("NFD", "Crème brûlée à 9 heures")
    await accounts.create_user("alice", GOOD)
    before_normalising = accounts.policy.hasher.hash(typed)
    async with store.begin() as conn:
        await conn.execute(sa.update(users).values(password_hash=before_normalising))
    user, _ = await accounts.authenticate("alice", typed, "10.0.0.1")
    assert user.username == "alice"
    async with store.connect() as conn:
        stored = (await conn.execute(sa.select(users.c.password_hash))).scalar_one()
    assert stored != before_normalising
    assert accounts.policy.hasher.verify(stored, unicodedata.normalize("NFKC", typed))
    # and now the composed form works too
    user, _ = await accounts.authenticate("alice", unicodedata.normalize("NFC", typed), "10.0.0.1")
    assert user.username == "alice"


async def test_sixth_failure_in_window_is_rate_limited(accounts: Accounts, clock: Clock) -> None:
    await accounts.create_user("alice", GOOD)
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await accounts.authenticate("alice", "wrong password!", "10.0.0.1")
    with pytest.raises(RateLimited) as limited:
        await accounts.authenticate("alice", GOOD, "10.0.0.9")
    assert 0 < limited.value.retry_after <= 900
    clock.now += 901
    user, stage = await accounts.authenticate("alice", GOOD, "10.0.0.9")
    assert stage == STAGE_ACTIVE and user.username == "alice"


async def test_rate_limit_per_address(accounts: Accounts) -> None:
    for i in range(5):
        with pytest.raises(Unauthenticated):
            await accounts.authenticate(f"user{i}", "wrong password!", "10.0.0.7")
    with pytest.raises(RateLimited):
        await accounts.authenticate("someone", "wrong password!", "10.0.0.7")


async def test_first_admin_must_change_password(accounts: Accounts) -> None:
    password = await accounts.ensure_first_admin()
    assert password
    assert await accounts.ensure_first_admin() is None
    user, stage = await accounts.authenticate("admin", password, "10.0.0.1")
    assert stage == STAGE_PASSWORD
    await accounts.change_password(user.id, password, GOOD)
    _, stage = await accounts.authenticate("admin", GOOD, "10.0.0.1")
    assert stage == STAGE_ACTIVE


async def test_totp_enrol_login_replay_and_recovery(accounts: Accounts, clock: Clock, store):
    user = await accounts.create_user("alice", GOOD)
    secret, uri = await accounts.totp_begin(user.id)
    assert uri.startswith("otpauth://totp/Caucus:alice?") and secret in uri
    totp = pyotp.TOTP(secret)
    with pytest.raises(Unauthenticated):
        await accounts.totp_confirm(user.id, "000000" if totp.at(clock.now) != "000000" else "1")
    codes = await accounts.totp_confirm(user.id, totp.at(clock.now))
    assert len(codes) == 10 and len(set(codes)) == 10
    async with store.connect() as conn:
        stored = (await conn.execute(sa.select(recovery_codes.c.code_hash))).scalars().all()
    assert not set(codes) & set(stored)

    _, stage = await accounts.authenticate("alice", GOOD, "10.0.0.1")
    assert stage == STAGE_TOTP
    # The code used for confirmation is spent: replay refused.
    with pytest.raises(Unauthenticated) as replay:
        await accounts.verify_second_factor(user.id, totp.at(clock.now), "10.0.0.1")
    assert replay.value.code == "code_reused"
    clock.now += 30
    await accounts.verify_second_factor(user.id, totp.at(clock.now), "10.0.0.1")
    with pytest.raises(Unauthenticated):
        await accounts.verify_second_factor(user.id, totp.at(clock.now), "10.0.0.1")
    # An expired code (three steps old) is refused.
    with pytest.raises(Unauthenticated) as expired:
        await accounts.verify_second_factor(user.id, totp.at(clock.now - 90), "10.0.0.1")
    assert expired.value.code == "invalid_code"
    # Recovery codes work once each.
    await accounts.verify_second_factor(user.id, codes[0], "10.0.0.1")
    with pytest.raises(Unauthenticated):
        await accounts.verify_second_factor(user.id, codes[0], "10.0.0.1")


async def test_totp_disable_needs_password_and_code(accounts: Accounts, clock: Clock) -> None:
    user = await accounts.create_user("alice", GOOD)
    secret, _ = await accounts.totp_begin(user.id)
    totp = pyotp.TOTP(secret)
    await accounts.totp_confirm(user.id, totp.at(clock.now))
    clock.now += 30
    with pytest.raises(Unauthenticated):
        await accounts.totp_disable(user.id, "wrong password!", totp.at(clock.now), "10.0.0.1")
    assert (await accounts.get(user.id)).totp_enabled
    updated = await accounts.totp_disable(user.id, GOOD, totp.at(clock.now), "10.0.0.1")
    assert not updated.totp_enabled


async def totp_user(accounts: Accounts, clock: Clock, name: str = "sealy") -> tuple[str, str]:
    user = await accounts.create_user(name, GOOD)
    secret, _ = await accounts.totp_begin(user.id)
    await accounts.totp_confirm(user.id, pyotp.TOTP(secret).at(clock.now))
    clock.now += 30
    return user.id, secret


async def stored_seed(store, user_id: str) -> str:
    async with store.connect() as conn:
        query = sa.select(users.c.totp_secret).where(users.c.id == user_id)
        return (await conn.execute(query)).scalar_one()


async def test_totp_seeds_are_sealed_at_rest(accounts: Accounts, clock: Clock, store) -> None:
    user_id, secret = await totp_user(accounts, clock)
    stored = await stored_seed(store, user_id)
    assert secret not in stored and stored.startswith(f"s1.{accounts.sealer.key_id}.")
    await accounts.verify_second_factor(user_id, pyotp.TOTP(secret).at(clock.now), "10.0.0.1")


async def test_a_tampered_or_moved_seed_is_refused_clearly(
    accounts: Accounts, clock: Clock, store
) -> None:
    alice, _ = await totp_user(accounts, clock, "alice")
    bob, bob_secret = await totp_user(accounts, clock, "bob")
    alice_seed = await stored_seed(store, alice)
    # Bob's row given Alice's sealed seed (bound to Alice's id), then a flipped character
    for forged in (
        alice_seed,
        alice_seed[:-3] + ("A" if alice_seed[-3] != "A" else "B") + alice_seed[-2:],
    ):
        async with store.begin() as conn:
            await conn.execute(sa.update(users).where(users.c.id == bob).values(totp_secret=forged))
        with pytest.raises(IntegrityFailure) as refused:
            await accounts.verify_second_factor(
                bob, pyotp.TOTP(bob_secret).at(clock.now), "10.0.0.1"
            )
        assert refused.value.code == "totp_secret_unreadable"


async def test_seeds_stored_in_clear_are_sealed_at_start(
    accounts: Accounts, clock: Clock, store
) -> None:
    user_id, secret = await totp_user(accounts, clock)
    async with store.begin() as conn:  # as an earlier version stored it
        await conn.execute(sa.update(users).where(users.c.id == user_id).values(totp_secret=secret))
    await accounts.verify_second_factor(user_id, pyotp.TOTP(secret).at(clock.now), "10.0.0.1")
    assert await accounts.seal_plain_secrets() == 1
    assert await accounts.seal_plain_secrets() == 0
    assert (await stored_seed(store, user_id)).startswith("s1.")
    clock.now += 30
    await accounts.verify_second_factor(user_id, pyotp.TOTP(secret).at(clock.now), "10.0.0.1")
