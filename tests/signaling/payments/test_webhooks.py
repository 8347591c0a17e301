"""Card payments end to end against localstripe, and the webhook endpoint under attack: a
payment is settled only by a signed event from the provider, each event once, whatever
the order; a forged signature, a replay, a stale event and out-of-order events never pay
twice or leave a wrong state."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from certs.authority import ensure_self_signed
from rooms.storage.schema import payments
from signaling.settings import Settings
from tests.signaling.test_billing import LINES, agreed
from tests.support.eventually import eventually
from tests.support.localstripe import LocalStripe, start_localstripe
from tests.support.plugin import make_settings
from tests.support.world import World

pytestmark = pytest.mark.store  # about SQL: runs on every database backend

WEBHOOK_SECRET = "whsec_" + "caucus-test-signing-secret"


@pytest.fixture
async def stripe_server(tmp_path: Path) -> AsyncIterator[LocalStripe]:
    """localstripe trusting the test server's certificate authority (made first; the
    server reuses it), so its webhook deliveries reach the server over HTTPS."""
    ensure_self_signed(tmp_path / "certs", ["127.0.0.1"])
    async with start_localstripe(trust_ca=tmp_path / "certs" / "ca.pem") as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, stripe_server: LocalStripe) -> Settings:
    return make_settings(
        tmp_path,
        stripe_secret_key=stripe_server.secret_key,
        stripe_publishable_key=stripe_server.publishable_key,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=stripe_server.url,
        stripe_js_url=stripe_server.js_url,
    )


def signed(event: dict[str, Any], *, at: int | None = None, secret: str = WEBHOOK_SECRET):
    """The body and Stripe-Signature header of ``event`` as the provider signs them."""
    body = json.dumps(event)
    stamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return body.encode(), f"t={stamp},v1={mac}"


def intent_event(kind: str, intent: str, amount: int, currency: str = "usd") -> dict[str, Any]:
    status = "succeeded" if kind.endswith("succeeded") else "requires_payment_method"
    return {
        "id": f"evt_{secrets.token_hex(8)}",
        "object": "event",
        "type": kind,
        "created": int(time.time()),
        "api_version": "2017-08-15",
        "data": {
            "object": {
                "id": intent,
                "object": "payment_intent",
                "amount": amount,
                "currency": currency,
                "status": status,
                "metadata": {},
            }
        },
    }


async def deliver(world: World, body: bytes, signature: str) -> tuple[int, Any]:
    client = world.make_client()
    status, answer, _ = await client.request(
        "POST",
        "/api/payments/webhook",
        None,
        csrf=False,
        data=body,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )
    return status, answer


async def issued(world: World) -> dict[str, Any]:
    """Invoices of Case A issued to Paula and Pia; answers Paula's."""
    case_id, paula, _pia = await agreed(world)
    status, body, _ = await world.clients["nina"].post(
        f"/api/cases/{case_id}/invoices", {"lines": LINES}
    )
    assert status == 201, body
    return next(i for i in body["invoices"] if i["payer_id"] == paula)


async def intent_of(world: World, invoice_id: str) -> tuple[str, int]:
    async with world.server.services.store.connect() as conn:
        row = (
            await conn.execute(
                sa.select(payments.c.provider_ref, payments.c.amount)
                .where(payments.c.invoice_id == invoice_id)
                .order_by(payments.c.created_at.desc())
            )
        ).first()
    assert row is not None and row.provider_ref
    return str(row.provider_ref), int(row.amount)


async def test_a_card_payment_is_settled_by_the_providers_webhook(
    world: World, stripe_server: LocalStripe
) -> None:
    invoice = await issued(world)
    await stripe_server.register_webhook(world.server.url + "/api/payments/webhook", WEBHOOK_SECRET)
    paula = world.clients["paula"]
    # Only the payer pays: another party, counsel and the neutral are refused.
    for who in ("pia", "carl", "nina"):
        status, _, _ = await world.clients[who].post(f"/api/invoices/{invoice['id']}/pay")
        assert status == 404, who
    status, body, _ = await paula.post(f"/api/invoices/{invoice['id']}/pay")
    assert status == 201, body
    assert body["amount"] == invoice["total"] and body["client_secret"]
    intent, amount = await intent_of(world, invoice["id"])
    # The browser's word counts for nothing: the invoice is open until the provider says.
    status, body, _ = await paula.get(f"/api/invoices/{invoice['id']}")
    assert body["invoice"]["status"] == "open" and body["can_pay"]
    await stripe_server.pay(intent)  # the 4242 test card

    async def paid() -> bool:
        _, got, _ = await paula.get(f"/api/invoices/{invoice['id']}")
        return got["invoice"]["status"] == "paid"

    await eventually(paid, within=20)
    _, got, _ = await paula.get(f"/api/invoices/{invoice['id']}")
    assert got["invoice"]["paid"] == invoice["total"] == amount
    assert [p["status"] for p in got["invoice"]["payments"]] == ["succeeded"]

    # The neutral refunds it: the provider takes the refund, the invoice is open again.
    payment_id = got["invoice"]["payments"][0]["id"]
    case_id = world.cases["Case A"]
    status, body, _ = await world.clients["paula"].post(
        f"/api/cases/{case_id}/payments/{payment_id}/refund"
    )
    assert status == 403
    status, body, _ = await world.clients["nina"].post(
        f"/api/cases/{case_id}/payments/{payment_id}/refund"
    )
    assert status == 200, body
    assert body["invoice"]["status"] == "open" and body["invoice"]["paid"] == 0
    assert body["invoice"]["payments"][0]["status"] == "refunded"
    status, body, _ = await world.clients["nina"].post(
        f"/api/cases/{case_id}/payments/{payment_id}/refund"
    )
    assert status == 409  # once


