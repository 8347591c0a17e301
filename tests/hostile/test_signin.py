"""Hostile sign-in: guessing passwords and second factors, keeping an owner out, probing
re-authentication, abusing invitations, weak passwords.  Each test plays the attack over the
real HTTPS API (attackers on other loopback addresses) and checks what the attacker gets."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pyotp
import pytest
import sqlalchemy as sa

from rooms.accounts.accounts import User
from rooms.accounts.passwords import COMMON_PASSWORDS_FILE, common_passwords
from rooms.accounts.sessions import token_hash
from tests.support.world import INTAKE, PASSWORD, ApiClient, RunningServer

pytestmark = pytest.mark.store  # about SQL: runs on every database backend

OWNER_ADDRESS = "127.0.0.1"
DEVICE_COOKIE = "__Host-caucus_device"  # signaling.cookies.DEVICE_COOKIE, as browsers see it
trusted_devices = sa.table("trusted_devices", sa.column("token_hash"))


class AddressedClient(ApiClient):
    """A browser on another machine: its connections come from ``address``."""

    def __init__(self, base: str, address: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False, local_addr=(address, 0)),
            cookie_jar=aiohttp.CookieJar(unsafe=True),
        )
        self.csrf = None


@pytest.fixture
async def from_address(server: RunningServer) -> AsyncIterator[Callable[[str], ApiClient]]:
    """API clients (browsers) connecting from a given loopback address."""
    made: list[ApiClient] = []

    def make(address: str) -> ApiClient:
        client = AddressedClient(server.url, address)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def with_totp(server: RunningServer, name: str) -> tuple[User, pyotp.TOTP, float]:
    """``name`` with two-factor sign-in on.  Enrolment spends the previous 30-s step, so
    the codes of the current and the next step remain for sign-ins (answered with the
    moment they were taken at)."""
    accounts = server.services.accounts
    user = await accounts.create_user(name, PASSWORD)
    secret, _ = await accounts.totp_begin(user.id)
    totp = pyotp.TOTP(secret)
    now = time.time()
    await accounts.totp_confirm(user.id, totp.at(now - 30))
    return user, totp, now


def wrong_code(totp: pyotp.TOTP, now: float) -> str:
    valid = {totp.at(now + k * 30) for k in range(-2, 4)}
    return next(c for c in (f"{n:06d}" for n in range(100000, 999999, 7919)) if c not in valid)


async def login(client: ApiClient, name: str, password: str) -> tuple[int, Any, Any]:
    return await client.post("/api/login", {"username": name, "password": password})


async def test_totp_guesses_stay_limited_when_the_password_is_entered_again(
    server: RunningServer, from_address
) -> None:
    """An attacker who has the password cannot reset the second factor's failure count by
    signing in with the password again: 20 tries from 20 addresses give 5 guesses."""
    _, totp, now = await with_totp(server, "alice")
    answers = []
    for i in range(20):
        attacker = from_address(f"127.0.0.{i + 2}")
        status, body, _ = await login(attacker, "alice", PASSWORD)
        assert (status, body["stage"]) == (200, "totp_required")
        status, body, response = await attacker.post(
            "/api/login/totp", {"code": wrong_code(totp, now)}
        )
        answers.append((status, body["error"]["code"], response.headers.get("Retry-After")))
    assert [a[:2] for a in answers[:5]] == [(401, "invalid_code")] * 5
    assert all(status == 429 and code == "rate_limited" for status, code, _ in answers[5:])
    assert all(int(retry) > 0 for _, _, retry in answers[5:])


async def test_an_attacker_cannot_keep_the_owner_out(server: RunningServer, from_address) -> None:
    """Wrong passwords from elsewhere slow the attacker (429 + Retry-After, the same answer
    for a right and a wrong password) but not the owner's browser, which signed in before
    and holds a device cookie; the owner still needs the password and the second factor."""
    store = server.services.store
    _, totp, now = await with_totp(server, "admin2")
    owner = from_address(OWNER_ADDRESS)
    assert (await login(owner, "admin2", PASSWORD))[1]["stage"] == "totp_required"
    status, body, response = await owner.post("/api/login/totp", {"code": totp.at(now)})
    assert (status, body["stage"]) == (200, "active")
    cookie = next(
        h for h in response.headers.getall("Set-Cookie") if h.startswith(DEVICE_COOKIE + "=")
    )
    for attribute in ("httponly", "secure", "samesite=strict", "path=/"):
        assert attribute in cookie.lower()
    device = owner.cookie(DEVICE_COOKIE)
    assert device and len(device) >= 43
    async with store.connect() as conn:
        stored = (await conn.execute(sa.select(trusted_devices.c.token_hash))).scalars().all()
    assert stored == [token_hash(device)]  # only its hash is kept
    await owner.post("/api/logout")

    attacker = from_address("127.0.0.66")
    answers = []
    for _ in range(20):
        status, body, response = await login(attacker, "admin2", "not the password at all")
        answers.append((status, body, response.headers.get("Retry-After")))
    assert [a[0] for a in answers[:5]] == [401] * 5
    assert all(status == 429 for status, _, _ in answers[5:])
    assert all(retry is not None and int(retry) > 0 for _, _, retry in answers[5:])
    # While throttled, the right password gets exactly the wrong one's answer.
    right = await login(attacker, "admin2", PASSWORD)
    wrong = await login(attacker, "admin2", "another wrong password")
    assert right[0] == wrong[0] == 429
    assert right[1] == wrong[1] == answers[-1][1]
    assert right[1]["error"]["code"] == "rate_limited"
    assert 0 < int(right[2].headers["Retry-After"]) <= 900

    # The owner's browser signs in: password, then the second factor.
    status, body, _ = await login(owner, "admin2", PASSWORD)
    assert (status, body["stage"]) == (200, "totp_required")
    assert (await owner.get("/api/cases"))[0] == 403  # not in before the second factor
    status, body, _ = await owner.post("/api/login/totp", {"code": totp.at(now + 30)})
    assert (status, body["stage"]) == (200, "active")
    assert (await owner.get("/api/cases"))[0] == 200
    # ... while the attacker stays throttled, and so does a browser nobody trusts yet.
    assert (await login(attacker, "admin2", PASSWORD))[0] == 429
    assert (await login(from_address("127.0.0.67"), "admin2", PASSWORD))[0] == 429
    # A device cookie of another account does not help the attacker.
    stranger = from_address("127.0.0.66")
    stranger.http.cookie_jar.update_cookies({DEVICE_COOKIE: device})
    await server.services.accounts.create_user("mallory", PASSWORD)
    assert (await login(stranger, "mallory", "wrong wrong wrong"))[0] == 429  # same address


async def test_a_trusted_device_is_throttled_on_its_own(
    server: RunningServer, from_address
) -> None:
    """A device cookie is no free pass: its own failures slow it."""
    await server.services.accounts.create_user("bob", PASSWORD)
    owner = from_address(OWNER_ADDRESS)
    assert (await login(owner, "bob", PASSWORD))[1]["stage"] == "active"
    assert owner.cookie(DEVICE_COOKIE)
    await owner.post("/api/logout")
    statuses = [(await login(owner, "bob", "wrong password here"))[0] for _ in range(7)]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]


async def test_totp_disable_is_throttled_before_the_password_is_checked(
    server: RunningServer, from_address
) -> None:
    """Someone holding a signed-in session cannot guess the password at
    ``/api/account/totp/disable``: limited first, and limited alike for a right password."""
    _, totp, now = await with_totp(server, "carol")
    holder = from_address(OWNER_ADDRESS)
    await login(holder, "carol", PASSWORD)
    assert (await holder.post("/api/login/totp", {"code": totp.at(now)}))[0] == 200
    statuses = []
    for _ in range(8):
        status, _, _ = await holder.post(
            "/api/account/totp/disable",
            {"password": "a wrong guess 123", "code": wrong_code(totp, now)},
        )
        statuses.append(status)
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429] * 3
    right = await holder.post(
        "/api/account/totp/disable", {"password": PASSWORD, "code": wrong_code(totp, now)}
    )
    wrong = await holder.post(
        "/api/account/totp/disable", {"password": "a wrong guess 456", "code": totp.now()}
    )
    assert right[0] == wrong[0] == 429 and right[1] == wrong[1]
    assert "Retry-After" in right[2].headers
    user = await server.services.accounts.get((await holder.get("/api/session"))[1]["user"]["id"])
    assert user.totp_enabled


@pytest.fixture
async def invitation(server: RunningServer, from_address) -> Callable[[], Any]:
    """A neutral with a case; calling the fixture's value makes an invitation token."""
    await server.services.accounts.create_user("nina", PASSWORD, role="neutral")
    neutral = from_address(OWNER_ADDRESS)
    assert (await login(neutral, "nina", PASSWORD))[0] == 200
    status, body, _ = await neutral.post("/api/cases", INTAKE)
    assert status == 201, body
    case_id = body["case"]["id"]

    async def make(**fields: Any) -> tuple[int, Any]:
        status, body, _ = await neutral.post(
            f"/api/cases/{case_id}/invitations",
            {"role": "party", "display_name": "Pat Party", **fields},
        )
        return status, body

    return make


