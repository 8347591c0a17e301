"""The browser tests that matter, in Debian's Firefox ESR too (driven over WebDriver BiDi,
tests/browser/firefox/driver.py): sign-in with a second factor, a live room shared with two
Chromiums (everyone sees everyone; frames decode on both sides), a move into a breakout room
and back that media follows without a reload, a screen shared from Firefox, a space with a
file uploaded from Firefox, and a video message recorded in Firefox and played in Chromium."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.browser.firefox.pages import enable_totp, firefox_signed_in
from tests.browser.pages import active_admin, new_neutral

if TYPE_CHECKING:
    from tests.browser.conftest import RunningServer
    from tests.browser.firefox.driver import Firefox

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_sign_in_with_a_second_factor(caucus_server: RunningServer, firefox: Firefox) -> None:
    admin = await active_admin(caucus_server)
    neutral = await new_neutral(
        admin, caucus_server, "nadia.brennan", "Nadia Brennan", "cedar-window-compass-7730"
    )
    try:
        totp = await enable_totp(neutral)
        page = await firefox_signed_in(
            firefox, caucus_server, "nadia.brennan", "cedar-window-compass-7730", totp=totp
        )
        assert (await page.url()).endswith("/cases")
        await page.wait("[data-testid=logout]", state="visible")
        assert "Firefox" in await page.evaluate("() => navigator.userAgent")
        assert await page.problems() == []
    finally:
        await neutral.close()
        await admin.close()
