"""The browser tests that matter, in Debian's Firefox ESR too (driven over WebDriver BiDi,
tests/browser/firefox/driver.py): sign-in with a second factor, a live room shared with two
Chromiums (everyone sees everyone; frames decode on both sides), a move into a breakout room
and back that media follows without a reload, a screen shared from Firefox, a space with a
file uploaded from Firefox, and a video message recorded in Firefox and played in Chromium."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

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
    drag_person,
    enter_room,
    prepare_case,
    room_card,
    wait_media_rising,
    wait_sfu,
)
from tests.browser.test_live_ui import FAKE_SCREEN
from tests.browser.test_spaces import PEOPLE as SPACE_PEOPLE
from tests.browser.test_spaces import SHARED, open_space, page_of
from tests.browser.test_spaces import prepare_case as prepare_space_case
from tests.samples import pdf_bytes

if TYPE_CHECKING:
    from tests.browser.conftest import RunningServer
    from tests.browser.firefox.driver import Firefox
    from tests.support.world import ApiClient

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


# What headless Firefox answers to getDisplayMedia() (it has no screen to capture, and its
# fake devices cover cameras and microphones only).
REAL_DISPLAY_CAPTURE = """
() => {
  // getDisplayMedia needs a user's gesture (transient activation): the probe runs on a
  // click the driver makes on this button
  const probe = document.createElement("button");
  probe.type = "button";
  probe.id = "capture-probe";
  probe.textContent = "probe";
  probe.addEventListener("click", async () => {
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: true });
      stream.getTracks().forEach((track) => track.stop());
      window.captureProbe = "captured";
    } catch (error) {
      window.captureProbe = error.name;
    }
    probe.remove();
  });
  document.body.append(probe);
}
"""


async def wait_transport_feedback(admin: ApiClient, subscribers: int) -> None:
    """Until ``subscribers`` subscribe transports have had transport feedback read (each
    browser's own encoding of it), none of it malformed."""
    async with asyncio.timeout(15):
        while True:
            status, stats, _ = await admin.get("/api/admin/media")
            assert status == 200, stats
            feedback = [
                t["transport_feedback"]
                for t in stats["transports"]
                if t["direction"] == "subscribe" and t["transport_feedback"] is not None
            ]
            assert all(f["transport_feedback_malformed"] == 0 for f in feedback), feedback
            if sum(1 for f in feedback if f["transport_feedbacks"] > 5) >= subscribers:
                return
            await asyncio.sleep(0.2)


async def wait_round_trips(admin: ApiClient, subscribers: int) -> None:
    """Until ``subscribers`` subscribe transports have every stream they forward (four or
    more: two people's audio and video) measured a round trip: the browser answered each
    sender report of the compound packet its transport sends once a second."""
    async with asyncio.timeout(20):
        while True:
            status, stats, _ = await admin.get("/api/admin/media")
            assert status == 200, stats
            measured = [
                t
                for t in stats["transports"]
                if t["direction"] == "subscribe"
                and len([c for c in t["consumers"] if c["packets_forwarded"]]) >= 4
                and all(c["rtt_ms"] is not None for c in t["consumers"] if c["packets_forwarded"])
            ]
            if len(measured) >= subscribers:
                return
            await asyncio.sleep(0.2)


async def test_live_room_with_two_chromiums_and_a_firefox(
    caucus_server: RunningServer, media_browser: Browser, firefox: Firefox
) -> None:
    """The mediator and party A in Chromium, party B in Firefox: everyone receives
    everyone's audio and video, decoded on both sides. The mediator moves B into a
    breakout room, visits B there, and brings everyone back: B's page follows each move
    without a reload, media with it. B then shares a screen from Firefox."""
    admin, case_id, users, clients = await prepare_case(caucus_server)
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
        await fox.evaluate("() => { window.stillTheSamePage = true; }")
        # both browsers answered transport-cc and their feedback is read, none refused
        await wait_transport_feedback(admin, 3)
        # and both read every sender report of a compound packet (each stream's round trip)
        await wait_round_trips(admin, 3)

        # the mediator moves B into breakout "B": B alone there, the others in the main room
        mediator = pages["mediator"]
        await mediator.get_by_test_id("new-room-name").fill("B")
        await mediator.get_by_test_id("create-room").click()
        await expect(room_card(mediator, "B")).to_have_count(1)
        await drag_person(mediator, users["b"], "B")
        await fox.wait("[data-testid=room-name]", text="B", timeout_ms=20_000)
        await wait_sfu(admin, [{NAME["mediator"], NAME["a"]}, {NAME["b"]}])
        await fox.wait("[data-testid=alone]", state="visible")

        # the mediator visits B: they see and hear each other, A no longer sees either
        await room_card(mediator, "B").get_by_test_id("visit-room").click()
        await wait_sfu(admin, [{NAME["mediator"], NAME["b"]}, {NAME["a"]}])
        await asyncio.gather(
            firefox_media_rising(fox, [NAME["mediator"]]),
            wait_media_rising(mediator, [NAME["b"]], 60),
        )

        # everyone back in the main room
        await mediator.get_by_test_id("bring-back").click()
        await fox.wait("[data-testid=room-name]", text="Main room", timeout_ms=20_000)
        await wait_sfu(admin, [everyone])
        await asyncio.gather(
            *(
                wait_media_rising(page, sorted(everyone - {NAME[key]}), 60)
                for key, page in pages.items()
            ),
            firefox_media_rising(fox, sorted(everyone - {NAME["b"]})),
        )
        assert await fox.evaluate("() => window.stillTheSamePage === true"), "B's page reloaded"

        # screen sharing from Firefox: headless Firefox cannot capture a screen ...
        await fox.evaluate(REAL_DISPLAY_CAPTURE)
        await fox.click("#capture-probe")
        await fox.wait("[data-testid=share-screen]")
        for _ in range(100):
            probe = await fox.evaluate("() => window.captureProbe || null")
            if probe is not None:
                break
            await asyncio.sleep(0.1)
        assert probe == "NotFoundError"
        # ... so the page shares a drawn canvas in its place, through the same code path
        await fox.evaluate(f"() => {{ {FAKE_SCREEN} }}")
        await fox.click("[data-testid=share-screen]")
        await fox.wait("[data-testid=share-screen]", text="Stop sharing")
        for key in ("mediator", "a"):
            screen = pages[key].get_by_test_id("stage").get_by_test_id("remote-tile")
            await expect(screen).to_contain_text(f"{NAME['b']} (screen)", timeout=20_000)
            await pages[key].wait_for_function(
                "() => { const v = document.querySelector("
                "'[data-testid=stage] [data-testid=remote-tile] video');"
                " return v && v.videoWidth > 0 && !v.paused && v.currentTime > 1; }",
                timeout=20_000,
            )
        await fox.click("[data-testid=share-screen]")
        await fox.wait("[data-testid=share-screen]", text="Share screen")
        for key in ("mediator", "a"):
            screens = pages[key].get_by_test_id("remote-tile").filter(has_text="(screen)")
            await expect(screens).to_have_count(0, timeout=20_000)
        assert watch.problems == []
        assert await fox.problems() == []
    finally:
        for context in contexts:
            await context.close()
        for client in (admin, *clients):
            await client.close()


async def test_space_upload_and_video_message_from_firefox(
    caucus_server: RunningServer, media_browser: Browser, firefox: Firefox, tmp_path: Path
) -> None:
    """Party A in Firefox uploads a PDF into a space shared with party B and records a
    video message there; B, in Chromium, sees both arrive, downloads the PDF and plays
    the message past its second second."""
    case_id, clients = await prepare_space_case(caucus_server)
    neutral_api = clients[1]
    try:
        status, body, _ = await neutral_api.get(f"/api/cases/{case_id}")
        assert status == 200, body
        names = {SPACE_PEOPLE["a"][1], SPACE_PEOPLE["b"][1]}
        members = [m["user_id"] for m in body["members"] if m["display_name"] in names]
        status, body, _ = await neutral_api.post(
            f"/api/cases/{case_id}/spaces", {"name": SHARED, "member_ids": members}
        )
        assert status == 201, body
        space_path = f"/cases/{case_id}/spaces/{body['space']['id']}"

        watch = Watch()
        b_context, b = await page_of(media_browser, caucus_server, "b", watch)
        await open_space(b, case_id, SHARED)
        username, _, password = SPACE_PEOPLE["a"]
        a = await firefox_signed_in(firefox, caucus_server, username, password)
        await a.goto(space_path)
        await a.wait("[data-testid=space-name]", text=SHARED)
        await a.wait("[data-testid=live-state]", text="Live")

        # A uploads a PDF from Firefox; B sees it arrive and downloads the same bytes
        offer = tmp_path / "Offer letter.pdf"
        offer.write_bytes(pdf_bytes())
        await a.upload("[data-testid=upload-input]", [offer])
        await a.click("[data-testid=upload]")
        await a.wait("[data-testid=file-name]", text="Offer letter.pdf")
        arrived = b.get_by_test_id("file").filter(has_text="Offer letter.pdf")
        await expect(arrived).to_have_count(1, timeout=15_000)
        file_id = await arrived.get_attribute("data-file-id")
        response = await b_context.request.get(f"/api{space_path}/files/{file_id}")
        assert response.status == 200 and await response.body() == pdf_bytes()

        # A records a video message in Firefox (its fake camera) for as long as the
        # preview has played four seconds; B plays it in Chromium
        await a.click("[data-testid=video-record]")
        await a.wait("[data-testid=video-status]", text="Recording", timeout_ms=20_000)
        await a.wait_function(
            "() => document.querySelector('[data-testid=video-preview]').currentTime > 4",
            timeout_ms=20_000,
        )
        await a.click("[data-testid=video-stop]")
        # the recording is held for review (played back in the page), then sent
        await a.wait("[data-testid=video-send]", state="visible", timeout_ms=20_000)
        await a.click("[data-testid=video-send]")
        await a.wait("[data-testid=video-status]", text="Sent.", timeout_ms=20_000)
        player = b.get_by_test_id("video-player")
        await expect(player).to_have_count(1, timeout=15_000)
        await b.wait_for_function(
            "() => { const v = document.querySelector('[data-testid=video-player]');"
            " return v.readyState >= 1 && v.duration > 3; }",
            timeout=15_000,
        )
        await player.evaluate("video => { video.muted = true; return video.play(); }")
        await b.wait_for_function(
            "() => { const v = document.querySelector('[data-testid=video-player]');"
            " return v.currentTime > 2 && v.videoWidth > 0; }",
            timeout=20_000,
        )
        assert await player.evaluate("video => video.error") is None
        assert watch.problems == []
        assert await a.problems() == []
    finally:
        for client in clients:
            await client.close()