async def test_forged_stale_replayed_and_out_of_order_events_never_pay_twice(
    world: World,
) -> None:
    invoice = await issued(world)
    paula = world.clients["paula"]
    status, body, _ = await paula.post(f"/api/invoices/{invoice['id']}/pay")
    assert status == 201, body
    intent, amount = await intent_of(world, invoice["id"])

    async def state() -> tuple[str, int]:
        _, got, _ = await paula.get(f"/api/invoices/{invoice['id']}")
        return got["invoice"]["status"], got["invoice"]["paid"]

    succeeded = intent_event("payment_intent.succeeded", intent, amount)
    # A forged signature, a signature by another secret, none at all, a tampered body.
    body, signature = signed(succeeded)
    for forged in (
        signature.replace("v1=", "v1=0"),
        signed(succeeded, secret="whsec_not-ours-at-all")[1],
        "",
        "t=1,v1=abc",
    ):
        status, answer = await deliver(world, body, forged)
        assert status == 400 and answer["error"]["code"] == "webhook_refused", forged
    tampered = body.replace(str(amount).encode(), str(amount + 1).encode())
    status, _ = await deliver(world, tampered, signature)
    assert status == 400
    # Signed, but older than the tolerance (a captured event sent again much later).
    status, answer = await deliver(world, *signed(succeeded, at=int(time.time()) - 3600))
    assert status == 400 and answer["error"]["code"] == "webhook_refused"
    # Not JSON, or not an event.
    status, _ = await deliver(world, *_raw_signed(b"not json"))
    assert status == 400
    assert await state() == ("open", 0)

    # An amount that differs from the payment credits nothing.
    wrong = intent_event("payment_intent.succeeded", intent, amount - 1)
    status, answer = await deliver(world, *signed(wrong))
    assert status == 200 and answer["outcome"] == "amount mismatch"
    assert await state() == ("open", 0)
    # Out of order: the failure of an earlier attempt arrives, then the success.
    failed = intent_event("payment_intent.payment_failed", intent, amount)
    status, answer = await deliver(world, *signed(failed))
    assert answer["outcome"] == "failed"
    status, answer = await deliver(world, *signed(succeeded))
    assert status == 200 and answer["outcome"] == "paid"
    assert await state() == ("paid", amount)
    # The same event again (a replay or a second delivery), and a late failure: no change.
    status, answer = await deliver(world, *signed(succeeded))
    assert status == 200 and answer["outcome"] == "duplicate"
    late = intent_event("payment_intent.payment_failed", intent, amount)
    status, answer = await deliver(world, *signed(late))
    assert answer["outcome"] == "stale failure"
    # Another success event for the same intent (a new event id) pays nothing more.
    again = intent_event("payment_intent.succeeded", intent, amount)
    status, answer = await deliver(world, *signed(again))
    assert answer["outcome"] == "already settled"
    assert await state() == ("paid", amount)
    # An event about an intent Caucus never made is acknowledged and ignored.
    stranger = intent_event("payment_intent.succeeded", "pi_not_ours", 100)
    status, answer = await deliver(world, *signed(stranger))
    assert status == 200 and answer["outcome"] == "unknown payment"
    async with world.server.services.store.connect() as conn:
        settled = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(payments)
                .where(payments.c.status == "succeeded")
            )
        ).scalar_one()
    assert settled == 1


def _raw_signed(body: bytes) -> tuple[bytes, str]:
    stamp = int(time.time())
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    return body, f"t={stamp},v1={mac.hexdigest()}"
