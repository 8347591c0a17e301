"""Invoices and credit notes as PDF (fpdf2) and as a standalone HTML page.

``InvoiceDocument`` is a finished invoice as stored: numbers already computed (line amounts,
subtotal, tax, total in integer minor units). This module only checks that they agree and
lays them out; it reads no database and no network.

Text typed by people (names, addresses, line descriptions, notes) is hostile: control
characters and bidirectional overrides are removed, each field is cut to a sane length
(``…`` marks a cut), addresses keep at most ``MAX_ADDRESS_LINES`` lines. In HTML every text
is escaped by Jinja2's autoescape; the page carries no script and no inline style (the
site's CSP allows ``style-src 'self'``), only class names and ``/static/css/invoice.css``.
In the PDF long text wraps inside its column and the line table breaks across pages with
its headings repeated.

Fonts and text cleaning are ``rooms.printing.pdf_text``'s (DejaVu Sans when installed,
else Helvetica with Latin-1 stand-ins). The HTML view is always full Unicode.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import jinja2
from fpdf import FPDF
from fpdf.enums import Align, TableBordersLayout, XPos, YPos
from fpdf.fonts import FontFace

from rooms.billing.money import (
    WHOLE,
    Money,
    check_currency,
    format_minor_units,
    format_percent,
    format_quantity,
    line_total,
)
from rooms.errors import InvalidInput
from rooms.printing.pdf_text import (  # noqa: F401  (clean_block, to_latin1: part of this API)
    UNICODE_FONT,
    clean_block,
    clean_text,
    to_latin1,
    use_font,
)

KINDS = ("invoice", "credit_note")
TITLES = {"invoice": "Invoice", "credit_note": "Credit note"}
STYLESHEET = "/static/css/invoice.css"
TEMPLATES_DIR = Path(__file__).parent / "templates"

MAX_LINES = 500
MAX_NUMBER = 64
MAX_NAME = 200
MAX_ADDRESS = 600
MAX_ADDRESS_LINES = 8
MAX_DESCRIPTION = 1000
MAX_REFERENCE = 200
MAX_NOTE = 500


@dataclass(frozen=True)
class InvoiceLine:
    """One line of an invoice: what was done, how much of it, at what unit price.

    ``amount`` must equal ``line_total(unit_amount, quantity_thousandths)`` (rounded half-up);
    on a credit note ``unit_amount`` and ``amount`` are negative.
    """

    description: str
    quantity_thousandths: int
    unit_amount: int
    amount: int

    def __post_init__(self) -> None:
        if not isinstance(self.description, str) or not self.description.strip():
            raise ValueError("an invoice line needs a description")
        try:
            expected = line_total(self.unit_amount, self.quantity_thousandths)
        except InvalidInput as error:
            raise ValueError(error.message) from error
        if self.amount != expected:
            raise ValueError("line amount is not quantity times unit price")


@dataclass(frozen=True)
class InvoiceDocument:
    """A finished invoice or credit note, ready to print: who bills whom, for what, how much.

    All amounts are integer minor units of ``currency``. The constructor checks that the
    figures agree (``subtotal`` is the sum of the lines, ``total`` is ``subtotal + tax_amount``,
    an invoice is not negative and a credit note not positive, ``paid`` is within the total)
    and raises ``ValueError`` when they do not: that is a bug in whoever built the document,
    not a person's typing. Texts are kept as given and made safe when rendered.
    """

    number: str
    kind: str
    issued_on: datetime.date
    due_on: datetime.date | None
    currency: str
    seller_name: str
    seller_address: str
    payer_name: str
    payer_address: str
    case_reference: str
    lines: tuple[InvoiceLine, ...]
    subtotal: int
    tax_rate_basis_points: int
    tax_amount: int
    total: int
    share_note: str
    credits_invoice: str | None = None
    paid: int = 0

    def __post_init__(self) -> None:
        for name in (
            "number",
            "seller_name",
            "seller_address",
            "payer_name",
            "payer_address",
            "case_reference",
            "share_note",
        ):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be text")
        if not self.number.strip():
            raise ValueError("an invoice needs a number")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        if self.kind == "credit_note":
            if not isinstance(self.credits_invoice, str) or not self.credits_invoice.strip():
                raise ValueError("a credit note names the invoice it corrects")
        elif self.credits_invoice is not None:
            raise ValueError("only a credit note corrects an invoice")
        if not _is_date(self.issued_on) or (
            self.due_on is not None and (not _is_date(self.due_on) or self.due_on < self.issued_on)
        ):
            raise ValueError("issued_on must be a date and due_on none or a date not before it")
        try:
            self._check_figures()
        except InvalidInput as error:
            raise ValueError(error.message) from error
        if (self.kind == "invoice" and self.total < 0) or (
            self.kind == "credit_note" and self.total > 0
        ):
            raise ValueError("an invoice total is not negative, a credit note total not positive")
        if not 0 <= self.paid <= abs(self.total):
            raise ValueError("paid must be between 0 and the total")

    def _check_figures(self) -> None:
        object.__setattr__(self, "currency", check_currency(self.currency))
        if not isinstance(self.lines, tuple) or not 1 <= len(self.lines) <= MAX_LINES:
            raise ValueError(f"an invoice has 1 to {MAX_LINES} lines")
        if not all(isinstance(line, InvoiceLine) for line in self.lines):
            raise ValueError("lines must be InvoiceLine")
        # Money checks each figure is an int within range
        subtotal = Money(self.subtotal, self.currency)
        total = Money(self.total, self.currency)
        Money(self.paid, self.currency)
        if sum(line.amount for line in self.lines) != self.subtotal:
            raise ValueError("subtotal is not the sum of the lines")
        if subtotal + Money(self.tax_amount, self.currency) != total:
            raise ValueError("total is not subtotal plus tax")
        rate = self.tax_rate_basis_points
        if not isinstance(rate, int) or isinstance(rate, bool) or not 0 <= rate <= WHOLE:
            raise ValueError("tax rate must be 0 to 10000 basis points")

    @property
    def balance(self) -> int:
        """What is still owed (invoice, >= 0) or still to be refunded (credit note, <= 0)."""
        return self.total - self.paid if self.total >= 0 else self.total + self.paid


def _is_date(value: object) -> bool:
    return isinstance(value, datetime.date) and not isinstance(value, datetime.datetime)


# ---------------------------------------------------------------- safe texts


@dataclass(frozen=True)
class _Display:
    """Every text of the document, made safe and formatted, shared by PDF and HTML."""

    title: str
    number: str
    issued_on: str
    due_on: str | None
    case_reference: str
    credits_invoice: str | None
    seller_name: str
    seller_address: list[str]
    payer_name: str
    payer_address: list[str]
    currency: str
    lines: list[tuple[str, str, str, str]]
    #: (label, formatted amount, emphasised): subtotal, tax, total, then paid and balance
    totals: list[tuple[str, str, bool]]
    share_note: str
    is_credit_note: bool


def _display(doc: InvoiceDocument) -> _Display:
    return _Display(
        title=TITLES[doc.kind],
        number=clean_text(doc.number, MAX_NUMBER),
        issued_on=doc.issued_on.isoformat(),
        due_on=doc.due_on.isoformat() if doc.due_on else None,
        case_reference=clean_text(doc.case_reference, MAX_REFERENCE),
        credits_invoice=clean_text(doc.credits_invoice, MAX_NUMBER)
        if doc.credits_invoice
        else None,
        seller_name=clean_text(doc.seller_name, MAX_NAME),
        seller_address=clean_block(doc.seller_address, MAX_ADDRESS, MAX_ADDRESS_LINES),
        payer_name=clean_text(doc.payer_name, MAX_NAME),
        payer_address=clean_block(doc.payer_address, MAX_ADDRESS, MAX_ADDRESS_LINES),
        currency=doc.currency,
        lines=[
            (
                clean_text(line.description, MAX_DESCRIPTION),
                format_quantity(line.quantity_thousandths),
                format_minor_units(line.unit_amount, doc.currency),
                format_minor_units(line.amount, doc.currency),
            )
            for line in doc.lines
        ],
        totals=_totals(doc),
        share_note=clean_text(doc.share_note, MAX_NOTE),
        is_credit_note=doc.kind == "credit_note",
    )


def _totals(doc: InvoiceDocument) -> list[tuple[str, str, bool]]:
    def money(amount: int) -> str:
        return Money(amount, doc.currency).format()

    credit = doc.kind == "credit_note"
    totals = [("Subtotal", money(doc.subtotal), False)]
    if doc.tax_rate_basis_points or doc.tax_amount:
        totals.append(
            (f"Tax ({format_percent(doc.tax_rate_basis_points)})", money(doc.tax_amount), False)
        )
    totals.append(("Total credit" if credit else "Total", money(doc.total), True))
    if doc.paid:
        totals.append(("Refunded" if credit else "Paid", money(doc.paid), False))
        totals.append(("Still to refund" if credit else "Balance due", money(doc.balance), True))
    return totals


# ---------------------------------------------------------------- PDF


class _InvoicePdf(FPDF):
    """An A4 page with the document number and page count in the footer."""

    def __init__(self) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.footer_text = ""
        self.footer_font = "Helvetica"

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font(self.footer_font, size=8)
        self.set_text_color(110)
        self.cell(0, 6, f"{self.footer_text} · Page {self.page_no()} of {{nb}}", align="C")


def render_pdf(doc: InvoiceDocument, *, unicode_font: Path | None = UNICODE_FONT) -> bytes:
    """The invoice as PDF bytes: A4, wrapped text, the line table split over pages.

    ``unicode_font`` (a TrueType file; its ``-Bold`` sibling is used for bold when present)
    is embedded when it exists; with ``None`` or a missing file the PDF uses Helvetica and
    Latin-1 only, as the module docstring says. The output is reproducible: the same
    document gives the same bytes (the creation date is the issue date).
    """
    shown = _display(doc)
    pdf = _InvoicePdf()
    font, text = use_font(pdf, unicode_font)
    pdf.footer_text, pdf.footer_font = text(f"{shown.title} {shown.number}"), font
    pdf.set_title(text(f"{shown.title} {shown.number}"))
    pdf.set_author(text(shown.seller_name))
    pdf.set_creator("Caucus")
    pdf.set_producer("Caucus")
    pdf.set_creation_date(
        datetime.datetime.combine(doc.issued_on, datetime.time(), tzinfo=datetime.UTC)
    )
    pdf.set_margins(18, 18, 18)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.alias_nb_pages()
    pdf.add_page()
    width = pdf.epw

    # Title on the left, the document's facts on the right.
    pdf.set_font(font, "B", 20)
    pdf.cell(width / 2, 10, text(shown.title), new_x=XPos.RIGHT, new_y=YPos.TOP)
    facts = [("Number", shown.number), ("Issued", shown.issued_on)]
    if shown.due_on:
        facts.append(("Due", shown.due_on))
    if shown.credits_invoice:
        facts.append(("Corrects invoice", shown.credits_invoice))
    if shown.case_reference:
        facts.append(("Case", shown.case_reference))
    pdf.set_font(font, size=9)
    pdf.multi_cell(
        width / 2,
        5,
        text("\n".join(f"{label}: {value}" for label, value in facts)),
        align=Align.R,
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.ln(6)

    # From (the neutral) and Bill to (the payer), side by side.
    top = pdf.get_y()
    column = (width - 10) / 2
    bottoms = []
    for x, heading, name, address in (
        (pdf.l_margin, "From", shown.seller_name, shown.seller_address),
        (pdf.l_margin + column + 10, "Bill to", shown.payer_name, shown.payer_address),
    ):
        pdf.set_xy(x, top)
        pdf.set_font(font, "B", 8)
        pdf.set_text_color(110)
        pdf.cell(column, 5, text(heading.upper()), new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_text_color(0)
        pdf.set_font(font, "B", 10)
        pdf.multi_cell(column, 5, text(name), new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_font(font, size=10)
        if address:
            pdf.multi_cell(column, 5, text("\n".join(address)), new_x=XPos.LEFT, new_y=YPos.NEXT)
        bottoms.append(pdf.get_y())
    pdf.set_xy(pdf.l_margin, max(bottoms) + 8)

    # The lines; the table repeats its headings on every page it spans.
    pdf.set_font(font, size=9)
    with pdf.table(
        col_widths=(52, 12, 18, 18),
        text_align=(Align.L, Align.R, Align.R, Align.R),
        borders_layout=TableBordersLayout.HORIZONTAL_LINES,
        headings_style=FontFace(emphasis="BOLD", fill_color=(235, 235, 235)),
        line_height=5,
        padding=1.5,
        repeat_headings=1,
    ) as table:
        headings = table.row()
        for label in (
            "Description",
            "Quantity",
            f"Unit ({doc.currency})",
            f"Amount ({doc.currency})",
        ):
            headings.cell(text(label))
        for description, quantity, unit, amount in shown.lines:
            row = table.row()
            row.cell(text(description))
            row.cell(quantity)
            row.cell(unit)
            row.cell(amount)

    # Totals, right-aligned under the table.
    pdf.ln(4)
    for label, value, strong in shown.totals:
        pdf.set_x(pdf.l_margin + width - 110)
        pdf.set_font(font, "B" if strong else "", 10)
        pdf.cell(55, 6, text(label), align=Align.R)
        pdf.cell(55, 6, text(value), align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    if shown.share_note:
        pdf.ln(6)
        pdf.set_font(font, size=9)
        pdf.multi_cell(0, 5, text(shown.share_note), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())


# ---------------------------------------------------------------- HTML


_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)
_TEMPLATE = _ENVIRONMENT.get_template("invoice.html")


def render_html(doc: InvoiceDocument) -> str:
    """The invoice as a standalone HTML page: every text escaped, no script, no inline style.

    Styled only through class names by ``/static/css/invoice.css``.
    """
    shown = _display(doc)
    parties = [
        ("From", shown.seller_name, shown.seller_address, "invoice-seller"),
        ("Bill to", shown.payer_name, shown.payer_address, "invoice-payer"),
    ]
    return _TEMPLATE.render(d=shown, parties=parties, stylesheet=STYLESHEET)
