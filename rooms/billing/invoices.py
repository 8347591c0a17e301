"""Invoices: numbered per neutral without gaps, one per party for their share, immutable
once issued (a correction is a credit note), kept apart from the case.

An invoice holds what accounting law asks of it and nothing of the case's content: its
number and dates, the payer's name and address, the neutral's, the lines (sessions by date
and length, flat fees), the amounts in integer minor units, and the case's reference (the
name mails give the case, or ``CASE-`` and the start of its id). Closing the case leaves
invoices and payments in place; they are deleted after ``retention_years``.

Numbers: ``<prefix>-<sequence>``, the sequence taken from the neutral's counter row and
raised in the transaction that writes the invoice. On PostgreSQL the ``UPDATE`` locks the
row until commit, so concurrent issuing waits and never takes a number twice; a failed
issue rolls the counter back with it (no gap). Amounts: the fee's lines are summed, the
subtotal and the tax on it are each split between the parties by their shares with the
minor units left over going to the party the terms name (``rooms.billing.money``), so
the parties' invoices always add up to exactly the fee and its tax."""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from rooms.billing.invoice_pdf import InvoiceDocument, InvoiceLine, render_pdf
from rooms.billing.money import check_amount, line_total, split_shares, tax
from rooms.billing.terms import FULL, FeeAgreements
from rooms.cases.cases import Case, Cases, Member
from rooms.cases.roles import NEUTRAL_ROLES
from rooms.errors import Conflict, Forbidden, InvalidInput, NotFound
from rooms.storage.outbox import enqueue
from rooms.storage.schema import (
    case_members,
    case_sessions,
    invoice_numbers,
    invoices,
    new_id,
    payments,
    users,
)
from rooms.storage.store import Store

OPEN, PAID, CREDITED = "open", "paid", "credited"
INVOICE, CREDIT_NOTE = "invoice", "credit_note"
MAX_LINES = 100
YEAR = 365.25 * 86400


@dataclass(frozen=True)
class Line:
    description: str
    quantity_thousandths: int
    unit_amount: int

    @property
    def amount(self) -> int:
        return line_total(self.unit_amount, self.quantity_thousandths)

    def public(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "quantity_thousandths": self.quantity_thousandths,
            "unit_amount": self.unit_amount,
            "amount": self.amount,
        }


def check_lines(raw: Sequence[dict[str, Any]]) -> list[Line]:
    if not raw or len(raw) > MAX_LINES:
        raise InvalidInput(f"An invoice has 1 to {MAX_LINES} lines.", code="invalid_lines")
    lines = []
    for item in raw:
        description = " ".join(str(item.get("description", "")).split())[:200]
        quantity, unit = item.get("quantity_thousandths"), item.get("unit_amount")
        for value in (quantity, unit):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(
                    "Quantities and amounts are whole numbers of thousandths and minor units.",
                    code="invalid_amount",
                )
        assert isinstance(quantity, int) and isinstance(unit, int)
        if not description or not 0 < quantity <= 10_000_000 or unit < 0:
            raise InvalidInput(
                "Each line needs a description, a quantity above 0 and an amount of 0 or more.",
                code="invalid_amount",
            )
        check_amount(unit, allow_negative=False)
        lines.append(Line(description, quantity, unit))
    return lines


def case_reference(case: Case) -> str:
    """How invoices name a case: no title, no content."""
    return case.mail_reference or f"CASE-{case.id[:8].upper()}"


def invoice_public(row: Any, paid_rows: Sequence[Any] = ()) -> dict[str, Any]:
    return {
        "id": row.id,
        "number": row.number,
        "kind": row.kind,
        "credits_invoice": row.credits_invoice,
        "case_id": row.case_id,
        "case_reference": row.case_reference,
        "payer_id": row.payer_id,
        "payer_name": row.payer_name,
        "currency": row.currency,
        "lines": row.lines,
        "share_basis_points": row.share_basis_points,
        "subtotal": row.subtotal,
        "tax_basis_points": row.tax_basis_points,
        "tax_amount": row.tax_amount,
        "total": row.total,
        "paid": row.paid,
        "due": max(row.total - row.paid, 0) if row.status == OPEN else 0,
        "status": row.status,
        "issued_at": row.issued_at,
        "due_at": row.due_at,
        "payments": [
            {
                "id": p.id,
                "method": p.method,
                "amount": p.amount,
                "status": p.status,
                "note": p.note,
                "settled_at": p.settled_at,
                "refunded": p.refunded,
            }
            for p in paid_rows
        ],
    }


