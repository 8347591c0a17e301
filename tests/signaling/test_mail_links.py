"""Invitations by email (send, resend, revoke) and password reset through a mailed link,
with a real SMTP server: recipients, subjects and links, and no case content in any mail."""

from __future__ import annotations

from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa

from rooms.storage.schema import password_resets
from signaling.settings import Settings
from tests.support.eventually import eventually
from tests.support.smtp import MailServer, Received, link_in, mail_settings
from tests.support.world import INTAKE, PASSWORD, World

CASE_WORDS = [INTAKE["description"], "Case A", "Ada Tenant", "Bo Landlord", "Harbor", "Penny Party"]


@pytest.fixture
def settings(tmp_path: Path, mail_server: MailServer) -> Settings:
    limits = {"password_reset_per_address": 3, "password_reset_per_client": 6}
    return mail_settings(tmp_path, mail_server, **limits)


def assert_no_case_content(received: Received) -> None:
    for word in CASE_WORDS:
        assert word.encode() not in received.data, word


async def mail_to(server: MailServer, address: str, count: int = 1) -> Received:
    await eventually(lambda: len(server.to(address)) >= count, what=f"mail {count} to {address}")
    return server.to(address)[count - 1]


async def test_an_emailed_invitation_arrives_and_its_link_makes_the_account(
    world: World, mail_server: MailServer
) -> None:
    case_a = world.cases["Case A"]
    nina = world.clients["nina"]
    status, body, _ = await nina.post(
        f"/api/cases/{case_a}/invitations",
        {"role": "party", "display_name": "Penny Party", "email": "Penny@Example.org"},
    )
    assert status == 201, body
    assert body["invitation"]["email"] == "Penny@example.org"
    received = await mail_to(mail_server, "Penny@example.org")
    assert received.subject == "You are invited to a case on Caucus"
    assert "as party, in a case on Caucus" in received.text()
    assert_no_case_content(received)
    path = link_in(received, "/invite/")
    assert path == body["url"]
    client = world.make_client()
    status, answer, _ = await client.post(
        f"/api/invitations/{path.removeprefix('/invite/')}/accept",
        {"username": "penny", "password": PASSWORD},
    )
    assert status == 201 and answer["case_id"] == case_a
    _, session, _ = await client.get("/api/session")
    assert session["user"]["email"] == "Penny@example.org"  # verified by accepting

    status, body, _ = await nina.post(
        f"/api/cases/{case_a}/invitations",
        {"role": "party", "display_name": "Bad", "email": "bad@@example.org"},
    )
    assert status == 400 and body["error"]["code"] == "invalid_email"


async def test_resend_gives_a_new_link_and_revoke_ends_it(
    world: World, mail_server: MailServer
) -> None:
    case_a = world.cases["Case A"]
    nina = world.clients["nina"]
    _, body, _ = await nina.post(
        f"/api/cases/{case_a}/invitations",
        {"role": "observer", "display_name": "Olive", "email": "olive@example.org"},
    )
    invitation_id = body["invitation"]["id"]
    first = link_in(await mail_to(mail_server, "olive@example.org"), "/invite/")
    status, body, _ = await nina.post(f"/api/cases/{case_a}/invitations/{invitation_id}/resend")
    assert status == 200, body
    second = link_in(await mail_to(mail_server, "olive@example.org", 2), "/invite/")
    assert second != first
    anonymous = world.make_client()
    status, _, _ = await anonymous.get("/api" + first.replace("/invite/", "/invitations/"))
    assert status == 410
    status, _, _ = await anonymous.get("/api" + second.replace("/invite/", "/invitations/"))
    assert status == 200

    status, body, _ = await nina.post(f"/api/cases/{case_a}/invitations/{invitation_id}/revoke")
    assert status == 200 and body["invitation"]["revoked_at"] is not None
    status, body, _ = await anonymous.get("/api" + second.replace("/invite/", "/invitations/"))
    assert status == 410 and body["error"]["code"] == "invitation_invalid"
    status, body, _ = await nina.post(f"/api/cases/{case_a}/invitations/{invitation_id}/resend")
    assert status == 409 and body["error"]["code"] == "invitation_revoked"
    # an invitation of another case is not found through this case
    status, _, _ = await world.clients["otto"].post(
        f"/api/cases/{world.cases['Case B']}/invitations/{invitation_id}/revoke"
    )
    assert status == 404
    assert len(mail_server.to("olive@example.org")) == 2


async def reset_user(world: World, name: str, email: str) -> str:
    user = await world.server.services.accounts.create_user(
        name, PASSWORD, email=email, email_verified=True
    )
    return user.id


