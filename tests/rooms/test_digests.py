"""Activity digests decided with an injected clock: one mail per space per person per
window, only for unread messages, not for people online in the case, not when switched
off, and written once even by two processes at the same time."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from rooms.spaces.digests import SpaceDigests
from rooms.spaces.facade import Spaces
from rooms.storage.schema import outbox
from signaling.services import Services

pytestmark = pytest.mark.store  # about SQL: runs on every database backend

PASSWORD = "a sound passphrase 42"
MINUTE = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def scene(services: Services, clock: Clock):
    """Nina's case with a space of hers and of the party Pam (who has an address)."""
    accounts, cases = services.accounts, services.cases
    cases.clock = clock
    nina = await accounts.create_user(
        "nina", PASSWORD, role="neutral", email="nina@example.org", email_verified=True
    )
    case = await cases.open_case(nina, {"title": "Secret title", "process": "mediation"})
    neutral = await cases.membership(case.id, nina.id)
    assert neutral is not None
    _, token = await cases.invite(
        case.id,
        neutral,
        role="party",
        display_name="Pam",
        represents=None,
        expires_in_hours=24,
        email="pam@example.org",
    )
    pam, _ = await cases.accept_invitation(token, "pam", PASSWORD)
    spaces = Spaces(services.store, cases, services.case_keys, services.vault, clock=clock)
    space = await spaces.create(case.id, neutral, "Caucus room", [pam.id])
    digests = SpaceDigests(services.store, 15 * MINUTE, clock)
    async with services.store.begin() as conn:
        await conn.execute(sa.delete(outbox))  # the invitation's mail
    return {
        "case": case.id,
        "space": space.id,
        "nina": nina.id,
        "pam": pam.id,
        "spaces": spaces,
        "digests": digests,
        "store": services.store,
        "cases": cases,
    }


async def digest_mails(store) -> list[sa.Row]:
    async with store.connect() as conn:
        return (await conn.execute(sa.select(outbox).where(outbox.c.kind == "space_digest"))).all()


async def post_twenty_in_ten_minutes(scene, clock: Clock) -> None:
    for i in range(20):
        await scene["spaces"].post(scene["case"], scene["space"], scene["nina"], f"offer {i}")
        clock.now += 30  # 20 messages, 30 s apart: ten minutes
        assert await scene["digests"].run() == 0  # checked every 30 s: nothing due yet


async def test_twenty_messages_in_ten_minutes_give_one_mail(scene, clock: Clock) -> None:
    await post_twenty_in_ten_minutes(scene, clock)
    clock.now += 4 * MINUTE
    assert await scene["digests"].run() == 0  # 14 min after the first message
    clock.now += 1 * MINUTE + 1
    assert await scene["digests"].run() == 1
    for _ in range(10):
        clock.now += 2 * MINUTE
        assert await scene["digests"].run() == 0  # nothing new: no second mail
    (mail,) = await digest_mails(scene["store"])
    assert mail.recipient == "pam@example.org"
    assert mail.params == {"count": 20, "files": 0, "path": f"/cases/{scene['case']}/spaces"}

    # one more message: the next digest comes a full window after it
    await scene["spaces"].post(scene["case"], scene["space"], scene["nina"], "one more")
    clock.now += 14 * MINUTE
    assert await scene["digests"].run() == 0
    clock.now += 1 * MINUTE + 1
    assert await scene["digests"].run() == 1
    assert [m.params["count"] for m in await digest_mails(scene["store"])] == [20, 1]


async def test_reading_before_the_window_ends_gives_none(scene, clock: Clock) -> None:
    await post_twenty_in_ten_minutes(scene, clock)
    await scene["spaces"].mark_read(scene["case"], scene["space"], scene["pam"], 20)
    clock.now += 30 * MINUTE
    assert await scene["digests"].run() == 0
    assert await digest_mails(scene["store"]) == []


async def test_being_online_in_the_case_gives_none(scene, clock: Clock) -> None:
    await scene["spaces"].post(scene["case"], scene["space"], scene["nina"], "hello")
    clock.now += 5 * MINUTE
    await scene["cases"].seen([(scene["case"], scene["pam"])])
    clock.now += 30 * MINUTE
    assert await scene["digests"].run() == 0
    # a message after she left starts a new window
    await scene["spaces"].post(scene["case"], scene["space"], scene["nina"], "still there?")
    clock.now += 15 * MINUTE + 1
    assert await scene["digests"].run() == 1
    assert (await digest_mails(scene["store"]))[0].params["count"] == 1


async def test_switched_off_for_the_case_gives_none(scene, clock: Clock) -> None:
    await scene["cases"].set_digests(scene["case"], scene["pam"], False)
    await scene["spaces"].post(scene["case"], scene["space"], scene["nina"], "hello")
    clock.now += 30 * MINUTE
    assert await scene["digests"].run() == 0
    await scene["cases"].set_digests(scene["case"], scene["pam"], True)
    assert await scene["digests"].run() == 1


async def test_two_processes_write_one_digest(scene, clock: Clock) -> None:
    await scene["spaces"].post(scene["case"], scene["space"], scene["nina"], "hello")
    clock.now += 16 * MINUTE
    other = SpaceDigests(scene["store"], 15 * MINUTE, clock)
    counts = await asyncio.gather(scene["digests"].run(), other.run())
    assert sum(counts) == 1
    assert len(await digest_mails(scene["store"])) == 1


async def test_the_case_is_named_as_its_neutral_chose(scene, clock: Clock) -> None:
    neutral = await scene["cases"].membership(scene["case"], scene["nina"])
    await scene["cases"].set_mail_naming(scene["case"], neutral, "M-20", False)
    await scene["spaces"].post(scene["case"], scene["space"], scene["nina"], "hello")
    clock.now += 16 * MINUTE
    assert await scene["digests"].run() == 1
    (mail,) = await digest_mails(scene["store"])
    assert mail.params["case_ref"] == "M-20"


async def upload(scene, name: str) -> None:
    async def chunks():
        yield b"minutes of the joint session"

    await scene["spaces"].upload(
        scene["case"], scene["space"], scene["nina"], name, chunks(), max_bytes=1024
    )


async def test_files_uploaded_by_others_are_activity_too(scene, clock: Clock) -> None:
    await upload(scene, "settlement-draft.txt")
    clock.now += 14 * MINUTE
    assert await scene["digests"].run() == 0
    clock.now += 1 * MINUTE + 1
    assert await scene["digests"].run() == 1
    clock.now += 30 * MINUTE
    assert await scene["digests"].run() == 0  # that file was told
    await scene["spaces"].post(scene["case"], scene["space"], scene["nina"], "see the draft")
    await upload(scene, "second-draft.txt")
    clock.now += 15 * MINUTE + 1
    assert await scene["digests"].run() == 1
    first, second = await digest_mails(scene["store"])
    assert (first.params["count"], first.params["files"]) == (0, 1)
    assert (second.params["count"], second.params["files"]) == (1, 1)
    assert "draft" not in str(first.params) + str(second.params)


async def test_being_online_covers_files(scene, clock: Clock) -> None:
    await upload(scene, "exhibit.txt")
    clock.now += 5 * MINUTE
    await scene["cases"].seen([(scene["case"], scene["pam"])])
    clock.now += 30 * MINUTE
    assert await scene["digests"].run() == 0
