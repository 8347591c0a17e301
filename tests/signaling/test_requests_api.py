"""Case requests through the HTTP API: a request filed through a neutral's public link,
confirmed from the mail, checked for conflicts, cleared, its date agreed through personal
links (with a counter-proposal), confirmed, and become a case; and every bad input on the
way refused with a clear error, nothing half-made."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from icalendar import Calendar

from rooms.storage.schema import (
    bookings,
    case_requests,
    conflict_decisions,
    outbox,
    request_people,
    request_slots,
)
from tests.signaling.test_case_close import files_holding, pg_dump
from tests.support.requests import (
    ALWAYS_OPEN,
    mail_attachments,
    newest_mail,
    newest_path,
    open_link,
    request_form,
)
from tests.support.world import INTAKE, PASSWORD, World

pytestmark = pytest.mark.store  # about SQL: runs on every database backend

LINK = "/api/request-links/nina"


async def planted_case(world: World) -> str:
    """An earlier case of Nina's whose claimant is "Jonathan Smith, Esq."."""
    intake = {**INTAKE, "title": "Smith employment matter"}
    intake["parties"] = [{"name": "Jonathan Smith, Esq.", "side": "claimant"}]
    intake["attorneys"] = []
    status, body, _ = await world.clients["nina"].post("/api/cases", intake)
    assert status == 201, body
    return str(body["case"]["id"])


async def counts(world: World) -> dict[str, int]:
    async with world.server.services.store.connect() as conn:
        return {
            table.name: (
                await conn.execute(sa.select(sa.func.count()).select_from(table))
            ).scalar_one()
            for table in (case_requests, request_people, request_slots, bookings, outbox)
        }


async def open_slots(world: World, count: int, minutes: int = 60) -> list[float]:
    client = world.make_client()
    status, body, _ = await client.get(f"{LINK}/slots?minutes={minutes}")
    assert status == 200, body
    return [float(s) for s in body["slots"][:count]]


@pytest.fixture
async def link(world: World) -> World:
    await open_link(world.server.services, world.users["nina"], "nina")
    return world


def link_of(path: str) -> str:
    return path.rsplit("/", 1)[-1]