async def test_invitation_accept_is_throttled_and_refuses_taken_names_before_hashing(
    server: RunningServer, from_address, invitation
) -> None:
    accounts = server.services.accounts
    await accounts.create_user("taken-name", PASSWORD)
    hashed = []
    real_hash = accounts.policy.hash

    def counting_hash(password: str) -> str:
        hashed.append(1)
        return real_hash(password)

    accounts.policy.hash = counting_hash  # type: ignore[method-assign]
    token = (await invitation())[1]["token"]
    prober = from_address("127.0.0.80")
    answers = []
    for _ in range(14):
        status, body, response = await prober.post(
            f"/api/invitations/{token}/accept", {"username": "taken-name", "password": PASSWORD}
        )
        answers.append((status, body["error"]["code"], response.headers.get("Retry-After")))
    assert [a[:2] for a in answers[:10]] == [(409, "username_taken")] * 10
    assert all(status == 429 and int(retry) > 0 for status, _, retry in answers[10:])
    assert hashed == []  # a taken name never cost a hash
    # The invitation itself is throttled: another address probing it waits too ...
    other = from_address("127.0.0.81")
    status, _, _ = await other.post(
        f"/api/invitations/{token}/accept", {"username": "fresh-name", "password": PASSWORD}
    )
    assert status == 429
    # ... and so is the address, on another invitation.
    second = (await invitation())[1]["token"]
    status, _, _ = await prober.post(
        f"/api/invitations/{second}/accept", {"username": "fresh-name", "password": PASSWORD}
    )
    assert status == 429
    # Someone else accepts the second invitation normally.
    status, body, _ = await other.post(
        f"/api/invitations/{second}/accept", {"username": "fresh-name", "password": PASSWORD}
    )
    assert status == 201, body


