"""Every page on a phone (390 by 844, Chromium's device emulation with touch): no page
scrolls sideways, every visible button, link and field is a tap target of at least 44 px,
the live room shows the person speaking large with the others in a strip, and the
mediator's console is reachable. Screenshots of the login, case, space and live pages at
that size go to tests/browser/screenshots/."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.pages import ARTIFACTS, Watch, signed_in_page
from tests.browser.test_live_rooms import PEOPLE as LIVE_PEOPLE
from tests.browser.test_live_rooms import SMALL_CAMERA, enter_room, prepare_case

if TYPE_CHECKING:
    from tests.browser.conftest import RunningServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

PHONE = {"width": 390, "height": 844}
MIN_TAP_PX = 44

# Visible buttons, links and fields smaller than a fingertip (links inside running text are
# exempt, as WCAG 2.5.8 allows; a checkbox or radio counts with its label).
SMALL_TARGETS = """
(minimum) => {
  const small = [];
  const selector = "button, a[href], input:not([type=hidden]), select, textarea, summary";
  for (const node of document.querySelectorAll(selector)) {
    const style = getComputedStyle(node);
    if (style.visibility === "hidden" || style.display === "none") continue;
    let box = node.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if (node.closest("dialog:not([open]), [hidden]")) continue;
    if (node.matches("a") && node.closest("p, li.inline, .prose, td")) continue;
    if (node.matches("input[type=checkbox], input[type=radio]")) {
      const label =
        node.closest("label") || (node.id && document.querySelector(`label[for="${node.id}"]`));
      if (label) box = label.getBoundingClientRect();
    }
    if (box.width < minimum || box.height < minimum) {
      const name =
        node.dataset.testid || node.id || node.textContent.trim().slice(0, 30) || node.name;
      const size = `${Math.round(box.width)}x${Math.round(box.height)}`;
      small.push(`${node.tagName.toLowerCase()} "${name}" ${size}`);
    }
  }
  return small;
}
"""


# The innermost elements that reach past the right edge, for the failure message.
WIDE_ELEMENTS = """
(edge) => [...document.querySelectorAll("body *")]
  .filter((node) => node.getBoundingClientRect().right > edge + 0.5)
  .filter((node) => ![...node.children].some((c) => c.getBoundingClientRect().right > edge + 0.5))
  .slice(0, 8)
  .map((node) => `${node.tagName.toLowerCase()}.${node.className} ${node.dataset.testid || ""}`
    + ` "${node.textContent.trim().slice(0, 30)}"`
    + ` in ${node.parentElement.tagName.toLowerCase()}.${node.parentElement.className}`
    + ` right=${Math.round(node.getBoundingClientRect().right)}`)
