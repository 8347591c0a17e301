"""The outbox sender against a real SMTP server (aiosmtpd on a loopback port): delivery,
a 550 refusal recorded and never retried by itself, waiting while the server is down,
the admin's queue and retry, the .eml default, and headers no value can break."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from rooms.storage.outbox import Outbox, OutboxMail
from signaling.http.state import MAIL_SENDER
from signaling.mail.compose import MailComposer
from signaling.settings import Settings
from tests.support.eventually import eventually
from tests.support.smtp import FAST_MAIL, MailServer, mail_settings
from tests.support.world import World


@pytest.fixture
def settings(tmp_path: Path, mail_server: MailServer) -> Settings:
    return mail_settings(tmp_path, mail_server)


async def queue_of(world: World) -> dict:
    status, body, _ = await world.clients["root"].get("/api/admin/mail")
    assert status == 200, body
    return body


async def _is_sent(outbox: Outbox, mail_id: str) -> bool:
    return (await outbox.get(mail_id)).status == "sent"


async def test_a_test_mail_arrives_with_both_parts_and_a_stable_message_id(
    world: World, mail_server: MailServer
) -> None:
    status, body, _ = await world.clients["root"].post(
        "/api/admin/mail/test", {"to": "ops@example.org"}
    )
    assert status == 202, body
    mail_id = body["mail"]["id"]
    await eventually(lambda: mail_server.to("ops@example.org"), what="the test mail arrives")
    (received,) = mail_server.messages
    assert received.mail_from == "notices@caucus.example"
    assert b"\r\nMessage-ID: <" + mail_id.encode() + b"@caucus.example>\r\n" in received.data
    message = received.parsed()
    assert message["Subject"] == "Test mail from Caucus"
    assert message["From"] == "Caucus <notices@caucus.example>"
    assert message["To"] == "ops@example.org"
    assert message.get_content_type() == "multipart/alternative"
    assert "https://caucus.example" in received.text()
    assert '<a href="https://caucus.example/">' in received.html()
    # the server has the mail; the sender records it a moment later
    outbox = world.server.services.outbox
    await eventually(lambda: _is_sent(outbox, mail_id), what="the mail recorded as sent")
    assert (await outbox.get(mail_id)).params == {}
    assert (await queue_of(world))["counts"]["sent"] == 1


async def test_a_550_fails_the_mail_with_the_answer_and_only_an_admin_retries_it(
    world: World, mail_server: MailServer
) -> None:
    mail_server.refused.add("gone@example.org")
    _, body, _ = await world.clients["root"].post(
        "/api/admin/mail/test", {"to": "gone@example.org"}
    )
    mail_id = body["mail"]["id"]

    async def failed() -> list:
        return (await queue_of(world))["failed"]

    (failure,) = await eventually(failed, what="the mail is marked failed")
    assert failure["id"] == mail_id and failure["attempts"] == 1
    assert failure["last_error"] == "550 5.1.1 No such mailbox here"
    assert "params" not in failure
    # the sender keeps running; nothing claims the failed mail again
    assert await world.server.app[MAIL_SENDER].send_due() == 0
    assert (await world.server.services.outbox.get(mail_id)).attempts == 1

    status, _, _ = await world.clients["nina"].post(f"/api/admin/mail/{mail_id}/retry")
    assert status == 403
    mail_server.refused.clear()
    status, body, _ = await world.clients["root"].post(f"/api/admin/mail/{mail_id}/retry")
    assert status == 200 and body["mail"]["status"] == "queued"
    await eventually(lambda: mail_server.to("gone@example.org"), what="the retried mail arrives")
    status, body, _ = await world.clients["root"].post(f"/api/admin/mail/{mail_id}/retry")
    assert status == 409 and body["error"]["code"] == "mail_sent"
    status, body, _ = await world.clients["root"].post(f"/api/admin/mail/{'0' * 32}/retry")
    assert status == 404


async def test_mail_waits_while_the_server_is_down_then_arrives_once(
    world: World, mail_server: MailServer
) -> None:
    mail_server.stop()
    ids = []
    for i in range(3):
        _, body, _ = await world.clients["root"].post(
            "/api/admin/mail/test", {"to": f"ops{i}@example.org"}
        )
        ids.append(body["mail"]["id"])
    outbox = world.server.services.outbox

    async def tried_twice() -> bool:
        mails = [await outbox.get(i) for i in ids]
        return all(m.status == "queued" and m.attempts >= 2 for m in mails)

    await eventually(tried_twice, what="every mail was tried and waits")
    waiting = (await queue_of(world))["queued"]
    assert {m["id"] for m in waiting} == set(ids)
    assert all("Connect" in m["last_error"] or "refused" in m["last_error"] for m in waiting)
    mail_server.start()
    await eventually(lambda: len(mail_server.messages) == 3, what="all three arrive")

    async def all_sent() -> bool:
        return all(m.status == "sent" for m in [await outbox.get(i) for i in ids])

    await eventually(all_sent)
    assert sorted(mail_server.message_ids()) == sorted(f"<{i}@caucus.example>" for i in ids)


async def test_admins_give_staff_an_email_address_checked_at_the_form(
    world: World, mail_server: MailServer
) -> None:
    root = world.clients["root"]
    status, body, _ = await root.post(
        "/api/admin/users", {"username": "nell", "role": "neutral", "email": "Nell@Example.org"}
    )
    assert status == 201 and body["user"]["email"] == "Nell@example.org"
    assert body["user"]["email_verified"] is False
    # the address is verified by a link before anything else is sent to it
    await eventually(lambda: mail_server.to("Nell@example.org"), what="the verification mail")
    (verification,) = mail_server.messages
    assert verification.subject == "Verify your email address on Caucus"
    for bad in ("nell", "x@y\r\nBcc: evil@example.org"):
        status, body, _ = await root.post(
            "/api/admin/users", {"username": "nora", "role": "neutral", "email": bad}
        )
        assert status == 400 and body["error"]["code"] == "invalid_email", body
    status, body, _ = await root.post("/api/admin/mail/test", {"to": "not an address"})
    assert status == 400 and body["error"]["code"] == "invalid_email"


def sample_mail(**params: object) -> OutboxMail:
    return OutboxMail(
        "ab" * 16, "admin_test", "ops@example.org", dict(params), "queued", 1, 0.0, None, 0.0, None
    )


def test_no_value_can_start_a_header_of_its_own(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        site_name="Caucus\r\nBcc: evil@example.org",
        mail_from_name="Mediation\nX-Injected: yes",
        **FAST_MAIL,
    )
    message = MailComposer(settings).compose(
        sample_mail(recipient="ops@example.org\r\nBcc: evil@example.org")
    )
    headers = message.as_bytes().split(b"\r\n\r\n", 1)[0]
    for header in (b"\nBcc:", b"\rBcc:", b"\nX-Injected:", b"\rX-Injected:"):
        assert header not in headers
    assert message["Subject"] == "Test mail from Caucus Bcc: evil@example.org"
    assert "Bcc" not in message and "X-Injected" not in message
    # the email package's policy refuses a line break in any header value
    with pytest.raises(ValueError):
        EmailMessage()["Subject"] = "hello\r\nBcc: evil@example.org"


def test_html_parts_are_autoescaped(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, **FAST_MAIL)
    message = MailComposer(settings).compose(sample_mail(recipient="<script>x</script>"))
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    content = html.get_content()  # type: ignore[attr-defined]
    assert "<script>" not in content and "&lt;script&gt;" in content
