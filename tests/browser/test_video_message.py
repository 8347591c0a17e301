"""A video message in real browsers: party A records five seconds with Chromium's fake
camera in a space shared with party B, plays it back and sends it; B sees it arrive live,
plays it past three seconds, seeks back and it plays on, fetched with HTTP ranges. A
message played back and discarded is never sent. The neutral starts and
stops recording the main room from the same space, whose files then list the timeline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, Page, Request, Response, expect

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


async def recording_for(page: Page, seconds: int) -> None:
    """Until the page's recording clock ("Recording m:ss of at most …") says at least
    ``seconds`` have been recorded."""
    await page.wait_for_function(
        """(seconds) => {
            const text = document.querySelector("[data-testid=video-status]").textContent;
            const found = /Recording (\\d+):(\\d\\d)/.exec(text);
            return found !== null && Number(found[1]) * 60 + Number(found[2]) >= seconds;
        }""",
        arg=seconds,
        timeout=(seconds + 20) * 1000,
    )


async def record(page: Page, *, seconds: int) -> None:
    """Record ``seconds`` of the fake camera and stop: the recording waits for review."""
    await page.get_by_test_id("video-record").click()
    await expect(page.get_by_test_id("video-status")).to_contain_text("Recording", timeout=20_000)
    await expect(page.get_by_test_id("video-preview")).to_be_visible()
    await recording_for(page, seconds)
    await page.get_by_test_id("video-stop").click()
    await expect(page.get_by_test_id("video-status")).to_contain_text(
        "Play it back", timeout=20_000
    )
    await expect(page.get_by_test_id("video-preview")).to_be_hidden()


async def play_back(page: Page) -> None:
    """Play the recording under review past its first second."""
    review = page.get_by_test_id("video-review")
    await expect(review).to_be_visible()
    await review.evaluate("video => { video.muted = true; return video.play(); }")
    await page.wait_for_function(
        "() => document.querySelector('[data-testid=video-review]').currentTime > 1",
        timeout=15_000,
    )


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

        # A records five seconds, plays them back, then sends them.
        await record(a, seconds=5)
        await play_back(a)
        await expect(b.get_by_test_id("video-player")).to_have_count(0)
        await a.get_by_test_id("video-send").click()
        await expect(a.get_by_test_id("video-status")).to_have_text("Sent.", timeout=20_000)
        await expect(a.get_by_test_id("video-review")).to_be_hidden()
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


async def test_a_video_message_played_back_and_discarded_is_never_sent(
    caucus_server: RunningServer, media_browser: Browser, tmp_path: Path
) -> None:
    case_id, clients = await prepare_case(caucus_server)
    neutral_api = clients[1]
    try:
        status, body, _ = await neutral_api.get(f"/api/cases/{case_id}")
        assert status == 200, body
        names = {PEOPLE["a"][1], PEOPLE["b"][1]}
        members = [m["user_id"] for m in body["members"] if m["display_name"] in names]
        status, body, _ = await neutral_api.post(
            f"/api/cases/{case_id}/spaces", {"name": SHARED, "member_ids": members}
        )
        assert status == 201, body
        space_id = body["space"]["id"]

        watch = Watch()
        _, a = await page_of(media_browser, caucus_server, "a", watch)
        await open_space(a, case_id, SHARED)
        await record(a, seconds=2)
        await play_back(a)
        await a.get_by_test_id("video-discard").click()
        await expect(a.get_by_test_id("video-status")).to_contain_text("Discarded")
        await expect(a.get_by_test_id("video-review")).to_be_hidden()
        await expect(a.get_by_test_id("video-record")).to_be_visible()

        # Record again: the first take is discarded, the second sent.
        await record(a, seconds=2)
        await a.get_by_test_id("video-rerecord").click()
        await expect(a.get_by_test_id("video-status")).to_contain_text("Recording", timeout=20_000)
        await recording_for(a, 2)
        await a.get_by_test_id("video-stop").click()
        await expect(a.get_by_test_id("video-send")).to_be_visible(timeout=20_000)
        await a.get_by_test_id("video-send").click()
        await expect(a.get_by_test_id("video-status")).to_have_text("Sent.", timeout=20_000)
        await expect(a.get_by_test_id("video-player")).to_have_count(1)

        # The space holds that one message and file: the discarded takes left nothing.
        status, body, _ = await neutral_api.get(f"/api/cases/{case_id}/spaces/{space_id}/messages")
        assert status == 200, body
        assert [m["kind"] for m in body["messages"]].count("video") == 1, body
        status, body, _ = await neutral_api.get(f"/api/cases/{case_id}/spaces/{space_id}/files")
        assert status == 200, body
        assert len(body["files"]) == 1, body
        # ... and in the vault (the server's data directory): the discarded blobs are gone.
        blobs = [p.name for p in (tmp_path / "data" / "vault").rglob("*") if p.is_file()]
        assert blobs == [body["files"][0]["id"]], blobs
        assert watch.problems == []
    finally:
        for client in clients:
            await client.close()
