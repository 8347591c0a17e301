"""The password rules are stated next to every field for a new password before the first
attempt, in the server's one wording and with its configured minimum length: on the
invitation page and the password change page (the reset page: tests/browser/test_mail.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from tests.browser.conftest import RunningServer
from tests.browser.pages import Watch, active_admin, new_neutral, open_case, signed_in_page
from tests.support.server import serving

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

MIN_LENGTH = 14
RULES = f"A password has at least {MIN_LENGTH} characters"


@pytest_asyncio.fixture(loop_scope="session")
async def strict_caucus(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A server asking for passwords of at least 14 characters."""
    env = {"CAUCUS_PASSWORD_MIN_LENGTH": str(MIN_LENGTH)}
    async with serving(tmp_path / "data", workers=1, env=env) as served:
        yield RunningServer(served)


NEUTRAL = ("wren.castellan", "Wren Castellan", "thistle-harbour-quartz-5082")


async def test_rules_are_stated_before_the_first_attempt(
    browser: Browser, strict_caucus: RunningServer
) -> None:
    admin = await active_admin(strict_caucus)
    neutral = await new_neutral(admin, strict_caucus, *NEUTRAL)
    try:
        status, rules, _ = await neutral.get("/api/password/rules")
        assert status == 200 and rules["min_length"] == MIN_LENGTH, rules
        assert rules["rules"].startswith(RULES)
        assert "username" in rules["rules"] and "commonly used" in rules["rules"]
        case_id = await open_case(neutral, "Quarry Road lease")
        status, invitation, _ = await neutral.post(
            f"/api/cases/{case_id}/invitations", {"role": "party", "display_name": "Lior Kent"}
        )
        assert status == 201, invitation
        watch = Watch()

        # The invitation page, before anyone typed anything.
        context = await browser.new_context(ignore_https_errors=True, base_url=strict_caucus.url)
        page = await context.new_page()
        watch.attach(page)
        await page.goto(f"/invite/{invitation['token']}")
        await expect(page.get_by_test_id("password-rules")).to_have_text(rules["rules"])
        await expect(page.get_by_label("Password", exact=True)).to_have_attribute(
            "aria-describedby", "password-hint"
        )

        # The password change page: the rules sit under the new password, read with it.
        _, page = await signed_in_page(browser, strict_caucus, NEUTRAL[0], NEUTRAL[2], watch)
        await page.goto("/account/password")
        await expect(page.get_by_test_id("password-rules")).to_have_text(rules["rules"])
        await expect(page.get_by_label("New password", exact=True)).to_have_attribute(
            "aria-describedby", "new-password-hint"
        )
        assert watch.problems == []
    finally:
        await neutral.close()
        await admin.close()
