"""Scheduling: two requesters taking one slot at the same moment (one gets it, the other
is told and offered the next slots), sessions of a case scheduled, moved and cancelled
with calendar entries that update each other, reminders a day and an hour before, the
private calendar feed, and a start with seconds refused wherever a time is given."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

import pytest
import sqlalchemy as sa
from icalendar import Calendar

from rooms.scheduling.bookings import SlotTaken
from rooms.storage.schema import (
    bookings,
    case_requests,
    case_sessions,
    outbox,
    request_slots,
    users,
)
from rooms.storage.store import Store
from signaling.services import Services
from tests.support.requests import (
    decided,
    free_slots,
    mail_attachments,
    open_link,
    request_form,
)
from tests.support.world import World

pytestmark = pytest.mark.store  # about SQL: runs on every database backend


async def test_two_requesters_racing_for_one_slot_one_gets_it(
    world: World, database_url: tuple[str, str | None]
) -> None:
    services = world.server.services
    profile = await open_link(services, world.users["nina"], "nina")
    (slot,) = await services.bookings.open_slots(profile.availability, profile.user_id, 60, limit=1)
    # A second node on the same database, and several browsers, all at once.
    url, schema = database_url
    other = Services.build(services.settings, store=Store(url, schema=schema))
    try:

        async def over_http(n: int) -> tuple[int, Any]:
            form = request_form([slot])
            form["requester"] = {
                "name": f"Web {n}",
                "email": f"web{n}@example.net",
                "role": "party",
            }
            status, body, _ = await world.make_client().post(
                "/api/request-links/nina/requests", form
            )
            return status, body

        async def on_other_node() -> tuple[int, Any]:
            form = request_form([slot])
            form["requester"] = {"name": "Node", "email": "node@example.net", "role": "party"}
            try:
                await other.intake.file(profile, form, "10.0.0.9")
            except SlotTaken as taken:
                return 409, {"error": {"code": taken.code, **taken.extra}}
            return 201, {}

        results = await asyncio.gather(*(over_http(n) for n in range(4)), on_other_node())
    finally:
        await other.store.close()
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 409, 409, 409, 409], results
    for status, body in results:
        if status == 409:
            assert body["error"]["code"] == "slot_taken"
            offered = body["error"]["next_slots"]
            assert offered and slot not in offered and all(s > slot for s in offered)
    async with services.store.connect() as conn:
        held = (
            await conn.execute(sa.select(bookings.c.starts_at).where(bookings.c.starts_at == slot))
        ).all()
        filed = (await conn.execute(sa.select(sa.func.count()).select_from(case_requests))).scalar()
    assert len(held) == 1 and filed == 1  # the losers left nothing behind


async def entries(world: World, kind: str) -> list[Calendar]:
    """The calendar entries of the newest ``kind`` mail of each recipient."""
    services = world.server.services
    async with services.store.connect() as conn:
        recipients = set(
            (
                await conn.execute(sa.select(outbox.c.recipient).where(outbox.c.kind == kind))
            ).scalars()
        )
    found = []
    for recipient in sorted(recipients):
        (attachment,) = await mail_attachments(services, kind, recipient)
        found.append(Calendar.from_ical(attachment["text"]))
    return found


async def test_sessions_scheduled_moved_and_cancelled_update_one_calendar_entry(
    world: World,
) -> None:
    case_id = world.cases["Case A"]
    nina = world.clients["nina"]
    # Paula has a verified address: she gets the entries.
    await verified_address(world, "paula", "paula@example.org")
    start = whole_minute(time.time() + 3 * 86400)
    status, body, _ = await nina.post(
        f"/api/cases/{case_id}/sessions", {"starts_at": start, "minutes": 60}
    )
    assert status == 201, body
    session = body["session"]
    status, body, _ = await world.clients["paula"].post(
        f"/api/cases/{case_id}/sessions", {"starts_at": start + 7200, "minutes": 60}
    )
    assert status == 403
    # The neutral's own time is taken: another case cannot book it.
    status, body, _ = await nina.post(
        f"/api/cases/{world.cases['Case A']}/sessions", {"starts_at": start + 1800, "minutes": 60}
    )
    assert status == 409 and body["error"]["code"] == "slot_taken"
    status, body, _ = await nina.post(
        f"/api/cases/{case_id}/sessions",
        {"starts_at": whole_minute(time.time() - 120), "minutes": 60},
    )
    assert status == 400 and body["error"]["code"] == "slot_unavailable"

    path = f"/api/cases/{case_id}/sessions/{session['id']}"
    status, body, _ = await nina.post(
        f"{path}/reschedule", {"starts_at": start + 86400, "minutes": 90}
    )
    assert status == 200 and body["session"]["sequence"] == 1
    status, body, _ = await nina.post(f"{path}/cancel")
    assert status == 200 and body["session"]["status"] == "cancelled"
    status, body, _ = await nina.post(f"{path}/cancel")
    assert status == 409

    scheduled = await entries(world, "session_scheduled")
    updated = await entries(world, "session_updated")
    cancelled = await entries(world, "session_cancelled")
    assert scheduled and updated and cancelled
    first = next(iter(scheduled[0].walk("VEVENT")))
    moved = next(iter(updated[0].walk("VEVENT")))
    gone = next(iter(cancelled[0].walk("VEVENT")))
    assert first["UID"] == moved["UID"] == gone["UID"]
    assert [int(e["SEQUENCE"]) for e in (first, moved, gone)] == [0, 1, 2]
    assert moved["DTSTART"].dt.timestamp() == start + 86400
    assert str(cancelled[0]["METHOD"]) == "CANCEL" and str(gone["STATUS"]) == "CANCELLED"
    assert str(updated[0]["METHOD"]) == "REQUEST"
    status, body, _ = await world.clients["paula"].get(f"/api/cases/{case_id}/sessions")
    assert status == 200 and body["next"] is None
    assert body["sessions"][0]["status"] == "cancelled"


def whole_minute(epoch: float) -> float:
    return float(int(epoch) // 60 * 60)


async def verified_address(world: World, username: str, address: str) -> None:
    """The account's address, proved (as an accepted emailed invitation proves it)."""
    async with world.server.services.store.begin() as conn:
        await conn.execute(
            sa.update(users)
            .where(users.c.username == username)
            .values(email=address, email_verified_at=time.time())
        )


