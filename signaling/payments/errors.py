"""Refusals and failures at the payment boundary, as Caucus domain errors.

``signaling.errors`` maps them to HTTP answers like every other :class:`CaucusError`;
nothing outside :mod:`signaling.payments.gateway` sees a ``stripe`` exception."""

from __future__ import annotations

from typing import Literal

from rooms.errors import CaucusError

#: Why a webhook delivery was not accepted.
RefusalReason = Literal["bad_signature", "stale_timestamp", "malformed_payload", "too_large"]

_REFUSAL_MESSAGES: dict[RefusalReason, str] = {
    "bad_signature": "The Stripe-Signature header does not sign this payload.",
    "stale_timestamp": "The webhook's signed timestamp is outside the accepted window.",
    "malformed_payload": "The webhook payload is not a Stripe event.",
    "too_large": "The webhook payload is too large.",
}


class WebhookRefused(CaucusError):
    """A webhook delivery that is not a genuine, recent, well-formed Stripe event."""

    code = "webhook_refused"
    status = 400

    def __init__(self, reason: RefusalReason) -> None:
        super().__init__(_REFUSAL_MESSAGES[reason])
        self.reason: RefusalReason = reason
        self.extra = {"reason": reason}


class PaymentRequestRefused(CaucusError):
    """Stripe answered and refused the request (a declined card, a refund larger than
    the payment, an unknown intent): retrying the same request will not help."""

    code = "payment_refused"
    status = 409


class PaymentProviderUnavailable(CaucusError):
    """Stripe could not be reached, failed, or does not accept our credentials: the
    request may be retried later with the same idempotency key."""

    code = "payment_provider_unavailable"
    status = 502
