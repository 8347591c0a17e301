"""Billing routes: a case's fee terms and their acceptance, invoices (issue, read, PDF and
HTML views, credit notes), payments (offline records, card payments through the payment
provider, refunds), the neutral's ledger with CSV export, and the provider's webhook.

The outcome of a card payment is taken only from the provider's signed webhook; the
browser's return proves nothing."""

from __future__ import annotations

import csv
import io
import logging
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from rooms.billing.invoice_pdf import render_html, render_pdf
from rooms.billing.invoices import document
from rooms.billing.money import CURRENCIES
from rooms.billing.payments import ProviderEvent
from rooms.cases.roles import CASE_ROLES, NEUTRAL_ROLES
from rooms.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from signaling.http.access import MEMBER, access, read_json, user_of
from signaling.http.pages import PAGES_DIR
from signaling.http.state import MAIL_SENDER, PAYMENT_GATEWAY
from signaling.payments.errors import WebhookRefused
from signaling.services import SERVICES

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

#: The largest webhook body taken (the provider's events are a few kilobytes).
MAX_WEBHOOK_BYTES = 256 * 1024


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)


class ShareBody(Closed):
    user_id: str = Field(min_length=1, max_length=32)
    basis_points: int


class TermsBody(Closed):
    currency: str = Field(min_length=3, max_length=3)
    rate_kind: str = Field(max_length=16)
    rate: int
    deposit: int = 0
    cancellation_hours: int = 48
    cancellation_terms: str = Field(default="", max_length=2000)
    tax_basis_points: int = 0
    payment_days: int = 14
    seller_name: str = Field(min_length=1, max_length=200)
    seller_address: str = Field(default="", max_length=500)
    shares: list[ShareBody] = Field(min_length=1, max_length=20)
    remainder_to: str = Field(min_length=1, max_length=32)


class AcceptBody(Closed):
    version: int
    digest: str = Field(min_length=64, max_length=64)
    billing_name: str = Field(min_length=1, max_length=200)
    billing_address: str = Field(default="", max_length=500)


class LineBody(Closed):
    description: str = Field(min_length=1, max_length=200)
    quantity_thousandths: int
    unit_amount: int


class IssueBody(Closed):
    lines: list[LineBody] = Field(min_length=1, max_length=100)


class OfflineBody(Closed):
    amount: int
    note: str = Field(default="", max_length=200)


# -- fee terms ---------------------------------------------------------------------------------
@routes.get("/api/cases/{case_id}/fees")
@access("case", case_roles=CASE_ROLES)
async def get_fees(request: web.Request) -> web.Response:
    agreement = await request.app[SERVICES].fees.get(request.match_info["case_id"])
    viewer = request[MEMBER].user_id
    return web.json_response(
        {
            "agreement": agreement.public(viewer) if agreement else None,
            "card_payments": request.app[PAYMENT_GATEWAY] is not None,
        }
    )


@routes.put("/api/cases/{case_id}/fees")
@access("case", case_roles=NEUTRAL_ROLES)
async def set_fees(request: web.Request) -> web.Response:
    body = await read_json(request, TermsBody)
    agreement = await request.app[SERVICES].fees.set_terms(
        request.match_info["case_id"], request[MEMBER], body.model_dump()
    )
    return web.json_response({"agreement": agreement.public()})


@routes.post("/api/cases/{case_id}/fees/accept")
@access("case", case_roles=("party",))
async def accept_fees(request: web.Request) -> web.Response:
    body = await read_json(request, AcceptBody)
    member = request[MEMBER]
    agreement = await request.app[SERVICES].fees.accept(
        request.match_info["case_id"],
        member,
        body.version,
        body.digest,
        body.billing_name,
        body.billing_address,
    )
    return web.json_response({"agreement": agreement.public(member.user_id)})


# -- invoices ----------------------------------------------------------------------------------
@routes.get("/api/cases/{case_id}/invoices")
@access("case", case_roles=CASE_ROLES)
async def case_invoices(request: web.Request) -> web.Response:
    items = await request.app[SERVICES].invoices.of_case(
        request.match_info["case_id"], request[MEMBER]
    )
    return web.json_response({"invoices": items})


@routes.get("/api/cases/{case_id}/invoices/draft")
@access("case", case_roles=NEUTRAL_ROLES)
async def draft_invoice(request: web.Request) -> web.Response:
    lines = await request.app[SERVICES].invoices.draft(
        request.match_info["case_id"], request[MEMBER]
    )
    return web.json_response({"lines": lines})


