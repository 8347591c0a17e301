"""The foundation journey in a real browser: first admin sign-in, two-step verification,
a neutral's first case, and a party who joins by invitation and sees only that case."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyotp
import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, expect

if TYPE_CHECKING:
    from conftest import RunningServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

ADMIN_PASSWORD = "quiet-harbour-ledger-4821"
NEUTRAL_USERNAME = "nadia.mediator"
NEUTRAL_NAME = "Nadia Brennan"
NEUTRAL_PASSWORD = "cedar-window-compass-7730"
PARTY_USERNAME = "maria.lindqvist"
PARTY_NAME = "Maria Lindqvist"
PARTY_PASSWORD = "orchard-lantern-meadow-5164"
CASE_TITLE = "Harbor Bakery v. Lindqvist Supplies"
OTHER_CASE_TITLE = "Estate of Okafor: boundary dispute"
WRONG_CODE_MESSAGE = re.compile(r"code", re.IGNORECASE)


@dataclass
class PageWatch:
    """Collects what must never happen on a page: uncaught errors and CSP refusals."""

    problems: list[str] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> None:
        context.on("page", self._watch)

    def _watch(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.problems.append(f"{page.url}: {error}"))
        page.on("console", lambda message: self._console(page, message))

    def _console(self, page: Page, message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.problems.append(f"{page.url}: {message.text}")


async def new_context(browser: Browser, server: RunningServer, watch: PageWatch) -> BrowserContext:
    context = await browser.new_context(ignore_https_errors=True, base_url=server.url)
    context.set_default_timeout(10_000)
    watch.attach(context)
    return context


def path_of(page: Page) -> str:
    return re.sub(r"^https?://[^/]+", "", page.url)


def code_of_a_step_after(step: int, totp: pyotp.TOTP) -> str:
    """A TOTP code is accepted once: the code of a step after ``step`` that the server takes
    now, its current step or, within the one step of clock drift it allows, the next one
    (no waiting up to 30 s for the authenticator's clock to show a newer code)."""
    return totp.generate_otp(max(step + 1, totp.timecode(time.time())))


def code_not_valid_now(totp: pyotp.TOTP) -> str:
    now = totp.timecode(time.time())
    valid = {totp.generate_otp(step) for step in range(now - 2, now + 3)}
    return next(code for code in ("000000", "123456", "999999", "314159") if code not in valid)


async def sign_in(page: Page, username: str, password: str) -> None:
    await page.goto("/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def sign_out(page: Page) -> None:
    await page.get_by_test_id("logout").click()
    await expect(page).to_have_url(re.compile(r"/login$"))


async def change_forced_password(page: Page, current: str, new: str) -> None:
    await expect(page).to_have_url(re.compile(r"/account/password"))
    await expect(page.get_by_test_id("forced-notice")).to_be_visible()
    await page.get_by_label("Current password").fill(current)
    await page.get_by_label("New password", exact=True).fill(new)
    await page.get_by_label("Confirm new password").fill(new)
    await page.get_by_role("button", name="Change password").click()
    await expect(page).to_have_url(re.compile(r"/cases$"))


async def enter_code(page: Page, code: str) -> None:
    await expect(page).to_have_url(re.compile(r"/login/totp"))
    await page.get_by_label("Code").fill(code)
    await page.get_by_role("button", name="Verify").click()


async def enrol_totp(page: Page) -> tuple[pyotp.TOTP, int, list[str]]:
    """Turns on two-step verification; answers the authenticator, the step of the code used
    to confirm, and the recovery codes."""
    await page.goto("/account/security")
    await page.get_by_test_id("totp-begin").click()
    secret_text = page.get_by_test_id("totp-secret")
    await expect(secret_text).to_have_text(re.compile(r"^\s*[A-Z2-7]{16,}=*\s*$"))
    secret = (await secret_text.text_content() or "").strip()
    qr = page.get_by_test_id("totp-qr")
    await expect(qr).to_have_attribute("src", re.compile(r"^data:image/svg\+xml"))
    assert await qr.evaluate("image => image.complete && image.naturalWidth > 0")

    totp = pyotp.TOTP(secret)
    step = totp.timecode(time.time())
    await page.get_by_label("Code from the app").fill(totp.generate_otp(step))
    await page.get_by_test_id("totp-confirm").click()
    codes = page.get_by_test_id("recovery-codes").locator("li")
    await expect(codes).to_have_count(10)
    recovery_codes = [code.strip() for code in await codes.all_text_contents()]
    assert len(set(recovery_codes)) == 10
    await expect(page.get_by_test_id("totp-status")).to_contain_text("On")
    return totp, step, recovery_codes


async def create_neutral(page: Page) -> str:
    await page.goto("/admin/users")
    await page.get_by_label("Username").fill(NEUTRAL_USERNAME)
    await page.get_by_label("Full name").fill(NEUTRAL_NAME)
    await page.get_by_label("Role").select_option("neutral")
    await page.get_by_role("button", name="Create user").click()
    one_time = page.get_by_test_id("one-time-password")
    await expect(one_time).to_be_visible()
    password = (await one_time.text_content() or "").strip()
    assert password
    await expect(page.get_by_test_id("user-row").filter(has_text=NEUTRAL_USERNAME)).to_be_visible()
    return password


async def open_case_through_intake(page: Page) -> str:
    await page.goto("/cases")
    await page.get_by_test_id("new-case").click()
    await expect(page).to_have_url(re.compile(r"/cases/new$"))
    await page.get_by_label("Process").select_option("mediation")
    await page.get_by_label("Case title").fill(CASE_TITLE)
    await page.get_by_label("Case type").fill("Commercial supply contract")
    await page.get_by_label("Description").fill("Late deliveries of flour through the winter.")
    parties = page.get_by_test_id("party-row")
    await parties.nth(0).get_by_label("Name").fill("Harbor Bakery LLC")
    await parties.nth(1).get_by_label("Name").fill("Lindqvist Supplies Inc.")
    await expect(parties.nth(1).get_by_label("Side")).to_have_value("respondent")
    await page.get_by_test_id("add-party").click()
    await parties.nth(2).get_by_label("Name").fill("Northwind Insurance")
    await parties.nth(2).get_by_label("Side").select_option("other")
    await page.get_by_test_id("add-attorney").click()
    attorney = page.get_by_test_id("attorney-row").nth(0)
    await attorney.get_by_label("Name").fill("Dana Okafor")
    await attorney.get_by_label("Represents").select_option("Harbor Bakery LLC")

    court = page.get_by_label("Cause number")
    await expect(court).to_be_hidden()
    await page.get_by_label("This dispute has been filed in court").check()
    await court.fill("2026-CV-01187")
    await page.get_by_label("Court and jurisdiction").fill("Superior Court, King County")
    await (
        page.get_by_test_id("date-row")
        .nth(0)
        .get_by_label("Requested date", exact=True)
        .fill("2026-12-01")
    )

    await page.get_by_role("button", name="Open case").click()
    await expect(page).to_have_url(re.compile(r"/cases/[^/]+$"))
    await expect(page.get_by_test_id("case-title")).to_have_text(CASE_TITLE)
    details = page.get_by_test_id("case-details")
    await expect(details).to_contain_text("Lindqvist Supplies Inc.")
    await expect(details).to_contain_text("Dana Okafor")
    await expect(details).to_contain_text("2026-CV-01187")
    return path_of(page).rsplit("/", 1)[1]


async def open_minimal_case(page: Page, title: str) -> str:
    await page.goto("/cases/new")
    await page.get_by_label("Case title").fill(title)
    await page.get_by_test_id("party-row").nth(0).get_by_label("Name").fill("Okafor family")
    await page.get_by_role("button", name="Open case").click()
    await expect(page.get_by_test_id("case-title")).to_have_text(title)
    return path_of(page).rsplit("/", 1)[1]


async def invite(page: Page, case_id: str, role: str, name: str) -> str:
    await page.goto(f"/cases/{case_id}")
    await page.get_by_label("Role").select_option(role)
    await page.get_by_label("Name shown in the case").fill(name)
    await page.get_by_role("button", name="Create invitation").click()
    link = page.get_by_test_id("invitation-link")
    await expect(link).to_contain_text("/invite/")
    return (await link.text_content() or "").strip()


async def test_foundation_journey(browser: Browser, caucus_server: RunningServer) -> None:
    server = caucus_server
    watch = PageWatch()

    # The first admin signs in with the printed one-time password and must replace it.
    admin_context = await new_context(browser, server, watch)
    admin = await admin_context.new_page()
    health = await admin.request.get("/healthz")
    assert (await health.json())["database"] == server.database
    await admin.goto("/")
    await expect(admin).to_have_url(re.compile(r"/login"))
    await sign_in(admin, server.admin_username, "not the password")
    alert = admin.get_by_role("alert")
    await expect(alert).to_have_text("Wrong username or password.")
    await sign_in(admin, server.admin_username, server.admin_password)
    await change_forced_password(admin, server.admin_password, ADMIN_PASSWORD)
    await expect(admin.get_by_test_id("current-user")).to_be_visible()

    # Two-step verification: enrol, then sign in again; a wrong code is refused clearly.
    totp, confirmed_step, recovery_codes = await enrol_totp(admin)
    await sign_out(admin)
    await sign_in(admin, server.admin_username, ADMIN_PASSWORD)
    await enter_code(admin, code_not_valid_now(totp))
    await expect(admin.get_by_role("alert")).to_be_visible()
    await expect(admin.get_by_role("alert")).to_contain_text(WRONG_CODE_MESSAGE)
    await expect(admin).to_have_url(re.compile(r"/login/totp"))
    await enter_code(admin, recovery_codes[0])
    await expect(admin).to_have_url(re.compile(r"/cases$"))

    neutral_one_time = await create_neutral(admin)

    # A used recovery code is refused; a fresh authenticator code lets the admin in.
    await sign_out(admin)
    await sign_in(admin, server.admin_username, ADMIN_PASSWORD)
    await enter_code(admin, recovery_codes[0])
    await expect(admin.get_by_role("alert")).to_be_visible()
    await enter_code(admin, code_of_a_step_after(confirmed_step, totp))
    await expect(admin).to_have_url(re.compile(r"/cases$"))
    await expect(admin.get_by_role("link", name="Users")).to_be_visible()

    # The neutral signs in, replaces the one-time password and opens cases.
    neutral_context = await new_context(browser, server, watch)
    neutral = await neutral_context.new_page()
    await sign_in(neutral, NEUTRAL_USERNAME, neutral_one_time)
    await change_forced_password(neutral, neutral_one_time, NEUTRAL_PASSWORD)
    await expect(neutral.get_by_test_id("current-user")).to_have_text(NEUTRAL_NAME)
    case_id = await open_case_through_intake(neutral)
    other_case_id = await open_minimal_case(neutral, OTHER_CASE_TITLE)
    assert other_case_id != case_id
    link = await invite(neutral, case_id, "party", PARTY_NAME)
    assert link.startswith(f"{server.url}/invite/"), link

    # The party accepts in a browser of their own and lands in the case.
    party_context = await new_context(browser, server, watch)
    party = await party_context.new_page()
    await party.goto(link)
    await expect(party.get_by_test_id("invite-case-title")).to_have_text(CASE_TITLE)
    await expect(party.get_by_test_id("invite-role")).to_have_text("Party")
    await party.get_by_label("Username").fill(PARTY_USERNAME)
    await party.get_by_label("Password", exact=True).fill(PARTY_PASSWORD)
    await party.get_by_label("Confirm password").fill(PARTY_PASSWORD)
    await party.get_by_role("button", name="Accept and join").click()
    await expect(party).to_have_url(re.compile(rf"/cases/{re.escape(case_id)}$"))
    await expect(party.get_by_test_id("case-title")).to_have_text(CASE_TITLE)
    await expect(party.get_by_test_id("my-role")).to_contain_text("Party")
    await expect(party.get_by_test_id("members")).to_contain_text(PARTY_NAME)
    await expect(party.get_by_test_id("members")).to_contain_text(NEUTRAL_NAME)
    await expect(party.get_by_label("Name shown in the case")).to_be_hidden()

    # The party sees only their case.
    await party.goto("/cases")
    rows = party.get_by_test_id("case-row")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text(CASE_TITLE)
    await expect(party.get_by_test_id("case-list")).not_to_contain_text(OTHER_CASE_TITLE)
    await expect(party.get_by_test_id("new-case")).to_be_hidden()
    await party.goto(f"/cases/{other_case_id}")
    await expect(party.get_by_test_id("page-error")).to_be_visible()
    await expect(party.get_by_test_id("case-title")).to_be_hidden()
    response = await party.request.get(f"/api/cases/{other_case_id}")
    assert response.status in (403, 404), response.status
    assert "error" in await response.json()

    # The invitation worked once; the neutral now sees the party and can invite their counsel.
    stranger_context = await new_context(browser, server, watch)
    stranger = await stranger_context.new_page()
    await stranger.goto(link)
    await expect(stranger.get_by_test_id("page-error")).to_be_visible()
    await expect(stranger.get_by_label("Username")).to_be_hidden()

    await neutral.goto(f"/cases/{case_id}")
    await expect(neutral.get_by_test_id("members")).to_contain_text(PARTY_NAME)
    await neutral.get_by_label("Role").select_option("counsel")
    await neutral.get_by_label("Represents").select_option(label=PARTY_NAME)
    await neutral.get_by_label("Name shown in the case").fill("Dana Okafor")
    await neutral.get_by_role("button", name="Create invitation").click()
    await expect(neutral.get_by_test_id("invitation-link")).to_contain_text("/invite/")
    await expect(neutral.get_by_test_id("invitation-row")).to_have_count(2)
    invitations = neutral.get_by_test_id("invitation-row")
    await expect(invitations.filter(has_text=PARTY_NAME)).to_contain_text("Accepted")
    await expect(invitations.filter(has_text="Dana Okafor")).to_contain_text("Waiting")

    for context in (admin_context, neutral_context, party_context, stranger_context):
        await context.close()
    assert watch.problems == []


async def test_sign_in_explains_rate_limit(browser: Browser, caucus_server: RunningServer) -> None:
    watch = PageWatch()
    context = await new_context(browser, caucus_server, watch)
    page = await context.new_page()
    await page.goto("/login")
    alert = page.get_by_role("alert")
    for _attempt in range(10):
        await page.get_by_label("Username").fill(caucus_server.admin_username)
        await page.get_by_label("Password").fill("not the password")
        async with page.expect_response("**/api/login") as answer:
            await page.get_by_role("button", name="Sign in").click()
        if (await answer.value).status == 429:
            break
        await expect(alert).to_have_text("Wrong username or password.")
    else:
        pytest.fail("ten wrong passwords in a row were never rate-limited")
    await expect(alert).to_contain_text(re.compile(r"too many", re.IGNORECASE))
    await expect(alert).to_contain_text(re.compile(r"try again in (about )?\d+ (minutes|seconds)"))
    await expect(page).to_have_url(re.compile(r"/login$"))
    await context.close()
    assert watch.problems == []
