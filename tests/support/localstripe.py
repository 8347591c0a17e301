"""localstripe for the tests: a stateful stand-in for Stripe's API and Stripe.js, run as a
subprocess on a free loopback port (``tests/support/localstripe_process.py``).

What localstripe 1.15.10 does (read in its source, ``localstripe/server.py``,
``resources.py``, ``webhooks.py``, ``localstripe-v3.js``):

Keys
    Any ``Authorization`` key starting with ``sk_`` (Bearer or Basic) is accepted; nothing
    else is checked. A ``pk_`` key is accepted only in the POST data of ``/v1/tokens``,
    ``/v1/sources``, ``/v1/payment_intents/{id}/_authenticate`` and the SetupIntent
    confirm/cancel routes. Idempotency keys are ignored (a repeated create creates twice).
    Events carry ``api_version`` 2017-08-15; the request parameters it accepts are of that
    era: a PaymentIntent refuses ``description``, ``automatic_payment_methods`` and
    ``allowed_payment_method_types`` (stripe 16's name of ``payment_method_types``) with
    400 "Unexpected ...", so the launcher accepts them (see its docstring).

PaymentIntents
    Create (``amount`` > 0, ``currency``, ``payment_method``, ``metadata``,
    ``capture_method``, ``confirm``); update (any existing attribute, e.g.
    ``payment_method``); ``/confirm`` only without parameters (``payment_method`` there is
    500 "Not implemented"), so a payment method is set by an update first, as
    :meth:`LocalStripe.pay` does; ``/cancel``; ``/capture``. Test payment methods:
    ``pm_card_visa`` (4242 4242 4242 4242), ``pm_card_visa_chargeDeclined`` (refused when
    attached to a customer) and ``pm_card_chargeCustomerFail`` (declined on charge, 402),
    or ``POST /v1/payment_methods`` with ``type=card`` and a 16-digit number, expiry and
    cvc. Cards 4000002500003155, 4000002760003184, 4000008260003178, 4000000000003220,
    4000000000003063, 4000008400001629 need 3D Secure: confirming leaves the intent in
    ``requires_action`` until ``POST /v1/payment_intents/{id}/_authenticate?success=true``
    (with the client secret and a ``pk_`` key; ``success=false`` fails it and clears the
    payment method). 4000000000000341 and the last two of those are declined on charge.
    A card charge succeeds synchronously during the confirm call.

Webhooks
    Emitted: ``payment_intent.succeeded`` and ``payment_intent.payment_failed`` (also
    customer, invoice, subscription, plan, product, payout events). Not emitted: anything
    about refunds or charges (no ``charge.refunded``, ``refund.created``), nor
    ``payment_intent.created``/``canceled``/``requires_action``. An endpoint is registered
    with ``POST /_config/webhooks/{any id}`` (``url``, ``secret`` of your choosing,
    optional ``events`` list); there is no ``/v1/webhook_endpoints``. Deliveries leave one
    second after the event, once, never retried, to every registered endpoint; signed like
    Stripe: header ``Stripe-Signature: t={event.created},v1={HMAC-SHA256(secret,
    f"{t}.{body}")}``. They are sent with a default ``aiohttp.ClientSession``: TLS is
    verified against the default trust store, so an https endpoint with a self-signed
    certificate fails (logged, not retried) unless its authority is trusted; the launcher
    is given ``SSL_CERT_FILE=<the CA's PEM>`` for that (:func:`start_localstripe`
    ``trust_ca``). The endpoint's certificate must name the host of the URL.

Refunds
    ``POST /v1/refunds`` with ``payment_intent`` (or ``charge``) and an optional ``amount``;
    succeeds at once (status ``succeeded``); an amount larger than the charge is not
    refused, nor are repeated refunds. No webhook.

Stripe.js stand-in
    Served at ``{url}/js.stripe.com/v3/`` (no key needed; the page must load it from that
    exact path so it finds the API at the same origin). ``Stripe(pk).elements().create(
    'card')`` gives one card element (plain inputs: number, exp_month, exp_year, cvc,
    postal_code) with ``mount``, ``unmount``, ``destroy`` and ``on('change')``.
    ``confirmCardPayment(clientSecret, data)`` ignores ``data`` (the card element is never
    read): it opens a DOM modal "3D Secure / Do you want to confirm or cancel?" with the
    buttons "Complete authentication" and "Fail authentication", then posts
    ``/_authenticate``, which only works when the intent is already in
    ``requires_action``. So a browser test cannot pay a fresh intent by typing a card: the
    test must first set a 3D Secure card and confirm on the server side
    (``pay(intent, card=THREE_D_SECURE_CARD)``), then the page's ``confirmCardPayment``
    shows the modal and a click completes the payment. ``createToken``,
    ``createSource``, ``confirmCardSetup`` and ``confirmSepaDebitSetup`` exist;
    ``createPaymentMethod`` does nothing. Responses carry CORS headers for any origin;
    an https page may load it from ``http://127.0.0.1`` (a loopback origin is not mixed
    content), but the page's CSP must allow its origin in ``script-src`` and
    ``connect-src``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .eventually import eventually
from .server import free_port

REPO = Path(__file__).resolve().parents[2]
START_SECONDS = 30.0
STOP_SECONDS = 10.0
#: A card localstripe asks 3D Secure for (see the module docstring for the others).
THREE_D_SECURE_CARD = "4000002760003184"


@dataclass
class LocalStripe:
    """A running localstripe: where it answers, the keys it accepts, its Stripe.js, and
    what a payer's browser would do against it."""

    url: str
    process: asyncio.subprocess.Process
    secret_key: str = "sk_test_caucus_localstripe"
    publishable_key: str = "pk_test_caucus_localstripe"
    output: list[str] = field(default_factory=list)

    @property
    def js_url(self) -> str:
        return f"{self.url}/js.stripe.com/v3/"

    def log(self, lines: int = 200) -> str:
        return "localstripe:\n" + "\n".join(self.output[-lines:])

    async def request(
        self, method: str, path: str, data: dict[str, Any] | None = None, *, key: str | None = None
    ) -> tuple[int, Any]:
        """One call to its API (JSON body, which localstripe reads like form data); the
        status and the decoded answer."""
        headers = {"Authorization": f"Bearer {key or self.secret_key}"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.url + path, json=data, headers=headers) as response,
        ):
            body = await response.json(content_type=None) if response.content_length else None
            return response.status, body

    async def call(self, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
        status, body = await self.request(method, path, data)
        assert status == 200, f"{method} {path}: {status} {body}\n{self.log(20)}"
        return body

    async def register_webhook(
        self, url: str, secret: str, events: Sequence[str] | None = None, *, name: str = "caucus"
    ) -> None:
        """Deliver events (all, or only ``events``) to ``url``, signed with ``secret``."""
        data: dict[str, Any] = {"url": url, "secret": secret}
        if events is not None:
            data["events"] = list(events)
        await self.call("POST", f"/_config/webhooks/{name}", data)

    async def intent(self, intent_id: str) -> dict[str, Any]:
        return dict(await self.call("GET", f"/v1/payment_intents/{intent_id}"))

    async def pay(self, intent_id: str, *, card: str | None = None) -> dict[str, Any]:
        """What Stripe.js does when the payer submits the card form: set the payment
        method (``pm_card_visa``, or a payment method made from ``card``'s number) and
        confirm. Returns the intent: ``succeeded``, or ``requires_action`` for a 3D Secure
        card (then :meth:`authenticate`)."""
        method = "pm_card_visa"
        if card is not None:
            created = await self.call(
                "POST",
                "/v1/payment_methods",
                {
                    "type": "card",
                    "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
                },
            )
            method = created["id"]
        await self.call("POST", f"/v1/payment_intents/{intent_id}", {"payment_method": method})
        return dict(await self.call("POST", f"/v1/payment_intents/{intent_id}/confirm"))

    async def authenticate(
        self, intent_id: str, client_secret: str, *, success: bool = True
    ) -> tuple[int, Any]:
        """The payer's answer to the 3D Secure modal of the Stripe.js stand-in."""
        return await self.request(
            "POST",
            f"/v1/payment_intents/{intent_id}/_authenticate?success={str(success).lower()}",
            {"key": self.publishable_key, "client_secret": client_secret},
            key="",
        )

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(STOP_SECONDS):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def _read(stream: asyncio.StreamReader, output: list[str]) -> None:
    while raw := await stream.readline():
        output.append(raw.decode(errors="replace").rstrip("\r\n"))


async def _answers(stripe: LocalStripe) -> bool:
    if stripe.process.returncode is not None:
        raise RuntimeError(f"localstripe exited with {stripe.process.returncode}\n{stripe.log()}")
    with contextlib.suppress(aiohttp.ClientConnectionError):
        status, _ = await stripe.request("GET", "/v1/balance")
        return status == 200
    return False


@contextlib.asynccontextmanager
async def start_localstripe(*, trust_ca: Path | None = None) -> AsyncIterator[LocalStripe]:
    """A fresh localstripe on 127.0.0.1 (a free port, so parallel test processes never
    share one), answering before this yields and stopped after. ``trust_ca``: a PEM
    certificate authority its webhook deliveries trust (a test server's self-signed one)."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("STRIPE_LOG", None)
    if trust_ca is not None:
        env["SSL_CERT_FILE"] = str(trust_ca)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",  # as a module: run by its path, "localstripe" would name this file
        "tests.support.localstripe_process",
        "--port",
        str(port),
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    stripe = LocalStripe(url=f"http://127.0.0.1:{port}", process=process)
    reader = asyncio.ensure_future(_read(process.stdout, stripe.output))
    try:
        await eventually(
            lambda: _answers(stripe),
            START_SECONDS,
            what="localstripe answers",
            interval=0.1,
            details=stripe.log,
        )
        yield stripe
    finally:
        await stripe.stop()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(reader, 5)
        print(stripe.log())


@pytest.fixture
async def localstripe() -> AsyncIterator[LocalStripe]:
    """A fresh localstripe per test (its store, webhooks included, is never shared)."""
    async with start_localstripe() as stripe:
        yield stripe