"""


async def phone_page(
    browser: Browser, server: RunningServer, who: tuple[str, str], watch: Watch
) -> tuple[BrowserContext, Page]:
    """A page signed in as ``who`` (username, password) in a phone-sized touch context."""
    context = await browser.new_context(
        ignore_https_errors=True,
        base_url=server.url,
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    context.set_default_timeout(20_000)
    await context.add_init_script(SMALL_CAMERA)
    page = await context.new_page()
    watch.attach(page)
    await page.goto("/login")
    await page.get_by_label("Username").fill(who[0])
    await page.get_by_label("Password").fill(who[1])
    await page.get_by_role("button", name="Sign in").tap()
    await page.wait_for_url("**/cases")
    return context, page


async def fits_a_phone(page: Page, name: str) -> None:
    """No sideways scrolling, tap targets of 44 px; the screenshot kept as an artifact."""
    width = await page.evaluate("() => document.scrollingElement.scrollWidth")
    if width > PHONE["width"]:
        wide = await page.evaluate(WIDE_ELEMENTS, PHONE["width"])
        raise AssertionError(f"{name} scrolls sideways: {width} px wide, past the edge: {wide}")
    small: list[Any] = await page.evaluate(SMALL_TARGETS, MIN_TAP_PX)
    assert small == [], f"{name}: tap targets under {MIN_TAP_PX} px: {small}"
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"phone-{name}-390x844.png"
    await page.screenshot(path=path)
    print("screenshot:", path)


async def test_pages_on_a_phone(caucus_server: RunningServer, media_browser: Browser) -> None:
    admin, case_id, _users, clients = await prepare_case(caucus_server)
    neutral_api = clients[0]
    watch = Watch()
    contexts: list[BrowserContext] = []
    try:
        # the login page, signed out
        context = await media_browser.new_context(
            ignore_https_errors=True,
            base_url=caucus_server.url,
            viewport=PHONE,
            is_mobile=True,
            has_touch=True,
        )
        contexts.append(context)
        login = await context.new_page()
        await login.goto("/login")
        await fits_a_phone(login, "login")

        username, _, password, _ = LIVE_PEOPLE["mediator"]
        context, phone = await phone_page(media_browser, caucus_server, (username, password), watch)
        contexts.append(context)
        await fits_a_phone(phone, "cases")
        await phone.goto(f"/cases/{case_id}")
        await expect(phone.get_by_test_id("spaces-link")).to_be_visible()
        await fits_a_phone(phone, "case")

        status, body, _ = await neutral_api.post(
            f"/api/cases/{case_id}/spaces", {"name": "Joint session", "member_ids": []}
        )
        assert status == 201, body
        await phone.goto(f"/cases/{case_id}/spaces/{body['space']['id']}")
        await expect(phone.get_by_test_id("live-state")).to_have_text("Live")
        await fits_a_phone(phone, "space")

        # the live room: the mediator on the phone, A and B on laptops
        for key in ("a", "b"):
            context, _page = await enter_room(media_browser, caucus_server, case_id, key, watch)
            contexts.append(context)
        await phone.goto(f"/cases/{case_id}/live")
        join = phone.get_by_test_id("join")
        await expect(join).to_be_enabled()
        await fits_a_phone(phone, "live-prejoin")
        await join.tap()
        await expect(phone.get_by_test_id("connection-state")).to_have_text(
            "Connected", timeout=40_000
        )
        tiles = phone.get_by_test_id("remote-tile")
        await expect(tiles).to_have_count(2, timeout=20_000)
        # the speaker large on the stage, the others in a strip below
        await expect(phone.locator("#stage-wrap")).to_have_attribute("data-layout", "stage")
        await expect(phone.get_by_test_id("stage").get_by_test_id("remote-tile")).to_have_count(1)
        stage = await phone.get_by_test_id("stage").bounding_box()
        strip = await phone.locator("#grid").bounding_box()
        assert stage and strip and stage["width"] > 300 and stage["height"] > strip["height"]
        await fits_a_phone(phone, "live")

        # the mediator's console opens and its controls are within reach
        await phone.get_by_test_id("panel-toggle").tap()
        panel = phone.get_by_test_id("panel")
        await expect(panel).to_be_visible()
        await expect(phone.get_by_test_id("new-room-name")).to_be_in_viewport()
        await phone.get_by_test_id("new-room-name").fill("Caucus A")
        await phone.get_by_test_id("create-room").tap()
        await expect(
            phone.get_by_test_id("room-card-name").filter(has_text="Caucus A")
        ).to_have_count(1)
        await fits_a_phone(phone, "live-console")
        assert watch.problems == []
    finally:
        for context in contexts:
            await context.close()
        for client in (admin, *clients):
            await client.close()


async def test_the_header_folds_into_a_menu_on_a_phone(
    caucus_server: RunningServer, browser: Browser
) -> None:
    """On a phone the header is one row (brand and "Menu"); the links and the account open
    under the button, every target a fingertip wide, and close with Escape; on a laptop
    the links are shown and there is no button."""
    admin, _case_id, _users, clients = await prepare_case(caucus_server)
    watch = Watch()
    username, _, password, _ = LIVE_PEOPLE["mediator"]
    context, phone = await phone_page(browser, caucus_server, (username, password), watch)
    wide: BrowserContext | None = None
    try:
        header = await phone.locator("#site-header").bounding_box()
        assert header is not None and header["height"] <= 64, header
        links = phone.get_by_role("navigation", name="Main")
        toggle = phone.get_by_test_id("menu-toggle")
        await expect(links).to_be_hidden()
        await expect(phone.get_by_test_id("logout")).to_be_hidden()
        await expect(toggle).to_have_attribute("aria-expanded", "false")
        await fits_a_phone(phone, "menu-closed")

        await toggle.tap()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        await expect(links.get_by_role("link", name="Security")).to_be_visible()
        await expect(phone.get_by_test_id("logout")).to_be_visible()
        await expect(phone.get_by_test_id("current-user")).to_be_visible()
        await fits_a_phone(phone, "menu-open")
        await phone.keyboard.press("Escape")
        await expect(links).to_be_hidden()
        await expect(toggle).to_be_focused()

        await toggle.tap()
        await links.get_by_role("link", name="Security").tap()
        await phone.wait_for_url("**/account/security")
        await expect(phone.get_by_test_id("menu-toggle")).to_have_attribute(
            "aria-expanded", "false"
        )  # a new page starts folded

        wide, laptop = await signed_in_page(browser, caucus_server, username, password, watch)
        await expect(laptop.get_by_test_id("menu-toggle")).to_be_hidden()
        await expect(
            laptop.get_by_role("navigation", name="Main").get_by_role("link", name="Security")
        ).to_be_visible()
        await expect(laptop.get_by_test_id("logout")).to_be_visible()
        assert watch.problems == []
    finally:
        if wide is not None:
            await wide.close()
        await context.close()
        for client in (admin, *clients):
            await client.close()
