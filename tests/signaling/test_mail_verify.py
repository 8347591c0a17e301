"""Addresses an admin sets (the user form and API, ``caucus user add --email``) are
verified by a link, through a real SMTP server: until the link is opened the account is
sent nothing else, password resets included; admins see which addresses are verified and
can send the link again."""

from __future__ import annotations

import time
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa

from rooms.storage.schema import outbox
from signaling.settings import Settings
from tests.support.eventually import eventually
from tests.support.smtp import MailServer, Received, link_in, mail_settings
from tests.support.world import World

pytestmark = pytest.mark.store  # about SQL: runs on every database backend

PREFIX = "/account/email/confirm/"


@pytest.fixture
def settings(tmp_path: Path, mail_server: MailServer) -> Settings:
    return mail_settings(tmp_path, mail_server)


async def mails_to(server: MailServer, address: str, count: int) -> list[Received]:
    await eventually(lambda: len(server.to(address)) >= count, what=f"{count} mails to {address}")
    return server.to(address)


async def kinds_to(world: World, address: str) -> list[str]:
    """Every mail ever written for ``address``, in order (the outbox keeps sent rows)."""
    async with world.server.services.store.connect() as conn:
        rows = await conn.execute(
            sa.select(outbox.c.kind)
            .where(outbox.c.recipient == address)
            .order_by(outbox.c.created_at)
        )
        return [row.kind for row in rows]


async def listed(world: World, username: str) -> dict:
    status, body, _ = await world.clients["root"].get("/api/admin/users")
    assert status == 200, body
    (user,) = [u for u in body["users"] if u["username"] == username]
    return user


async def test_an_address_set_by_an_admin_gets_nothing_but_its_link_until_verified(
    world: World, mail_server: MailServer
) -> None:
    root = world.clients["root"]
    status, body, _ = await root.post(
        "/api/admin/users",
        {
            "username": "vince",
            "role": "neutral",
            "display_name": "Vince Secretname",
            "email": "vince@example.org",
        },
    )
    assert status == 201, body
    assert body["user"]["email_verified"] is False
    vince_id = body["user"]["id"]
    (mail,) = await mails_to(mail_server, "vince@example.org", 1)
    assert mail.subject == "Verify your email address on Caucus"
    path = link_in(mail, PREFIX)
    raw = mail.data.replace(b"=\r\n", b"")  # quoted-printable soft line breaks
    assert b"https://caucus.example" + path.encode() in raw  # the link, in the raw bytes
    assert "within 7 days" in mail.text()
    for secret in (b"Vince Secretname", b"vince\r", b"Case A", b"Secret"):
        assert secret not in raw
    assert (await listed(world, "vince"))["email_verified"] is False

    # until verified: the reset request answers the same, and nothing is mailed
    anonymous = world.make_client()
    status, answer, _ = await anonymous.post("/api/password/forgot", {"email": "vince@example.org"})
    status_none, answer_none, _ = await anonymous.post(
        "/api/password/forgot", {"email": "nobody@example.org"}
    )
    assert (status, answer) == (status_none, answer_none)
    accounts = world.server.services.accounts
    secret, _ = await accounts.totp_begin(vince_id)
    await accounts.totp_confirm(vince_id, pyotp.TOTP(secret).now())
    assert await kinds_to(world, "vince@example.org") == ["email_verify"]

    # the link works once; a tampered one is refused with the same page
    status, body, _ = await anonymous.post("/api" + path[:-2] + "xx")
    assert status == 410 and body["error"]["code"] == "email_change_invalid"
    status, body, _ = await anonymous.post("/api" + path)
    assert status == 200 and body["email"] == "vince@example.org"
    status, body, _ = await anonymous.post("/api" + path)
    assert status == 410 and body["error"]["code"] == "email_change_invalid"
    assert (await listed(world, "vince"))["email_verified"] is True
    status, body, _ = await root.post(f"/api/admin/users/{vince_id}/verify-email")
    assert status == 409 and body["error"]["code"] == "email_verified"

    # verified: resets are mailed again
    status, _, _ = await anonymous.post("/api/password/forgot", {"email": "vince@example.org"})
    assert status == status_none
    mails = await mails_to(mail_server, "vince@example.org", 2)
    assert mails[1].subject == "Reset your password on Caucus"


