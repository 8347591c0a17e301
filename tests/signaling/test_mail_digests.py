"""Activity digests end to end: messages posted through the API, the node's digest task
run with a clock moved past the window, the mail received by a real SMTP server; never
the messages' text; none when switched off on the account page's API, none while the
person's socket is in the space."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from signaling.http.state import DIGESTS
from signaling.settings import Settings
from tests.support.eventually import eventually
from tests.support.smtp import MailServer, link_in, mail_settings
from tests.support.world import ApiClient, World, connect


@pytest.fixture
def settings(tmp_path: Path, mail_server: MailServer) -> Settings:
    # the test runs the digest task's tick itself
    return mail_settings(tmp_path, mail_server, digest_check_seconds=3600)


async def party_with_email(world: World, mail_server: MailServer) -> tuple[ApiClient, str, str]:
    case_id = world.cases["Case A"]
    await world.clients["nina"].post(
        f"/api/cases/{case_id}/invitations",
        {"role": "party", "display_name": "Dora Party", "email": "dora@example.org"},
    )
    await eventually(lambda: mail_server.to("dora@example.org"))
    token = link_in(mail_server.to("dora@example.org")[0], "/invite/").removeprefix("/invite/")
    dora = await world.accept(token, "dora")
    dora_id = (await dora.get("/api/session"))[1]["user"]["id"]
    status, body, _ = await world.clients["nina"].post(
        f"/api/cases/{case_id}/spaces", {"name": "Orchid room", "member_ids": [dora_id]}
    )
    assert status == 201, body
    return dora, dora_id, f"/api/cases/{case_id}/spaces/{body['space']['id']}"


def later(world: World, minutes: float) -> None:
    """Move the clock of digests (and of the outbox that sends what they write)."""
    services = world.server.services
    services.digests.clock = services.outbox.clock = lambda: time.time() + minutes * 60


async def test_a_digest_arrives_without_the_messages(world: World, mail_server: MailServer) -> None:
    _dora, _, space = await party_with_email(world, mail_server)
    for i in range(3):
        status, _, _ = await world.clients["nina"].post(
            space + "/messages", {"body": f"the saffron proposal {i}"}
        )
        assert status in (200, 201)
    runner = world.server.app[DIGESTS]
    assert await runner.tick() == 0
    later(world, 16)
    assert await runner.tick() == 1
    await eventually(lambda: len(mail_server.to("dora@example.org")) == 2)
    digest = mail_server.to("dora@example.org")[1]
    assert digest.subject == "New activity in a case on Caucus"
    assert "3 new messages wait for you" in digest.text()
    link = f"https://caucus.example/cases/{world.cases['Case A']}/spaces"
    assert link in digest.text() and link in digest.html()
    for secret in ("saffron", "Orchid", "Dora Party", "Case A", "Harbor"):
        assert secret.encode() not in digest.data, secret


async def test_no_digest_when_switched_off_or_online(world: World, mail_server: MailServer) -> None:
    dora, _, space = await party_with_email(world, mail_server)
    case_id = world.cases["Case A"]
    status, body, _ = await dora.get("/api/account/notifications")
    assert (
        status == 200 and {"case_id": case_id, "title": "Case A", "digests": True} in body["cases"]
    )
    status, _, _ = await dora.post(
        "/api/account/notifications", {"case_id": case_id, "digests": False}
    )
    assert status == 200
    status, _, _ = await dora.post(
        "/api/account/notifications", {"case_id": world.cases["Case B"], "digests": False}
    )
    assert status == 404
    await world.clients["nina"].post(space + "/messages", {"body": "hello"})
    runner = world.server.app[DIGESTS]
    later(world, 16)
    assert await runner.tick() == 0

    await dora.post("/api/account/notifications", {"case_id": case_id, "digests": True})
    sio = await connect(world, dora, "/spaces")
    try:
        space_id = space.rsplit("/", 1)[1]
        reply = await sio.call(
            "space.subscribe", {"case_id": case_id, "space_id": space_id}, namespace="/spaces"
        )
        assert reply["ok"] is True
        await world.clients["nina"].post(space + "/messages", {"body": "are you there?"})
        world.server.services.cases.clock = lambda: time.time() + 16 * 60
        later(world, 16)
        assert await runner.tick() == 0  # her socket is in the space: she is online
    finally:
        await sio.disconnect()
        world.server.services.cases.clock = time.time
    assert len(mail_server.to("dora@example.org")) == 1  # the invitation only
