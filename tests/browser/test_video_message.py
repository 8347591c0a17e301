"""A video message in real browsers: party A records five seconds with Chromium's fake
camera in a space shared with party B; B sees it arrive live, plays it past three
seconds, seeks back and it plays on, fetched with HTTP ranges. The neutral starts and
stops recording the main room from the same space, whose files then list the timeline."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, Request, Response, expect

from tests.browser.test_spaces import (
    PEOPLE,
    SHARED,
    Watch,
    open_space,
    page_of,
    prepare_case,
)

if TYPE_CHECKING:
    from conftest import RunningServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_party_records_a_video_message_the_other_plays_and_seeks(
    caucus_server: RunningServer, media_browser: Browser
) -> None:
    case_id, clients = await prepare_case(caucus_server)
    neutral_api = clients[1]
    try:
        status, body, _ = await neutral_api.get(f"/api/cases/{case_id}")
        assert status == 200, body
        names = {PEOPLE["a"][1], PEOPLE["b"][1]}
        members = [m["user_id"] for m in body["members"] if m["display_name"] in names]
        assert len(members) == 2
        status, body, _ = await neutral_api.post(
            f"/api/cases/{case_id}/spaces", {"name": SHARED, "member_ids": members}
        )
        assert status == 201, body

        watch = Watch()
        _, a = await page_of(media_browser, caucus_server, "a", watch)
        await open_space(a, case_id, SHARED)
        _, b = await page_of(media_browser, caucus_server, "b", watch)
        await open_space(b, case_id, SHARED)
        ranged: list[str] = []
        partial: list[int] = []

        def on_request(request: Request) -> None:
            if "/files/" in request.url and "range" in request.headers:
                ranged.append(request.headers["range"])

        def on_response(response: Response) -> None:
            if "/files/" in response.url:
                partial.append(response.status)

        b.on("request", on_request)
        b.on("response", on_response)

        # A records five seconds and sends it.
        await a.get_by_test_id("video-record").click()
        await expect(a.get_by_test_id("video-status")).to_contain_text("Recording", timeout=20_000)
        await expect(a.get_by_test_id("video-preview")).to_be_visible()
        await asyncio.sleep(5)  # the length of the message
        await a.get_by_test_id("video-stop").click()
        await expect(a.get_by_test_id("video-status")).to_have_text("Sent.", timeout=20_000)
        await expect(a.get_by_test_id("video-preview")).to_be_hidden()
        await expect(a.get_by_test_id("video-player")).to_have_count(1)
        await expect(a.get_by_test_id("video-error")).to_be_hidden()

        # B sees it arrive live and plays it.
        player = b.get_by_test_id("video-player")
        await expect(player).to_have_count(1, timeout=15_000)
        await expect(b.get_by_test_id("video-duration")).to_contain_text("Video message · 0:0")
        await b.wait_for_function(
            "() => { const v = document.querySelector('[data-testid=video-player]');"
            " return v.readyState >= 1 && v.duration > 4 && v.duration < 6.5; }",
            timeout=15_000,
        )
        await player.evaluate("video => { video.muted = true; return video.play(); }")
        await b.wait_for_function(
            "() => document.querySelector('[data-testid=video-player]').currentTime > 3",
            timeout=20_000,
        )
        # Seek back: it plays on from there.
        await player.evaluate("video => { video.currentTime = 1; }")
        await b.wait_for_function(
            "() => { const v = document.querySelector('[data-testid=video-player]');"
            " return !v.seeking && v.currentTime > 1.5 && v.currentTime < 4 && !v.paused; }",
            timeout=15_000,
        )
        await b.wait_for_function(
            "() => document.querySelector('[data-testid=video-player]').currentTime > 2.5",
            timeout=15_000,
        )
        assert await player.evaluate("video => video.error") is None
        assert ranged, "the player fetched the video without a Range header"
        assert 206 in partial, partial

        # The neutral records the main room into this space from the space page.
        _, n = await page_of(media_browser, caucus_server, "neutral", watch)
        await open_space(n, case_id, SHARED)
        await expect(n.get_by_test_id("hearing-state")).to_have_text("Not recording")
        await n.get_by_test_id("hearing-toggle").click()
        await expect(n.get_by_test_id("hearing-state")).to_have_text("Recording")
        await n.get_by_test_id("hearing-toggle").click()
        await expect(n.get_by_test_id("hearing-state")).to_have_text("Not recording")
        await expect(b.get_by_test_id("file-name").filter(has_text="timeline.json")).to_have_count(
            1
        )
        await expect(a.get_by_test_id("hearing-recording")).to_be_hidden()
        assert watch.problems == []
    finally:
        for client in clients:
            await client.close()
