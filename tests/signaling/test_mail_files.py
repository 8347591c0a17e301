"""With no SMTP server configured, mail is written as .eml files into <data-dir>/mail."""

from __future__ import annotations

import email
import email.policy

from tests.support.eventually import eventually
from tests.support.world import World


async def test_without_smtp_mail_is_written_as_eml_files(world: World) -> None:
    settings = world.server.services.settings
    assert settings.smtp_url is None
    status, body, _ = await world.clients["root"].get("/api/admin/mail")
    assert status == 200 and str(settings.data_dir / "mail") in body["transport"]
    _, body, _ = await world.clients["root"].post("/api/admin/mail/test", {"to": "ops@example.org"})
    path = settings.data_dir / "mail" / f"{body['mail']['id']}.eml"
    await eventually(path.is_file, what=f"{path} is written")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["To"] == "ops@example.org"
    assert message["Subject"] == "Test mail from Caucus"
    assert not list((settings.data_dir / "mail").glob(".*partial"))