async def test_a_password_is_taken_as_typed_at_sign_up_and_sign_in(
    server: RunningServer, from_address, invitation
) -> None:
    spaced = "  " + PASSWORD + " "
    token = (await invitation())[1]["token"]
    invitee = from_address("127.0.0.90")
    status, body, _ = await invitee.post(
        f"/api/invitations/{token}/accept", {"username": "spacey", "password": spaced}
    )
    assert status == 201, body
    assert (await login(from_address("127.0.0.91"), "spacey", spaced))[0] == 200
    assert (await login(from_address("127.0.0.92"), "spacey", PASSWORD))[0] == 401


WEAK = {
    "aaaaaaaaaaaa": "commonly used",
    "eeeeeeeeeeeeeeee": "repeats",
    "123456789012": "commonly used",
    "\x00" * 12: "control characters",
    "abcdefghijklmnop": "commonly used",
    "098765432109": "run of consecutive",
    "mnopqrstuvwx": "run of consecutive",
    "qwertyuiopasdf": "run of consecutive",
    "abcabcabcabc": "repeats",
    "zazazazazazaza": "repeats",
    "correct\thorse battery": "control characters",
}


@pytest.mark.parametrize("password", list(WEAK))
async def test_weak_passwords_are_refused_with_the_rules(
    server: RunningServer, from_address, invitation, password: str
) -> None:
    token = (await invitation())[1]["token"]
    status, body, _ = await from_address("127.0.0.95").post(
        f"/api/invitations/{token}/accept", {"username": "weakling", "password": password}
    )
    assert (status, body["error"]["code"]) == (400, "weak_password"), body
    message = body["error"]["message"]
    assert WEAK[password] in message
    for rule in ("at least 12 characters", "commonly used", "consecutive", "control characters"):
        assert rule in message


async def test_a_breached_password_deep_in_the_list_is_refused(
    server: RunningServer, from_address, invitation
) -> None:
    header = COMMON_PASSWORDS_FILE.read_text().splitlines()[:12]
    assert any("10-million-password-list-top-100000" in line for line in header)
    assert len(common_passwords()) > 38_000
    lines = COMMON_PASSWORDS_FILE.read_text().splitlines()
    marker = next(i for i, line in enumerate(lines) if line.startswith("# --- Caucus"))
    # the least common password of the corpus that passes the length and pattern rules
    late = next(p for p in reversed(lines[:marker]) if len(p) >= 12 and p.isalnum())
    assert lines.index(late) > 30_000
    token = (await invitation())[1]["token"]
    status, body, _ = await from_address("127.0.0.96").post(
        f"/api/invitations/{token}/accept", {"username": "breached", "password": late}
    )
    assert (status, body["error"]["code"]) == (400, "weak_password")
    token = (await invitation())[1]["token"]
    status, body, _ = await from_address("127.0.0.96").post(
        f"/api/invitations/{token}/accept", {"username": "breached", "password": PASSWORD}
    )
    assert status == 201, body


@pytest.mark.parametrize("hours", [0.01, 0.5, 0.999, 721, 10**9])
async def test_invitation_lifetimes_out_of_bounds_are_refused(invitation, hours: float) -> None:
    status, body = await invitation(expires_in_hours=hours)
    assert (status, body["error"]["code"]) == (400, "invalid_input"), body


async def test_invitation_lifetimes_within_bounds_are_kept(invitation) -> None:
    before = time.time()
    for hours in (1, 720):
        status, body = await invitation(expires_in_hours=hours)
        assert status == 201, body
        assert before + hours * 3600 - 5 < body["invitation"]["expires_at"]
        assert body["invitation"]["expires_at"] < time.time() + hours * 3600 + 5
