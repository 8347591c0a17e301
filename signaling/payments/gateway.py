"""The boundary to Stripe: PaymentIntents for invoices, refunds, and signed webhook events.

This is the only module of Caucus that imports ``stripe``. It talks to Stripe through one
``StripeClient`` per gateway (never the library's global ``stripe.api_key``), turns Stripe's
exceptions into the domain errors of :mod:`signaling.payments.errors`, and reduces webhook
events to the few fields Caucus reads (:class:`WebhookEvent`).

Secrets (the secret key, the webhook secret, an intent's client secret) are never logged:
the settings hide them from ``repr``, the library's ``stripe`` logger is held at INFO (its
DEBUG records are request and response bodies, client secrets included), and the gateway
refuses to start when the library's own console logging (``stripe.log`` or ``STRIPE_LOG``)
is switched to ``debug``, which prints those bodies on standard error.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import stripe

from rooms.errors import InvalidInput
from signaling.payments.errors import (
    PaymentProviderUnavailable,
    PaymentRequestRefused,
    RefusalReason,
    WebhookRefused,
)

log = logging.getLogger(__name__)

#: Stripe's largest amount for most currencies: eight digits of the smallest unit.
MAX_AMOUNT = 99_999_999
#: Stripe's limits on an idempotency key and on a metadata value.
MAX_IDEMPOTENCY_KEY = 255
MAX_METADATA_VALUE = 500
MAX_DESCRIPTION = 1000
#: Stripe's events are a few kilobytes; a delivery larger than this is not one of them.
MAX_EVENT_BYTES = 512 * 1024
MAX_SIGNATURE_HEADER = 4096
#: Calls are retried on network failures and Stripe's 409/5xx answers: safe, since every
#: call that creates something carries an idempotency key.
NETWORK_RETRIES = 2
REQUEST_TIMEOUT_SECONDS = 30.0

_CURRENCY = re.compile(r"[a-z]{3}")
_STRIPE_ID = re.compile(r"[A-Za-z0-9_]{1,255}")


def _is_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


@dataclass(frozen=True)
class StripeSettings:
    """The Stripe account Caucus charges into: its API keys, the signing secret of its
    webhook endpoint, and where the API and Stripe.js live (Stripe itself unless a test
    points them at a local stand-in)."""

    secret_key: str = field(repr=False)
    publishable_key: str
    webhook_secret: str = field(repr=False)
    api_base: str | None = None
    js_url: str = "https://js.stripe.com/v3/"

    def __post_init__(self) -> None:
        # "rk_" is a restricted key, the right choice for a server that only needs
        # PaymentIntents and refunds.
        if not self.secret_key.startswith(("sk_", "rk_")) or len(self.secret_key) < 8:
            raise InvalidInput("The Stripe secret key must start with sk_ or rk_.")
        if not self.publishable_key.startswith("pk_") or len(self.publishable_key) < 8:
            raise InvalidInput("The Stripe publishable key must start with pk_.")
        if not self.webhook_secret.startswith("whsec_") or len(self.webhook_secret) < 10:
            raise InvalidInput("The Stripe webhook signing secret must start with whsec_.")
        if self.api_base is not None and not _is_url(self.api_base):
            raise InvalidInput("The Stripe API base must be an http(s) URL.")
        if not _is_url(self.js_url):
            raise InvalidInput("The Stripe.js URL must be an http(s) URL.")


@dataclass(frozen=True)
class WebhookEvent:
    """What Caucus reads of a verified Stripe event. ``intent_id`` is the PaymentIntent
    the event is about (the object itself, or the ``payment_intent`` of a charge or
    refund); ``invoice_id`` is the Caucus invoice from the object's metadata."""

    id: str
    type: str
    created: int
    intent_id: str | None
    invoice_id: str | None
    amount: int | None
    currency: str | None
    status: str | None


def _stripe_logging_prints_bodies() -> bool:
    return "debug" in (stripe.log, os.environ.get("STRIPE_LOG"))