@routes.post("/api/cases/{case_id}/invoices")
@access("case", case_roles=NEUTRAL_ROLES)
async def issue_invoices(request: web.Request) -> web.Response:
    body = await read_json(request, IssueBody)
    issued = await request.app[SERVICES].invoices.issue(
        request.match_info["case_id"], request[MEMBER], [line.model_dump() for line in body.lines]
    )
    request.app[MAIL_SENDER].wake()
    return web.json_response({"invoices": issued}, status=201)


@routes.post("/api/cases/{case_id}/invoices/{invoice_id}/credit")
@access("case", case_roles=NEUTRAL_ROLES)
async def credit_invoice(request: web.Request) -> web.Response:
    credit = await request.app[SERVICES].invoices.credit(
        request.match_info["invoice_id"], request[MEMBER]
    )
    request.app[MAIL_SENDER].wake()
    return web.json_response({"invoice": credit}, status=201)


@routes.post("/api/cases/{case_id}/invoices/{invoice_id}/payments")
@access("case", case_roles=NEUTRAL_ROLES)
async def record_payment(request: web.Request) -> web.Response:
    body = await read_json(request, OfflineBody)
    invoice = await request.app[SERVICES].payments.record_offline(
        request.match_info["invoice_id"], request[MEMBER], body.amount, body.note
    )
    request.app[MAIL_SENDER].wake()
    return web.json_response({"invoice": invoice}, status=201)


@routes.post("/api/cases/{case_id}/payments/{payment_id}/refund")
@access("case", case_roles=NEUTRAL_ROLES)
async def refund_payment(request: web.Request) -> web.Response:
    services, gateway = request.app[SERVICES], request.app[PAYMENT_GATEWAY]
    if gateway is None:
        raise Conflict("Card payments are not set up here.", code="card_payments_off")
    member = request[MEMBER]
    payment = await services.payments.refundable(request.match_info["payment_id"], member)
    await gateway.refund(payment.provider_ref, payment.amount, f"refund-{payment.id}")
    invoice = await services.payments.refunded(payment.id, member)
    return web.json_response({"invoice": invoice})


