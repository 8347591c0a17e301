"""Media through a TURN relay in a live room: coturn (from docs/deploy/turnserver.conf, on
loopback) and the TURN credentials ``media.join`` mints.  One chromium page may only use
relay candidates (``iceTransportPolicy: "relay"``, forced by an init script: the page's
code is untouched), the other connects directly; both see and hear each other, and the
SFU's selected ICE pair for the relayed participant is a relay candidate.  With a TURN
secret coturn does not share, the relayed page says it could not connect instead of
spinning."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import RunningServer
from tests.browser.pages import Watch, signed_in_page
from tests.browser.test_room import PEOPLE, expect_grid, prepare_case, wait_media_rising
from tests.support.coturn import Coturn, running_coturn
from tests.support.eventually import eventually
from tests.support.server import serving
from tests.support.world import ApiClient

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

#: Every peer connection of the page uses relay candidates only (a test-only switch).
RELAY_ONLY = """
(() => {
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(config, ...rest) {
      super({ ...(config || {}), iceTransportPolicy: "relay" }, ...rest);
    }
  };
})();
"""

#: The candidate types of the page's selected pairs, from chromium's own statistics.
SELECTED_PAIRS = """
async () => {
  const live = window.caucusLive;
  const found = [];
  for (const pc of [live.publishPc, live.subscribePc]) {
    if (!pc) continue;
    const stats = await pc.getStats();
    stats.forEach((report) => {
      if (report.type !== "transport" || !report.selectedCandidatePairId) return;
      const pair = stats.get(report.selectedCandidatePairId);
      found.push({
        local: stats.get(pair.localCandidateId).candidateType,
        remote: stats.get(pair.remoteCandidateId).candidateType,
      });
    });
  }
  return found;
}
"""


@asynccontextmanager
async def caucus_with_turn(
    tmp_path: Path, coturn: Coturn, secret: str
) -> AsyncIterator[RunningServer]:
    """``caucus serve`` minting TURN credentials for ``coturn`` with ``secret``."""
    env = {
        "CAUCUS_TURN_URLS": f'["{coturn.urls[0]}", "{coturn.urls[1]}"]',
        "CAUCUS_TURN_SECRET": secret,
    }
    async with serving(tmp_path / "data", workers=1, env=env) as served:
        yield RunningServer(served)


async def open_live_page(
    browser: Browser,
    server: RunningServer,
    case_id: str,
    name: str,
    watch: Watch,
    init_script: str | None = None,
) -> tuple[BrowserContext, Page]:
    username, _display, password = PEOPLE[name]
    context, page = await signed_in_page(
        browser, server, username, password, watch, init_script=init_script
    )
    await page.goto(f"/cases/{case_id}/live")
    await expect(page.get_by_test_id("join")).to_be_enabled()
    await expect(page.get_by_test_id("camera")).not_to_have_value("")
    await page.get_by_test_id("join").click()
    return context, page


async def sfu_pairs(admin: ApiClient, participant_id: str) -> list[dict[str, Any]]:
    """The SFU's selected ICE pairs of ``participant_id``'s connected transports."""
    status, stats, _ = await admin.get("/api/admin/media")
    assert status == 200, stats
    return [
        t["ice"]
        for t in stats["transports"]
        if t["participant_id"] == participant_id and t["state"] == "connected" and t["ice"]
    ]


async def test_a_relayed_and_a_direct_participant_see_each_other(
    media_browser: Browser, tmp_path: Path
) -> None:
    secret = secrets.token_urlsafe(24)
    async with (
        running_coturn(tmp_path / "coturn", secret) as coturn,
        caucus_with_turn(tmp_path, coturn, secret) as server,
        AsyncExitStack() as stack,
    ):
        admin, case_id, clients = await prepare_case(server)
        stack.push_async_callback(_close_all, [admin, *clients])
        watch = Watch()
        pages: dict[str, Page] = {}
        _, pages["nina"] = await open_live_page(media_browser, server, case_id, "nina", watch)
        _, pages["paula"] = await open_live_page(
            media_browser, server, case_id, "paula", watch, init_script=RELAY_ONLY
        )
        for page in pages.values():
            await expect(page.get_by_test_id("connection-state")).to_have_text(
                "Connected", timeout=30_000
            )
        names = {key: PEOPLE[key][1] for key in pages}
        for key, page in pages.items():
            others = [names[k] for k in pages if k != key]
            await expect_grid(page, others)
            await wait_media_rising(page, others, admin)

        # chromium: the relayed page's pairs start at its relay candidate, the other's not
        relayed = await pages["paula"].evaluate(SELECTED_PAIRS)
        assert len(relayed) == 2 and all(p["local"] == "relay" for p in relayed), relayed
        direct = await pages["nina"].evaluate(SELECTED_PAIRS)
        assert len(direct) == 2 and all(p["local"] != "relay" for p in direct), direct

        # the SFU: the relayed participant's pairs end at a relay candidate (coturn's)
        ids = {
            key: await page.evaluate("window.caucusLive.participantId")
            for key, page in pages.items()
        }
        await eventually(lambda: _two(sfu_pairs(admin, ids["paula"])), within=10)
        for pair in await sfu_pairs(admin, ids["paula"]):
            assert pair == {"local_type": "host", "remote_type": "relay", "protocol": "udp"}
        nina_pairs = await sfu_pairs(admin, ids["nina"])
        assert len(nina_pairs) == 2 and all(p["remote_type"] != "relay" for p in nina_pairs)
        assert "Cannot find credentials" not in coturn.log()
        assert not watch.problems, watch.problems


async def _close_all(clients: list[ApiClient]) -> None:
    for client in clients:
        await client.close()


async def _two(pairs: Any) -> bool:
    return len(await pairs) == 2


async def test_a_refused_relay_says_it_could_not_connect(
    media_browser: Browser, tmp_path: Path
) -> None:
    async with (
        running_coturn(tmp_path / "coturn", secrets.token_urlsafe(24)) as coturn,
        caucus_with_turn(tmp_path, coturn, "a-secret-coturn-does-not-share") as server,
        AsyncExitStack() as stack,
    ):
        admin, case_id, clients = await prepare_case(server)
        stack.push_async_callback(_close_all, [admin, *clients])
        watch = Watch()
        _, page = await open_live_page(
            media_browser, server, case_id, "paula", watch, init_script=RELAY_ONLY
        )
        await expect(page.get_by_test_id("connection-state")).to_have_text(
            "Could not connect", timeout=30_000
        )
        error = page.get_by_test_id("page-error")
        await expect(error).to_be_visible()
        await expect(error).to_contain_text("no network path to the media server")
        await expect(error).to_contain_text("refused the connection (401")
        await expect(page.get_by_test_id("join")).to_be_visible()  # they may try again
        assert "Cannot find credentials" in coturn.log() or "incorrect" in coturn.log()
        assert not watch.problems, watch.problems
