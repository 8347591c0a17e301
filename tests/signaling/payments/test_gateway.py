"""The Stripe gateway against localstripe: an invoice's PaymentIntent paid by card, the
signed ``payment_intent.succeeded`` webhook delivered over HTTPS to a loopback endpoint
with a self-signed certificate and parsed, refunds, and every way a delivery is refused."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from certs.authority import ensure_self_signed
from rooms.errors import InvalidInput
from signaling.payments.errors import (
    PaymentProviderUnavailable,
    PaymentRequestRefused,
    WebhookRefused,
)
from signaling.payments.gateway import MAX_EVENT_BYTES, PaymentGateway, StripeSettings
from tests.support.eventually import eventually
from tests.support.localstripe import THREE_D_SECURE_CARD, LocalStripe, start_localstripe
from tests.support.server import free_port

WEBHOOK_SECRET = "whsec_caucus_test_signing_secret"


def settings_for(stripe: LocalStripe | None, **changes: str) -> StripeSettings:
    values = {
        "secret_key": stripe.secret_key if stripe else "sk_test_offline",
        "publishable_key": stripe.publishable_key if stripe else "pk_test_offline",
        "webhook_secret": WEBHOOK_SECRET,
        "api_base": stripe.url if stripe else "http://127.0.0.1:9",
        "js_url": stripe.js_url if stripe else "https://js.stripe.com/v3/",
        **changes,
    }
    return StripeSettings(**values)


@pytest.fixture
async def gateway(localstripe: LocalStripe) -> AsyncIterator[PaymentGateway]:
    gateway = PaymentGateway(settings_for(localstripe))
    yield gateway
    await gateway.aclose()


@dataclass
class WebhookInbox:
    """A loopback endpoint that answers 200 and keeps each delivery's body and
    Stripe-Signature header."""

    url: str
    deliveries: list[tuple[bytes, str]] = field(default_factory=list)

    def of_type(self, event_type: str) -> list[tuple[bytes, str]]:
        return [d for d in self.deliveries if json.loads(d[0]).get("type") == event_type]


@contextlib.asynccontextmanager
async def serving_inbox(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[WebhookInbox]:
    port = free_port()
    scheme = "https" if ssl_context else "http"
    inbox = WebhookInbox(url=f"{scheme}://127.0.0.1:{port}/payments/stripe-webhook")

    async def receive(request: web.Request) -> web.Response:
        inbox.deliveries.append((await request.read(), request.headers.get("Stripe-Signature", "")))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/payments/stripe-webhook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
        yield inbox
    finally:
        await runner.cleanup()


@pytest.fixture
async def https_inbox(tmp_path: Path) -> AsyncIterator[tuple[WebhookInbox, Path]]:
    """The inbox served over HTTPS with a certificate of Caucus' own development CA (as
    ``caucus serve`` makes one); also the CA's path."""
    certificate = ensure_self_signed(tmp_path / "certs", ["127.0.0.1"])
    assert certificate.ca_path is not None
    async with serving_inbox(certificate.ssl_context()) as inbox:
        yield inbox, certificate.ca_path


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    signature = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={signature}"


def event_payload(**changes: object) -> bytes:
    event: dict[str, object] = {
        "id": "evt_1Caucus0Test",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": "pi_1Caucus0Test",
                "object": "payment_intent",
                "amount": 12500,
                "currency": "eur",
                "status": "succeeded",
                "metadata": {"invoice_id": "inv-42"},
            }
        },
        **changes,
    }
    return json.dumps(event).encode()