async def test_a_request_becomes_a_case_with_invitations_and_calendar_entries(
    link: World,
) -> None:
    world, services = link, link.server.services
    await planted_case(world)
    anyone = world.make_client()
    status, body, _ = await anyone.get(LINK)
    assert status == 200 and body["neutral"]["name"] and body["lengths"] == [60, 120]

    slots = await open_slots(world, 6)
    first, second = slots[0], slots[4]  # two hours apart
    form = request_form([first])
    status, body, _ = await anyone.post(f"{LINK}/requests", form)
    assert status == 201 and body["status"] == "unconfirmed", body
    nina = world.clients["nina"]
    status, body, _ = await nina.get("/api/neutral/requests")
    assert body["requests"] == []  # not before the requester confirms the address

    confirm = link_of(await newest_path(services, "request_confirm", "alex@law.example"))
    status, body, _ = await anyone.post(f"/api/request-confirmations/{confirm}")
    assert status == 200 and body["status"] == "pending", body
    status, body, _ = await anyone.post(f"/api/request-confirmations/{confirm}")
    assert status == 410 and body["error"]["code"] == "confirmation_invalid"

    status, body, _ = await nina.get("/api/neutral/requests")
    (summary,) = body["requests"]
    assert summary["status"] == "pending" and summary["hits"] >= 1
    status, body, _ = await nina.get(f"/api/neutral/requests/{summary['id']}")
    detail = body["request"]
    hits = [(h["name"], h["matched"]) for h in detail["hits"]]
    assert ("Jon Smith", "Jonathan Smith, Esq.") in hits
    assert not any(name == "Mary Unrelated" for name, _ in hits)
    hit = next(h for h in detail["hits"] if h["name"] == "Jon Smith")
    assert hit["title"] == "Smith employment matter" and hit["role"] == "party"
    assert hit["reference"].startswith("CASE-")  # what a decision record may keep
    assert hit["score"] > 0

    request_path = f"/api/neutral/requests/{summary['id']}"
    status, body, _ = await nina.post(f"{request_path}/decision", {"decision": "clear", "note": ""})
    assert status == 200 and body["request"]["status"] == "scheduling", body
    status, body, _ = await nina.post(f"{request_path}/decision", {"decision": "clear"})
    assert status == 409 and body["error"]["code"] == "request_decided"

    people = {p["email"]: p for p in detail["people"]}
    assert set(people) == {"jon@example.org", "mary@example.org", "alex@law.example"}
    links = {
        address: link_of(await newest_path(services, "request_slots", address))
        for address in people
    }
    # Jon proposes another slot first...
    status, body, _ = await anyone.get(f"/api/respond/{links['jon@example.org']}/slots")
    assert status == 200 and second in body["slots"]
    status, body, _ = await anyone.post(
        f"/api/respond/{links['jon@example.org']}/answer",
        {"answer": "propose", "starts_at": [second]},
    )
    assert status == 200 and body["me"]["answer"] == "proposed", body
    # ...the neutral proposes it to everyone; new links go out, the old ones stop working.
    status, body, _ = await nina.post(f"{request_path}/proposals", {"starts_at": [second]})
    assert status == 200, body
    (current,) = [s for s in body["request"]["slots"] if s["current"]]
    assert current["starts_at"] == second
    old_links = links
    links = {
        address: link_of(await newest_path(services, "request_slots", address))
        for address in people
    }
    status, body, _ = await anyone.get(f"/api/respond/{old_links['mary@example.org']}")
    assert status == 410 and body["error"]["code"] == "link_invalid"
    status, body, _ = await nina.post(f"{request_path}/confirm", {"slot_id": current["id"]})
    assert status == 409 and body["error"]["code"] == "not_everyone_accepted"
    for address, token in links.items():
        status, body, _ = await anyone.post(
            f"/api/respond/{token}/answer", {"answer": "accept", "slot_id": current["id"]}
        )
        assert status == 200 and body["me"]["answer"] == "accepted", (address, body)
    status, body, _ = await nina.get(request_path)
    assert body["request"]["can_confirm"] == current["id"]
    status, body, _ = await nina.post(f"{request_path}/confirm", {"slot_id": current["id"]})
    assert status == 200 and body["request"]["status"] == "converted", body
    case_id = body["case_id"]

    # The case carries the intake; nobody typed a name twice.
    status, body, _ = await nina.get(f"/api/cases/{case_id}")
    case = body["case"]
    assert case["title"] == form["title"] and case["process"] == "mediation"
    assert case["intake"]["cause_number"] == "2027-CV-0099"
    assert case["intake"]["jurisdiction"] == "County Court"
    assert [p["name"] for p in case["intake"]["parties"]] == ["Jon Smith", "Mary Unrelated"]
    assert case["intake"]["attorneys"][0]["represents"] == "Jon Smith"
    status, body, _ = await nina.get(f"/api/cases/{case_id}/sessions")
    (session,) = body["sessions"]
    assert session["starts_at"] == second and body["next"]["id"] == session["id"]

    # Each person: an invitation and a calendar entry with the session's instant.
    for address in people:
        invite = link_of(await newest_path(services, "invitation", address))
        (attachment,) = await mail_attachments(services, "session_scheduled", address)
        calendar = Calendar.from_ical(attachment["text"])
        assert str(calendar["METHOD"]) == "REQUEST"
        (event,) = [c for c in calendar.walk("VEVENT")]
        assert event["DTSTART"].dt.timestamp() == second
        assert int(event["SEQUENCE"]) == 0
        client = world.make_client()
        status, body, _ = await client.post(
            f"/api/invitations/{invite}/accept",
            {"username": address.split("@")[0] + "x", "password": PASSWORD},
        )
        assert status == 201 and body["case_id"] == case_id, body
    status, body, _ = await nina.get(f"/api/cases/{case_id}")
    members = {m["display_name"]: m for m in body["members"]}
    assert {"Jon Smith", "Mary Unrelated", "Alex Advocate"} <= set(members)
    assert members["Alex Advocate"]["role"] == "counsel"
    assert members["Alex Advocate"]["represents"] == members["Jon Smith"]["user_id"]
    # The personal links are spent once the request is a case.
    status, body, _ = await anyone.get(f"/api/respond/{links['jon@example.org']}")
    assert status == 410


