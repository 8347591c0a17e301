"""What the Firefox tests share: signing in through the login form of a Firefox page, with
the code of an authenticator when two-step verification is on."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pyotp

from tests.browser.firefox.driver import FirefoxError

if TYPE_CHECKING:
    from tests.browser.conftest import RunningServer
    from tests.browser.firefox.driver import Firefox, FirefoxPage
    from tests.support.world import ApiClient


async def enable_totp(client: ApiClient) -> tuple[pyotp.TOTP, int]:
    """Two-step verification turned on for ``client``'s account through the API; answers
    the authenticator and the step of the code that confirmed it (used once, spent)."""
    status, body, _ = await client.post("/api/account/totp/begin")
    assert status == 200, body
    totp = pyotp.TOTP(body["secret"])
    step = totp.timecode(time.time())
    status, body, _ = await client.post(
        "/api/account/totp/confirm", {"code": totp.generate_otp(step)}
    )
    assert status == 200 and len(body["recovery_codes"]) == 10, body
    return totp, step


def code_after(totp: pyotp.TOTP, step: int) -> str:
    """A code the server takes now that is not the one of ``step`` (a code works once):
    the current step's, or within the one step of drift it allows, the next one's."""
    return totp.generate_otp(max(step + 1, totp.timecode(time.time())))


async def firefox_signed_in(
    firefox: Firefox,
    server: RunningServer,
    username: str,
    password: str,
    *,
    totp: tuple[pyotp.TOTP, int] | None = None,
    viewport: tuple[int, int] | None = (1280, 800),
    init_script: str = "",
) -> FirefoxPage:
    """A Firefox page signed in through the login form (and the code form when ``totp``
    is given), showing the case list."""
    page = await firefox.open(server.url, viewport=viewport, init_script=init_script)
    await page.goto("/login")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("[data-testid=login-submit]")
    if totp is not None:
        await page.wait_url("/login/totp")
        await page.fill("#code", code_after(*totp))
        await page.click("[data-testid=totp-submit]")
    await page.wait_url("/cases")
    return page


async def firefox_enter_room(page: FirefoxPage, case_id: str) -> None:
    """Join the case's live room from the page, as a person would: the pre-join screen
    with the camera's preview, "Join", until the page says "Connected". (The camera list
    is not waited on: Firefox may list its fake camera with an empty deviceId while a
    page is loading under load, and the page then opens the default camera.)"""
    await page.goto(f"/cases/{case_id}/live")
    try:
        await page.wait_function(
            "() => { const j = document.querySelector('[data-testid=join]');"
            " const e = document.getElementById('device-error');"
            " return j && !j.disabled && e.hidden"
            " && document.getElementById('preview').srcObject !== null; }",
            timeout_ms=45_000,
        )
    except FirefoxError as error:
        state = await page.evaluate(PREJOIN_STATE)
        raise FirefoxError(f"{error}: the pre-join screen shows {state}") from error
    await page.click("[data-testid=join]")
    await page.wait("[data-testid=connection-state]", text="Connected", timeout_ms=40_000)


PREJOIN_STATE = """
() => ({
  join: (document.querySelector("[data-testid=join]") || {}).disabled,
  cameras: [...document.querySelectorAll("[data-testid=camera] option")].map((o) => o.textContent),
  cameraIds: [...document.querySelectorAll("[data-testid=camera] option")].map((o) => o.value),
  preview: String(document.getElementById("preview").srcObject),
  errorHidden: (document.getElementById("device-error") || {}).hidden,
  error: (document.getElementById("device-error") || {}).textContent,
  main: document.getElementById("main") && !document.getElementById("main").hidden,
})
"""

# Per (sender, kind): packets and decoded frames from getStats(), and per remote tile the
# frames its <video> element has presented since the first look (requestVideoFrameCallback).
RECEIVED = """
async () => {
  const live = window.caucusLive;
  const stats = {};
  if (live && live.subscribePc) {
    const owners = new Map(live.tracks.map((track) => [track.mid, track.display_name]));
    (await live.subscribePc.getStats()).forEach((report) => {
      if (report.type !== "inbound-rtp" || !owners.has(report.mid)) return;
      stats[`${owners.get(report.mid)}|${report.kind}`] = {
        packets: report.packetsReceived || 0,
        frames: report.framesDecoded || 0,
      };
    });
  }
  // frames presented per <video>, counted with requestVideoFrameCallback (Firefox's
  // getVideoPlaybackQuality() counts decoder output and stays 0 for a MediaStream)
  const counted = (window.__presentedFrames ||= new WeakMap());
  const shown = {};
  document.querySelectorAll("[data-testid=remote-tile]").forEach((tile) => {
    const name = tile.querySelector("[data-testid=tile-name]");
    const video = tile.querySelector("video");
    if (!name || !video) return;
    if (!counted.has(video)) {
      counted.set(video, 0);
      const tick = () => {
        counted.set(video, counted.get(video) + 1);
        video.requestVideoFrameCallback(tick);
      };
      video.requestVideoFrameCallback(tick);
    }
    shown[name.textContent] = counted.get(video);
  });
  return { stats, shown };
}
"""


async def firefox_media_rising(page: FirefoxPage, names: list[str], within: float = 60.0) -> None:
    """Every one of ``names`` reaches the Firefox page with audio packets and decoded video
    frames rising in getStats(), and the frames its tile's <video> presented rising too."""
    deadline = time.monotonic() + within
    first: dict[str, Any] | None = None
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = await page.evaluate(RECEIVED)
        stats, shown = last["stats"], last["shown"]
        flowing = all(
            stats.get(f"{name}|audio", {}).get("packets", 0) > 0
            and stats.get(f"{name}|video", {}).get("frames", 0) > 0
            and shown.get(name, 0) > 0
            for name in names
        )
        if flowing and first is None:
            first = last
        elif flowing and first is not None:
            if all(
                stats[f"{name}|audio"]["packets"] > first["stats"][f"{name}|audio"]["packets"]
                and stats[f"{name}|video"]["frames"] > first["stats"][f"{name}|video"]["frames"]
                and shown[name] > first["shown"][name]
                for name in names
            ):
                return
        await asyncio.sleep(0.3)
    raise AssertionError(f"media from {names} did not keep arriving in Firefox: {last}")
