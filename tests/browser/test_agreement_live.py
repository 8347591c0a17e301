"""An agreement's page follows changes made elsewhere without a reload: counsel's comment
and the neutral's new version appear on a party's open page (and the new version in the
space's list of agreements); a neutral typing in the editor is not interrupted: the page
says the agreement changed, keeps what was typed, and shows the latest only when asked."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import RunningServer
from tests.browser.pages import Watch, signed_in_page
from tests.browser.test_agreements import PASSWORDS, clients, settlement_space  # noqa: F401
from tests.support.smtp import MailServer
from tests.support.world import ApiClient

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_an_open_agreement_page_follows_changes_made_elsewhere(
    browser: Browser,
    mail_caucus: RunningServer,
    mail_server: MailServer,
    clients: dict[str, ApiClient],  # noqa: F811
) -> None:
    server = mail_caucus
    case_id, space_id, _ids = await settlement_space(server, clients)
    path = f"/api/cases/{case_id}/spaces/{space_id}/agreements"
    text = {
        "title": "Harbor settlement",
        "clauses": [{"heading": "Payment", "body": "EUR 4,000 within 30 days."}],
    }
    status, body, _ = await clients["nina"].post(path, text)
    assert status == 201, body
    agreement_id = body["agreement"]["id"]
    url = f"/cases/{case_id}/spaces/{space_id}/agreements/{agreement_id}"
    watch = Watch()
    paula_context, paula = await signed_in_page(browser, server, "paula", PASSWORDS["paula"], watch)
    _, nina = await signed_in_page(browser, server, "nina", PASSWORDS["nina"], watch)
    await paula.goto(url)
    await nina.goto(url)
    # the space's page, open beside it, lists the agreement and its version
    space = await paula_context.new_page()
    watch.attach(space)
    await space.goto(f"/cases/{case_id}/spaces/{space_id}")
    listed = space.get_by_test_id("agreement-item")
    await expect(listed).to_contain_text("Version 1")
    clause = paula.get_by_test_id("clause").nth(0)
    await expect(clause.get_by_test_id("clause-body")).to_contain_text("30 days")

    # counsel comments through the API: Paula's page shows it, unreloaded
    status, body, _ = await clients["carl"].post(
        f"{path}/{agreement_id}/comments",
        {"version": 1, "clause": 1, "body": "45 days, as discussed."},
    )
    assert status == 201, body
    await expect(clause.get_by_test_id("comment-text")).to_have_text("45 days, as discussed.")

    # Nina starts typing in the editor; meanwhile a new version is saved elsewhere
    editing = nina.locator("#edit-form")
    await editing.get_by_label("Clause 1 text").fill("EUR 4,000 within 40 days.")
    status, body, _ = await clients["nina"].post(
        f"{path}/{agreement_id}/versions",
        {
            **text,
            "clauses": [{"heading": "Payment", "body": "EUR 4,000 within 45 days."}],
            "based_on": 1,
        },
    )
    assert status == 201, body
    # Paula, who types nothing, sees version 2 at once, and so does the space's list
    await expect(clause.get_by_test_id("clause-body")).to_contain_text("45 days")
    await expect(listed).to_contain_text("Version 2")
    # Nina is told, and her text is still there
    await expect(nina.get_by_test_id("changed-notice")).to_be_visible()
    await expect(editing.get_by_label("Clause 1 text")).to_have_value("EUR 4,000 within 40 days.")
    # until she asks for the latest
    await nina.get_by_test_id("changed-reload").click()
    await expect(nina.get_by_test_id("changed-notice")).to_be_hidden()
    await expect(editing.get_by_label("Clause 1 text")).to_have_value("EUR 4,000 within 45 days.")
    await expect(
        nina.get_by_test_id("clause").nth(0).get_by_test_id("clause-body")
    ).to_contain_text("45 days")
    assert watch.problems == []