async def test_reminders_a_day_and_an_hour_before(world: World) -> None:
    services = world.server.services
    member = await services.cases.membership(world.cases["Case A"], world.users["nina"].id)
    assert member is not None
    await verified_address(world, "paula", "paula@example.org")
    now = time.time()
    await services.case_sessions.schedule(
        world.cases["Case A"], member, whole_minute(now + 30 * 3600), 60
    )
    sessions = services.case_sessions
    assert await sessions.send_reminders() == 0  # more than a day ahead
    sessions.clock = lambda: now + 7 * 3600  # 23 hours before
    assert await sessions.send_reminders() == 1
    assert await sessions.send_reminders() == 0  # once
    sessions.clock = lambda: now + 29.5 * 3600  # half an hour before
    assert await sessions.send_reminders() == 1
    assert await sessions.send_reminders() == 0
    async with services.store.connect() as conn:
        kinds = [
            row.kind
            for row in (
                await conn.execute(
                    sa.select(outbox.c.kind)
                    .where(outbox.c.recipient == "paula@example.org")
                    .order_by(outbox.c.created_at)
                )
            ).all()
        ]
    assert kinds[-2:] == ["session_reminder_day", "session_reminder_hour"]


async def test_the_calendar_feed_serves_my_sessions_until_revoked(world: World) -> None:
    services = world.server.services
    member = await services.cases.membership(world.cases["Case A"], world.users["nina"].id)
    assert member is not None
    start = whole_minute(time.time() + 5 * 86400)
    await services.case_sessions.schedule(world.cases["Case A"], member, start, 60)
    paula, peter = world.clients["paula"], world.clients["peter"]
    status, body, _ = await paula.post("/api/calendar-feed")
    assert status == 201
    url = body["url"]
    path = url[url.index("/calendar/") :]
    anyone = world.make_client()
    status, text, response = await anyone.get(path)
    assert status == 200 and response.content_type == "text/calendar"
    (event,) = Calendar.from_ical(text).walk("VEVENT")
    assert event["DTSTART"].dt.timestamp() == start
    # Peter (another case) has his own feed, without Case A's sessions.
    status, body, _ = await peter.post("/api/calendar-feed")
    peter_path = body["url"][body["url"].index("/calendar/") :]
    status, text, _ = await anyone.get(peter_path)
    assert status == 200 and not Calendar.from_ical(text).walk("VEVENT")
    # A new address replaces the old; revoking ends it; a forged one never worked.
    status, body, _ = await paula.post("/api/calendar-feed")
    status, _, _ = await anyone.get(path)
    assert status == 410
    await paula.request("DELETE", "/api/calendar-feed")
    new_path = body["url"][body["url"].index("/calendar/") :]
    status, _, _ = await anyone.get(new_path)
    assert status == 410
    status, _, _ = await anyone.get("/calendar/forged.ics")
    assert status == 410


