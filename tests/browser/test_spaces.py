"""Spaces in real browsers: the neutral opens a space with party A and one with A and B;
A uploads a PDF and a picture and writes in the first; B sees none of it, neither in the
pages nor through the API; in the shared space both see each other's messages live."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.conftest import ApiClient
from tests.samples import jpeg_bytes, pdf_bytes
from tests.signaling.conftest import INTAKE

if TYPE_CHECKING:
    from conftest import RunningServer

pytestmark = pytest.mark.browser

ADMIN_PASSWORD = "granite-meadow-lantern-3391"
CASE_TITLE = "Harbor Lane lease dispute"
PEOPLE = {
    "neutral": ("nadia.brennan", "Nadia Brennan", "cedar-window-compass-7730"),
    "a": ("ada.tenant", "Ada Tenant", "orchard-lantern-meadow-5164"),
    "b": ("bo.landlord", "Bo Landlord", "pebble-harbour-violet-2287"),
}
PRIVATE, SHARED = "Caucus with Ada", "Joint session"


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


async def prepare_case(server: RunningServer) -> tuple[str, list[ApiClient]]:
    """A neutral's case with the parties A and B, set up through the API."""
    admin = await signed_in(server, server.admin_username, server.admin_password)
    await renew_password(admin, server.admin_password, ADMIN_PASSWORD)
    username, display_name, password = PEOPLE["neutral"]
    status, body, _ = await admin.post(
        "/api/admin/users", {"username": username, "role": "neutral", "display_name": display_name}
    )
    assert status == 201, body
    neutral = await signed_in(server, username, body["one_time_password"])
    await renew_password(neutral, body["one_time_password"], password)
    status, body, _ = await neutral.post("/api/cases", {**INTAKE, "title": CASE_TITLE})
    assert status == 201, body
    case_id = body["case"]["id"]
    made = [admin, neutral]
    for who in ("a", "b"):
        username, display_name, password = PEOPLE[who]
        status, body, _ = await neutral.post(
            f"/api/cases/{case_id}/invitations", {"role": "party", "display_name": display_name}
        )
        assert status == 201, body
        member = ApiClient(server.url)
        made.append(member)
        status, accepted, _ = await member.post(
            f"/api/invitations/{body['token']}/accept", {"username": username, "password": password}
        )
        assert status == 201, accepted
    return case_id, made


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
    browser: Browser, server: RunningServer, who: str, watch: Watch
) -> tuple[BrowserContext, Page]:
    username, _display, password = PEOPLE[who]
    context = await browser.new_context(ignore_https_errors=True, base_url=server.url)
    context.set_default_timeout(15_000)
    page = await context.new_page()
    watch.attach(page)
    await page.goto("/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/cases")
    return context, page


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
        _, neutral = await signed_in_page(browser, caucus_server, "neutral", watch)
        await neutral.goto(f"/cases/{case_id}")
        await neutral.get_by_test_id("spaces-link").click()
        await neutral.wait_for_url(f"**/cases/{case_id}/spaces")
        await create_space(neutral, PRIVATE, ["a"])
        await create_space(neutral, SHARED, ["a", "b"])

        # A uploads a PDF and a picture into the private space and writes there.
        a_context, a = await signed_in_page(browser, caucus_server, "a", watch)
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
        b_context, b = await signed_in_page(browser, caucus_server, "b", watch)
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
