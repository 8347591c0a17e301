"""The case page's invite form keeps up with the case: while the neutral has it open, a
party accepts an invitation elsewhere and, without a reload, appears among the people
and in the "Represents" list a counsel invitation is made for."""

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

NEUTRAL = ("ines.holloway", "Ines Holloway", "saffron-bridge-lattice-6620")
PARTY = ("rafe.okafor", "Rafe Okafor", "quill-harbour-tangent-4175")


async def test_represents_lists_a_party_who_joins_while_the_page_is_open(
    browser: Browser, caucus_server: RunningServer
) -> None:
    admin = await active_admin(caucus_server)
    neutral = await new_neutral(admin, caucus_server, *NEUTRAL)
    case_id = await open_case(neutral, "Orchard Lane boundary")
    made = [admin, neutral]
    try:
        watch = Watch()
        _, page = await signed_in_page(browser, caucus_server, NEUTRAL[0], NEUTRAL[2], watch)
        frames: list[str] = []
        page.on(
            "websocket",
            lambda socket: socket.on("framereceived", lambda frame: frames.append(str(frame))),
        )
        await page.goto(f"/cases/{case_id}")
        await page.get_by_label("Role").select_option("counsel")
        represents = page.get_by_label("Represents")
        await expect(represents.locator("option")).to_have_text(["No party has joined yet"])
        # The page joined the case's room (the server's answer lists who is online), so the
        # party below joins while it is open.
        await eventually(lambda: any('"online"' in frame for frame in frames), what="case.join")

        username, display_name, password = PARTY
        made.append(
            await invited_member(
                neutral,
                caucus_server,
                case_id,
                role="party",
                display_name=display_name,
                username=username,
                password=password,
            )
        )

        await expect(represents.locator("option")).to_have_text(
            ["Choose a party", display_name], timeout=15_000
        )
        await expect(page.get_by_test_id("member").filter(has_text=display_name)).to_have_count(1)
        await represents.select_option(label=display_name)
        await page.get_by_label("Name shown in the case").fill("Priya Das")
        await page.get_by_test_id("create-invitation").click()
        await expect(page.get_by_test_id("invitation-link")).to_be_visible()
        assert watch.problems == []
    finally:
        for client in made:
            await client.close()
