"""Invoices and credit notes rendered as PDF (read back with pypdf) and as HTML."""

from __future__ import annotations

import dataclasses
import datetime
import io
import re
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from rooms.billing.invoice_pdf import (
    MAX_ADDRESS_LINES,
    MAX_DESCRIPTION,
    MAX_NAME,
    STYLESHEET,
    UNICODE_FONT,
    InvoiceDocument,
    InvoiceLine,
    clean_block,
    clean_text,
    render_html,
    render_pdf,
    to_latin1,
)
from rooms.billing.money import Money, line_total, tax
from tests.support.fonts import need_unicode_font

INVOICE_CSS = Path(__file__).parents[3] / "web" / "static" / "css" / "invoice.css"

FONTS = [
    pytest.param(UNICODE_FONT, id="dejavu"),
    pytest.param(None, id="helvetica"),
]


def line(description: str, quantity: int, unit: int) -> InvoiceLine:
    return InvoiceLine(description, quantity, unit, line_total(unit, quantity))


def make_document(**changes: Any) -> InvoiceDocument:
    """A consistent invoice; ``lines`` and ``tax_rate_basis_points`` recompute the figures."""
    lines = changes.pop("lines", None) or (
        line("Mediation session, 14 March", 2500, 18000),
        line("Preparation and reading", 1000, 9000),
        line("Room hire", 1000, 7550),
    )
    rate = changes.pop("tax_rate_basis_points", 2000)
    subtotal = sum(item.amount for item in lines)
    tax_amount = tax(subtotal, rate)
    fields: dict[str, Any] = {
        "number": "NINA-2027-0001",
        "kind": "invoice",
        "issued_on": datetime.date(2027, 3, 15),
        "due_on": datetime.date(2027, 4, 14),
        "currency": "EUR",
        "seller_name": "Nina Brandt, Mediator",
        "seller_address": "Hauptstrasse 1\n10115 Berlin\nGermany",
        "payer_name": "Acme Holdings Ltd",
        "payer_address": "1 King Street\nLondon EC2V 8AU\nUnited Kingdom",
        "case_reference": "CASE-2027-042",
        "lines": tuple(lines),
        "subtotal": subtotal,
        "tax_rate_basis_points": rate,
        "tax_amount": tax_amount,
        "total": subtotal + tax_amount,
        "share_note": "Your share: 60% of the session fees",
    }
    fields.update(changes)
    return InvoiceDocument(**fields)


def make_credit_note(**changes: Any) -> InvoiceDocument:
    lines = (line("Session of 14 March cancelled", 1000, -15000),)
    return make_document(
        kind="credit_note",
        number="NINA-2027-0007",
        credits_invoice="NINA-2027-0001",
        currency="USD",
        lines=lines,
        tax_rate_basis_points=0,
        due_on=None,
        **changes,
    )


def pdf_pages(data: bytes) -> list[str]:
    assert data.startswith(b"%PDF-")
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


def flat(text: str) -> str:
    """Extracted text with every run of whitespace made one space."""
    return " ".join(text.split())


@pytest.mark.parametrize("font", FONTS)
def test_invoice_pdf_reads_back(font: Path | None) -> None:
    if font is not None:
        need_unicode_font()
    doc = make_document()
    text = flat("\n".join(pdf_pages(render_pdf(doc, unicode_font=font))))

    assert text.startswith("Invoice")
    assert "Credit note" not in text
    assert "Number: NINA-2027-0001" in text
    assert "Issued: 2027-03-15" in text
    assert "Due: 2027-04-14" in text
    assert "Case: CASE-2027-042" in text
    assert "Nina Brandt, Mediator" in text
    assert "Acme Holdings Ltd" in text
    assert "London EC2V 8AU" in text
    assert "Mediation session, 14 March 2.5 180.00 450.00" in text
    assert "Preparation and reading 1 90.00 90.00" in text
    assert "Room hire 1 75.50 75.50" in text
    assert "Subtotal EUR 615.50" in text
    assert "Tax (20%) EUR 123.10" in text
    assert Money(doc.total, "EUR").format() == "EUR 738.60"
    assert "Total EUR 738.60" in text
    assert "Balance due" not in text  # nothing paid yet: no payment lines
    assert "Your share: 60% of the session fees" in text


