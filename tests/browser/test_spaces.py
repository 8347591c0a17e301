"""Spaces in real browsers: the neutral opens a space with party A and one with A and B;
A uploads a PDF and a picture and writes in the first; B sees none of it, neither in the
pages nor through the API; in the shared space both see each other's messages live."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.pages import (
    Watch,
    active_admin,
    invited_member,
    new_neutral,
    open_case,
    signed_in_page,
)
from tests.samples import jpeg_bytes, pdf_bytes
from tests.support.world import ApiClient

if TYPE_CHECKING:
    from conftest import RunningServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

CASE_TITLE = "Harbor Lane lease dispute"
PEOPLE = {
    "neutral": ("nadia.brennan", "Nadia Brennan", "cedar-window-compass-7730"),
    "a": ("ada.tenant", "Ada Tenant", "orchard-lantern-meadow-5164"),
    "b": ("bo.landlord", "Bo Landlord", "pebble-harbour-violet-2287"),
}
PRIVATE, SHARED = "Caucus with Ada", "Joint session"


async def prepare_case(server: RunningServer) -> tuple[str, list[ApiClient]]:
    """A neutral's case with the parties A and B, set up through the API."""
    admin = await active_admin(server)
    username, display_name, password = PEOPLE["neutral"]
    neutral = await new_neutral(admin, server, username, display_name, password)
    case_id = await open_case(neutral, CASE_TITLE)
    made = [admin, neutral]
    for who in ("a", "b"):
        username, display_name, password = PEOPLE[who]
        member = await invited_member(
            neutral,
            server,
            case_id,
            role="party",
            display_name=display_name,
            username=username,
            password=password,
        )
        made.append(member)
    return case_id, made


async def page_of(
    browser: Browser, server: RunningServer, who: str, watch: Watch
) -> tuple[BrowserContext, Page]:
    username, _display, password = PEOPLE[who]
    return await signed_in_page(browser, server, username, password, watch)


async def create_space(page: Page, name: str, members: list[str]) -> None:
    await page.get_by_label("Name").fill(name)
    for who in members:
        await page.get_by_label(PEOPLE[who][1], exact=False).check()
    await page.get_by_test_id("create-space").click()
    await expect(page.get_by_test_id("space").filter(has_text=name)).to_be_visible()


async def open_space(page: Page, case_id: str, name: str) -> None:
    await page.goto(f"/cases/{case_id}")
    await page.get_by_test_id("spaces-link").click()
    await page.wait_for_url(f"**/cases/{case_id}/spaces")
    await page.get_by_role("link", name=name).click()
    await expect(page.get_by_test_id("space-name")).to_have_text(name)
    await expect(page.get_by_test_id("live-state")).to_have_text("Live")


async def send(page: Page, text: str) -> None:
    await page.get_by_test_id("composer").fill(text)
    await page.get_by_test_id("send-message").click()
    await expect(page.get_by_test_id("composer")).to_have_value("")


def message(page: Page, text: str):
    return page.get_by_test_id("messages").get_by_test_id("message-body").filter(has_text=text)


async def test_spaces_keep_members_apart_and_deliver_live(
    caucus_server: RunningServer, browser: Browser
) -> None:
    case_id, clients = await prepare_case(caucus_server)
    watch = Watch()
    try:
        _, neutral = await page_of(browser, caucus_server, "neutral", watch)
        await neutral.goto(f"/cases/{case_id}")
        await neutral.get_by_test_id("spaces-link").click()
        await neutral.wait_for_url(f"**/cases/{case_id}/spaces")
        await create_space(neutral, PRIVATE, ["a"])
        await create_space(neutral, SHARED, ["a", "b"])

        # A uploads a PDF and a picture into the private space and writes there.
        a_context, a = await page_of(browser, caucus_server, "a", watch)
        await open_space(a, case_id, PRIVATE)
        await a.get_by_test_id("upload-input").set_input_files(
            [
                {"name": "Offer letter.pdf", "mimeType": "application/pdf", "buffer": pdf_bytes()},
                {"name": "Damage photo.jpg", "mimeType": "image/jpeg", "buffer": jpeg_bytes()},
            ]
        )
        await a.get_by_test_id("upload").click()
        files = a.get_by_test_id("files")
        await expect(files.get_by_test_id("file-name")).to_have_text(
            ["Offer letter.pdf", "Damage photo.jpg"]
        )
        await send(a, "My bottom line is 40,000.")
        await expect(message(a, "My bottom line is 40,000.")).to_be_visible()
        # The picture previews in the page.
        await (
            files.get_by_test_id("file")
            .filter(has_text="Damage photo.jpg")
            .get_by_test_id("preview-file")
            .click()
        )
        picture = a.get_by_test_id("preview-image")
        await expect(picture).to_be_visible()
        await a.wait_for_function(
            "() => document.querySelector('[data-testid=preview-image]').naturalWidth === 32"
        )
        private_url = a.url
        file_ids = await files.get_by_test_id("file").evaluate_all(
            "items => items.map(item => item.dataset.fileId)"
        )
        assert len(file_ids) == 2

        # B sees neither the space nor its files, in the pages or through the API.
        b_context, b = await page_of(browser, caucus_server, "b", watch)
        await b.goto(f"/cases/{case_id}/spaces")
        await expect(b.get_by_test_id("space")).to_have_count(1)
        await expect(b.get_by_test_id("space").get_by_role("link")).to_have_text(SHARED)
        await b.goto(private_url)
        await expect(b.get_by_test_id("page-error")).to_contain_text("not a member")
        await expect(b.get_by_test_id("space-name")).to_be_hidden()
        space_api = "/api" + private_url.split(caucus_server.url, 1)[1]
        for path in ("", "/messages", "/files", *(f"/files/{f}" for f in file_ids)):
            response = await b_context.request.get(space_api + path)
            assert response.status == 404, (path, response.status)
            assert "40,000" not in await response.text()
        # A can download the same file.
        response = await a_context.request.get(f"{space_api}/files/{file_ids[0]}")
        assert response.status == 200 and (await response.body()).startswith(b"%PDF-")

        # In the shared space, both see each other's messages as they are sent.
        await open_space(a, case_id, SHARED)
        await open_space(b, case_id, SHARED)
        await send(a, "Can we meet halfway?")
        await expect(message(b, "Can we meet halfway?")).to_be_visible()
        await send(b, "Halfway works for me.")
        await expect(message(a, "Halfway works for me.")).to_be_visible()
        await expect(message(b, "My bottom line")).to_have_count(0)
        await expect(b.get_by_test_id("message-author").first).to_have_text("Ada Tenant")
        assert watch.problems == []
    finally:
        for client in clients:
            await client.close()