async def test_an_invoice_paid_by_card_is_reported_by_a_signed_webhook_over_https(
    https_inbox: tuple[WebhookInbox, Path],
) -> None:
    inbox, ca_path = https_inbox
    async with start_localstripe(trust_ca=ca_path) as stripe:
        await stripe.register_webhook(inbox.url, WEBHOOK_SECRET)
        gateway = PaymentGateway(settings_for(stripe))
        try:
            intent_id, client_secret = await gateway.create_intent(
                amount=12500,
                currency="eur",
                invoice_id="inv-42",
                idempotency_key="invoice-inv-42-attempt-1",
                description="Caucus invoice inv-42: mediation session",
            )
            assert intent_id.startswith("pi_")
            assert client_secret.startswith(f"{intent_id}_secret_")
            created = await stripe.intent(intent_id)
            assert created["status"] == "requires_payment_method"
            assert created["amount"] == 12500 and created["currency"] == "eur"
            assert created["metadata"] == {"invoice_id": "inv-42"}
            assert created["description"] == "Caucus invoice inv-42: mediation session"
            assert created["payment_method_types"] == ["card"]

            paid = await stripe.pay(intent_id)
            assert paid["status"] == "succeeded"

            await eventually(
                lambda: inbox.of_type("payment_intent.succeeded"),
                15,
                what="payment_intent.succeeded delivered",
                details=stripe.log,
            )
            payload, signature = inbox.of_type("payment_intent.succeeded")[0]
            event = gateway.parse_event(payload, signature)
            assert event.id.startswith("evt_")
            assert event.type == "payment_intent.succeeded"
            assert abs(event.created - time.time()) < 60
            assert event.intent_id == intent_id
            assert event.invoice_id == "inv-42"
            assert (event.amount, event.currency, event.status) == (12500, "eur", "succeeded")
        finally:
            await gateway.aclose()


async def test_a_delivery_to_an_untrusted_certificate_fails_unless_its_ca_is_trusted(
    localstripe: LocalStripe, gateway: PaymentGateway, https_inbox: tuple[WebhookInbox, Path]
) -> None:
    inbox, _ = https_inbox
    await localstripe.register_webhook(inbox.url, WEBHOOK_SECRET)
    intent_id, _ = await gateway.create_intent(
        amount=100,
        currency="eur",
        invoice_id="inv-untrusted",
        idempotency_key="k-untrusted",
        description="untrusted",
    )
    await localstripe.pay(intent_id)
    await eventually(
        lambda: any('"payment_intent.succeeded" failed' in line for line in localstripe.output),
        15,
        what="localstripe reports the failed delivery",
        details=localstripe.log,
    )
    assert inbox.deliveries == []


async def test_a_declined_card_is_reported_by_a_payment_failed_webhook(
    localstripe: LocalStripe, gateway: PaymentGateway
) -> None:
    async with serving_inbox() as inbox:
        await localstripe.register_webhook(
            inbox.url, WEBHOOK_SECRET, ["payment_intent.payment_failed"]
        )
        intent_id, _ = await gateway.create_intent(
            amount=4200,
            currency="eur",
            invoice_id="inv-declined",
            idempotency_key="k-declined",
            description="declined",
        )
        await localstripe.call(
            "POST",
            f"/v1/payment_intents/{intent_id}",
            {"payment_method": "pm_card_chargeCustomerFail"},
        )
        status, body = await localstripe.request("POST", f"/v1/payment_intents/{intent_id}/confirm")
        assert status == 402 and body["error"]["code"] == "card_declined"
        await eventually(lambda: inbox.deliveries, 15, details=localstripe.log)
        event = gateway.parse_event(*inbox.deliveries[0])
        assert (event.type, event.intent_id, event.invoice_id, event.status) == (
            "payment_intent.payment_failed",
            intent_id,
            "inv-declined",
            "requires_payment_method",
        )
        assert len(inbox.deliveries) == 1


async def test_a_three_d_secure_card_pays_once_the_payer_authenticates(
    localstripe: LocalStripe, gateway: PaymentGateway
) -> None:
    intent_id, client_secret = await gateway.create_intent(
        amount=9900,
        currency="eur",
        invoice_id="inv-3ds",
        idempotency_key="invoice-inv-3ds-attempt-1",
        description="Caucus invoice inv-3ds",
    )
    assert (await localstripe.pay(intent_id, card=THREE_D_SECURE_CARD))[
        "status"
    ] == "requires_action"
    status, body = await localstripe.authenticate(intent_id, client_secret + "x")
    assert status == 401
    status, body = await localstripe.authenticate(intent_id, client_secret)
    assert status == 200 and body["status"] == "succeeded"