async def test_disclosure_needs_every_persons_consent(link: World) -> None:
    world, services = link, link.server.services
    anyone = world.make_client()
    slot = (await open_slots(world, 1))[0]
    status, _, _ = await anyone.post(f"{LINK}/requests", request_form([slot]))
    assert status == 201
    confirm = link_of(await newest_path(services, "request_confirm", "alex@law.example"))
    await anyone.post(f"/api/request-confirmations/{confirm}")
    nina = world.clients["nina"]
    request_id = (await nina.get("/api/neutral/requests"))[1]["requests"][0]["id"]
    path = f"/api/neutral/requests/{request_id}"
    status, body, _ = await nina.post(f"{path}/decision", {"decision": "disclose", "note": ""})
    assert status == 400 and body["error"]["code"] == "disclosure_required"
    note = "I mediated a matter for Jon Smith's employer in 2025."
    status, body, _ = await nina.post(f"{path}/decision", {"decision": "disclose", "note": note})
    assert status == 200 and body["request"]["status"] == "disclosed"
    links = {
        p["email"]: link_of(await newest_path(services, "request_disclosure", p["email"]))
        for p in body["request"]["people"]
    }
    jon = links.pop("jon@example.org")
    status, body, _ = await anyone.get(f"/api/respond/{jon}")
    assert body["disclosure"] == note
    # No answer on the date before consent.
    status, body, _ = await anyone.post(f"/api/respond/{jon}/answer", {"answer": "decline"})
    assert status == 409 and body["error"]["code"] == "not_scheduling"
    status, body, _ = await anyone.post(f"/api/respond/{jon}/consent", {"consent": False})
    assert status == 200 and body["me"]["consent"] == "refused"
    for token in links.values():
        await anyone.post(f"/api/respond/{token}/consent", {"consent": True})
    status, body, _ = await nina.get(path)
    assert body["request"]["status"] == "disclosed"  # Jon refused: the process waits
    status, body, _ = await anyone.post(f"/api/respond/{jon}/consent", {"consent": True})
    assert status == 200 and body["status"] == "scheduling"
    status, body, _ = await nina.get(path)
    assert body["request"]["status"] == "scheduling"
    assert [d["decision"] for d in body["request"]["decisions"]] == ["disclose"]


async def test_a_declined_request_frees_its_time_and_tells_the_requester_courteously(
    link: World,
) -> None:
    world, services = link, link.server.services
    anyone = world.make_client()
    slot = (await open_slots(world, 1))[0]
    await anyone.post(f"{LINK}/requests", request_form([slot]))
    assert slot not in await open_slots(world, 50)  # held while unconfirmed
    confirm = link_of(await newest_path(services, "request_confirm", "alex@law.example"))
    await anyone.post(f"/api/request-confirmations/{confirm}")
    nina = world.clients["nina"]
    request_id = (await nina.get("/api/neutral/requests"))[1]["requests"][0]["id"]
    note = "Conflict with a former client."
    status, body, _ = await nina.post(
        f"/api/neutral/requests/{request_id}/decision", {"decision": "decline", "note": note}
    )
    assert status == 200 and body["request"]["status"] == "declined"
    assert slot in await open_slots(world, 50)
    declined = await newest_mail(services, "request_declined", "alex@law.example")
    assert note not in str(declined)  # no reasons given


