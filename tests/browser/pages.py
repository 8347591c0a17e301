"""What the browser tests share: people made and signed in through the API (the first
admin, a neutral with a case or a verified address, invited members), browser pages signed
in through the login form and watched for errors, the live page's inbound media statistics,
the links in the mails people received, and screenshots for the documentation when
``CAUCUS_SCREENSHOTS`` names a directory."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.eventually import eventually
from tests.support.world import INTAKE, ApiClient

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

    from tests.browser.conftest import RunningServer
    from tests.support.smtp import MailServer

#: The first admin's password once the one-time password printed by the server is renewed.
ADMIN_PASSWORD = "granite-meadow-lantern-3391"

# --- people, through the API -------------------------------------------------------------


async def signed_in(server: RunningServer, username: str, password: str) -> ApiClient:
    client = ApiClient(server.url)
    status, body, _ = await client.post("/api/login", {"username": username, "password": password})
    assert status == 200, body
    return client


async def renew_password(client: ApiClient, current: str, new: str) -> None:
    status, body, _ = await client.post(
        "/api/account/password", {"current_password": current, "new_password": new}
    )
    assert status == 200 and body["stage"] == "active", body


async def active_admin(server: RunningServer) -> ApiClient:
    """The server's first admin, signed in, with its password renewed to ``ADMIN_PASSWORD``."""
    admin = await signed_in(server, server.admin_username, server.admin_password)
    await renew_password(admin, server.admin_password, ADMIN_PASSWORD)
    return admin


async def new_neutral(
    admin: ApiClient, server: RunningServer, username: str, display_name: str, password: str
) -> ApiClient:
    """A neutral account made by ``admin``, signed in with ``password`` as its own."""
    status, body, _ = await admin.post(
        "/api/admin/users", {"username": username, "role": "neutral", "display_name": display_name}
    )
    assert status == 201, body
    neutral = await signed_in(server, username, body["one_time_password"])
    await renew_password(neutral, body["one_time_password"], password)
    return neutral


async def neutral_with_email(
    server: RunningServer, mail_server: MailServer, username: str, email: str, password: str
) -> ApiClient:
    """A neutral whose address (set by the admin) was verified through the mailed link,
    signed in with ``password`` as its own."""
    admin = await active_admin(server)
    status, body, _ = await admin.post(
        "/api/admin/users", {"username": username, "role": "neutral", "email": email}
    )
    assert status == 201, body
    await admin.close()
    await eventually(lambda: mail_server.to(email), what="the verification mail")
    link = link_from(mail_server, email, "/account/email/confirm/")
    neutral = ApiClient(server.url)
    path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    status, _, _ = await neutral.post("/api" + path)
    assert status == 200
    status, _, _ = await neutral.post(
        "/api/login", {"username": username, "password": body["one_time_password"]}
    )
    assert status == 200
    await renew_password(neutral, body["one_time_password"], password)
    return neutral


async def open_case(neutral: ApiClient, title: str) -> str:
    """A case opened by ``neutral`` from the standard intake; answers its id."""
    status, body, _ = await neutral.post("/api/cases", {**INTAKE, "title": title})
    assert status == 201, body
    return body["case"]["id"]


async def invited_member(
    neutral: ApiClient,
    server: RunningServer,
    case_id: str,
    *,
    role: str,
    display_name: str,
    username: str,
    password: str,
    represents: str | None = None,
) -> ApiClient:
    """A new member of the case: invited by ``neutral``, the invitation accepted with a
    new account; answers that account's client."""
    status, body, _ = await neutral.post(
        f"/api/cases/{case_id}/invitations",
        {"role": role, "display_name": display_name, "represents": represents},
    )
    assert status == 201, body
    member = ApiClient(server.url)
    status, accepted, _ = await member.post(
        f"/api/invitations/{body['token']}/accept", {"username": username, "password": password}
    )
    assert status == 201, accepted
    return member


# --- pages, through the browser ----------------------------------------------------------


