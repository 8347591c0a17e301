"""The live room as a mediator and a party see it, checked for accessibility and pictured
for docs/user-guide.md: axe-core finds no serious or critical problem on the login, case
list, case, spaces, space and live pages (before joining and in the call, as mediator and
as party); the pre-join screen, the gallery, the speaker view with a shared screen on the
stage and the mediator's console with three rooms are saved at a laptop's and a phone's
size into tests/browser/screenshots/. Along the way: the party's header names their role
in the case, states show on tiles, the views switch, the whiteboard opens on the stage."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.pages import (
    Watch,
    active_admin,
    artifacts,
    invited_member,
    new_neutral,
    open_case,
    serious_accessibility_problems,
    signed_in_page,
)
from tests.support.world import ApiClient

if TYPE_CHECKING:
    from conftest import RunningServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

MEDIATOR = ("odile.mercer", "Odile Mercer", "lantern-quartz-meadow-4412")
PARTY = ("tomas.reyes", "Tomás Reyes", "harbour-fennel-copper-8830")

# A shared "screen" the test draws itself: headless Chromium has no screen to capture.
FAKE_SCREEN = """
(() => {
  navigator.mediaDevices.getDisplayMedia = async () => {
    const canvas = document.createElement("canvas");
    canvas.width = 960;
    canvas.height = 540;
    const context = canvas.getContext("2d");
    const draw = () => {
      context.fillStyle = "#f6f4ef";
      context.fillRect(0, 0, 960, 540);
      context.fillStyle = "#2f5d62";
      context.font = "bold 44px sans-serif";
      context.fillText("Settlement options", 60, 100);
      context.font = "30px sans-serif";
      ["1. Repair at the landlord's cost", "2. Rent reduction of 15 %", "3. Early end of lease"]
        .forEach((line, index) => context.fillText(line, 60, 190 + index * 60));
      context.fillText(new Date().toLocaleTimeString(), 60, 480);
    };
    draw();
    setInterval(draw, 500);
    return canvas.captureStream(5);
  };
})();
"""


async def accessible(page: Page, where: str) -> None:
    problems = await serious_accessibility_problems(page)
    assert problems == [], f"{where}: {problems}"


async def prepare(server: RunningServer) -> tuple[str, str, list[ApiClient]]:
    admin = await active_admin(server)
    neutral = await new_neutral(admin, server, *MEDIATOR)
    case_id = await open_case(neutral, "Willow Court tenancy")
    username, display_name, password = PARTY
    party = await invited_member(
        neutral,
        server,
        case_id,
        role="party",
        display_name=display_name,
        username=username,
        password=password,
    )
    _, case, _ = await neutral.get(f"/api/cases/{case_id}")
    party_id = next(m["user_id"] for m in case["members"] if m["display_name"] == display_name)
    status, body, _ = await neutral.post(
        f"/api/cases/{case_id}/spaces", {"name": "Joint documents", "member_ids": [party_id]}
    )
    assert status == 201, body
    return case_id, body["space"]["id"], [admin, neutral, party]


async def person_page(
    browser: Browser, server: RunningServer, who: tuple[str, str, str], watch: Watch
) -> tuple[BrowserContext, Page]:
    username, _, password = who
    return await signed_in_page(
        browser,
        server,
        username,
        password,
        watch,
        timeout_ms=20_000,
        init_script=FAKE_SCREEN,
        viewport=(1280, 800),
        bypass_csp=True,  # axe-core is injected as the test's own script
    )


async def join(page: Page) -> None:
    await page.get_by_test_id("join").click()
    await expect(page.get_by_test_id("connection-state")).to_have_text("Connected", timeout=40_000)
    await expect(page.get_by_test_id("prejoin")).to_be_hidden()
    await expect(page.get_by_test_id("call-bar")).to_be_visible()


async def test_live_room_pages_are_accessible_and_pictured(
    media_browser: Browser, caucus_server: RunningServer
) -> None:
    case_id, space_id, clients = await prepare(caucus_server)
    watch = Watch()
    contexts: list[BrowserContext] = []
    try:
        # the login page, before anyone signs in
        stranger = await media_browser.new_context(
            ignore_https_errors=True, base_url=caucus_server.url, bypass_csp=True
        )
        contexts.append(stranger)
        login = await stranger.new_page()
        await login.goto("/login")
        await expect(login.get_by_label("Username")).to_be_visible()
        await accessible(login, "login")

        context, mediator = await person_page(media_browser, caucus_server, MEDIATOR, watch)
        contexts.append(context)
        context, party = await person_page(media_browser, caucus_server, PARTY, watch)
        contexts.append(context)
        await accessible(party, "cases")

        # the case, its spaces and a space; the party's header says "Party"
        await party.goto(f"/cases/{case_id}")
        await expect(party.get_by_test_id("current-role")).to_have_text("Party")
        await accessible(party, "case (party)")
        await mediator.goto(f"/cases/{case_id}")
        await expect(mediator.get_by_test_id("live-link")).to_be_visible()
        await accessible(mediator, "case (mediator)")
        await mediator.goto(f"/cases/{case_id}/spaces")
        await expect(mediator.get_by_text("Joint documents")).to_be_visible()
        await accessible(mediator, "spaces")
        await mediator.goto(f"/cases/{case_id}/spaces/{space_id}")
        await expect(mediator.get_by_test_id("upload")).to_be_visible()
        await accessible(mediator, "space")

        # before joining: preview, devices, name
        for page in (mediator, party):
            await page.goto(f"/cases/{case_id}/live")
            await expect(page.get_by_test_id("join")).to_be_enabled()
            await expect(page.get_by_test_id("camera")).not_to_have_value("")
        await expect(party.get_by_test_id("prejoin-name")).to_have_text(PARTY[1])
        await expect(party.get_by_test_id("current-role")).to_have_text("Party")
        await accessible(party, "live pre-join (party)")
        await accessible(mediator, "live pre-join (mediator)")
        await artifacts(party, "live-prejoin")

        # in the call: the gallery, the mediator's console beside it
        await join(mediator)
        await join(party)
        await expect(party.get_by_test_id("remote-tile")).to_have_count(1)
        await expect(mediator.get_by_test_id("panel")).to_be_visible()
        await expect(party.get_by_test_id("panel-toggle")).to_be_hidden()
        await expect(party.get_by_test_id("stage-wrap")).to_have_attribute("data-layout", "gallery")
        # devices are behind the settings button during the call
        await expect(party.get_by_test_id("camera")).to_be_hidden()
        await party.get_by_test_id("settings").click()
        await expect(party.get_by_test_id("camera")).to_be_visible()
        await accessible(party, "live settings (party)")
        await party.keyboard.press("Escape")
        await expect(party.get_by_test_id("settings-dialog")).to_be_hidden()
        # the party mutes: their tile says so on the mediator's page and on the console
        await party.get_by_test_id("mute").click()
        await expect(party.get_by_test_id("mute")).to_have_attribute("aria-pressed", "true")
        tile = mediator.get_by_test_id("remote-tile").filter(has_text=PARTY[1])
        await expect(tile.locator("[data-state=muted]")).to_be_visible()
        row = mediator.get_by_test_id("panel-occupant").filter(has_text=PARTY[1])
        await expect(row.locator("[data-state=muted]")).to_be_visible()
        await party.get_by_test_id("mute").click()
        await expect(tile.locator("[data-state=muted]")).to_have_count(0)
        await accessible(party, "live in call (party)")
        await accessible(mediator, "live in call (mediator)")
        await artifacts(party, "live-gallery")

        # the whiteboard opens on the stage, and closes again
        await party.get_by_test_id("board-toggle").click()
        await expect(party.get_by_test_id("stage").get_by_test_id("board")).to_be_visible()
        await party.get_by_test_id("board-toggle").click()
        await expect(party.get_by_test_id("board")).to_be_hidden()

        # the mediator shares a screen: it takes the party's stage, people in the strip
        await party.get_by_test_id("view-toggle").click()
        await expect(party.get_by_test_id("view-toggle")).to_have_attribute("aria-pressed", "true")
        await mediator.get_by_test_id("share-screen").click()
        await expect(mediator.get_by_test_id("share-screen")).to_have_text("Stop sharing")
        screen = party.get_by_test_id("stage").get_by_test_id("remote-tile")
        await expect(screen).to_contain_text("(screen)")
        await expect(party.get_by_test_id("stage-wrap")).to_have_attribute("data-layout", "stage")
        await party.wait_for_function(
            "() => document.querySelector('#stage video').videoWidth > 0", timeout=20_000
        )
        await artifacts(party, "live-speaker-screen-share")
        await mediator.get_by_test_id("share-screen").click()
        await expect(
            party.get_by_test_id("stage").get_by_test_id("remote-tile")
        ).not_to_contain_text("(screen)")

        # the mediator's console with three rooms
        for name in ("Tenant", "Landlord"):
            await mediator.get_by_test_id("new-room-name").fill(name)
            await mediator.get_by_test_id("create-room").click()
            await expect(
                mediator.get_by_test_id("room-card-name").filter(has_text=name)
            ).to_have_count(1)
        await expect(mediator.get_by_test_id("room-card")).to_have_count(3)
        await accessible(mediator, "live console (mediator)")
        await artifacts(mediator, "live-console")
        assert watch.problems == []
    finally:
        for context in contexts:
            await context.close()
        for client in clients:
            await client.close()
