"""Nothing lost, nothing sent twice: with the SMTP server down, changes commit and their
mails wait; after ``kill -9`` of ``caucus serve`` and a restart, and once the SMTP server
is back, every mail arrives exactly once (counted by Message-ID)."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

from tests.support.eventually import eventually
from tests.support.server import start_serve
from tests.support.smtp import MailServer
from tests.support.world import ApiClient

MAIL_ENV = {
    "CAUCUS_MAIL_POLL_SECONDS": "0.1",
    "CAUCUS_MAIL_RETRY_SECONDS": "0.2",
    "CAUCUS_MAIL_RETRY_MAX_SECONDS": "0.5",
    "CAUCUS_MAIL_LEASE_SECONDS": "3",
    "CAUCUS_PUBLIC_URL": "https://caucus.example",
    "CAUCUS_MAIL_FROM_ADDRESS": "notices@caucus.example",
    "CAUCUS_LOG_LEVEL": "WARNING",
}
NEW_PASSWORD = "a sound passphrase 42"


async def signed_in_admin(url: str, password: str | None) -> ApiClient:
    admin = ApiClient(url)
    status, body, _ = await admin.post(
        "/api/login", {"username": "admin", "password": password or NEW_PASSWORD}
    )
    assert status == 200, body
    if body["stage"] == "password_change_required":
        status, body, _ = await admin.post(
            "/api/account/password",
            {"current_password": password, "new_password": NEW_PASSWORD},
        )
        assert status == 200, body
    return admin


async def test_mail_survives_a_down_smtp_server_and_a_killed_server(
    tmp_path: Path, mail_server: MailServer
) -> None:
    mail_server.stop()
    env = {**MAIL_ENV, "CAUCUS_SMTP_URL": mail_server.url}
    served = await start_serve(tmp_path / "data", workers=0, env=env)
    admin: ApiClient | None = None
    try:
        assert f"Mail goes to SMTP server 127.0.0.1:{mail_server.port}" in served.log()
        admin = await signed_in_admin(served.url, served.admin_password)
        status, body, _ = await admin.post(
            "/api/admin/users",
            {"username": "nina", "role": "neutral", "email": "nina@example.org"},
        )
        assert status == 201, body
        ids = []
        for i in range(4):
            status, body, _ = await admin.post(
                "/api/admin/mail/test", {"to": f"ops{i}@example.org"}
            )
            assert status == 202, body
            ids.append(body["mail"]["id"])
        anonymous = ApiClient(served.url)
        status, _, _ = await anonymous.post("/api/password/forgot", {"email": "nina@example.org"})
        assert status == 202
        await anonymous.close()

        async def all_tried() -> bool:
            assert admin is not None
            _, queue, _ = await admin.get("/api/admin/mail")
            waiting = queue["queued"]
            return len(waiting) == 5 and all(m["attempts"] >= 1 for m in waiting)

        await eventually(all_tried, what="five mails tried and waiting")
        await admin.close()
        admin = None
        served.process.send_signal(signal.SIGKILL)
        assert await served.process.wait() == -signal.SIGKILL
    finally:
        if admin is not None:
            await admin.close()
        await served.stop()

    restarted = await start_serve(tmp_path / "data", workers=0, env=env)
    try:
        mail_server.start()
        await eventually(
            lambda: len(mail_server.messages) >= 5,
            within=30,
            what="the five mails arrive",
            details=restarted.log,
        )
        admin = await signed_in_admin(restarted.url, None)

        async def all_sent() -> bool:
            _, queue, _ = await admin.get("/api/admin/mail")
            return queue["counts"] == {"queued": 0, "sent": 5, "failed": 0}

        await eventually(all_sent, what="the outbox records five sent mails")
        await admin.close()
    finally:
        await restarted.stop()
    counted = Counter(mail_server.message_ids())
    assert len(counted) == 5 and set(counted.values()) == {1}, counted
    assert {f"<{i}@caucus.example>" for i in ids} < set(counted)
    assert len(mail_server.to("nina@example.org")) == 1


async def test_without_smtp_serve_says_where_mail_goes_and_writes_eml_files(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = {"CAUCUS_MAIL_POLL_SECONDS": "0.1", "CAUCUS_LOG_LEVEL": "WARNING"}
    served = await start_serve(data, workers=0, env=env)
    try:
        mail_dir = (data / "mail").resolve()
        assert any(
            line.startswith("Mail goes to files in")
            and line.endswith("(no SMTP server configured)")
            and str(data / "mail") in line
            for line in served.output
        ), served.log()
        admin = await signed_in_admin(served.url, served.admin_password)
        status, body, _ = await admin.post(
            "/api/admin/users", {"username": "nina", "role": "neutral"}
        )
        assert status == 201
        await admin.close()
        nina = ApiClient(served.url)
        await nina.post("/api/login", {"username": "nina", "password": body["one_time_password"]})
        await nina.post(
            "/api/account/password",
            {"current_password": body["one_time_password"], "new_password": NEW_PASSWORD},
        )
        status, case, _ = await nina.post(
            "/api/cases", {"process": "mediation", "title": "Quiet matter"}
        )
        assert status == 201, case
        status, invitation, _ = await nina.post(
            f"/api/cases/{case['case']['id']}/invitations",
            {"role": "party", "display_name": "Pat", "email": "pat@example.org"},
        )
        assert status == 201, invitation
        await nina.close()

        def invitation_file() -> list[bytes]:
            files = mail_dir.glob("*.eml") if mail_dir.is_dir() else []
            return [f.read_bytes() for f in files if b"To: pat@example.org" in f.read_bytes()]

        found = await eventually(invitation_file, what="the invitation's .eml file")
        assert isinstance(found, list) and len(found) == 1
        assert invitation["token"].encode() in found[0]
        assert b"Quiet matter" not in found[0] and b"Pat" not in found[0]
    finally:
        await served.stop()