async def test_a_paid_invoice_is_refunded_in_part_then_in_full(
    localstripe: LocalStripe, gateway: PaymentGateway
) -> None:
    intent_id, _ = await gateway.create_intent(
        amount=20000,
        currency="eur",
        invoice_id="inv-refund",
        idempotency_key="invoice-inv-refund-attempt-1",
        description="Caucus invoice inv-refund",
    )
    await localstripe.pay(intent_id)
    first = await gateway.refund(intent_id, 5000, "refund-inv-refund-1")
    second = await gateway.refund(intent_id, 15000, "refund-inv-refund-2")
    assert first.startswith("re_") and second.startswith("re_") and first != second
    refunds = await localstripe.call("GET", f"/v1/refunds?payment_intent={intent_id}")
    assert sorted(r["amount"] for r in refunds["data"]) == [5000, 15000]
    assert {r["status"] for r in refunds["data"]} == {"succeeded"}


async def test_stripe_refusing_or_missing_becomes_a_domain_error(
    localstripe: LocalStripe, gateway: PaymentGateway
) -> None:
    with pytest.raises(PaymentRequestRefused) as refused:
        await gateway.refund("pi_doesnotexist", 100, "refund-unknown")
    assert refused.value.status == 409
    unpaid, _ = await gateway.create_intent(
        amount=100,
        currency="eur",
        invoice_id="inv-unpaid",
        idempotency_key="k-unpaid",
        description="unpaid",
    )
    with pytest.raises(PaymentRequestRefused):
        await gateway.refund(unpaid, 100, "refund-unpaid")

    closed = PaymentGateway(settings_for(localstripe, api_base=f"http://127.0.0.1:{free_port()}"))
    try:
        with pytest.raises(PaymentProviderUnavailable):
            await closed.create_intent(
                amount=100,
                currency="eur",
                invoice_id="inv-offline",
                idempotency_key="k-offline",
                description="offline",
            )
    finally:
        await closed.aclose()


async def test_no_secret_reaches_the_logs(
    localstripe: LocalStripe, gateway: PaymentGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    intent_id, client_secret = await gateway.create_intent(
        amount=100,
        currency="eur",
        invoice_id="inv-logs",
        idempotency_key="k-logs",
        description="logs",
    )
    await localstripe.pay(intent_id)
    await gateway.refund(intent_id, 100, "k-logs-refund")
    assert any(getattr(record, "intent_id", None) == intent_id for record in caplog.records)
    logged = caplog.text + "".join(repr(vars(record)) for record in caplog.records)
    for secret in (client_secret, localstripe.secret_key, WEBHOOK_SECRET):
        assert secret not in logged
    settings = settings_for(localstripe)
    assert localstripe.secret_key not in repr(settings)
    assert WEBHOOK_SECRET not in repr(settings)


async def test_stripe_debug_logging_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_LOG", "debug")
    with pytest.raises(InvalidInput, match="STRIPE_LOG"):
        PaymentGateway(settings_for(None))


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": 100_000_000}, "amount"),
        ({"amount": 10.5}, "amount"),
        ({"currency": "EUR"}, "currency"),
        ({"currency": "euro"}, "currency"),
        ({"invoice_id": ""}, "invoice id"),
        ({"invoice_id": "x" * 501}, "invoice id"),
        ({"idempotency_key": "k" * 256}, "idempotency key"),
        ({"description": ""}, "description"),
    ],
)
async def test_intent_arguments_are_checked_before_calling_stripe(
    changes: dict[str, object], field_name: str
) -> None:
    gateway = PaymentGateway(settings_for(None))
    arguments: dict[str, object] = {
        "amount": 100,
        "currency": "eur",
        "invoice_id": "inv-1",
        "idempotency_key": "k-1",
        "description": "d",
        **changes,
    }
    try:
        with pytest.raises(InvalidInput, match=field_name):
            await gateway.create_intent(**arguments)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            await gateway.refund("ch_notanintent", 100, "k")
    finally:
        await gateway.aclose()


