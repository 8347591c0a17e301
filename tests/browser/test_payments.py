"""Fees, invoices and payments in real browsers, with `caucus serve` charging cards through
localstripe (a local Stripe API with a stand-in Stripe.js) whose signed webhooks reach the
server over HTTPS: the neutral sets the fee terms on the case page, both parties accept them
(one of them after the terms changed under her eyes), the neutral writes the invoice lines by
hand and issues one invoice per party; one party pays by card on the payment page (3-D
Secure), the other's bank transfer is recorded by the neutral; both invoices read paid, and
their PDFs hold the right totals.

localstripe's Stripe.js stand-in cannot pay a fresh intent from the card fields (see
``tests/support/localstripe.py``): the test first confirms the intent on the server side with a
3-D Secure card, so the page's ``confirmCardPayment`` opens the stand-in's authentication
modal, which the payer completes."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Locator, Page, expect
from pypdf import PdfReader

from certs.authority import ensure_self_signed
from tests.browser.conftest import RunningServer
from tests.browser.pages import (
    Watch,
    active_admin,
    invited_member,
    new_neutral,
    open_case,
    signed_in_page,
    snapshot,
)
from tests.support.localstripe import THREE_D_SECURE_CARD, LocalStripe, start_localstripe
from tests.support.server import free_port, serving
from tests.support.world import ApiClient

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

WEBHOOK_SECRET = "whsec_caucus_browser_payments"
PASSWORDS = {
    "nina": "willow-compass-harbour-2207",
    "paula": "copper-lantern-meadow-5521",
    "pia": "quiet-harbour-orchid-7730",
    "carl": "amber-granite-violin-4419",
}
TITLE = "Harbor Bakery v. Lindqvist Supplies"

# USD 300.00 an hour, 8.25 % tax, shared 66.67 % / 33.33 %, leftovers to Paula.
# Lines: 2.5 h + 1.25 h at 300.00 = 1,125.00; tax 92.8125 → 92.81.
# Paula: 750.0375 → 750.03 + the cent left over = 750.04, tax 61.87 + 1 cent = 61.88: 811.92.
# Pia: 374.9625 → 374.96, tax 30.93: 405.89. Together 1,217.81 = 1,125.00 + 92.81.
PAULA_TOTAL = "USD 811.92"
PIA_TOTAL = "USD 405.89"


@dataclass
class PayingServer:
    """`caucus serve` with card payments through a localstripe that delivers its signed
    webhooks to the server (trusting the server's own certificate authority)."""

    server: RunningServer
    stripe: LocalStripe


@pytest_asyncio.fixture(loop_scope="session")
async def paying_caucus(tmp_path: Path) -> AsyncIterator[PayingServer]:
    port = free_port()
    data_dir = tmp_path / "data"
    # made before the server starts, which then serves this certificate
    certificate = ensure_self_signed(data_dir / "certs", ["127.0.0.1"])
    assert certificate.ca_path is not None
    async with start_localstripe(trust_ca=certificate.ca_path) as stripe:
        await stripe.register_webhook(
            f"https://127.0.0.1:{port}/api/payments/webhook", WEBHOOK_SECRET
        )
        env = {
            "CAUCUS_PUBLIC_URL": f"https://127.0.0.1:{port}",
            "CAUCUS_STRIPE_SECRET_KEY": stripe.secret_key,
            "CAUCUS_STRIPE_PUBLISHABLE_KEY": stripe.publishable_key,
            "CAUCUS_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "CAUCUS_STRIPE_API_BASE": stripe.url,
            "CAUCUS_STRIPE_JS_URL": stripe.js_url,
        }
        async with serving(data_dir, port=port, workers=0, env=env) as served:
            yield PayingServer(RunningServer(served), stripe)


@pytest_asyncio.fixture(loop_scope="session")
async def clients() -> AsyncIterator[dict[str, ApiClient]]:
    """The API clients a test signs in, by username; closed after it."""
    made: dict[str, ApiClient] = {}
    yield made
    for client in made.values():
        await client.close()


async def case_with_two_parties(server: RunningServer, clients: dict[str, ApiClient]) -> str:
    """Nina's case with Paula and Pia as its parties and Carl as Pia's counsel, each signed
    in through the API."""
    admin = await active_admin(server)
    nina = await new_neutral(admin, server, "nina", "Nina Neutral", PASSWORDS["nina"])
    await admin.close()
    case_id = await open_case(nina, TITLE)
    clients["nina"] = nina
    for username, name in (("paula", "Paula Lindqvist"), ("pia", "Pia Harbor")):
        clients[username] = await invited_member(
            nina,
            server,
            case_id,
            role="party",
            display_name=name,
            username=username,
            password=PASSWORDS[username],
        )
    _, session, _ = await clients["pia"].get("/api/session")
    clients["carl"] = await invited_member(
        nina,
        server,
        case_id,
        role="counsel",
        display_name="Carl Counsel",
        username="carl",
        password=PASSWORDS["carl"],
        represents=session["user"]["id"],
    )
    return case_id


async def set_terms(page: Page, *, payment_days: str) -> None:
    """The neutral fills and saves the fee terms form."""
    await page.get_by_label("Currency").select_option("USD")
    await page.get_by_label("Charged").select_option("hourly")
    await page.get_by_label("Rate", exact=True).fill("300.00")
    await page.get_by_label("Tax rate (%)").fill("8.25")
    await page.get_by_label("Payment due (days after issue)").fill(payment_days)
    await page.get_by_label("Cancellation terms").fill("Late cancellations are charged in full.")
    await page.get_by_label("Invoices are issued by").fill("Nina Neutral Mediation")
    await page.get_by_label("Address on the invoices").fill("1 Court Square\nSpringfield")
    await page.get_by_label("Paula Lindqvist (%)").fill("66.67")
    await page.get_by_label("Pia Harbor (%)").fill("33.33")
    await expect(page.get_by_test_id("share-sum")).to_have_text("100 %")
    await page.get_by_label("Rounding leftovers (a cent or two) go to").select_option(
        label="Paula Lindqvist"
    )
    await page.get_by_role("button", name="Save the terms").click()


async def accept_terms(page: Page, name: str) -> None:
    await page.get_by_label("Name on your invoices").fill(name)
    await page.get_by_label("Billing address").fill(f"{name}\n2 Elm Street")
    await page.get_by_role("button", name="Accept these terms").click()


def invoice_row(page: Page, payer: str) -> Locator:
    return page.get_by_test_id("invoice-row").filter(has_text=payer)


async def pdf_text(client: ApiClient, invoice_id: str) -> str:
    status, body, response = await client.get(f"/api/invoices/{invoice_id}/pdf")
    assert status == 200 and response.content_type == "application/pdf", body
    assert isinstance(body, bytes)
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


async def test_fees_are_agreed_invoiced_and_paid_by_card_and_by_transfer(
    browser: Browser, paying_caucus: PayingServer, clients: dict[str, ApiClient]
) -> None:
    server, stripe = paying_caucus.server, paying_caucus.stripe
    case_id = await case_with_two_parties(server, clients)
    watch = Watch()
    pages = {}
    for username in ("nina", "paula", "pia"):
        _context, pages[username] = await signed_in_page(
            browser, server, username, PASSWORDS[username], watch
        )
    nina, paula, pia = pages["nina"], pages["paula"], pages["pia"]

    # the neutral sets the terms
    await nina.goto(f"/cases/{case_id}")
    await expect(nina.get_by_role("link", name="Billing")).to_be_visible()
    await set_terms(nina, payment_days="14")
    await expect(nina.get_by_test_id("terms-saved")).to_contain_text("version 1")
    await expect(nina.get_by_test_id("acceptance")).to_have_count(2)
    await snapshot(nina, "billing-terms")

    # Pia reads version 1; meanwhile the neutral corrects the terms (version 2)
    await pia.goto(f"/cases/{case_id}")
    await expect(pia.get_by_test_id("party-terms-version")).to_have_text("Version 1")
    await expect(pia.get_by_test_id("terms-my-share")).to_have_text("33.33 %")
    await set_terms(nina, payment_days="30")
    await expect(nina.get_by_test_id("terms-saved")).to_contain_text("version 2")

    # Paula accepts version 2
    await paula.goto(f"/cases/{case_id}")
    await expect(paula.get_by_test_id("party-terms-version")).to_have_text("Version 2")
    await expect(paula.get_by_test_id("terms-my-share")).to_have_text("66.67 %")
    await expect(paula.get_by_test_id("terms-fee")).to_have_text("USD 300.00 per hour")
    await accept_terms(paula, "Paula Lindqvist")
    await expect(paula.get_by_test_id("party-accepted")).to_contain_text("accepted version 2")

    # Pia's acceptance of version 1 is refused; the page shows version 2, which she accepts
    await accept_terms(pia, "Pia Harbor")
    await expect(pia.get_by_test_id("accept-error")).to_contain_text("changed")
    await expect(pia.get_by_test_id("party-terms-version")).to_have_text("Version 2")
    await snapshot(pia, "billing-terms-changed")
    await expect(pia.get_by_test_id("terms-payment-text")).to_contain_text("30 days")
    await pia.get_by_role("button", name="Accept these terms").click()
    await expect(pia.get_by_test_id("party-accepted")).to_contain_text("accepted version 2")

    # the neutral sees both acceptances and writes the invoice lines by hand (no session
    # has taken place, so the draft is empty)
    await nina.reload()
    accepted = nina.locator("[data-testid=acceptance][data-accepted=yes]")
    await expect(accepted).to_have_count(2)
    await nina.get_by_role("button", name="Prepare invoices").click()
    await expect(nina.get_by_test_id("no-draft-lines")).to_be_visible()
    lines = nina.get_by_test_id("draft-line")
    await expect(lines).to_have_count(1)
    await lines.nth(0).get_by_label("Description").fill("Mediation session of 2 March")
    await lines.nth(0).get_by_label("Hours").fill("2.5")
    await expect(lines.nth(0).get_by_label("Unit amount (USD)")).to_have_value("300.00")
    await nina.get_by_role("button", name="Add a line").click()
    await lines.nth(1).get_by_label("Description").fill("Reading the parties' briefs")
    await lines.nth(1).get_by_label("Hours").fill("1.25")
    await nina.get_by_role("button", name="Add a line").click()
    await lines.nth(2).get_by_label("Description").fill("A line written by mistake")
    await lines.nth(2).get_by_role("button", name="Remove").click()
    await expect(lines).to_have_count(2)
    await expect(nina.get_by_test_id("draft-total")).to_have_text("USD 1,125.00")
    await snapshot(nina, "billing-issue")
    await nina.get_by_role("button", name="Issue invoices").click()
    await expect(nina.get_by_test_id("invoice-row")).to_have_count(2)
    await expect(invoice_row(nina, "Paula Lindqvist").get_by_test_id("invoice-total")).to_have_text(
        PAULA_TOTAL
    )
    await expect(invoice_row(nina, "Pia Harbor").get_by_test_id("invoice-total")).to_have_text(
        PIA_TOTAL
    )
    ids = {}
    for username, payer in (("paula", "Paula Lindqvist"), ("pia", "Pia Harbor")):
        href = await invoice_row(nina, payer).get_by_test_id("invoice-link").get_attribute("href")
        assert href is not None
        ids[username] = href.rsplit("/", 1)[1]

    # Paula pays by card: her invoice, then the payment page
    await paula.reload()
    await expect(paula.get_by_test_id("invoice-row")).to_have_count(1)
    await paula.get_by_test_id("invoice-link").click()
    await expect(paula.get_by_test_id("invoice-total")).to_have_text(PAULA_TOTAL)
    await expect(paula.get_by_test_id("invoice-due")).to_have_text(PAULA_TOTAL)
    async with paula.expect_response(
        lambda r: r.url.endswith(f"/api/invoices/{ids['paula']}/pay") and r.request.method == "POST"
    ) as started:
        await paula.get_by_role("link", name="Pay by card").click()
    payment = await (await started.value).json()
    assert (payment.get("amount"), payment.get("currency")) == (81192, "USD"), payment
    card = paula.get_by_test_id("card-element")
    await expect(card.locator("input")).to_have_count(5)
    await card.get_by_placeholder("number").fill(THREE_D_SECURE_CARD)
    await card.get_by_placeholder("exp_month").fill("12")
    await card.get_by_placeholder("exp_year").fill("34")
    await card.get_by_placeholder("cvc").fill("123")
    await card.get_by_placeholder("postal_code").fill("10001")
    # what the real Stripe.js does with those fields, done on the server side (see the
    # module docstring): the intent now waits for the payer's 3-D Secure answer
    intent_id = payment["client_secret"].split("_secret_")[0]
    confirmed = await stripe.pay(intent_id, card=THREE_D_SECURE_CARD)
    assert confirmed["status"] == "requires_action", confirmed
    await paula.get_by_role("button", name="Pay", exact=True).click()
    await snapshot(paula, "billing-pay-authenticate")
    await paula.get_by_role("button", name="Complete authentication").click()
    await expect(paula.get_by_test_id("pay-confirming")).to_contain_text("Payment received")
    await expect(paula.get_by_test_id("pay-paid")).to_contain_text(
        "is paid: USD 811.92", timeout=30_000
    )
    assert (await stripe.intent(intent_id))["status"] == "succeeded"
    await snapshot(paula, "billing-paid")

    # Pia paid by bank transfer; the neutral records it
    await nina.reload()
    await invoice_row(nina, "Pia Harbor").get_by_role("button", name="Record a payment").click()
    await expect(nina.get_by_label("Amount received (USD)")).to_have_value("405.89")
    await nina.get_by_label("Note (a cheque number, a transfer reference)").fill(
        "Bank transfer 2026-0301"
    )
    await nina.get_by_role("button", name="Record the payment").click()
    for payer, total in (("Paula Lindqvist", PAULA_TOTAL), ("Pia Harbor", PIA_TOTAL)):
        row = invoice_row(nina, payer)
        await expect(row.get_by_test_id("invoice-status")).to_have_text("Paid")
        await expect(row.get_by_test_id("invoice-paid")).to_have_text(total)
    await snapshot(nina, "billing-invoices-paid")

    # each party's invoice page reads paid; nothing more is due
    for username, total, method in (("paula", PAULA_TOTAL, "card"), ("pia", PIA_TOTAL, "offline")):
        page = pages[username]
        await page.goto(f"/invoices/{ids[username]}")
        await expect(page.get_by_test_id("invoice-status")).to_have_text("Paid")
        await expect(page.get_by_test_id("invoice-paid")).to_have_text(total)
        await expect(page.get_by_test_id("invoice-due")).to_have_text("USD 0.00")
        await expect(page.get_by_role("link", name="Pay by card")).to_be_hidden()
        await expect(
            page.locator(f"[data-testid=invoice-payment][data-method={method}]")
        ).to_have_count(1)
        await expect(page.get_by_role("link", name="Download PDF")).to_have_attribute(
            "href", f"/api/invoices/{ids[username]}/pdf"
        )
        await snapshot(page, f"billing-invoice-{username}")

    # Pia's counsel reads her invoice, and only hers, without the neutral's controls
    _context, carl = await signed_in_page(browser, server, "carl", PASSWORDS["carl"], watch)
    await carl.goto(f"/cases/{case_id}")
    await expect(carl.get_by_role("heading", name="Your client's invoices")).to_be_visible()
    await expect(carl.get_by_test_id("invoice-row")).to_have_count(1)
    await expect(invoice_row(carl, "Pia Harbor").get_by_test_id("invoice-status")).to_have_text(
        "Paid"
    )
    await expect(carl.get_by_test_id("terms-form")).to_be_hidden()
    await expect(carl.get_by_test_id("accept-form")).to_be_hidden()
    await expect(carl.get_by_role("button", name="Record a payment")).to_have_count(0)

    # the PDFs, fetched as each party
    paula_pdf = await pdf_text(clients["paula"], ids["paula"])
    pia_pdf = await pdf_text(clients["pia"], ids["pia"])
    assert "811.92" in paula_pdf and "405.89" not in paula_pdf
    assert "405.89" in pia_pdf and "811.92" not in pia_pdf
    assert "Paula Lindqvist" in paula_pdf and "Pia Harbor" in pia_pdf
    # neither party reads the other's invoice
    status, _, _ = await clients["paula"].get(f"/api/invoices/{ids['pia']}/pdf")
    assert status == 404

    # the neutral's ledger lists both, paid, and offers the CSV
    await nina.get_by_role("link", name="Billing").click()
    await expect(nina).to_have_url(re.compile(r"/billing$"))
    await expect(nina.locator("[data-testid=ledger-row][data-status=paid]")).to_have_count(2)
    await expect(nina.get_by_test_id("ledger-totals")).to_have_text("Nothing is outstanding.")
    await snapshot(nina, "billing-ledger")
    await expect(nina.get_by_role("link", name="Download CSV")).to_have_attribute(
        "href", "/api/billing/ledger?format=csv"
    )
    assert watch.problems == []