def _text(value: object, name: str, *, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidInput(f"{name} must be a non-empty string of at most {limit} characters.")
    return value


def _amount(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_AMOUNT:
        raise InvalidInput(f"The amount must be a whole number from 1 to {MAX_AMOUNT}.")
    return value


def _refused_or_unavailable(error: stripe.StripeError) -> Exception:
    """The domain error for a failed Stripe call."""
    failure: PaymentRequestRefused | PaymentProviderUnavailable
    if isinstance(error, stripe.CardError):
        failure = PaymentRequestRefused(error.user_message or "The card was declined.")
    elif isinstance(error, stripe.InvalidRequestError | stripe.IdempotencyError):
        failure = PaymentRequestRefused("The payment provider refused the request.")
    else:
        failure = PaymentProviderUnavailable("The payment provider is unavailable.")
    if error.code:
        failure.extra["provider_code"] = error.code
    return failure


def _optional(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise WebhookRefused("malformed_payload")
    return value


class PaymentGateway:
    """Caucus' Stripe account: creates PaymentIntents for invoices, refunds them, and
    verifies the webhook events Stripe sends back. Owns one HTTP session, closed by
    :meth:`aclose`."""

    def __init__(self, settings: StripeSettings) -> None:
        if _stripe_logging_prints_bodies():
            raise InvalidInput(
                "Stripe's debug logging (stripe.log or STRIPE_LOG) prints client secrets; "
                "switch it off."
            )
        # The library logs request and response bodies (client secrets among them) at
        # DEBUG on its "stripe" logger: keep those records out of a debug-level setup.
        logging.getLogger("stripe").setLevel(logging.INFO)
        self.__settings = settings
        # The library's async methods over aiohttp, rather than its default sync client
        # (requests) in a worker thread: Caucus already runs on aiohttp's event loop, a
        # request in flight is cancelled with the task that awaits it (a thread would run
        # on after a shutdown), and no thread pool is tied up while Stripe answers.
        # The client is named explicitly so that installing httpx changes nothing.
        self.__http = stripe.AIOHTTPClient(timeout=REQUEST_TIMEOUT_SECONDS)
        self.__client = stripe.StripeClient(
            settings.secret_key,
            base_addresses=(
                {"api": settings.api_base.rstrip("/")} if settings.api_base is not None else None
            ),
            max_network_retries=NETWORK_RETRIES,
            http_client=self.__http,
        )

    @property
    def publishable_key(self) -> str:
        return self.__settings.publishable_key

    @property
    def js_url(self) -> str:
        return self.__settings.js_url

    async def aclose(self) -> None:
        """Close the HTTP session (call once, on the loop that used the gateway)."""
        await self.__http.close_async()

    async def create_intent(
        self,
        *,
        amount: int,
        currency: str,
        invoice_id: str,
        idempotency_key: str,
        description: str,
    ) -> tuple[str, str]:
        """A card PaymentIntent for ``amount`` (smallest currency unit) of an invoice:
        its id and its client secret (for the payer's browser only; never logged)."""
        amount = _amount(amount)
        if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
            raise InvalidInput("The currency must be a lowercase ISO 4217 code, like eur.")
        invoice_id = _text(invoice_id, "The invoice id", limit=MAX_METADATA_VALUE)
        key = _text(idempotency_key, "The idempotency key", limit=MAX_IDEMPOTENCY_KEY)
        description = _text(description, "The description", limit=MAX_DESCRIPTION)
        try:
            # Cards only, and nothing the Dashboard enables besides: the payment page
            # mounts a card element and nothing else. (API version of stripe 16:
            # ``allowed_payment_method_types`` is what older versions called
            # ``payment_method_types``.)
            intent = await self.__client.v1.payment_intents.create_async(
                {
                    "amount": amount,
                    "currency": currency,
                    "allowed_payment_method_types": ["card"],
                    "automatic_payment_methods": {"enabled": False},
                    "metadata": {"invoice_id": invoice_id},
                    "description": description,
                },
                {"idempotency_key": key},
            )
        except stripe.StripeError as error:
            log.warning(
                "creating a payment intent failed",
                extra={"invoice_id": invoice_id, "error": type(error).__name__},
            )
            raise _refused_or_unavailable(error) from None
        if not intent.client_secret:
            raise PaymentProviderUnavailable("The payment provider sent no client secret.")
        log.info("payment intent created", extra={"intent_id": intent.id, "invoice_id": invoice_id})
        return intent.id, intent.client_secret

    async def refund(self, intent_id: str, amount: int, idempotency_key: str) -> str:
        """Refund ``amount`` of a succeeded PaymentIntent; the refund's id."""
        if not isinstance(intent_id, str) or not (
            intent_id.startswith("pi_") and _STRIPE_ID.fullmatch(intent_id)
        ):
            raise InvalidInput("The payment intent id must look like pi_….")
        amount = _amount(amount)
        key = _text(idempotency_key, "The idempotency key", limit=MAX_IDEMPOTENCY_KEY)
        try:
            refund = await self.__client.v1.refunds.create_async(
                {"payment_intent": intent_id, "amount": amount},
                {"idempotency_key": key},
            )
        except stripe.StripeError as error:
            log.warning(
                "refund failed",
                extra={"intent_id": intent_id, "error": type(error).__name__},
            )
            raise _refused_or_unavailable(error) from None
        log.info("refund created", extra={"intent_id": intent_id, "refund_id": refund.id})
        return refund.id

    def parse_event(
        self, payload: bytes, signature_header: str, tolerance: int = 300
    ) -> WebhookEvent:
        """The event of a webhook delivery, once its signature (HMAC-SHA256 with the
        webhook secret over ``"{t}.{payload}"``) matches and its timestamp is at most
        ``tolerance`` seconds old; :class:`WebhookRefused` otherwise."""
        if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 1:
            # The library skips the timestamp check for a tolerance of 0.
            raise InvalidInput("The webhook tolerance must be at least one second.")
        if not isinstance(payload, bytes | bytearray):
            raise WebhookRefused("malformed_payload")
        if len(payload) > MAX_EVENT_BYTES:
            raise WebhookRefused("too_large")
        if (
            not isinstance(signature_header, str)
            or not signature_header
            or len(signature_header) > MAX_SIGNATURE_HEADER
        ):
            raise WebhookRefused("bad_signature")
        try:
            text = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookRefused("malformed_payload") from None
        secret = self.__settings.webhook_secret
        try:
            event = self.__client.construct_event(text, signature_header, secret, tolerance)
        except stripe.SignatureVerificationError:
            raise WebhookRefused(self.__signature_failure(text, signature_header)) from None
        except (ValueError, RecursionError):
            raise WebhookRefused("malformed_payload") from None
        except AttributeError:
            # The library's event builder calls .get() on whatever the JSON held: a
            # signed array or string ends here.
            raise WebhookRefused("malformed_payload") from None
        return self.__webhook_event(event.to_dict())

    def __signature_failure(self, text: str, signature_header: str) -> RefusalReason:
        """Tell a stale timestamp from a bad signature: the library checks the signature
        first, so if it holds without the time check, the timestamp was the problem."""
        try:
            stripe.WebhookSignature.verify_header(
                text, signature_header, self.__settings.webhook_secret, tolerance=None
            )
        except stripe.SignatureVerificationError:
            return "bad_signature"
        return "stale_timestamp"

    @staticmethod
    def __webhook_event(data: dict[str, Any]) -> WebhookEvent:
        event_id, event_type, created = data.get("id"), data.get("type"), data.get("created")
        body = data.get("data")
        obj = body.get("object") if isinstance(body, dict) else None
        if (
            not isinstance(event_id, str)
            or not _STRIPE_ID.fullmatch(event_id)
            or not isinstance(event_type, str)
            or not 0 < len(event_type) <= 100
            or isinstance(created, bool)
            or not isinstance(created, int)
            or created < 0
            or not isinstance(obj, dict)
        ):
            raise WebhookRefused("malformed_payload")
        if obj.get("object") == "payment_intent":
            intent_id = _optional(obj, "id", str)
        else:
            intent_id = _optional(obj, "payment_intent", str)
        metadata = _optional(obj, "metadata", dict) or {}
        return WebhookEvent(
            id=event_id,
            type=event_type,
            created=created,
            intent_id=intent_id,
            invoice_id=_optional(metadata, "invoice_id", str),
            amount=_optional(obj, "amount", int),
            currency=_optional(obj, "currency", str),
            status=_optional(obj, "status", str),
        )