@pytest.mark.parametrize("font", FONTS)
def test_credit_note_pdf(font: Path | None) -> None:
    if font is not None:
        need_unicode_font()
    text = flat("\n".join(pdf_pages(render_pdf(make_credit_note(), unicode_font=font))))

    assert text.startswith("Credit note")
    assert "Number: NINA-2027-0007" in text
    assert "Corrects invoice: NINA-2027-0001" in text
    assert "Due:" not in text
    assert "Session of 14 March cancelled 1 -150.00 -150.00" in text
    assert "Total credit USD -150.00" in text
    assert "Tax" not in text  # no tax rate, no tax line


def test_payments_so_far_and_the_balance() -> None:
    doc = make_document(paid=30000)
    text = flat("\n".join(pdf_pages(render_pdf(doc))))
    assert "Paid EUR 300.00" in text
    assert "Balance due EUR 438.60" in text
    assert doc.balance == 43860
    html = render_html(doc)
    assert "Balance due" in html and "EUR 438.60" in html

    refunded = make_credit_note(paid=5000)
    assert refunded.balance == -10000
    text = flat("\n".join(pdf_pages(render_pdf(refunded))))
    assert "Refunded USD 50.00" in text
    assert "Still to refund USD -100.00" in text


@pytest.mark.parametrize(
    ("currency", "unit", "unit_text", "total_text"),
    [("JPY", 12345, "12,345", "JPY 12,345"), ("KWD", 1250, "1.250", "KWD 1.250")],
)
def test_currencies_without_two_decimals(
    currency: str, unit: int, unit_text: str, total_text: str
) -> None:
    doc = make_document(
        currency=currency, lines=(line("Fee", 1000, unit),), tax_rate_basis_points=0
    )
    text = flat("\n".join(pdf_pages(render_pdf(doc))))
    assert f"Fee 1 {unit_text} {unit_text}" in text
    assert f"Total {total_text}" in text


NON_LATIN = ["Zoë Øster", "Łukasz Żółć", "Ελένη Παπαδοπούλου", "Дмитрий", "Nguyễn Thị"]


def test_non_latin_names_print_as_typed_with_dejavu() -> None:
    need_unicode_font()
    for name in NON_LATIN:
        doc = make_document(payer_name=name, seller_name=name, lines=(line(name, 1000, 100),))
        text = "\n".join(pdf_pages(render_pdf(doc, unicode_font=UNICODE_FONT)))
        assert name in text
        assert name in render_html(doc)


def test_characters_the_font_lacks_print_as_question_marks() -> None:
    need_unicode_font()
    doc = make_document(payer_name="東京 Trading Ελένη")
    text = "\n".join(pdf_pages(render_pdf(doc, unicode_font=UNICODE_FONT)))
    assert "?? Trading Ελένη" in text
    assert "東京 Trading Ελένη" in render_html(doc)


def test_non_latin_names_fall_back_to_latin1_with_helvetica() -> None:
    expected = ["Zoë Øster", "Lukasz Zólc", "????? ????????????", "???????", "Nguyên Thi"]
    for name, shown in zip(NON_LATIN, expected, strict=True):
        doc = make_document(payer_name=name, lines=(line(f"Work for {name}", 1000, 100),))
        text = "\n".join(pdf_pages(render_pdf(doc, unicode_font=None)))
        assert shown in text
        assert f"Work for {shown}" in text
        assert name in render_html(doc)  # HTML is always full Unicode


def test_missing_font_file_falls_back(tmp_path: Path) -> None:
    doc = make_document(payer_name="Łukasz")
    text = "\n".join(pdf_pages(render_pdf(doc, unicode_font=tmp_path / "absent.ttf")))
    assert "Lukasz" in text