@pytest.mark.parametrize(
    "changes",
    [
        {"secret_key": "pk_test_wrongkind"},
        {"publishable_key": "sk_test_wrongkind"},
        {"webhook_secret": "sk_test_wrongkind"},
        {"api_base": "ftp://127.0.0.1"},
        {"js_url": "js.stripe.com/v3/"},
    ],
)
def test_settings_are_checked(changes: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        settings_for(None, **changes)


class TestRefusedDeliveries:
    """Deliveries signed here with the scheme Stripe (and localstripe) use; no network."""

    gateway = PaymentGateway(settings_for(None))

    def refusal(self, payload: bytes, header: str, tolerance: int = 300) -> str:
        with pytest.raises(WebhookRefused) as refused:
            self.gateway.parse_event(payload, header, tolerance)
        assert refused.value.status == 400
        return refused.value.reason

    def test_a_correctly_signed_event_is_read(self) -> None:
        payload = event_payload()
        event = self.gateway.parse_event(payload, sign(payload, WEBHOOK_SECRET, int(time.time())))
        assert (event.intent_id, event.invoice_id, event.amount) == (
            "pi_1Caucus0Test",
            "inv-42",
            12500,
        )

    def test_a_forged_signature(self) -> None:
        payload = event_payload()
        now = int(time.time())
        assert self.refusal(payload, sign(payload, "whsec_someone_else", now)) == "bad_signature"
        tampered = payload.replace(b"12500", b"1")
        assert self.refusal(tampered, sign(payload, WEBHOOK_SECRET, now)) == "bad_signature"
        assert self.refusal(payload, f"t={now},v1={'0' * 64}") == "bad_signature"
        assert self.refusal(payload, f"t={now}") == "bad_signature"
        assert self.refusal(payload, "garbage") == "bad_signature"
        assert self.refusal(payload, "") == "bad_signature"
        assert self.refusal(payload, "t=1," + "v1=a," * 2000) == "bad_signature"

    def test_a_stale_timestamp(self) -> None:
        payload = event_payload()
        old = int(time.time()) - 301
        assert self.refusal(payload, sign(payload, WEBHOOK_SECRET, old)) == "stale_timestamp"
        older = int(time.time()) - 3600
        assert self.refusal(payload, sign(payload, WEBHOOK_SECRET, older), 600) == (
            "stale_timestamp"
        )
        # stale and forged: the signature is what is wrong
        assert self.refusal(payload, sign(payload, "whsec_other", old)) == "bad_signature"

    @pytest.mark.parametrize(
        "payload",
        [
            b"{not json",
            b"[]",
            b'"payment_intent.succeeded"',
            b"{}",
            b"\xff\xfe{}",
            b"[" * 100_000,
            event_payload(data={"object": "pi_1"}),
            event_payload(created="yesterday"),
            event_payload(created=True),
            event_payload(id=None),
            event_payload(type=""),
            event_payload(
                data={"object": {"object": "payment_intent", "id": "pi_1", "amount": "12500"}}
            ),
            event_payload(data={"object": {"object": "payment_intent", "id": 7, "metadata": {}}}),
        ],
    )
    def test_a_malformed_payload(self, payload: bytes) -> None:
        header = sign(payload, WEBHOOK_SECRET, int(time.time()))
        assert self.refusal(payload, header) == "malformed_payload"

    def test_an_oversized_payload(self) -> None:
        payload = event_payload(padding="x" * MAX_EVENT_BYTES)
        header = sign(payload, WEBHOOK_SECRET, int(time.time()))
        assert self.refusal(payload, header) == "too_large"

    def test_a_refund_event_names_its_intent(self) -> None:
        payload = event_payload(
            type="charge.refunded",
            data={
                "object": {
                    "id": "ch_1",
                    "object": "charge",
                    "payment_intent": "pi_1Caucus0Test",
                    "amount": 12500,
                    "currency": "eur",
                    "status": "succeeded",
                    "metadata": {},
                }
            },
        )
        event = self.gateway.parse_event(payload, sign(payload, WEBHOOK_SECRET, int(time.time())))
        assert (event.type, event.intent_id, event.invoice_id) == (
            "charge.refunded",
            "pi_1Caucus0Test",
            None,
        )

    def test_a_tolerance_of_zero_is_not_allowed(self) -> None:
        payload = event_payload()
        with pytest.raises(InvalidInput):
            self.gateway.parse_event(payload, sign(payload, WEBHOOK_SECRET, 1), 0)