async def test_bad_input_is_refused_and_nothing_is_half_made(link: World) -> None:
    world = link
    anyone = world.make_client()
    slot = (await open_slots(world, 1))[0]
    before = await counts(world)

    tries = iter(range(100))

    async def refused(form: dict[str, Any], status: int, code: str) -> None:
        # each from a client and requester of its own: what is refused is the input
        if isinstance(form.get("requester"), dict) and "@law" in form["requester"]["email"]:
            form["requester"] = {**form["requester"], "email": f"r{next(tries)}@example.net"}
        got, body, _ = await world.make_client().post(f"{LINK}/requests", form)
        assert got == status and body["error"]["code"] == code, (form, body)

    # Filed in court without the cause number and jurisdiction.
    await refused(request_form([slot], cause_number=""), 400, "invalid_input")
    await refused(request_form([slot], jurisdiction=""), 400, "invalid_input")
    # Required fields missing, unknown fields, wrong types.
    form = request_form([slot])
    del form["parties"]
    await refused(form, 400, "invalid_input")
    await refused({**request_form([slot]), "admin": True}, 400, "invalid_input")
    await refused(request_form([slot], minutes="sixty"), 400, "invalid_input")
    await refused(request_form([slot], parties=[]), 400, "invalid_input")
    # A slot in the past, off the grid, outside the hours, not offered, too many.
    await refused(request_form([time.time() - 7200]), 400, "slot_unavailable")
    await refused(request_form([slot + 60]), 400, "slot_unavailable")
    await refused(request_form([slot + 90 * 86400]), 400, "slot_unavailable")
    await refused(request_form([slot], minutes=45), 400, "invalid_length")
    await refused(
        request_form([slot, slot + 3600, slot + 7200, slot + 10800]), 400, "invalid_input"
    )
    # Oversize fields, an oversize body, a bad address, an unknown zone.
    await refused(request_form([slot], title="x" * 301), 400, "invalid_input")
    await refused(request_form([slot], description="x" * 100_000), 413, "payload_too_large")
    requester = {"name": "Alex", "email": "not an address", "role": "attorney"}
    await refused(request_form([slot], requester=requester), 400, "invalid_email")
    await refused(request_form([slot], time_zone="Mars/Olympus"), 400, "invalid_time_zone")
    # An attorney for a party that is not named; the honeypot filled.
    attorneys = [{"name": "A", "email": "a@law.example", "represents": 5}]
    await refused(request_form([slot], attorneys=attorneys), 400, "invalid_input")
    await refused(request_form([slot], website="https://spam.example"), 400, "request_refused")
    # A link that does not exist.
    status, body, _ = await anyone.get("/api/request-links/nobody/slots")
    assert status == 404
    assert await counts(world) == before

    # Tampered and expired personal and confirmation links.
    for path in (
        "/api/respond/" + "A" * 43,
        "/api/respond/" + "A" * 500,
    ):
        status, body, _ = await anyone.get(path)
        assert status == 410 and body["error"]["code"] == "link_invalid"
    status, body, _ = await anyone.post("/api/request-confirmations/" + "B" * 43)
    assert status == 410 and body["error"]["code"] == "confirmation_invalid"
    services = world.server.services
    status, _, _ = await anyone.post(f"{LINK}/requests", request_form([slot]))
    assert status == 201
    confirm = link_of(await newest_path(services, "request_confirm", "alex@law.example"))
    async with services.store.begin() as conn:
        # the day to confirm has passed
        await conn.execute(sa.update(case_requests).values(expires_at=time.time() - 1))
        await conn.execute(sa.update(bookings).values(expires_at=time.time() - 1))
    status, body, _ = await anyone.post(f"/api/request-confirmations/{confirm}")
    assert status == 410 and body["error"]["code"] == "confirmation_invalid"
    # An unconfirmed request's hold lapses with it.
    assert slot in await open_slots(world, 50)