async def test_an_admin_sends_the_link_again_and_only_the_newest_works(
    world: World, mail_server: MailServer
) -> None:
    root = world.clients["root"]
    status, body, _ = await root.post(
        "/api/admin/users", {"username": "wendy", "role": "admin", "email": "wendy@example.org"}
    )
    assert status == 201, body
    wendy_id = body["user"]["id"]
    (first,) = await mails_to(mail_server, "wendy@example.org", 1)
    status, _, _ = await world.clients["nina"].post(f"/api/admin/users/{wendy_id}/verify-email")
    assert status == 403
    status, body, _ = await root.post(f"/api/admin/users/{wendy_id}/verify-email")
    assert status == 202 and body["user"]["email_verified"] is False
    second = (await mails_to(mail_server, "wendy@example.org", 2))[1]
    old, new = link_in(first, PREFIX), link_in(second, PREFIX)
    assert old != new
    anonymous = world.make_client()
    status, body, _ = await anonymous.post("/api" + old)
    assert status == 410 and body["error"]["code"] == "email_change_invalid"
    status, _, _ = await anonymous.post("/api" + new)
    assert status == 200
    assert (await listed(world, "wendy"))["email_verified"] is True

    status, body, _ = await root.post(f"/api/admin/users/{'0' * 32}/verify-email")
    assert status == 404
    no_address = await world.server.services.accounts.create_user("xena", "a sound passphrase 42")
    status, body, _ = await root.post(f"/api/admin/users/{no_address.id}/verify-email")
    assert status == 409 and body["error"]["code"] == "no_email"


async def test_a_verification_link_expires(world: World, mail_server: MailServer) -> None:
    status, body, _ = await world.clients["root"].post(
        "/api/admin/users", {"username": "yuri", "role": "neutral", "email": "yuri@example.org"}
    )
    assert status == 201, body
    (mail,) = await mails_to(mail_server, "yuri@example.org", 1)
    changes = world.server.services.email_changes
    changes.clock = lambda: time.time() + 7 * 86400 + 60
    status, body, _ = await world.make_client().post("/api" + link_in(mail, PREFIX))
    assert status == 410 and body["error"]["code"] == "email_change_invalid"
    assert (await listed(world, "yuri"))["email_verified"] is False


async def test_invited_addresses_are_verified_and_a_confirmed_change_verifies(
    world: World, mail_server: MailServer
) -> None:
    nina = world.clients["nina"]
    status, body, _ = await nina.post(
        f"/api/cases/{world.cases['Case A']}/invitations",
        {"role": "observer", "display_name": "Zoe", "email": "zoe@example.org"},
    )
    assert status == 201, body
    (invitation,) = await mails_to(mail_server, "zoe@example.org", 1)
    zoe = await world.accept(link_in(invitation, "/invite/").removeprefix("/invite/"), "zoe")
    _, session, _ = await zoe.get("/api/session")
    assert session["user"]["email_verified"] is True

    # an unverified account changes its address itself: the confirmation verifies it, and
    # the old verification link stops working
    root = world.clients["root"]
    status, body, _ = await root.post(
        "/api/admin/users", {"username": "ursula", "role": "neutral", "email": "u@example.org"}
    )
    (verify,) = await mails_to(mail_server, "u@example.org", 1)
    password = body["one_time_password"]
    ursula = world.make_client()
    await ursula.post("/api/login", {"username": "ursula", "password": password})
    new_password = "a sound passphrase 42 renewed"
    status, _, _ = await ursula.post(
        "/api/account/password", {"current_password": password, "new_password": new_password}
    )
    assert status == 200
    status, body, _ = await ursula.post(
        "/api/account/email", {"email": "ursula@example.org", "password": new_password}
    )
    assert status == 202, body
    (confirm,) = await mails_to(mail_server, "ursula@example.org", 1)
    assert await kinds_to(world, "u@example.org") == ["email_verify"]  # no notice to it
    status, _, _ = await world.make_client().post("/api" + link_in(confirm, PREFIX))
    assert status == 200
    user = await listed(world, "ursula")
    assert user["email"] == "ursula@example.org" and user["email_verified"] is True
    status, body, _ = await world.make_client().post("/api" + link_in(verify, PREFIX))
    assert status == 410 and body["error"]["code"] == "email_change_invalid"
    assert (await listed(world, "ursula"))["email"] == "ursula@example.org"
