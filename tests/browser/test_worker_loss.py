"""A media worker dies under a live room in real browsers: `caucus serve` starts it again,
and both pages reconnect by themselves (media.ended `media_worker_lost`) and decode each
other's video again, with no reload."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.browser.pages import Watch
from tests.browser.test_room import PEOPLE, enter_room, expect_grid, prepare_case, wait_media_rising

if TYPE_CHECKING:
    from playwright.async_api import Browser

    from tests.browser.conftest import RunningServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.media_workers(2),  # a worker is killed: another one takes its place
]

MARK_CONNECTION = "() => { window.__before = window.caucusLive.subscribePc; }"
NEW_CONNECTION = """
() => window.caucusLive.subscribePc && window.caucusLive.subscribePc !== window.__before
  && window.caucusLive.subscribePc.connectionState === "connected"
"""


async def test_pages_come_back_after_their_worker_is_killed(
    media_browser: Browser, caucus_server: RunningServer
) -> None:
    admin, case_id, _clients = await prepare_case(caucus_server)
    watch = Watch()
    contexts: list[BrowserContext] = []
    try:
        name_of = {key: value[1] for key, value in PEOPLE.items()}
        pages: dict[str, Page] = {}
        for key in ("nina", "paula"):
            context, pages[key] = await enter_room(
                media_browser, caucus_server, case_id, key, watch
            )
            contexts.append(context)
        for key, page in pages.items():
            other = name_of["paula" if key == "nina" else "nina"]
            await expect_grid(page, [other])
            await wait_media_rising(page, [other], admin)

        status, stats, _ = await admin.get("/api/admin/media")
        assert status == 200, stats
        hosting = [w for w in stats["workers"] if w["participants"]]
        assert len(hosting) == 1 and len(stats["workers"]) >= 2, stats["workers"]
        for page in pages.values():
            await page.evaluate(MARK_CONNECTION)

        killed_at = time.monotonic()
        os.kill(hosting[0]["pid"], signal.SIGKILL)
        for key, page in pages.items():
            await page.wait_for_function(NEW_CONNECTION, timeout=20_000)
            await expect(page.get_by_test_id("connection-state")).to_have_text("Connected")
            other = name_of["paula" if key == "nina" else "nina"]
            await expect_grid(page, [other])
            await wait_media_rising(page, [other], admin, within=20)
        print(f"both pages decode video again {time.monotonic() - killed_at:.1f} s after the kill")
        assert not watch.problems, watch.problems

        # the node starts a new worker in place of the killed one
        deadline = time.monotonic() + 30
        while True:
            status, stats, _ = await admin.get("/api/admin/media")
            if len(stats["workers"]) == 2:
                break
            assert time.monotonic() < deadline, stats["workers"]
            await asyncio.sleep(0.2)
        assert hosting[0]["id"] not in {w["id"] for w in stats["workers"]}
        assert len([t for t in stats["transports"] if t["state"] == "connected"]) == 4
    finally:
        for context in contexts:
            await context.close()