async def test_forgot_password_mails_a_single_use_link_and_signs_out_everywhere_else(
    world: World, mail_server: MailServer
) -> None:
    await reset_user(world, "rosa", "rosa@example.org")
    elsewhere = await world.sign_in("rosa")
    browser = world.make_client()
    status, known, _ = await browser.post("/api/password/forgot", {"email": "ROSA@example.org"})
    assert status == 202
    status, unknown, _ = await browser.post("/api/password/forgot", {"email": "nobody@example.org"})
    assert status == 202 and unknown == known  # the same answer either way
    received = await mail_to(mail_server, "rosa@example.org")
    assert received.subject == "Reset your password on Caucus"
    assert "within 30 minutes" in received.text()
    path = link_in(received, "/reset/")
    token = path.removeprefix("/reset/")
    async with world.server.services.store.connect() as conn:
        stored = (await conn.execute(sa.select(password_resets.c.token_hash))).scalars().all()
    assert len(stored) == 1 and token not in stored[0]  # hashed at rest

    status, _, _ = await browser.get(f"/api/password/reset/{token}")
    assert status == 200
    status, body, _ = await browser.post(f"/api/password/reset/{token}", {"password": "short"})
    assert status == 400 and body["error"]["code"] == "weak_password"  # the link still works
    new = "a brand new passphrase 7"
    status, body, _ = await browser.post(f"/api/password/reset/{token}", {"password": new})
    assert status == 200 and body["stage"] == "active"
    _, session, _ = await browser.get("/api/session")
    assert session["user"]["username"] == "rosa"
    _, other, _ = await elsewhere.get("/api/session")
    assert other["stage"] == "anonymous"  # the other session ended
    notice = await mail_to(mail_server, "rosa@example.org", 2)
    assert notice.subject == "Your password on Caucus was changed"
    status, _, _ = await world.make_client().post(
        "/api/login", {"username": "rosa", "password": new}
    )
    assert status == 200

    for bad in (token, token[:-2] + "xx", "x" * 300):
        status, body, _ = await world.make_client().post(
            f"/api/password/reset/{bad}", {"password": "another new passphrase 8"}
        )
        assert status == 410 and body["error"]["code"] == "reset_invalid", bad
        assert "used already, has expired, or is incomplete" in body["error"]["message"]
    await eventually(lambda: len(mail_server.messages) >= 1)
    assert mail_server.to("nobody@example.org") == []


async def test_an_expired_link_is_refused_and_totp_is_still_asked(
    world: World, mail_server: MailServer
) -> None:
    user_id = await reset_user(world, "tess", "tess@example.org")
    accounts = world.server.services.accounts
    secret, _ = await accounts.totp_begin(user_id)
    await accounts.totp_confirm(user_id, pyotp.TOTP(secret).now())
    resets = world.server.services.resets
    browser = world.make_client()
    await browser.post("/api/password/forgot", {"email": "tess@example.org"})
    # the first mail told her two-step sign-in was turned on; the second holds the link
    token = link_in(await mail_to(mail_server, "tess@example.org", 2), "/reset/").removeprefix(
        "/reset/"
    )
    real_clock = resets.clock
    resets.clock = lambda: real_clock() + 31 * 60
    status, body, _ = await browser.get(f"/api/password/reset/{token}")
    assert status == 410 and body["error"]["code"] == "reset_invalid"
    resets.clock = real_clock
    status, body, _ = await browser.post(
        f"/api/password/reset/{token}", {"password": "a brand new passphrase 7"}
    )
    assert status == 200 and body["stage"] == "totp_required"
    _, session, _ = await browser.get("/api/session")
    assert session["stage"] == "totp_required"


async def test_reset_requests_are_limited_per_address_and_per_client(
    world: World, mail_server: MailServer
) -> None:
    await reset_user(world, "lena", "lena@example.org")
    client = world.make_client()
    for _ in range(3):
        status, _, _ = await client.post("/api/password/forgot", {"email": "lena@example.org"})
        assert status == 202
    status, body, response = await client.post(
        "/api/password/forgot", {"email": "lena@example.org"}
    )
    assert status == 429 and int(response.headers["Retry-After"]) > 0
    assert body["error"]["code"] == "rate_limited"
    for i in range(3):
        status, _, _ = await client.post("/api/password/forgot", {"email": f"x{i}@example.org"})
        assert status == 202
    status, _, _ = await client.post("/api/password/forgot", {"email": "y@example.org"})
    assert status == 429  # six requests from this client were answered
    await eventually(lambda: len(mail_server.to("lena@example.org")) == 3)
    status, body, _ = await world.make_client().post("/api/password/forgot", {"email": "lena"})
    assert status == 400 and body["error"]["code"] == "invalid_email"