class Watch:
    """Uncaught page errors and CSP refusals: none may happen."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def attach(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.problems.append(f"{page.url}: {error}"))
        page.on(
            "console",
            lambda message: (
                self.problems.append(f"{page.url}: {message.text}")
                if message.type == "error" and "Content Security Policy" in message.text
                else None
            ),
        )


async def signed_in_page(
    browser: Browser,
    server: RunningServer,
    username: str,
    password: str,
    watch: Watch,
    *,
    timeout_ms: float = 15_000,
    init_script: str | None = None,
    viewport: tuple[int, int] | None = None,
    bypass_csp: bool = False,
) -> tuple[BrowserContext, Page]:
    """A fresh browser context whose page, watched by ``watch``, signed in through the
    login form and shows the case list (``viewport``: its width and height in pixels)."""
    sized: dict[str, Any] = {"bypass_csp": bypass_csp}
    if viewport is not None:
        sized["viewport"] = {"width": viewport[0], "height": viewport[1]}
    context = await browser.new_context(ignore_https_errors=True, base_url=server.url, **sized)
    context.set_default_timeout(timeout_ms)
    if init_script is not None:
        await context.add_init_script(init_script)
    page = await context.new_page()
    watch.attach(page)
    await page.goto("/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/cases")
    return context, page


#: Screenshots for the documentation: the directory named by this variable, or none.
SCREENSHOTS = "CAUCUS_SCREENSHOTS"


async def snapshot(page: Page, name: str) -> None:
    """Save ``page`` as ``<name>.png`` (1100 pixels wide, the whole page) into the directory
    that ``CAUCUS_SCREENSHOTS`` names; without that variable, do nothing."""
    directory = os.environ.get(SCREENSHOTS)
    if not directory:
        return
    await page.set_viewport_size({"width": 1100, "height": 800})
    await page.screenshot(path=Path(directory) / f"{name}.png", full_page=True)


#: Screenshots the browser tests always write, for docs/user-guide.md (not committed).
ARTIFACTS = Path(__file__).resolve().parent / "screenshots"

#: The two sizes the documentation shows: a laptop and a phone.
SIZES = ((1280, 800), (390, 844))


async def artifacts(page: Page, name: str) -> list[Path]:
    """Save ``page`` as ``<name>-<width>x<height>.png`` into ``tests/browser/screenshots/``
    at each of ``SIZES``, print the paths, and give the page back its size."""
    ARTIFACTS.mkdir(exist_ok=True)
    before = page.viewport_size
    written = []
    for width, height in SIZES:
        await page.set_viewport_size({"width": width, "height": height})
        await page.wait_for_timeout(300)  # the grid fits itself to the new size
        path = ARTIFACTS / f"{name}-{width}x{height}.png"
        await page.screenshot(path=path)
        print("screenshot:", path)
        written.append(path)
    if before is not None:
        await page.set_viewport_size(before)
    return written


# --- accessibility -------------------------------------------------------------------------

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"

AXE_RUN = """
async () => {
  const result = await window.axe.run(document, { resultTypes: ["violations"] });
  return result.violations
    .filter((violation) => violation.impact === "serious" || violation.impact === "critical")
    .map((violation) => ({
      id: violation.id,
      impact: violation.impact,
      help: violation.help,
      nodes: violation.nodes.slice(0, 5).map((node) => node.target.join(" ")),
    }));
}
"""


async def serious_accessibility_problems(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on ``page`` as it is now (the page's
    context must bypass the CSP: axe is injected as a script of the test's own)."""
    if not await page.evaluate("() => Boolean(window.axe)"):
        await page.add_script_tag(path=str(AXE))
    problems: list[dict[str, Any]] = await page.evaluate(AXE_RUN)
    return problems


# --- the live page's media ---------------------------------------------------------------

INBOUND_STATS = """
async () => {
  const live = window.caucusLive;
  if (!live || !live.subscribePc) return [];
  const owners = new Map(live.tracks.map((track) => [track.mid, track]));
  const found = [];
  (await live.subscribePc.getStats()).forEach((report) => {
    if (report.type !== "inbound-rtp" || !owners.has(report.mid)) return;
    found.push({
      name: owners.get(report.mid).display_name,
      kind: report.kind,
      frames: report.framesDecoded || 0,
      packets: report.packetsReceived || 0,
    });
  });
  return found;
}
"""


async def inbound(page: Page) -> dict[tuple[str, str], dict[str, Any]]:
    """Decoded frames and received packets per (sender's display name, kind)."""
    return {(s["name"], s["kind"]): s for s in await page.evaluate(INBOUND_STATS)}


# --- mail ------------------------------------------------------------------------------------


def links_in(mail_server: MailServer, address: str, path: str) -> list[str]:
    """Every link to ``path`` (``/invite/``, say) in the text of the mails to ``address``,
    oldest first, each once."""
    pattern = r"https://127\.0\.0\.1:\d+" + re.escape(path) + r"[A-Za-z0-9_-]+"
    found: list[str] = []
    for received in mail_server.to(address):
        for link in re.findall(pattern, received.text()):
            if link not in found:
                found.append(link)
    return found


def link_from(mail_server: MailServer, address: str, path: str) -> str:
    """The one link to ``path`` in the one mail to ``address`` that has such links."""
    pattern = r"https://127\.0\.0\.1:\d+" + re.escape(path) + r"[A-Za-z0-9_-]+"
    (received,) = [m for m in mail_server.to(address) if re.search(pattern, m.text())]
    found = re.findall(pattern, received.text())
    assert len(set(found)) == 1, received.text()
    return found[0]
