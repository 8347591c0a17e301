"""A request from a neutral's public link to an open case, in real browsers with real mail
(aiosmtpd behind `caucus serve`): the neutral offers hours in Chicago, an attorney in London
asks for a session, confirms the address from the mail, the neutral clears the conflict
check (one near-namesake of an earlier matter), the people agree a time through their
personal links, the neutral confirms it, and everyone joins the case from the invitation
mail with the session in a calendar file."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import icalendar
import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import RunningServer
from tests.browser.pages import Watch, links_in, neutral_with_email, signed_in_page, snapshot
from tests.support.eventually import eventually
from tests.support.smtp import MailServer, Received

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

NEUTRAL_PASSWORD = "willow-compass-harbour-2207"
TITLE = "Smith and Unrelated v. Harbor Holdings"
CAUSE_NUMBER = "2026-CV-0099"
JURISDICTION = "District Court, Travis County"
MAIL_SECONDS = 20.0

#: The people the request names: (name, address, time zone of their browser, username).
JON = ("Jon Smith", "jon@example.org", "America/New_York", "jon")
MARY = ("Mary Unrelated", "mary@example.org", "Europe/Berlin", "mary")
ALEX = ("Alex Advocate", "alex@example.org", "Europe/London", "alex")
PEOPLE = (JON, MARY, ALEX)
PASSWORDS = {
    "jon": "copper-lantern-meadow-5521",
    "mary": "quiet-harbour-orchid-7730",
    "alex": "amber-granite-violin-4419",
}


async def visitor(browser: Browser, server: RunningServer, watch: Watch, zone: str) -> Page:
    """A page in a fresh browser context whose clock runs in ``zone`` (British English:
    times read on a 24-hour clock)."""
    context = await browser.new_context(
        ignore_https_errors=True, base_url=server.url, timezone_id=zone, locale="en-GB"
    )
    context.set_default_timeout(15_000)
    page = await context.new_page()
    watch.attach(page)
    return page


#: A browser's `datetime-local` value of an instant, in the browser's own zone.
LOCAL_INPUT = """(epoch) => {
  const d = new Date(epoch * 1000);
  const p = (n) => String(n).padStart(2, "0");
  const day = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  return `${day}T${p(d.getHours())}:${p(d.getMinutes())}`;
}"""


def clock(epoch: int, zone: str) -> str:
    return datetime.fromtimestamp(epoch, ZoneInfo(zone)).strftime("%H:%M")


def calendar_starts(received: Received) -> list[datetime]:
    """The start of every event in the ``.ics`` attachments (text/calendar) of a mail."""
    starts = []
    for part in received.parsed().walk():
        if part.get_content_type() != "text/calendar":
            continue
        assert (part.get_filename() or "").endswith(".ics"), part.get_filename()
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        for event in icalendar.Calendar.from_ical(payload).walk("VEVENT"):
            starts.append(event.decoded("DTSTART"))
    return starts


def respond_links(mail_server: MailServer, address: str) -> list[str]:
    return links_in(mail_server, address, "/respond/")


def mails_with_respond_link(mail_server: MailServer, address: str) -> int:
    return sum(1 for m in mail_server.to(address) if "/respond/" in m.text())


async def test_a_request_from_the_public_link_becomes_a_case_everyone_joins(
    browser: Browser, mail_caucus: RunningServer, mail_server: MailServer
) -> None:
    server = mail_caucus
    neutral_api = await neutral_with_email(
        server, mail_server, "nina", "nina@example.org", NEUTRAL_PASSWORD
    )
    # an earlier matter of this neutral names a near-namesake of one party
    status, body, _ = await neutral_api.post(
        "/api/cases",
        {
            "process": "mediation",
            "title": "Smith v. Lakeside Storage",
            "parties": [{"name": "Jonathan Smith, Esq.", "side": "claimant"}],
        },
    )
    assert status == 201, body

    watch = Watch()

    # --- the neutral offers hours in Chicago through the availability page ----------------
    _context, neutral = await signed_in_page(browser, server, "nina", NEUTRAL_PASSWORD, watch)
    await neutral.get_by_role("link", name="Availability", exact=True).click()
    await expect(neutral.get_by_label("Link name")).to_be_visible()
    await neutral.get_by_label("Link name").fill("nina")
    await neutral.get_by_label("Accept new requests").check()
    await neutral.get_by_label("Your time zone").select_option("America/Chicago")
    # weekdays come with 09:00 to 17:00; Saturday mornings too
    saturday = neutral.get_by_test_id("day-sat")
    await saturday.get_by_role("button", name="Add hours on Saturday").click()
    await saturday.get_by_label("From", exact=True).fill("09:00")
    await saturday.get_by_label("To", exact=True).fill("13:00")
    await neutral.get_by_label("Session lengths offered (minutes)").fill("60, 120")
    await neutral.get_by_role("button", name="Save", exact=True).click()
    await expect(neutral.get_by_test_id("saved")).to_be_visible()
    await expect(neutral.get_by_test_id("public-link")).to_have_text(f"{server.url}/request/nina")
    status, body, _ = await neutral_api.get("/api/neutral/profile")
    assert status == 200, body
    availability = body["profile"]["availability"]
    assert availability["time_zone"] == "America/Chicago"
    assert availability["weekly"]["sat"] == [["09:00", "13:00"]]
    assert availability["weekly"]["mon"] == [["09:00", "17:00"]]
    assert availability["lengths"] == [60, 120]

    # --- an attorney in London asks for a session through the public link ----------------
    requester = await visitor(browser, server, watch, "Europe/London")
    await requester.goto("/request/nina")
    await expect(requester.get_by_test_id("request-heading")).to_contain_text(
        "Request a session with"
    )
    await requester.get_by_label("Short name of the matter").fill(TITLE)
    await requester.get_by_label("Case type").fill("commercial lease")
    await requester.get_by_label("Description").fill("Unpaid rent and a flooded basement.")
    await requester.get_by_label("This dispute has been filed in court").check()
    await requester.get_by_label("Cause number").fill(CAUSE_NUMBER)
    await requester.get_by_label("Court and jurisdiction").fill(JURISDICTION)
    parties = requester.get_by_test_id("party-row")
    for row, (name, address, _zone, _user) in zip(
        (parties.nth(0), parties.nth(1)), (JON, MARY), strict=True
    ):
        await row.get_by_label("Name", exact=True).fill(name)
        await row.get_by_label("Email", exact=True).fill(address)
    await requester.get_by_role("button", name="Add attorney").click()
    attorney = requester.get_by_test_id("attorney-row").first
    await attorney.get_by_label("Name", exact=True).fill(ALEX[0])
    await attorney.get_by_label("Email", exact=True).fill(ALEX[1])
    await attorney.get_by_label("Organisation or firm").fill("Advocate & Partners")
    await attorney.get_by_label("Represents").select_option(label=MARY[0])
    await requester.get_by_label("Your name").fill(ALEX[0])
    await requester.get_by_label("Your email").fill(ALEX[1])
    await requester.get_by_label("You are", exact=True).select_option("attorney")
    await expect(requester.get_by_label("Your time zone")).to_have_value("Europe/London")
    await expect(requester.get_by_test_id("neutral-zone")).to_have_text("America/Chicago")

    slots = requester.get_by_test_id("slot")
    await expect(slots.first).to_be_visible()
    first, second = [int(await slots.nth(i).get_attribute("data-starts-at") or 0) for i in (0, 1)]
    label = slots.first.locator("xpath=..")
    # each open time reads in the visitor's zone and in the neutral's
    await expect(label).to_contain_text(clock(first, "Europe/London"))
    await expect(label).to_contain_text(f"{clock(first, 'America/Chicago')} America/Chicago")
    await slots.nth(0).check()
    await slots.nth(1).check()
    await expect(requester.get_by_test_id("slot-choice")).to_contain_text("2 of 3 chosen")
    await expect(requester.get_by_test_id("website")).to_have_value("")
    await snapshot(requester, "request-form")
    await requester.get_by_role("button", name="Send the request").click()
    await expect(requester.get_by_test_id("request-sent")).to_contain_text("Check your mail")
    await expect(requester.get_by_test_id("request-sent")).to_be_visible()
    await snapshot(requester, "request-sent")

    # --- the requester confirms the address from the mail ---------------------------------
    await eventually(
        lambda: links_in(mail_server, ALEX[1], "/request/confirm/"),
        within=MAIL_SECONDS,
        what="the confirmation mail",
        details=server.log,
    )
    (confirm_link,) = links_in(mail_server, ALEX[1], "/request/confirm/")
    await requester.goto(confirm_link)
    await requester.get_by_role("button", name="Confirm my address").click()
    reference_text = requester.get_by_test_id("request-reference")
    await expect(reference_text).to_have_text(re.compile(r"^REQ-\w+$"))
    reference = await reference_text.text_content()
    assert reference is not None

    # --- the neutral's queue: one hit for Jon Smith, none for Mary Unrelated -------------
    await neutral.get_by_role("link", name="Requests", exact=True).click()
    row = neutral.get_by_test_id("request-row").filter(has_text=reference)
    await expect(row).to_contain_text(TITLE)
    await expect(row.get_by_test_id("request-hits")).not_to_have_text("0")
    await snapshot(neutral, "request-queue")
    await row.get_by_role("link", name=reference).click()
    await expect(neutral.get_by_test_id("request-title")).to_have_text(TITLE)
    hits = neutral.get_by_test_id("hit-row")
    await expect(hits.first).to_be_visible()
    hit_names = await neutral.get_by_test_id("hit-name").all_text_contents()
    matched = await neutral.get_by_test_id("hit-matched").all_text_contents()
    assert set(hit_names) == {JON[0]}, (hit_names, matched)
    assert "Jonathan Smith, Esq." in matched
    await expect(neutral.get_by_test_id("hits")).not_to_contain_text(MARY[0])
    await neutral.get_by_label("Note").fill("A different Smith: no link to the earlier matter.")
    await snapshot(neutral, "request-conflicts")
    await neutral.get_by_role("button", name="Clear: no conflict").click()
    await expect(neutral.get_by_test_id("request-status")).to_have_text("Agreeing the date")
    await expect(neutral.get_by_test_id("decision")).to_contain_text("Clear")

    # --- each person gets a personal link -------------------------------------------------
    for _name, address, _zone, _user in PEOPLE:
        await eventually(
            lambda address=address: respond_links(mail_server, address),
            within=MAIL_SECONDS,
            what=f"the personal link to {address}",
            details=server.log,
        )
    pages = {}
    for name, address, zone, user in PEOPLE:
        page = await visitor(browser, server, watch, zone)
        await page.goto(respond_links(mail_server, address)[-1])
        await expect(page.get_by_test_id("request-title")).to_have_text(TITLE)
        await expect(page.get_by_test_id("my-name")).to_have_text(name)
        await expect(page.get_by_test_id("current-slot")).to_have_count(2)
        await expect(page.get_by_test_id("viewer-zone")).to_have_text(zone.replace("_", " "))
        await expect(page.get_by_test_id("current-slot").first).to_contain_text(clock(first, zone))
        if user == "alex":
            await snapshot(page, "respond-times")
        pages[user] = page

    # --- Jon proposes another time; the neutral offers it to everyone ---------------------
    jon = pages["jon"]
    await jon.get_by_role("button", name="Propose other times").click()
    proposable = jon.get_by_test_id("propose-slot")
    await expect(proposable.first).to_be_visible()
    offered = [
        int(v) for v in await proposable.evaluate_all("(boxes) => boxes.map((b) => b.value)")
    ]
    other = next(epoch for epoch in offered if epoch not in (first, second))
    await jon.locator(f'[data-testid="propose-slot"][data-starts-at="{other}"]').check()
    await jon.get_by_role("button", name="Send these times").click()
    await expect(jon.get_by_test_id("my-answer")).to_contain_text("proposed other times")

    mails_before = {a: mails_with_respond_link(mail_server, a) for _n, a, _z, _u in PEOPLE}
    await neutral.reload()
    await expect(
        neutral.locator(f'[data-testid="slot-row"][data-starts-at="{other}"]')
    ).to_contain_text(JON[0])
    await neutral.get_by_role("button", name="Propose new times").click()
    choice = neutral.locator(f'[data-testid="propose-slot"][data-starts-at="{other}"]')
    await expect(choice).to_be_visible()
    await choice.check()
    await neutral.get_by_role("button", name="Send these times").click()
    await expect(neutral.locator('[data-testid="slot-row"][data-current="true"]')).to_have_count(1)
    for _name, address, _zone, _user in PEOPLE:
        await eventually(
            lambda address=address: (
                mails_with_respond_link(mail_server, address) > mails_before[address]
            ),
            within=MAIL_SECONDS,
            what=f"the mail of the new times to {address}",
            details=server.log,
        )

    # --- both parties and the attorney accept it, each from the newest mail's link --------
    # (a mail of new times carries a new personal link; the one before stops working)
    for _name, address, zone, user in PEOPLE:
        page = pages[user]
        await page.goto(respond_links(mail_server, address)[0])
        await expect(page.get_by_test_id("page-error")).to_contain_text("newer mail")
        await page.goto(respond_links(mail_server, address)[-1])
        current = page.locator(f'[data-testid="current-slot"][data-starts-at="{other}"]')
        await expect(current).to_contain_text(clock(other, zone))
        await current.get_by_role("button", name="Accept this time").click()
        await expect(page.get_by_test_id("my-answer")).to_contain_text("You accepted")
    await expect(pages["alex"].get_by_test_id("person-answer")).to_have_text(["Accepted"] * 3)

    # --- the neutral confirms and the case opens ------------------------------------------
    await neutral.reload()
    await expect(neutral.get_by_test_id("confirm-box")).to_be_visible()
    await snapshot(neutral, "request-accepted")
    await neutral.get_by_role("button", name="Confirm this time and open the case").click()
    case_link = neutral.get_by_test_id("case-link")
    await expect(case_link).to_be_visible()
    case_id = (await case_link.get_attribute("href") or "").removeprefix("/cases/")
    assert case_id

    status, body, _ = await neutral_api.get(f"/api/cases/{case_id}")
    assert status == 200, body
    record = {**body["case"].get("intake", {}), **body["case"]}
    assert record["title"] == TITLE
    assert record["case_type"] == "commercial lease"
    assert record["filed_in_court"] is True
    assert record["cause_number"] == CAUSE_NUMBER
    assert record["jurisdiction"] == JURISDICTION
    assert {party["name"] for party in record["parties"]} == {JON[0], MARY[0]}
    status, body, _ = await neutral_api.get(f"/api/cases/{case_id}/sessions")
    assert status == 200, body
    assert [s["starts_at"] for s in body["sessions"]] == [other]
    await neutral_api.close()

    await case_link.click()
    await expect(neutral.get_by_test_id("case-title")).to_have_text(TITLE)
    await expect(neutral.get_by_test_id("case-details")).to_contain_text(CAUSE_NUMBER)
    await expect(
        neutral.locator(f'[data-testid="session"][data-starts-at="{other}"]')
    ).to_be_visible()
    await snapshot(neutral, "case-session")

    # --- everyone has an invitation and the session as a calendar file --------------------
    instant = datetime.fromtimestamp(other, UTC)
    for _name, address, _zone, _user in PEOPLE:
        await eventually(
            lambda address=address: links_in(mail_server, address, "/invite/"),
            within=MAIL_SECONDS,
            what=f"the invitation to {address}",
            details=server.log,
        )
        await eventually(
            lambda address=address: any(calendar_starts(m) for m in mail_server.to(address)),
            within=MAIL_SECONDS,
            what=f"the calendar file to {address}",
            details=server.log,
        )
        starts = [start for m in mail_server.to(address) for start in calendar_starts(m)]
        assert all(isinstance(start, datetime) for start in starts), starts
        assert instant in [start.astimezone(UTC) for start in starts], (address, starts)

    # --- each person accepts the invitation and is in the case ----------------------------
    for name, address, zone, user in PEOPLE:
        page = pages[user]
        (invitation,) = links_in(mail_server, address, "/invite/")
        await page.goto(invitation)
        await page.get_by_label("Username").fill(user)
        await page.get_by_label("Password", exact=True).fill(PASSWORDS[user])
        await page.get_by_label("Confirm password").fill(PASSWORDS[user])
        await page.get_by_role("button", name="Accept and join").click()
        await expect(page).to_have_url(re.compile(rf"/cases/{re.escape(case_id)}$"))
        await expect(page.get_by_test_id("case-title")).to_have_text(TITLE)
        await expect(page.get_by_test_id("members")).to_contain_text(name)
        await expect(page.get_by_test_id("sessions-zone")).to_have_text(zone.replace("_", " "))
        await expect(
            page.locator(f'[data-testid="session"][data-starts-at="{other}"]')
        ).to_contain_text(clock(other, zone))

    await neutral.reload()
    members = neutral.get_by_test_id("members")
    for name, _address, _zone, _user in PEOPLE:
        await expect(members).to_contain_text(name)

    # --- the neutral schedules a second session, moves it and cancels it --------------------
    # (the neutral's browser runs in the machine's zone: the form reads its own local time)
    later = other + 7 * 86400
    local = await neutral.evaluate(LOCAL_INPUT, later)
    await neutral.get_by_label("Starts").fill(local)
    await neutral.get_by_label("Length (minutes)").fill("90")
    await neutral.get_by_role("button", name="Schedule", exact=True).click()
    second_session = neutral.locator(f'[data-testid="session"][data-starts-at="{later}"]')
    await expect(second_session).to_contain_text("Scheduled")
    await second_session.get_by_role("button", name="Reschedule").click()
    await expect(neutral.get_by_label("Starts")).to_have_value(local)
    # another hour of that day (the session itself may start at 18:00 here)
    moved_local = local[:-5] + ("17:00" if local.endswith("18:00") else "18:00")
    await neutral.get_by_label("Starts").fill(moved_local)
    await neutral.get_by_role("button", name="Move the session").click()
    await expect(second_session).to_have_count(0)
    moved_at = await neutral.evaluate("(value) => new Date(value).getTime() / 1000", moved_local)
    moved = neutral.locator(f'[data-testid="session"][data-starts-at="{int(moved_at)}"]')
    await expect(moved).to_contain_text("Scheduled")
    neutral.once("dialog", lambda dialog: dialog.accept())
    await moved.get_by_role("button", name="Cancel").click()
    await expect(moved).to_contain_text("Cancelled")

    # the live room names the next session
    await neutral.goto(f"/cases/{case_id}/live")
    await expect(neutral.get_by_test_id("next-session")).to_contain_text("The next session is on")

    # --- a party subscribes to the calendar feed from the case page, then stops it --------
    jon = pages["jon"]
    await jon.get_by_role("button", name="Create a feed address").click()
    feed_url = jon.get_by_test_id("feed-url")
    await expect(feed_url).to_have_text(re.compile(r"/calendar/[A-Za-z0-9_-]+\.ics$"))
    address = await feed_url.text_content()
    assert address is not None
    feed = await jon.request.get(address)
    assert feed.ok and feed.headers["content-type"].startswith("text/calendar")
    events = icalendar.Calendar.from_ical(await feed.body()).walk("VEVENT")
    states = {
        event.decoded("DTSTART").astimezone(UTC): str(event.get("STATUS", "CONFIRMED"))
        for event in events
    }
    # the agreed session, and the one scheduled later and cancelled, marked so
    assert states == {instant: states[instant], datetime.fromtimestamp(moved_at, UTC): "CANCELLED"}
    assert states[instant] != "CANCELLED"
    await jon.reload()
    await expect(jon.get_by_test_id("feed-exists")).to_be_visible()
    await jon.get_by_role("button", name="Stop the feed").click()
    await expect(jon.get_by_role("button", name="Create a feed address")).to_be_visible()
    assert (await jon.request.get(address)).status in (404, 410)
    assert watch.problems == []


async def fill_minimal_request(page: Page, title: str, name: str, address: str) -> int:
    """The form filled by a party asking for themselves; answers the first open time, chosen."""
    await page.get_by_label("Short name of the matter").fill(title)
    party = page.get_by_test_id("party-row").first
    await party.get_by_label("Name", exact=True).fill(name)
    await party.get_by_label("Email", exact=True).fill(address)
    await page.get_by_label("Your name").fill(name)
    await page.get_by_label("Your email").fill(address)
    slot = page.get_by_test_id("slot").first
    await slot.check()
    return int(await slot.get_attribute("data-starts-at") or 0)


async def test_a_taken_time_offers_the_next_ones_and_a_disclosure_asks_for_consent(
    browser: Browser, mail_caucus: RunningServer, mail_server: MailServer
) -> None:
    server = mail_caucus
    neutral_api = await neutral_with_email(
        server, mail_server, "nina", "nina@example.org", NEUTRAL_PASSWORD
    )
    every_day = {day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat")}
    status, body, _ = await neutral_api.request(
        "PUT",
        "/api/neutral/profile",
        {
            "handle": "nina",
            "accepting": True,
            "availability": {
                "time_zone": "America/Chicago",
                "weekly": {**every_day, "sun": []},
                "blocked_days": [],
                "lengths": [60],
                "buffer_minutes": 0,
                "step_minutes": 60,
                "notice_hours": 24,
                "horizon_days": 30,
            },
        },
    )
    assert status == 200, body
    await neutral_api.close()
    watch = Watch()
    first = await visitor(browser, server, watch, "America/New_York")
    second = await visitor(browser, server, watch, "Europe/Berlin")
    for page in (first, second):
        await page.goto("/request/nina")
        await expect(page.get_by_test_id("slot").first).to_be_visible()

    # nothing filled in: each missing field says so, and nothing is sent
    await first.get_by_role("button", name="Send the request").click()
    await expect(first.get_by_test_id("form-error")).to_be_visible()
    await expect(first.get_by_label("Short name of the matter")).to_have_attribute(
        "aria-invalid", "true"
    )
    await expect(first.get_by_test_id("field-error").first).to_be_visible()
    await expect(first.get_by_test_id("request-sent")).to_be_hidden()

    # two visitors choose the same time: the second hears it is taken and picks the next one
    taken = await fill_minimal_request(first, "Bakery lease", JON[0], JON[1])
    also = await fill_minimal_request(second, "Storage contract", MARY[0], MARY[1])
    assert taken == also
    await first.get_by_role("button", name="Send the request").click()
    await expect(first.get_by_test_id("request-sent")).to_be_visible()
    await second.get_by_role("button", name="Send the request").click()
    await expect(second.get_by_test_id("slot-taken")).to_be_visible()
    next_slots = second.get_by_test_id("next-slot")
    await expect(next_slots.first).to_be_visible()
    assert int(await next_slots.first.get_attribute("data-starts-at") or 0) > taken
    await expect(second.locator(f'[data-testid="slot"][data-starts-at="{taken}"]')).to_have_count(0)
    await next_slots.first.check()
    await second.get_by_role("button", name="Send the request").click()
    await expect(second.get_by_test_id("request-sent")).to_be_visible()

    await eventually(
        lambda: links_in(mail_server, MARY[1], "/request/confirm/"),
        within=MAIL_SECONDS,
        what="the confirmation mail",
        details=server.log,
    )
    (confirm_link,) = links_in(mail_server, MARY[1], "/request/confirm/")
    await second.goto(confirm_link)
    await second.get_by_role("button", name="Confirm my address").click()
    await expect(second.get_by_test_id("request-reference")).to_be_visible()
    # the link works once
    await second.goto(confirm_link)
    await second.get_by_role("button", name="Confirm my address").click()
    await expect(second.get_by_test_id("page-error")).to_be_visible()

    # the neutral discloses; disclosing needs the text the people will read
    _context, neutral = await signed_in_page(browser, server, "nina", NEUTRAL_PASSWORD, watch)
    await neutral.goto("/neutral/requests")
    await (
        neutral.get_by_test_id("request-row")
        .filter(has_text="Storage contract")
        .get_by_test_id("request-link")
        .click()
    )
    await neutral.get_by_role("button", name="Disclose and ask for consent").click()
    await expect(neutral.get_by_test_id("decision-error")).to_contain_text("disclosure")
    disclosure = "I mediated a dispute for the storage company's parent in 2024."
    await neutral.get_by_label("Note").fill(disclosure)
    await neutral.get_by_role("button", name="Disclose and ask for consent").click()
    await expect(neutral.get_by_test_id("request-status")).to_have_text("Waiting for consents")

    await eventually(
        lambda: links_in(mail_server, MARY[1], "/respond/"),
        within=MAIL_SECONDS,
        what="the personal link",
        details=server.log,
    )
    await second.goto(links_in(mail_server, MARY[1], "/respond/")[-1])
    await expect(second.get_by_test_id("disclosure")).to_have_text(disclosure)
    await expect(second.get_by_test_id("answer-section")).to_be_hidden()
    await second.get_by_role("button", name="I consent").click()
    # the only person consented: the date is agreed next
    await expect(second.get_by_test_id("disclosure-section")).to_be_hidden()
    await expect(second.get_by_test_id("answer-section")).to_be_visible()
    await expect(second.get_by_test_id("current-slot")).to_have_count(1)
    await neutral.reload()
    await expect(neutral.get_by_test_id("person-consent")).to_have_text(["Given"])
    assert watch.problems == []