async def test_a_start_off_the_whole_minute_is_refused_wherever_a_time_is_given(
    world: World,
) -> None:
    """Calendars, reminders and the neutral's hours all count in whole minutes, and a
    browser's time field gives none other; a start with seconds (14:30:27) comes from a
    client that miscounted, so it is refused with a clear error rather than moved, and
    nothing of it is kept: not by the neutral scheduling or moving a case's session, not
    in a request filed, nor in a time proposed by the neutral or a person asked."""
    services = world.server.services
    case_id = world.cases["Case A"]
    nina = world.clients["nina"]
    await verified_address(world, "paula", "paula@example.org")
    profile = await open_link(services, world.users["nina"], "nina")
    request_id, tokens = await decided(services, profile, world.users["nina"])
    (slot,) = await free_slots(services, profile)

    async def rows() -> dict[str, int]:
        async with services.store.connect() as conn:
            return {
                table.name: (
                    await conn.execute(sa.select(sa.func.count()).select_from(table))
                ).scalar_one()
                for table in (case_sessions, bookings, request_slots, outbox)
            }

    before = await rows()
    start = whole_minute(time.time() + 3 * 86400)
    sessions_path = f"/api/cases/{case_id}/sessions"
    for seconds in (27, 0.5, 59.999):
        status, body, _ = await nina.post(
            sessions_path, {"starts_at": start + seconds, "minutes": 60}
        )
        assert status == 400 and body["error"] == {
            "code": "invalid_input",
            "message": "A session starts on a whole minute.",
        }, body
    anyone = world.make_client()
    form = request_form([slot + 27])
    form["requester"] = {**form["requester"], "email": "sam@law.example"}
    form["attorneys"] = [{**form["attorneys"][0], "email": "sam@law.example"}]
    refused = [
        await anyone.post("/api/request-links/nina/requests", form),
        await nina.post(
            f"/api/neutral/requests/{request_id}/proposals", {"starts_at": [slot + 27]}
        ),
        await anyone.post(
            f"/api/respond/{tokens['jon@example.org']}/answer",
            {"answer": "propose", "starts_at": [slot + 27]},
        ),
    ]
    for status, body, _ in refused:
        assert status == 400 and body["error"]["code"] == "slot_unavailable", body
        assert "not at a slot start" in body["error"]["message"]
    assert await rows() == before

    # On the minute: scheduled; a move to a time with seconds is refused and changes nothing.
    status, body, _ = await nina.post(sessions_path, {"starts_at": start, "minutes": 60})
    assert status == 201, body
    session = body["session"]
    status, body, _ = await nina.post(
        f"{sessions_path}/{session['id']}/reschedule", {"starts_at": start + 3627, "minutes": 60}
    )
    assert status == 400 and body["error"]["code"] == "invalid_input", body
    status, body, _ = await nina.get(sessions_path)
    assert [(s["starts_at"], s["sequence"]) for s in body["sessions"]] == [(start, 0)]
    async with services.store.connect() as conn:
        kinds = set((await conn.execute(sa.select(outbox.c.kind))).scalars())
    assert "session_scheduled" in kinds and "session_updated" not in kinds

    # The calendar entry mailed and the feed hold that very minute, and so do reminders.
    status, body, _ = await world.clients["paula"].post("/api/calendar-feed")
    feed = body["url"][body["url"].index("/calendar/") :]
    status, text, _ = await anyone.get(feed)
    assert status == 200
    for calendar in [*await entries(world, "session_scheduled"), Calendar.from_ical(text)]:
        (event,) = calendar.walk("VEVENT")
        begins, ends = event["DTSTART"].dt, event["DTEND"].dt
        assert begins.timestamp() == start and begins.second == 0 and begins.microsecond == 0
        assert ends.timestamp() == start + 3600
    reminders = services.case_sessions
    for moment, written in (
        (start - 86400 - 1, 0),  # a second before the day's reminder is due
        (start - 86400, 1),
        (start - 3600 - 1, 0),
        (start - 3600, 1),
    ):
        reminders.clock = functools.partial(float, moment)
        assert await reminders.send_reminders() == written, moment - start
