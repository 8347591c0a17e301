"""Closing a case from its page: afterwards nothing links to the destroyed case, and a
party whose account existed only for it is told on a page that the case was closed and
the account removed (not silently signed out): at once where the case page is open, at
the next page load in another browser signed in to the same account."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, expect

from tests.browser.pages import (
    Watch,
    active_admin,
    invited_member,
    new_neutral,
    open_case,
    signed_in_page,
)
from tests.support.eventually import eventually

if TYPE_CHECKING:
    from conftest import RunningServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

NEUTRAL = ("maren.oduya", "Maren Oduya", "walnut-signal-harbour-2291")
PARTY = ("eli.varga", "Eli Varga", "copper-lattice-meadow-7714")
TITLE = "Mill Street deposit"


async def test_closing_leaves_no_link_and_tells_the_removed_party(
    browser: Browser, caucus_server: RunningServer
) -> None:
    admin = await active_admin(caucus_server)
    neutral = await new_neutral(admin, caucus_server, *NEUTRAL)
    case_id = await open_case(neutral, TITLE)
    username, display_name, password = PARTY
    party = await invited_member(
        neutral,
        caucus_server,
        case_id,
        role="party",
        display_name=display_name,
        username=username,
        password=password,
    )
    try:
        watch = Watch()
        frames: list[str] = []
        _, p = await signed_in_page(browser, caucus_server, username, password, watch)
        p.on(
            "websocket",
            lambda socket: socket.on("framereceived", lambda frame: frames.append(str(frame))),
        )
        await p.goto(f"/cases/{case_id}")
        await expect(p.get_by_test_id("case-title")).to_have_text(TITLE)
        await expect(p.get_by_test_id("member")).to_have_count(2)
        # The party's page joined the case's room before the neutral closes it.
        await eventually(lambda: any('"online"' in str(f) for f in frames), what="case.join")

        # The same party on another device, on the case list (no case socket there).
        _, elsewhere = await signed_in_page(browser, caucus_server, username, password, watch)

        _, n = await signed_in_page(browser, caucus_server, NEUTRAL[0], NEUTRAL[2], watch)
        await n.goto(f"/cases/{case_id}/close")
        await n.get_by_test_id("confirm-title").fill(TITLE)
        await n.get_by_test_id("close-case").click()
        await expect(n.get_by_test_id("case-closed")).to_be_visible()
        await expect(n.get_by_test_id("case-crumb")).to_have_text(TITLE)
        assert await n.locator(f"a[href*='{case_id}']").count() == 0

        await p.wait_for_url("**/closed")
        await expect(p.get_by_test_id("account-removed")).to_be_visible()
        await expect(p.get_by_test_id("account-kept")).to_be_hidden()

        await elsewhere.reload()
        await elsewhere.wait_for_url("**/closed")
        await expect(elsewhere.get_by_test_id("account-removed")).to_be_visible()
        assert watch.problems == []
    finally:
        await party.close()
        await neutral.close()
        await admin.close()
