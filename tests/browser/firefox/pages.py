"""What the Firefox tests share: signing in through the login form of a Firefox page, with
the code of an authenticator when two-step verification is on."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pyotp

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