@routes.get("/api/invoices/{invoice_id}")
@access("active")
async def get_invoice(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    user = user_of(request)
    row = await services.invoices.readable(request.match_info["invoice_id"], user.id)
    invoice = await services.invoices.get(row.id)
    can_pay = (
        row.payer_id == user.id
        and invoice["status"] == "open"
        and invoice["due"] > 0
        and request.app[PAYMENT_GATEWAY] is not None
    )
    return web.json_response({"invoice": invoice, "can_pay": can_pay})


@routes.get("/api/invoices/{invoice_id}/pdf")
@access("active")
async def invoice_pdf(request: web.Request) -> web.Response:
    row = await request.app[SERVICES].invoices.readable(
        request.match_info["invoice_id"], user_of(request).id
    )
    return web.Response(
        body=render_pdf(document(row)),
        content_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{row.number}.pdf"'},
    )


@routes.get("/invoices/{invoice_id}/view")
@access("active")
async def invoice_view(request: web.Request) -> web.Response:
    row = await request.app[SERVICES].invoices.readable(
        request.match_info["invoice_id"], user_of(request).id
    )
    return web.Response(text=render_html(document(row)), content_type="text/html")


@routes.post("/api/invoices/{invoice_id}/pay")
@access("active")
async def pay_invoice(request: web.Request) -> web.Response:
    """Start a card payment of what is due; the page confirms it with the provider's card
    fields (card data never reaches Caucus)."""
    services, gateway = request.app[SERVICES], request.app[PAYMENT_GATEWAY]
    user = user_of(request)
    row = await services.invoices.readable(request.match_info["invoice_id"], user.id)
    if row.payer_id != user.id:
        raise NotFound("No such invoice.")  # counsel and the neutral read it, never pay it
    if gateway is None:
        raise Conflict("Card payments are not set up here.", code="card_payments_off")
    card = await services.payments.prepare_card(
        request.match_info["invoice_id"], user_of(request).id
    )
    intent_id, client_secret = await gateway.create_intent(
        amount=card.amount,
        currency=card.currency.lower(),  # Stripe spells currencies in lower case
        invoice_id=card.invoice_id,
        idempotency_key=f"payment-{card.payment_id}",
        description=f"Invoice {card.number}",
    )
    await services.payments.attach_intent(card.payment_id, intent_id)
    return web.json_response(
        {
            "client_secret": client_secret,
            "publishable_key": gateway.publishable_key,
            "js_url": gateway.js_url,
            "amount": card.amount,
            "currency": card.currency,
        },
        status=201,
    )


def payment_page_policy(js_url: str, api_base: str | None) -> str:
    """The payment page's CSP: the site's, plus the provider's script, frames and API."""
    script = _origin(js_url)
    api = _origin(api_base or "https://api.stripe.com")
    return (
        f"default-src 'self'; script-src 'self' {script}; style-src 'self'; "
        f"img-src 'self' data: {script}; frame-src {script} https://hooks.stripe.com; "
        f"connect-src 'self' {api}; font-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'; object-src 'none'"
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@routes.get("/invoices/{invoice_id}/pay")
@access("public")
async def payment_page(request: web.Request) -> web.StreamResponse:
    """The page shell (its data comes from the API, which checks access); the only page
    whose policy lets the provider's card fields in."""
    response = web.FileResponse(
        PAGES_DIR / "invoice-pay.html", headers={"Cache-Control": "no-cache"}
    )
    if request.app[PAYMENT_GATEWAY] is not None:
        settings = request.app[SERVICES].settings
        policy = payment_page_policy(settings.stripe_js_url, settings.stripe_api_base)
        response.headers["Content-Security-Policy"] = policy
    return response


@routes.get("/api/payments/config")
@access("active")
async def payment_config(request: web.Request) -> web.Response:
    gateway = request.app[PAYMENT_GATEWAY]
    if gateway is None:
        return web.json_response({"card_payments": False})
    return web.json_response(
        {
            "card_payments": True,
            "publishable_key": gateway.publishable_key,
            "js_url": gateway.js_url,
        }
    )


# -- the neutral's ledger ------------------------------------------------------------------------
@routes.get("/api/billing/ledger")
@access("neutral")
async def ledger(request: web.Request) -> web.Response:
    items = await request.app[SERVICES].invoices.of_neutral(user_of(request).id)
    if request.query.get("format") != "csv":
        return web.json_response({"invoices": items})
    out = io.StringIO()
    # every text cell quoted, the amounts bare: a spreadsheet adds those up; amounts in
    # the currency's units (324.79, not 32479 cents), the time of issue as UTC date-time
    writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(
        [
            "number",
            "kind",
            "issued_utc",
            "case_reference",
            "payer",
            "currency",
            "total",
            "paid",
            "status",
        ]
    )
    for item in items:
        currency = item["currency"]
        writer.writerow(
            [
                item["number"],
                item["kind"],
                _utc(item["issued_at"]),
                _cell(item["case_reference"]),
                _cell(item["payer_name"]),
                currency,
                _major(item["total"], currency),
                _major(item["paid"], currency),
                item["status"],
            ]
        )
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="caucus-ledger.csv"'},
    )


def _utc(at: float) -> str:
    """A time of issue as a spreadsheet reads a date-time: ``2026-12-07 18:41:33`` (UTC)."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _major(amount: int, currency: str) -> Decimal:
    """Integer minor units as an exact amount in the currency's units (``32479`` EUR:
    ``324.79``; ``500`` JPY: ``500``), written bare."""
    return Decimal(amount).scaleb(-CURRENCIES.get(currency.upper(), 2))


#: What a cell may not begin with (OWASP's rule for CSV injection, with a line feed, which
#: some spreadsheets skip before a formula, and the full-width forms of the four signs,
#: which spreadsheets set up for Chinese, Japanese or Korean input read as the signs).
FORMULA_STARTS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")


def _cell(text: str) -> str:
    """A spreadsheet cannot take a name for a formula: text it would evaluate gets a quote
    in front (the writer quotes the cell)."""
    return "'" + text if text[:1] in FORMULA_STARTS else text


# -- the provider's webhook ----------------------------------------------------------------------
@routes.post("/api/payments/webhook")
@access("public", csrf=False)
async def webhook(request: web.Request) -> web.Response:
    """Signed events of the payment provider (no session, no CSRF token: the signature is
    the proof)."""
    gateway = request.app[PAYMENT_GATEWAY]
    if gateway is None:
        raise Conflict("Card payments are not set up here.", code="card_payments_off")
    body = await request.content.read(MAX_WEBHOOK_BYTES + 1)
    if len(body) > MAX_WEBHOOK_BYTES:
        raise PayloadTooLarge("This event is too large.")
    try:
        event = gateway.parse_event(body, request.headers.get("Stripe-Signature", ""))
    except WebhookRefused as refused:
        log.warning("payment webhook refused", extra={"reason": refused.reason})
        raise InvalidInput("This event was not accepted.", code="webhook_refused") from None
    outcome = await request.app[SERVICES].payments.apply(
        ProviderEvent(
            event.id,
            event.type,
            float(event.created),
            event.intent_id,
            event.amount,
            event.currency,
        )
    )
    log.info("payment event", extra={"event": event.id, "type": event.type, "outcome": outcome})
    request.app[MAIL_SENDER].wake()
    return web.json_response({"received": True, "outcome": outcome})