async def test_filing_is_limited_per_client_and_per_address(link: World) -> None:
    world = link
    settings = world.server.services.settings
    client = world.make_client()
    slots = (await open_slots(world, 2 * (settings.request_per_client + 2)))[::2]  # an hour apart
    statuses = []
    for n, slot in enumerate(slots):
        form = request_form([slot])
        email_ = f"req{n}@example.net"
        form["requester"] = {"name": f"R {n}", "email": email_, "role": "party"}
        status, body, response = await client.post(f"{LINK}/requests", form)
        statuses.append(status)
        if status == 429:
            assert body["error"]["code"] == "rate_limited" and response.headers["Retry-After"]
    assert statuses.count(201) == settings.request_per_client and statuses[-1] == 429
    # The same address from elsewhere is limited too.
    async with world.server.services.store.begin() as conn:
        from rooms.storage.schema import login_failures

        await conn.execute(sa.delete(login_failures))
    statuses = []
    for slot in (await open_slots(world, 8))[::2]:
        status, _, _ = await world.make_client().post(f"{LINK}/requests", request_form([slot]))
        statuses.append(status)
    assert statuses[: settings.request_per_address].count(201) == settings.request_per_address
    assert statuses[settings.request_per_address] == 429


async def test_the_decision_record_survives_closing_and_holds_no_content(
    link: World, tmp_path: Path, database_url: tuple[str, str | None]
) -> None:
    world, services = link, link.server.services
    anyone = world.make_client()
    slot = (await open_slots(world, 1))[0]
    marker = "ZEPHYRINE-CONTENT-7731"
    form = request_form([slot], description=f"Facts: {marker}", cause_number="CN-55-ZEPH")
    await anyone.post(f"{LINK}/requests", form)
    confirm = link_of(await newest_path(services, "request_confirm", "alex@law.example"))
    await anyone.post(f"/api/request-confirmations/{confirm}")
    nina = world.clients["nina"]
    request_id = (await nina.get("/api/neutral/requests"))[1]["requests"][0]["id"]
    path = f"/api/neutral/requests/{request_id}"
    await nina.post(f"{path}/decision", {"decision": "clear", "note": "No relationship."})
    detail = (await nina.get(path))[1]["request"]
    (current,) = [s for s in detail["slots"] if s["current"]]
    for person in detail["people"]:
        token = link_of(await newest_path(services, "request_slots", person["email"]))
        await anyone.post(
            f"/api/respond/{token}/answer", {"answer": "accept", "slot_id": current["id"]}
        )
    status, body, _ = await nina.post(f"{path}/confirm", {"slot_id": current["id"]})
    case_id = body["case_id"]
    status, body, _ = await nina.post(
        f"/api/cases/{case_id}/close", {"confirm_title": form["title"]}
    )
    assert status == 200, body
    async with services.store.connect() as conn:
        records = (await conn.execute(sa.select(conflict_decisions))).all()
        left = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(case_requests)
                .where(case_requests.c.id == request_id)
            )
        ).scalar_one()
    assert left == 0
    (record,) = records
    assert record.decision == "clear" and record.case_id == case_id
    assert {p["name"] for p in record.people} == {"Jon Smith", "Mary Unrelated", "Alex Advocate"}
    text = str(record._asdict())
    for content in (marker, "CN-55-ZEPH", form["title"], form["case_type"], "County Court"):
        assert content not in text
    # No content anywhere on disk (the SQLite files, the mail written) or in a dump.
    assert files_holding(tmp_path, marker.encode()) == []
    assert files_holding(tmp_path, b"CN-55-ZEPH") == []
    _url, schema = database_url
    if schema is not None:
        dump = await pg_dump(schema)
        assert marker.encode() not in dump and b"CN-55-ZEPH" not in dump
    # A later request naming the same person finds the record.
    status, body, _ = await anyone.post(
        f"{LINK}/requests",
        request_form(
            await open_slots(world, 1),
            requester={"name": "Jo", "email": "jo@example.net", "role": "party"},
        ),
    )
    assert status == 201
    confirm = link_of(await newest_path(services, "request_confirm", "jo@example.net"))
    await anyone.post(f"/api/request-confirmations/{confirm}")
    newest = (await nina.get("/api/neutral/requests"))[1]["requests"][0]
    hits = (await nina.get(f"/api/neutral/requests/{newest['id']}"))[1]["request"]["hits"]
    assert any(h["kind"] == "record" and h["matched"] == "Jon Smith" for h in hits), hits