def document(row: Any) -> InvoiceDocument:
    """The invoice as its PDF and HTML views render it."""
    issued = dt.datetime.fromtimestamp(row.issued_at, dt.UTC).date()
    due = dt.datetime.fromtimestamp(row.due_at, dt.UTC).date() if row.due_at else None
    percent = row.share_basis_points / 100
    return InvoiceDocument(
        number=row.number,
        kind=row.kind,
        issued_on=issued,
        due_on=due,
        currency=row.currency,
        seller_name=row.seller_name,
        seller_address=row.seller_address,
        payer_name=row.payer_name,
        payer_address=row.payer_address,
        case_reference=row.case_reference,
        lines=tuple(
            InvoiceLine(
                str(line["description"]),
                int(line["quantity_thousandths"]),
                int(line["unit_amount"]),
                int(line["amount"]),
            )
            for line in row.lines
        ),
        subtotal=row.subtotal,
        tax_rate_basis_points=row.tax_basis_points,
        tax_amount=row.tax_amount,
        total=row.total,
        share_note=f"Your share: {percent:g}% of the fees above",
        credits_invoice=row.credits_invoice,
        paid=row.paid,
    )


class Invoices:
    """Owns ``invoices`` and ``invoice_numbers``."""

    def __init__(
        self,
        store: Store,
        cases: Cases,
        agreements: FeeAgreements,
        *,
        retention_years: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.cases = cases
        self.agreements = agreements
        self.retention_years = retention_years
        self.clock = clock

    # -- drafting and issuing ---------------------------------------------------------------
    async def draft(self, case_id: str, actor: Member) -> list[dict[str, Any]]:
        """Suggested lines: the case's sessions that took place (length from the
        schedule), for the neutral to edit before issuing."""
        if actor.case_id != case_id or actor.role not in NEUTRAL_ROLES:
            raise Forbidden("Only the case's neutral invoices.")
        agreement = await self.agreements.get(case_id)
        if agreement is None:
            raise Conflict("Set the fee terms first.", code="no_terms")
        terms = agreement.terms
        async with self.store.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(case_sessions)
                    .where(
                        case_sessions.c.case_id == case_id,
                        case_sessions.c.status == "scheduled",
                        case_sessions.c.starts_at <= self.clock(),
                    )
                    .order_by(case_sessions.c.starts_at)
                )
            ).all()
            issued_before = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(invoices)
                    .where(invoices.c.case_id == case_id, invoices.c.kind == INVOICE)
                )
            ).scalar_one()
        lines = []
        if terms.deposit and not issued_before:
            lines.append(Line("Deposit due before the first session", 1000, terms.deposit).public())
        for row in rows:
            day = dt.datetime.fromtimestamp(row.starts_at, dt.UTC).strftime("%d %B %Y")
            hourly = terms.rate_kind == "hourly"
            lines.append(
                Line(
                    f"Session of {day} ({row.minutes} minutes)",
                    row.minutes * 1000 // 60 if hourly else 1000,
                    terms.rate,
                ).public()
            )
        return lines

    async def issue(
        self, case_id: str, actor: Member, raw_lines: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """One invoice per party with a share, in one transaction; mailed to each."""
        if actor.case_id != case_id or actor.role not in NEUTRAL_ROLES:
            raise Forbidden("Only the case's neutral invoices.")
        lines = check_lines(raw_lines)
        case = await self.cases.get(case_id)
        if case.status != "open":
            raise Conflict("This case is closed.", code="case_closed")
        now = self.clock()
        made: list[str] = []
        async with self.store.begin() as conn:
            agreement = await self.agreements.get_in(conn, case_id)
            if agreement is None:
                raise Conflict("Set the fee terms first.", code="no_terms")
            if not agreement.complete:
                raise Conflict(
                    "Every party must accept the current fee terms before invoices go out.",
                    code="terms_not_accepted",
                )
            terms = agreement.terms
            subtotal = sum(line.amount for line in lines)
            check_amount(subtotal, allow_negative=False)
            shares = [(s.user_id, s.basis_points) for s in terms.shares if s.basis_points]
            subtotals = split_shares(subtotal, shares, terms.remainder_to)
            taxes = split_shares(tax(subtotal, terms.tax_basis_points), shares, terms.remainder_to)
            neutral = (
                await conn.execute(sa.select(users.c.username).where(users.c.id == case.neutral_id))
            ).scalar_one()
            for payer_id, points in shares:
                name, address = agreement.billing[payer_id]
                billed = [line.public() for line in lines]
                others = subtotal - subtotals[payer_id]
                if others:
                    # the lines are the whole fee; the party pays their share of it
                    billed.append(
                        Line(
                            f"Less the other parties' shares ({(FULL - points) / 100:g}%)",
                            1000,
                            -others,
                        ).public()
                    )
                invoice_id = await self._write(
                    conn,
                    case,
                    str(neutral),
                    kind=INVOICE,
                    payer_id=payer_id,
                    payer_name=name,
                    payer_address=address,
                    seller=(terms.seller_name, terms.seller_address),
                    currency=terms.currency,
                    lines=billed,
                    share=terms.share_of(payer_id),
                    subtotal=subtotals[payer_id],
                    tax_basis_points=terms.tax_basis_points,
                    tax_amount=taxes[payer_id],
                    due_at=now + terms.payment_days * 86400,
                    credits=None,
                )
                made.append(invoice_id)
            await self.cases.audit(conn, actor.user_id, "invoice.issue", case_id, count=len(made))
        return [await self.get(invoice_id) for invoice_id in made]

    async def _next_sequence(self, conn: Any, neutral_id: str) -> int:
        dialect = postgresql if self.store.backend == "postgresql" else sqlite
        await conn.execute(
            dialect.insert(invoice_numbers)
            .values(neutral_id=neutral_id, next_number=1)
            .on_conflict_do_nothing(index_elements=["neutral_id"])
        )
        taken = await conn.execute(
            sa.update(invoice_numbers)
            .where(invoice_numbers.c.neutral_id == neutral_id)
            .values(next_number=invoice_numbers.c.next_number + 1)
            .returning(invoice_numbers.c.next_number)
        )
        return int(taken.scalar_one()) - 1

    async def _write(
        self,
        conn: Any,
        case: Case,
        prefix: str,
        *,
        kind: str,
        payer_id: str | None,
        payer_name: str,
        payer_address: str,
        seller: tuple[str, str],
        currency: str,
        lines: list[dict[str, Any]],
        share: int,
        subtotal: int,
        tax_basis_points: int,
        tax_amount: int,
        due_at: float | None,
        credits: str | None,
    ) -> str:
        sequence = await self._next_sequence(conn, case.neutral_id)
        invoice_id = new_id()
        now = self.clock()
        number = f"{prefix.upper()[:16]}-{sequence:05d}"
        total = subtotal + tax_amount
        values = dict(
            id=invoice_id,
            neutral_id=case.neutral_id,
            number=number,
            sequence=sequence,
            kind=kind,
            credits_invoice=credits,
            case_id=case.id,
            case_reference=case_reference(case),
            payer_id=payer_id,
            payer_name=payer_name,
            payer_address=payer_address,
            seller_name=seller[0],
            seller_address=seller[1],
            currency=currency,
            lines=lines,
            share_basis_points=share,
            subtotal=subtotal,
            tax_basis_points=tax_basis_points,
            tax_amount=tax_amount,
            total=total,
            paid=0,
            status=OPEN if kind == INVOICE else CREDITED,
            issued_at=now,
            due_at=due_at,
            retain_until=now + self.retention_years * YEAR,
        )
        await conn.execute(sa.insert(invoices).values(**values))
        if payer_id is not None:
            address = (
                await conn.execute(
                    sa.select(users.c.email).where(
                        users.c.id == payer_id, users.c.email_verified_at.is_not(None)
                    )
                )
            ).scalar()
            if address:
                await enqueue(
                    conn,
                    "invoice_issued" if kind == INVOICE else "credit_note_issued",
                    address,
                    {
                        "path": f"/invoices/{invoice_id}",
                        "number": number,
                        "total": total,
                        "currency": currency,
                        "due_at": due_at,
                        "invoice_id": invoice_id,
                        "attachments": [
                            {
                                "filename": f"{number}.pdf",
                                "content_type": "application/pdf",
                                "data_base64": base64.b64encode(
                                    render_pdf(document(SimpleNamespace(**values)))
                                ).decode(),
                            }
                        ],
                    },
                    now=now,
                )
        return invoice_id

    async def credit(self, invoice_id: str, actor: Member) -> dict[str, Any]:
        """A credit note reversing an open invoice whole (an issued invoice never changes
        but its status); paid amounts are refunded through the payments first."""
        async with self.store.begin() as conn:
            row = (
                await conn.execute(sa.select(invoices).where(invoices.c.id == invoice_id))
            ).first()
            if row is None or row.case_id != actor.case_id or actor.role not in NEUTRAL_ROLES:
                raise NotFound("No such invoice.")
            if row.kind != INVOICE or row.status != OPEN:
                raise Conflict("Only an open invoice is credited.", code="invoice_not_open")
            if row.paid:
                raise Conflict(
                    "Refund the payments of this invoice before crediting it.",
                    code="invoice_paid",
                )
            case = await self.cases.get_in(conn, row.case_id)
            prefix = (
                await conn.execute(sa.select(users.c.username).where(users.c.id == case.neutral_id))
            ).scalar_one()
            credit_id = await self._write(
                conn,
                case,
                str(prefix),
                kind=CREDIT_NOTE,
                payer_id=row.payer_id,
                payer_name=row.payer_name,
                payer_address=row.payer_address,
                seller=(row.seller_name, row.seller_address),
                currency=row.currency,
                lines=[
                    {
                        **line,
                        "unit_amount": -line["unit_amount"],
                        "amount": -line["amount"],
                    }
                    for line in row.lines
                ],
                share=row.share_basis_points,
                subtotal=-row.subtotal,
                tax_basis_points=row.tax_basis_points,
                tax_amount=-row.tax_amount,
                due_at=None,
                credits=row.id,
            )
            await conn.execute(
                sa.update(invoices).where(invoices.c.id == row.id).values(status=CREDITED)
            )
            await self.cases.audit(conn, actor.user_id, "invoice.credit", row.case_id)
        return await self.get(credit_id)

    # -- reading ----------------------------------------------------------------------------
    async def row(self, invoice_id: str) -> Any:
        async with self.store.connect() as conn:
            row = (
                await conn.execute(sa.select(invoices).where(invoices.c.id == invoice_id))
            ).first()
        if row is None:
            raise NotFound("No such invoice.")
        return row

    async def get(self, invoice_id: str) -> dict[str, Any]:
        async with self.store.connect() as conn:
            row = (
                await conn.execute(sa.select(invoices).where(invoices.c.id == invoice_id))
            ).first()
            if row is None:
                raise NotFound("No such invoice.")
            paid = (
                await conn.execute(
                    sa.select(payments)
                    .where(payments.c.invoice_id == invoice_id)
                    .order_by(payments.c.created_at)
                )
            ).all()
        return invoice_public(row, paid)

    async def readable(self, invoice_id: str, user_id: str) -> Any:
        """The invoice row when ``user_id`` may read it: its payer, counsel of its payer in
        its case, or the neutral who issued it; else as if it did not exist."""
        row = await self.row(invoice_id)
        if user_id in (row.payer_id, row.neutral_id):
            return row
        async with self.store.connect() as conn:
            counsel = (
                await conn.execute(
                    sa.select(case_members.c.user_id).where(
                        case_members.c.case_id == row.case_id,
                        case_members.c.user_id == user_id,
                        case_members.c.role == "counsel",
                        case_members.c.represents == row.payer_id,
                    )
                )
            ).first()
        if counsel is None:
            raise NotFound("No such invoice.")
        return row

    async def of_case(self, case_id: str, viewer: Member) -> list[dict[str, Any]]:
        """The neutral sees the case's ledger; a party their own invoices; counsel their
        client's; anyone else nothing."""
        query = sa.select(invoices).where(invoices.c.case_id == case_id)
        if viewer.role in NEUTRAL_ROLES:
            pass
        elif viewer.role == "party":
            query = query.where(invoices.c.payer_id == viewer.user_id)
        elif viewer.role == "counsel" and viewer.represents:
            query = query.where(invoices.c.payer_id == viewer.represents)
        else:
            return []
        return await self._listing(query.order_by(invoices.c.sequence))

    async def of_neutral(self, neutral_id: str) -> list[dict[str, Any]]:
        query = (
            sa.select(invoices)
            .where(invoices.c.neutral_id == neutral_id)
            .order_by(invoices.c.sequence)
        )
        return await self._listing(query)

    async def _listing(self, query: Any) -> list[dict[str, Any]]:
        async with self.store.connect() as conn:
            rows = (await conn.execute(query.limit(5000))).all()
            ids = [r.id for r in rows]
            paid = (
                (
                    await conn.execute(
                        sa.select(payments)
                        .where(payments.c.invoice_id.in_(ids))
                        .order_by(payments.c.created_at)
                    )
                ).all()
                if ids
                else []
            )
        by_invoice: dict[str, list[Any]] = {}
        for payment in paid:
            by_invoice.setdefault(payment.invoice_id, []).append(payment)
        return [invoice_public(r, by_invoice.get(r.id, [])) for r in rows]

    async def purge_expired(self) -> int:
        """Delete invoices (and their payments) past their retention."""
        async with self.store.begin() as conn:
            gone = await conn.execute(
                sa.delete(invoices).where(invoices.c.retain_until < self.clock())
            )
        return int(gone.rowcount or 0)
