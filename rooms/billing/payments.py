"""Payments of invoices: recorded offline by the neutral (a cheque, a bank transfer), or
made by card through the payment provider.

A card payment is a row created when the payer opens the payment page (``created``, with
the provider's PaymentIntent id); its outcome comes **only** from the provider's signed
webhook events, never from the browser. Each event id is handled once (its row in
``payment_events`` is written in the transaction that applies it, so a replay or a second
delivery changes nothing). Events may arrive out of order: ``succeeded`` is final (a
later ``payment_failed`` for the same intent is ignored), a ``succeeded`` after a
``failed`` counts (the payer tried again with the same intent), and an event whose amount
or currency differs from the payment's credits nothing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from rooms.billing.invoices import OPEN, PAID, Invoices
from rooms.billing.money import check_amount
from rooms.cases.cases import Member
from rooms.cases.roles import NEUTRAL_ROLES
from rooms.errors import Conflict, InvalidInput, NotFound
from rooms.storage.outbox import enqueue
from rooms.storage.schema import invoices, new_id, payment_events, payments, users
from rooms.storage.store import Store

log = logging.getLogger(__name__)

CREATED, SUCCEEDED, FAILED, REFUNDED = "created", "succeeded", "failed", "refunded"
CARD, OFFLINE = "card", "offline"


@dataclass(frozen=True)
class ProviderEvent:
    """A verified event of the payment provider, as the domain needs it."""

    id: str
    type: str
    created: float
    intent_id: str | None
    amount: int | None
    currency: str | None


@dataclass(frozen=True)
class CardPayment:
    """A card payment about to be made: what the provider is asked to charge."""

    payment_id: str
    invoice_id: str
    number: str
    amount: int
    currency: str


class Payments:
    """Owns ``payments`` and ``payment_events``."""

    def __init__(
        self, store: Store, invoices: Invoices, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.invoices = invoices
        self.clock = clock

    async def _open_invoice(self, conn: Any, invoice_id: str) -> Any:
        row = (await conn.execute(sa.select(invoices).where(invoices.c.id == invoice_id))).first()
        if row is None:
            raise NotFound("No such invoice.")
        if row.kind != "invoice" or row.status != OPEN:
            raise Conflict("This invoice is not open for payment.", code="invoice_not_open")
        return row

    async def record_offline(
        self, invoice_id: str, actor: Member, amount: int, note: str
    ) -> dict[str, Any]:
        """The neutral records a payment received outside the platform."""
        check_amount(amount, allow_negative=False)
        if amount <= 0:
            raise InvalidInput("A payment is more than 0.", code="invalid_amount")
        async with self.store.begin() as conn:
            row = await self._open_invoice(conn, invoice_id)
            if row.case_id != actor.case_id or actor.role not in NEUTRAL_ROLES:
                raise NotFound("No such invoice.")
            if amount > row.total - row.paid:
                raise InvalidInput("This is more than is due on the invoice.", code="overpayment")
            now = self.clock()
            await conn.execute(
                sa.insert(payments).values(
                    id=new_id(),
                    invoice_id=invoice_id,
                    method=OFFLINE,
                    amount=amount,
                    currency=row.currency,
                    status=SUCCEEDED,
                    provider_ref=None,
                    note=" ".join(note.split())[:200] or None,
                    recorded_by=actor.user_id,
                    created_at=now,
                    settled_at=now,
                    refunded=0,
                )
            )
            await self._credit(conn, row, amount)
        return await self.invoices.get(invoice_id)

    async def prepare_card(self, invoice_id: str, payer_id: str) -> CardPayment:
        """The payer starts paying what is due by card; only the invoice's payer may."""
        async with self.store.begin() as conn:
            row = await self._open_invoice(conn, invoice_id)
            if row.payer_id != payer_id:
                raise NotFound("No such invoice.")
            due = row.total - row.paid
            if due <= 0:
                raise Conflict("Nothing is due on this invoice.", code="invoice_not_open")
            payment_id = new_id()
            await conn.execute(
                sa.insert(payments).values(
                    id=payment_id,
                    invoice_id=invoice_id,
                    method=CARD,
                    amount=due,
                    currency=row.currency,
                    status=CREATED,
                    provider_ref=None,
                    note=None,
                    recorded_by=None,
                    created_at=self.clock(),
                    settled_at=None,
                    refunded=0,
                )
            )
        return CardPayment(payment_id, invoice_id, row.number, due, row.currency)

    async def attach_intent(self, payment_id: str, intent_id: str) -> None:
        async with self.store.begin() as conn:
            await conn.execute(
                sa.update(payments)
                .where(payments.c.id == payment_id)
                .values(provider_ref=intent_id)
            )

    async def apply(self, event: ProviderEvent) -> str:
        """Apply one verified provider event; answers what was done (for the log)."""
        now = self.clock()
        try:
            async with self.store.begin() as conn:
                await conn.execute(
                    sa.insert(payment_events).values(
                        id=event.id, type=event.type, created=event.created, received_at=now
                    )
                )
                return await self._apply(conn, event, now)
        except IntegrityError:
            return "duplicate"  # handled before: a replay or a second delivery

    async def _apply(self, conn: Any, event: ProviderEvent, now: float) -> str:
        if event.intent_id is None:
            return "ignored"
        payment = (
            await conn.execute(
                sa.select(payments).where(payments.c.provider_ref == event.intent_id)
            )
        ).first()
        if payment is None:
            return "unknown payment"
        if event.type == "payment_intent.succeeded":
            if payment.status == SUCCEEDED or payment.status == REFUNDED:
                return "already settled"
            if event.amount != payment.amount or (event.currency or "").upper() != payment.currency:
                log.warning(
                    "a payment event's amount differs from the payment; nothing credited",
                    extra={"payment": payment.id, "event": event.id},
                )
                return "amount mismatch"
            await conn.execute(
                sa.update(payments)
                .where(payments.c.id == payment.id)
                .values(status=SUCCEEDED, settled_at=now)
            )
            row = (
                await conn.execute(sa.select(invoices).where(invoices.c.id == payment.invoice_id))
            ).one()
            await self._credit(conn, row, payment.amount)
            return "paid"
        if event.type == "payment_intent.payment_failed":
            if payment.status != CREATED:
                return "stale failure"
            await conn.execute(
                sa.update(payments).where(payments.c.id == payment.id).values(status=FAILED)
            )
            return "failed"
        return "ignored"

    async def _credit(self, conn: Any, row: Any, amount: int) -> None:
        paid = row.paid + amount
        status = PAID if paid >= row.total else OPEN
        await conn.execute(
            sa.update(invoices).where(invoices.c.id == row.id).values(paid=paid, status=status)
        )
        if status == PAID and row.payer_id:
            address = (
                await conn.execute(
                    sa.select(users.c.email).where(
                        users.c.id == row.payer_id, users.c.email_verified_at.is_not(None)
                    )
                )
            ).scalar()
            if address:
                await enqueue(
                    conn,
                    "invoice_paid",
                    address,
                    {
                        "path": f"/invoices/{row.id}",
                        "number": row.number,
                        "total": row.total,
                        "currency": row.currency,
                    },
                    now=self.clock(),
                )

    async def refundable(self, payment_id: str, actor: Member) -> Any:
        """A settled card payment of the actor's case (the neutral refunds it)."""
        async with self.store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(payments, invoices.c.case_id)
                    .join(invoices, invoices.c.id == payments.c.invoice_id)
                    .where(payments.c.id == payment_id)
                )
            ).first()
        if row is None or row.case_id != actor.case_id or actor.role not in NEUTRAL_ROLES:
            raise NotFound("No such payment.")
        if row.method != CARD or row.status != SUCCEEDED:
            raise Conflict("Only a settled card payment is refunded.", code="not_refundable")
        return row

    async def refunded(self, payment_id: str, actor: Member) -> dict[str, Any]:
        """The provider took the refund: the payment and its invoice say so."""
        async with self.store.begin() as conn:
            row = (await conn.execute(sa.select(payments).where(payments.c.id == payment_id))).one()
            if row.status != SUCCEEDED:
                raise Conflict("Only a settled card payment is refunded.", code="not_refundable")
            await conn.execute(
                sa.update(payments)
                .where(payments.c.id == payment_id)
                .values(status=REFUNDED, refunded=row.amount)
            )
            invoice = (
                await conn.execute(sa.select(invoices).where(invoices.c.id == row.invoice_id))
            ).one()
            await conn.execute(
                sa.update(invoices)
                .where(invoices.c.id == invoice.id)
                .values(paid=invoice.paid - row.amount, status=OPEN)
            )
            await self.invoices.cases.audit(conn, actor.user_id, "payment.refund", invoice.case_id)
        return await self.invoices.get(row.invoice_id)
