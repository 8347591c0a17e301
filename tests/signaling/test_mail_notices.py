"""Account security notices and case-closed notices through a real SMTP server, and the
name mails give a case: never its content."""

from __future__ import annotations

from pathlib import Path

import pyotp
import pytest

from signaling.settings import Settings
from tests.support.eventually import eventually
from tests.support.smtp import MailServer, Received, link_in, mail_settings
from tests.support.world import INTAKE, PASSWORD, World


@pytest.fixture
def settings(tmp_path: Path, mail_server: MailServer) -> Settings:
    return mail_settings(tmp_path, mail_server)


async def mails_to(server: MailServer, address: str, count: int) -> list[Received]:
    await eventually(lambda: len(server.to(address)) >= count, what=f"{count} mails to {address}")
    return server.to(address)


async def test_password_and_two_step_changes_are_told_by_mail(
    world: World, mail_server: MailServer
) -> None:
    accounts = world.server.services.accounts
    await accounts.create_user("vera", PASSWORD, email="vera@example.org", email_verified=True)
    vera = await world.sign_in("vera")
    new = PASSWORD + " renewed"
    status, _, _ = await vera.post(
        "/api/account/password", {"current_password": PASSWORD, "new_password": new}
    )
    assert status == 200
    (changed,) = await mails_to(mail_server, "vera@example.org", 1)
    assert changed.subject == "Your password on Caucus was changed"
    assert "https://caucus.example/password/forgot" in changed.text()

    _, begun, _ = await vera.post("/api/account/totp/begin")
    totp = pyotp.TOTP(begun["secret"])
    status, codes, _ = await vera.post("/api/account/totp/confirm", {"code": totp.now()})
    assert status == 200
    mails = await mails_to(mail_server, "vera@example.org", 2)
    assert mails[1].subject == "Two-step sign-in was turned on for your account on Caucus"
    status, _, _ = await vera.post(
        "/api/account/totp/disable", {"password": new, "code": codes["recovery_codes"][0]}
    )
    assert status == 200
    mails = await mails_to(mail_server, "vera@example.org", 3)
    assert mails[2].subject == "Two-step sign-in was turned off for your account on Caucus"


async def test_an_email_change_is_confirmed_by_the_new_address_and_told_to_the_old(
    world: World, mail_server: MailServer
) -> None:
    await world.server.services.accounts.create_user(
        "walt", PASSWORD, email="walt@example.org", email_verified=True
    )
    walt = await world.sign_in("walt")
    status, body, _ = await walt.post(
        "/api/account/email", {"email": "walt@new.example", "password": "wrong password"}
    )
    assert status == 401
    status, body, _ = await walt.post(
        "/api/account/email", {"email": "not-an-address", "password": PASSWORD}
    )
    assert status == 400 and body["error"]["code"] == "invalid_email"
    status, body, _ = await walt.post(
        "/api/account/email", {"email": "Walt@New.Example", "password": PASSWORD}
    )
    assert status == 202 and body["pending_email"] == "Walt@new.example"
    (notice,) = await mails_to(mail_server, "walt@example.org", 1)
    assert notice.subject == "The email address of your account on Caucus is being changed"
    assert b"walt@new.example" not in notice.data.lower().split(b"\r\n\r\n", 1)[1]
    (confirm,) = await mails_to(mail_server, "Walt@new.example", 1)
    path = link_in(confirm, "/account/email/confirm/")
    _, session, _ = await walt.get("/api/session")
    assert session["user"]["email"] == "walt@example.org"  # not before the confirmation
    anonymous = world.make_client()
    status, body, _ = await anonymous.post("/api" + path)
    assert status == 200 and body["email"] == "Walt@new.example"
    _, session, _ = await walt.get("/api/session")
    assert session["user"]["email"] == "Walt@new.example"
    status, body, _ = await anonymous.post("/api" + path)
    assert status == 410 and body["error"]["code"] == "email_change_invalid"


async def test_closing_a_case_tells_its_members_without_a_word_of_the_case(
    world: World, mail_server: MailServer
) -> None:
    nina = world.clients["nina"]
    title = "Quiet Harbor confidential matter"
    case_id = await world.open_case("nina", title)
    status, body, _ = await nina.post(
        f"/api/cases/{case_id}/invitations",
        {"role": "party", "display_name": "Pia Secretname", "email": "pia@example.org"},
    )
    assert status == 201
    (invitation,) = await mails_to(mail_server, "pia@example.org", 1)
    assert "in a case on Caucus" in invitation.text()
    token = link_in(invitation, "/invite/").removeprefix("/invite/")
    pia = await world.accept(token, "pia")
    pia_id = (await pia.get("/api/session"))[1]["user"]["id"]
    status, body, _ = await nina.post(
        f"/api/cases/{case_id}/spaces", {"name": "Zebra caucus room", "member_ids": [pia_id]}
    )
    assert status == 201, body
    space = f"/api/cases/{case_id}/spaces/{body['space']['id']}"
    status, _, _ = await pia.post(space + "/messages", {"body": "the walnut offer stands"})
    assert status in (200, 201)
    status, _, _ = await nina.post(
        f"/api/cases/{case_id}/mail-naming", {"reference": "Mediation M-17", "title_in_mail": False}
    )
    assert status == 200

    status, body, _ = await nina.post(f"/api/cases/{case_id}/close", {"confirm_title": title})
    assert status in (200, 204), body
    mails = await mails_to(mail_server, "pia@example.org", 2)
    closed = mails[1]
    assert closed.subject == "Mediation M-17 was closed"
    assert "The account made for you for this case was deleted" in closed.text()
    for secret in (
        title,
        "Quiet Harbor",
        "Pia Secretname",
        "Zebra caucus",
        "walnut",
        INTAKE["description"],
        "Ada Tenant",
    ):
        for mail in mails:
            assert secret.encode() not in mail.data, secret
    assert len(mail_server.messages) == 2  # the neutral who closed it is not told


async def test_a_neutral_may_let_mails_name_the_case_by_its_title(
    world: World, mail_server: MailServer
) -> None:
    nina = world.clients["nina"]
    case_a = world.cases["Case A"]
    status, body, _ = await nina.post(
        f"/api/cases/{case_a}/mail-naming", {"reference": "  M-\r\n18  ", "title_in_mail": False}
    )
    assert status == 200 and body["case"]["mail_reference"] == "M- 18"
    status, _, _ = await world.clients["paula"].post(
        f"/api/cases/{case_a}/mail-naming", {"reference": "x"}
    )
    assert status == 403
    await nina.post(f"/api/cases/{case_a}/mail-naming", {"title_in_mail": True})
    await nina.post(
        f"/api/cases/{case_a}/invitations",
        {"role": "observer", "display_name": "Obi", "email": "obi@example.org"},
    )
    (mail,) = await mails_to(mail_server, "obi@example.org", 1)
    assert "as observer, in Case A." in mail.text()