def test_to_latin1() -> None:
    assert to_latin1("Zoë Øster") == "Zoë Øster"
    assert to_latin1("Łódź \u2013 \u201cquoted\u201d €5") == 'Lódz - "quoted" EUR5'
    assert to_latin1("Ελένη") == "?????"
    assert to_latin1("東京") == "??"
    assert to_latin1("ﬁle …") == "file ..."
    assert to_latin1("Nguyễn Thị Đặng") == "Nguyên Thi Dang"
    assert all(ord(c) < 256 for c in to_latin1("".join(map(chr, range(0x100, 0x3000)))))


@pytest.mark.parametrize("font", FONTS)
def test_forty_lines_paginate(font: Path | None) -> None:
    if font is not None:
        need_unicode_font()
    lines = tuple(line(f"Session {i:02d} with both parties", 1500, 12000 + i) for i in range(40))
    doc = make_document(lines=lines)
    pages = pdf_pages(render_pdf(doc, unicode_font=font))

    assert len(pages) >= 2
    text = flat("\n".join(pages))
    for i, item in enumerate(lines):
        amount = f"{item.amount // 100:,}.{item.amount % 100:02d}"
        assert f"Session {i:02d} with both parties 1.5 {120 + i // 100}.{i:02d} {amount}" in text
    for number, page in enumerate(pages, start=1):
        assert "Description Quantity Unit (EUR) Amount (EUR)" in flat(page)  # headings repeat
        assert f"Page {number} of {len(pages)}" in page
    assert f"Total {Money(doc.total, 'EUR').format()}" in flat(pages[-1])


@pytest.mark.parametrize("font", FONTS)
def test_over_long_and_hostile_text_is_cut_and_cleaned(font: Path | None) -> None:
    if font is not None:
        need_unicode_font()
    endless_word = "W" * 5000
    doc = make_document(
        payer_name="P" * 10_000,
        payer_address="\n".join(f"Address line {i}" for i in range(50)),
        seller_name="Evil\u202eCorp\x00\x07 Ltd",
        lines=(line(endless_word, 1000, 100), line("two\nlines\ttabbed", 1000, 100)),
        share_note="N" * 5000,
    )
    data = render_pdf(doc, unicode_font=font)
    text = "\n".join(pdf_pages(data))

    assert text.count("P") <= MAX_NAME + 5
    assert text.count("W") <= MAX_DESCRIPTION
    assert "Address line 6" in text
    assert "Address line 8" not in text
    assert "EvilCorp Ltd" in text
    assert "\u202e" not in text and "\x00" not in text
    assert "two lines tabbed" in flat(text)
    assert len(data) < 200_000

    html = render_html(doc)
    assert "P" * MAX_NAME not in html
    assert "P" * (MAX_NAME - 1) + "…" in html
    assert "\u202e" not in html and "\x00" not in html


def test_clean_text_and_block() -> None:
    assert clean_text("  a\r\n b\u200f c\x1b ", 100) == "a b c"
    assert clean_text("abcdef", 4) == "abc…"
    assert clean_text("e\u0301", 10) == "é"  # NFC
    assert clean_block("one\n\n  two  \r\nthree", 100, 5) == ["one", "two", "three"]
    many = clean_block("\n".join(str(i) for i in range(20)), 1000, MAX_ADDRESS_LINES)
    assert len(many) == MAX_ADDRESS_LINES
    assert many[-1] == "7 …"
    assert sum(map(len, clean_block("x" * 50 + "\n" + "y" * 50, 60, 5))) <= 60


def test_the_same_document_gives_the_same_bytes() -> None:
    doc = make_document()
    assert render_pdf(doc) == render_pdf(doc)
    reader = PdfReader(io.BytesIO(render_pdf(doc)))
    assert reader.metadata is not None
    assert reader.metadata.title == "Invoice NINA-2027-0001"


