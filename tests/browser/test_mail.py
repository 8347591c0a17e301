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

from tests.browser.conftest import RunningServer, serving_with_mail
from tests.browser.pages import (
    ADMIN_PASSWORD,
    Watch,
    active_admin,
    link_from,
    neutral_with_email,
    open_case,
    signed_in_page,
)
from tests.support.eventually import eventually
from tests.support.smtp import MailServer
from tests.support.world import ApiClient

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

NEUTRAL_PASSWORD = "willow-compass-harbour-2207"
NEW_PASSWORD = "amber-lattice-orchard-6613"
PARTY_PASSWORD = "silver-meadow-beacon-4480"


@pytest_asyncio.fixture(loop_scope="session")
async def mail_caucus(tmp_path: Path, mail_server: MailServer) -> AsyncIterator[RunningServer]:
    """`caucus serve` sending through the test's SMTP server, its links to itself; digests
    after 1.2 s, looked for five times a second."""
    async with serving_with_mail(
        tmp_path / "data",
        mail_server,
        CAUCUS_DIGEST_MINUTES="0.02",
        CAUCUS_DIGEST_CHECK_SECONDS="0.2",
    ) as server:
        yield server


async def test_forgot_password_link_from_the_mail_signs_in_with_the_new_password(
    browser: Browser, mail_caucus: RunningServer, mail_server: MailServer
) -> None:
    neutral = await neutral_with_email(
        mail_caucus, mail_server, "nadia", "nadia@example.org", NEUTRAL_PASSWORD
    )
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
    await eventually(lambda: len(mail_server.to("nadia@example.org")) == 2, what="the reset mail")
    link = link_from(mail_server, "nadia@example.org", "/reset/")

    await page.goto(link)
    # the rules are stated before the first attempt, as the server words them
    rules = page.get_by_test_id("password-rules")
    await expect(rules).to_contain_text("at least 12 characters")
    await expect(rules).to_contain_text("contain your username")
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
    neutral = await neutral_with_email(
        mail_caucus, mail_server, "nadia", "nadia@example.org", NEUTRAL_PASSWORD
    )
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


async def test_the_admin_sees_a_refused_mail_with_its_reason_and_retries_it(
    browser: Browser, mail_caucus: RunningServer, mail_server: MailServer
) -> None:
    admin = await active_admin(mail_caucus)
    await admin.close()
    mail_server.refused.add("gone@example.org")
    watch = Watch()
    _context, page = await signed_in_page(browser, mail_caucus, "admin", ADMIN_PASSWORD, watch)
    await page.get_by_role("link", name="Mail").click()
    await expect(page.get_by_test_id("mail-transport")).to_contain_text("SMTP server")
    await page.get_by_label("Address").fill("gone@example.org")
    await page.get_by_role("button", name="Send").click()

    failed = page.get_by_test_id("mail-failed")

    async def refused_shown() -> bool:
        await page.reload()
        return "550 5.1.1 No such mailbox here" in (await failed.text_content() or "")

    await eventually(refused_shown, what="the refusal is on the page")
    mail_server.refused.clear()
    await failed.get_by_role("button", name="Retry").click()
    await eventually(lambda: mail_server.to("gone@example.org"), what="the retried mail")
    assert watch.problems == []


async def test_digests_switched_off_on_the_account_page_send_none(
    browser: Browser, mail_caucus: RunningServer, mail_server: MailServer
) -> None:
    neutral = await neutral_with_email(
        mail_caucus, mail_server, "nadia", "nadia@example.org", NEUTRAL_PASSWORD
    )
    case_id = await open_case(neutral, "Harbor Bakery v. Lindqvist Supplies")
    ids = {}
    for name in ("ada", "boris"):
        status, body, _ = await neutral.post(
            f"/api/cases/{case_id}/invitations",
            {"role": "party", "display_name": name.title(), "email": f"{name}@example.org"},
        )
        assert status == 201, body
        member = ApiClient(mail_caucus.url)
        status, _, _ = await member.post(
            f"/api/invitations/{body['token']}/accept",
            {"username": name, "password": PARTY_PASSWORD},
        )
        assert status == 201
        ids[name] = (await member.get("/api/session"))[1]["user"]["id"]
        await member.close()

    watch = Watch()
    _context, page = await signed_in_page(browser, mail_caucus, "ada", PARTY_PASSWORD, watch)
    await page.goto("/account/security")
    toggle = page.get_by_test_id("digest-toggle")
    await expect(toggle).to_be_checked()
    await toggle.uncheck()
    await expect(toggle).to_be_enabled()
    choices = await (await page.request.get("/api/account/notifications")).json()
    assert choices["cases"] == [
        {"case_id": case_id, "title": "Harbor Bakery v. Lindqvist Supplies", "digests": False}
    ]

    status, body, _ = await neutral.post(
        f"/api/cases/{case_id}/spaces",
        {"name": "Joint room", "member_ids": [ids["ada"], ids["boris"]]},
    )
    assert status == 201, body
    space = f"/api/cases/{case_id}/spaces/{body['space']['id']}"
    status, _, _ = await neutral.post(space + "/messages", {"body": "the revised figures"})
    assert status == 201
    await neutral.close()
    await eventually(
        lambda: len(mail_server.to("boris@example.org")) == 2, what="boris's digest arrives"
    )
    assert "1 new message waits" in mail_server.to("boris@example.org")[1].text()
    assert len(mail_server.to("ada@example.org")) == 1  # her invitation only
    assert watch.problems == []