async def test_another_neutral_cannot_see_or_decide_the_request(link: World) -> None:
    world, services = link, link.server.services
    anyone = world.make_client()
    await anyone.post(f"{LINK}/requests", request_form(await open_slots(world, 1)))
    confirm = link_of(await newest_path(services, "request_confirm", "alex@law.example"))
    await anyone.post(f"/api/request-confirmations/{confirm}")
    request_id = (await world.clients["nina"].get("/api/neutral/requests"))[1]["requests"][0]["id"]
    otto = world.clients["otto"]
    assert (await otto.get("/api/neutral/requests"))[1]["requests"] == []
    status, _, _ = await otto.get(f"/api/neutral/requests/{request_id}")
    assert status == 404
    status, _, _ = await otto.post(
        f"/api/neutral/requests/{request_id}/decision", {"decision": "decline"}
    )
    assert status == 404


async def test_profile_validation(link: World) -> None:
    nina, otto = link.clients["nina"], link.clients["otto"]
    body = {"handle": "nina", "accepting": True, "availability": ALWAYS_OPEN}
    status, got, _ = await otto.request("PUT", "/api/neutral/profile", body)
    assert status == 409 and got["error"]["code"] == "handle_taken"
    for handle in ("ab", "Has Space", "-lead", "api", "x" * 41):
        status, got, _ = await otto.request(
            "PUT", "/api/neutral/profile", {**body, "handle": handle}
        )
        assert status == 400, handle
    bad = {**ALWAYS_OPEN, "weekly": {"mon": [["09:00", "25:00"]]}}
    status, got, _ = await otto.request(
        "PUT", "/api/neutral/profile", {**body, "handle": "otto", "availability": bad}
    )
    assert status == 400 and "25:00" in got["error"]["message"]
    status, got, _ = await nina.get("/api/neutral/profile")
    assert got["profile"]["link"] == "/request/nina"


async def test_the_queue_lists_every_request_in_a_fixed_number_of_queries(link: World) -> None:
    """The neutral's queue reads its requests' people and slots together: listing four
    requests reads those tables as often as listing one does, and each summary is its
    own request's (requester, answers), as its detail says."""
    world, services = link, link.server.services
    nina = world.clients["nina"]
    engine = services.store.engine.sync_engine
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if "request_people" in statement or "request_slots" in statement:
            statements.append(statement)  # (the session's own statements vary)

    async def listing() -> tuple[list[dict[str, Any]], int]:
        statements.clear()
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            status, body, _ = await nina.get("/api/neutral/requests")
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        assert status == 200, body
        return body["requests"], len(statements)

    async def file(name: str, email: str) -> None:
        client = world.make_client()
        form = request_form(
            await open_slots(world, 1),
            requester={"name": name, "email": email, "role": "party"},
        )
        status, body, _ = await client.post(f"{LINK}/requests", form)
        assert status == 201, body
        confirm = link_of(await newest_path(services, "request_confirm", email))
        status, body, _ = await client.post(f"/api/request-confirmations/{confirm}")
        assert status == 200, body

    await file("Ada Requester", "ada@example.net")
    one, with_one = await listing()
    assert [r["requester"]["name"] for r in one] == ["Ada Requester"]
    for name, email in [
        ("Ben Requester", "ben@example.net"),
        ("Cleo Requester", "cleo@example.net"),
        ("Dov Requester", "dov@example.net"),
    ]:
        await file(name, email)
    four, with_four = await listing()
    assert with_four == with_one, statements
    assert [r["requester"]["name"] for r in four] == [
        "Dov Requester",
        "Cleo Requester",
        "Ben Requester",
        "Ada Requester",
    ]  # newest first
    for summary in four:
        status, body, _ = await nina.get(f"/api/neutral/requests/{summary['id']}")
        assert status == 200, body
        detail = body["request"]
        requester = next(p for p in detail["people"] if p["email"] == summary["requester"]["email"])
        assert requester["name"] == summary["requester"]["name"]
        assert summary["answers"]["total"] == len(detail["people"])
        assert summary["reference"] == detail["reference"]