def test_html_escapes_what_people_typed() -> None:
    doc = make_document(
        payer_name='<script>alert("x")</script> & Sons',
        payer_address="<img src=x onerror=alert(1)>\nStreet",
        lines=(line("<b>bold</b> \"quoted\" 'single'", 1000, 100),),
        share_note="</p><script>steal()</script>",
        case_reference='"><svg onload=alert(1)>',
    )
    html = render_html(doc)

    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Sons" in html
    assert "&lt;img src=x onerror=alert(1)&gt;<br>Street" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &#34;quoted&#34; &#39;single&#39;" in html
    assert "&#34;&gt;&lt;svg onload=alert(1)&gt;" in html
    assert "<script" not in html.lower()
    assert "<img" not in html and "<svg" not in html and "<b>" not in html


def test_html_page_uses_only_the_stylesheet_and_classes() -> None:
    html = render_html(make_document(paid=100))

    assert html.startswith("<!DOCTYPE html>")
    assert "style=" not in html.lower() and "<style" not in html.lower()
    assert "<script" not in html.lower() and "javascript:" not in html.lower()
    assert re.findall(r"<link [^>]*>", html) == [f'<link rel="stylesheet" href="{STYLESHEET}">']
    assert STYLESHEET == "/static/css/invoice.css"
    css = INVOICE_CSS.read_text()
    used = {name for attr in re.findall(r'class="([^"]+)"', html) for name in attr.split()}
    assert used
    for name in used:
        assert f".{name}" in css, f"class {name} has no rule in invoice.css"


def test_html_view_of_an_invoice_and_a_credit_note() -> None:
    html = render_html(make_document())
    assert "<title>Invoice NINA-2027-0001</title>" in html
    assert "Acme Holdings Ltd" in html
    assert "1 King Street<br>London EC2V 8AU<br>United Kingdom" in html
    for description, amount in [
        ("Mediation session, 14 March", "450.00"),
        ("Preparation and reading", "90.00"),
        ("Room hire", "75.50"),
    ]:
        assert description in html and amount in html
    assert "EUR 738.60" in html
    assert 'datetime="2027-04-14"' in html

    credit = render_html(make_credit_note())
    assert '<h1 class="invoice-title">Credit note</h1>' in credit
    assert "invoice-credit-note" in credit
    assert "NINA-2027-0001" in credit and "USD -150.00" in credit


def test_documents_whose_figures_disagree_are_refused() -> None:
    doc = make_document()
    wrong: list[dict[str, Any]] = [
        {"subtotal": doc.subtotal + 1, "total": doc.total + 1},
        {"total": doc.total + 1},
        {"tax_amount": doc.tax_amount + 1},
        {"kind": "receipt"},
        {"number": "  "},
        {"credits_invoice": "NINA-2027-0000"},
        {"lines": ()},
        {"lines": [doc.lines[0]]},
        {"due_on": datetime.date(2027, 3, 14)},
        {"issued_on": datetime.datetime(2027, 3, 15, 12, 0)},
        {"paid": doc.total + 1},
        {"paid": -1},
        {"tax_rate_basis_points": 10001},
        {"payer_name": None},
        {"currency": "XXX"},
    ]
    for changes in wrong:
        with pytest.raises(ValueError):
            dataclasses.replace(doc, **changes)
    with pytest.raises(ValueError, match="names the invoice"):
        dataclasses.replace(make_credit_note(), credits_invoice=None)
    with pytest.raises(ValueError, match="not negative"):
        make_document(lines=(line("Refund", 1000, -100),), tax_rate_basis_points=0)
    with pytest.raises(ValueError, match="quantity times unit price"):
        InvoiceLine("Session", 1500, 10000, 14999)
    with pytest.raises(ValueError, match="quantity"):
        InvoiceLine("Session", 0, 10000, 0)
    with pytest.raises(ValueError, match="description"):
        InvoiceLine("   ", 1000, 100, 100)
    assert make_document(currency="eur").currency == "EUR"
