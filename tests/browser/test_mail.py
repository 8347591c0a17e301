"""Mail in a real browser, with a real SMTP server (aiosmtpd) behind `caucus serve`: a
forgotten password renewed through the mailed link, and an invitation sent by email and
accepted from the mail."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from tests.browser.conftest import RunningServer
from tests.browser.pages import Watch, active_admin, open_case, renew_password, signed_in_page
from tests.support.eventually import eventually
from tests.support.server import free_port, serving
from tests.support.smtp import MailServer
from tests.support.world import ApiClient

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

NEUTRAL_PASSWORD = "willow-compass-harbour-2207"
NEW_PASSWORD = "amber-lattice-orchard-6613"
PARTY_PASSWORD = "silver-meadow-beacon-4480"


@pytest_asyncio.fixture(loop_scope="session")
async def mail_caucus(tmp_path: Path, mail_server: MailServer) -> AsyncIterator[RunningServer]:
    """`caucus serve` sending through the test's SMTP server, its links to itself."""
    port = free_port()
    env = {
        "CAUCUS_SMTP_URL": mail_server.url,
        "CAUCUS_PUBLIC_URL": f"https://127.0.0.1:{port}",
        "CAUCUS_MAIL_POLL_SECONDS": "0.1",
    }
    async with serving(tmp_path / "data", port=port, workers=0, env=env) as served:
        yield RunningServer(served)


async def neutral_with_email(server: RunningServer, username: str, email: str) -> ApiClient:
    admin = await active_admin(server)
    status, body, _ = await admin.post(
        "/api/admin/users", {"username": username, "role": "neutral", "email": email}
    )
    assert status == 201, body
    await admin.close()
    neutral = ApiClient(server.url)
    status, _, _ = await neutral.post(
        "/api/login", {"username": username, "password": body["one_time_password"]}
    )
    assert status == 200
    await renew_password(neutral, body["one_time_password"], NEUTRAL_PASSWORD)
    return neutral


def link_from(mail_server: MailServer, address: str, path: str) -> str:
    pattern = r"https://127\.0\.0\.1:\d+" + re.escape(path) + r"[A-Za-z0-9_-]+"
    (received,) = [m for m in mail_server.to(address) if re.search(pattern, m.text())]
    found = re.findall(
        r"https://127\.0\.0\.1:\d+" + re.escape(path) + r"[A-Za-z0-9_-]+", received.text()
    )
    assert len(set(found)) == 1, received.text()
    return found[0]


async def test_forgot_password_link_from_the_mail_signs_in_with_the_new_password(
    browser: Browser, mail_caucus: RunningServer, mail_server: MailServer
) -> None:
    neutral = await neutral_with_email(mail_caucus, "nadia", "nadia@example.org")
    await neutral.close()
    watch = Watch()
    context = await browser.new_context(ignore_https_errors=True, base_url=mail_caucus.url)
    page = await context.new_page()
    watch.attach(page)
    await page.goto("/login")
    await page.get_by_role("link", name="Forgot your password?").click()
    await page.get_by_label("Email address").fill("nadia@example.org")
    await page.get_by_role("button", name="Send the link").click()
    await expect(page.get_by_test_id("forgot-sent")).to_contain_text("on its way")
    await eventually(lambda: mail_server.to("nadia@example.org"), what="the reset mail")
    link = link_from(mail_server, "nadia@example.org", "/reset/")

    await page.goto(link)
    await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    await page.get_by_label("New password again").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Set the new password").click()
    await page.wait_for_url("**/cases")
    session = await (await page.request.get("/api/session")).json()
    assert session["stage"] == "active" and session["user"]["username"] == "nadia"

    # the link worked once: opening it again shows one clear page
    await page.goto(link)
    await expect(page.get_by_test_id("reset-invalid")).to_contain_text("used already")
    await expect(page.get_by_label("New password", exact=True)).to_be_hidden()
    assert watch.problems == []


async def test_an_invitation_by_email_is_accepted_from_the_mail(
    browser: Browser, mail_caucus: RunningServer, mail_server: MailServer
) -> None:
    neutral = await neutral_with_email(mail_caucus, "nadia", "nadia@example.org")
    case_id = await open_case(neutral, "Harbor Bakery v. Lindqvist Supplies")
    await neutral.close()
    watch = Watch()
    _context, page = await signed_in_page(browser, mail_caucus, "nadia", NEUTRAL_PASSWORD, watch)
    await page.goto(f"/cases/{case_id}")
    await page.get_by_label("Name shown in the case").fill("Maria Lindqvist")
    await page.get_by_label("Email").fill("maria@example.org")
    await page.get_by_role("button", name="Create invitation").click()
    await expect(page.get_by_test_id("invite-mailed")).to_be_visible()
    await expect(page.get_by_test_id("invitation-list")).to_contain_text("maria@example.org")
    await eventually(lambda: mail_server.to("maria@example.org"), what="the invitation mail")
    link = link_from(mail_server, "maria@example.org", "/invite/")

    party_context = await browser.new_context(ignore_https_errors=True, base_url=mail_caucus.url)
    party = await party_context.new_page()
    watch.attach(party)
    await party.goto(link)
    await party.get_by_label("Username").fill("maria")
    await party.get_by_label("Password", exact=True).fill(PARTY_PASSWORD)
    await party.get_by_label("Confirm password").fill(PARTY_PASSWORD)
    await party.get_by_role("button", name="Accept and join").click()
    await expect(party).to_have_url(re.compile(rf"/cases/{re.escape(case_id)}$"))
    await expect(party.get_by_test_id("my-role")).to_contain_text("Party")
    await expect(party.get_by_test_id("case-title")).to_have_text(
        "Harbor Bakery v. Lindqvist Supplies"
    )
    assert watch.problems == []
