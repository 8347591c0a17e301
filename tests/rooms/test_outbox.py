"""Outbox rows: written with their cause or not at all, claimed once across processes,
leased, retried and failed for good."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from rooms.errors import InvalidInput
from rooms.storage.outbox import FAILED, QUEUED, SENT, Outbox, enqueue
from rooms.storage.schema import outbox

pytestmark = pytest.mark.store  # about SQL: runs on every database backend


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_mail_commits_or_rolls_back_with_its_cause(store) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with store.begin() as conn:
            await enqueue(conn, "admin_test", "a@example.org", {"x": 1}, now=1.0)
            raise Boom
    async with store.begin() as conn:
        kept = await enqueue(conn, "admin_test", "b@example.org", {"x": 2}, now=1.0)
    async with store.connect() as conn:
        rows = (await conn.execute(sa.select(outbox.c.id, outbox.c.recipient))).all()
    assert [(r.id, r.recipient) for r in rows] == [(kept, "b@example.org")]


async def test_concurrent_claims_never_take_the_same_mail(store) -> None:
    async with store.begin() as conn:
        for i in range(30):
            await enqueue(conn, "admin_test", f"p{i}@example.org", {}, now=0.0)
    nodes = [Outbox(store) for _ in range(3)]
    batches = await asyncio.gather(*(node.claim(12, 60.0) for node in nodes))
    claimed = [m.id for batch in batches for m in batch]
    assert len(claimed) == len(set(claimed)) == 30
    assert all(m.attempts == 1 for batch in batches for m in batch)
    assert await nodes[0].claim(10, 60.0) == []  # all leased


async def test_a_lease_runs_out_and_outcomes_are_recorded(store) -> None:
    clock = Clock()
    box = Outbox(store, clock)
    async with store.begin() as conn:
        first = await enqueue(conn, "admin_test", "a@example.org", {"link": "secret"}, now=clock())
        second = await enqueue(conn, "admin_test", "b@example.org", {}, now=clock())
    assert {m.id for m in await box.claim(10, 60.0)} == {first, second}
    clock.now += 59
    assert await box.claim(10, 60.0) == []
    clock.now += 2  # the process that claimed them died: the lease ran out
    again = await box.claim(10, 60.0)
    assert {m.id for m in again} == {first, second} and {m.attempts for m in again} == {2}

    await box.delivered(first)
    sent = await box.get(first)
    assert sent.status == SENT and sent.params == {} and sent.sent_at == clock.now
    await box.retry_later(second, "421 try later", 30.0)
    waiting = await box.get(second)
    assert waiting.status == QUEUED and waiting.next_attempt_at == clock.now + 30
    assert waiting.last_error == "421 try later"
    await box.failed(second, "550 no such mailbox")
    assert (await box.get(second)).status == FAILED
    clock.now += 1000
    assert await box.claim(10, 60.0) == []  # a failed mail is never tried again by itself
    assert await box.counts() == {QUEUED: 0, SENT: 1, FAILED: 1}
    assert [m.id for m in await box.listing(FAILED)] == [second]
    assert "params" not in (await box.get(second)).public()

    retried = await box.retry(second)
    assert retried.status == QUEUED and retried.attempts == 0
    assert [m.id for m in await box.claim(10, 60.0)] == [second]


async def test_accounts_take_a_checked_email_address(services) -> None:
    accounts = services.accounts
    user = await accounts.create_user(
        "nina", "a sound passphrase 42", role="neutral", email="  Nina@Example.ORG "
    )
    assert user.email == "Nina@example.org"
    assert (await accounts.get(user.id)).public()["email"] == "Nina@example.org"
    for bad in ("nina", "nina@", "a@b.c\r\nBcc: x@evil.example", "two@@example.org"):
        with pytest.raises(InvalidInput) as refused:
            await accounts.create_user("olga", "a sound passphrase 42", email=bad)
        assert refused.value.code == "invalid_email"
    assert (await accounts.create_user("omar", "a sound passphrase 42", email="")).email is None
