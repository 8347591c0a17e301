"""The sealed agreement as PDF (fpdf2): the text, a signature page, the hash on every page.

Every page's footer carries the agreement id, the version and the document hash (SHA-256
of the canonical text); the text pages print the canonical text clause by clause (Markdown
marks as typed: what was signed is the text, not a rendering of it); the signature page
lists each signature's record. Fonts and the cleaning of names are
``rooms.printing.pdf_text``'s.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from rooms.agreements.text import AgreementText
from rooms.printing.pdf_text import UNICODE_FONT, clean_text, use_font

AUTH_WORDS = {
    "password": "password",
    "password+totp": "password and authenticator code (TOTP)",
    "password+recovery_code": "password and a one-time recovery code",
}


@dataclass(frozen=True)
class SignatureLine:
    """One signature's record as the signature page prints it."""

    typed_name: str
    display_name: str
    role: str
    user_id: str
    signed_at: float
    client_address: str
    auth_method: str
    document_sha256: str


@dataclass(frozen=True)
class SealedDocument:
    """Everything the sealed PDF shows."""

    agreement_id: str
    version: int
    text: AgreementText
    signatures: Sequence[SignatureLine]
    sealed_at: float
    key_id: str
    site_name: str


def utc(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class _AgreementPdf(FPDF):
    """A4 pages whose footer names the agreement and its document hash."""

    def __init__(self) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.footer_lines = ("", "")
        self.footer_font = "Helvetica"

    def footer(self) -> None:
        self.set_y(-16)
        self.set_font(self.footer_font, size=7)
        self.set_text_color(90)
        first, second = self.footer_lines
        self.cell(0, 4, f"{first} · Page {self.page_no()} of {{nb}}", align="C")
        self.ln(4)
        self.cell(0, 4, second, align="C")


def render_sealed_pdf(doc: SealedDocument, *, unicode_font: Path | None = UNICODE_FONT) -> bytes:
    pdf = _AgreementPdf()
    font, text = use_font(pdf, unicode_font)
    digest = doc.text.sha256()
    pdf.footer_font = font
    pdf.footer_lines = (
        f"Agreement {doc.agreement_id} · version {doc.version}",
        f"Document SHA-256 {digest}",
    )
    pdf.set_title(text(clean_text(doc.text.title, 200)))
    pdf.set_subject(f"document-sha256 {digest}")
    pdf.set_creator("Caucus")
    pdf.set_producer("Caucus")
    pdf.set_creation_date(datetime.datetime.fromtimestamp(int(doc.sealed_at), datetime.UTC))
    pdf.set_margins(20, 18, 20)
    pdf.set_auto_page_break(auto=True, margin=22)
    pdf.alias_nb_pages()
    pdf.add_page()

    pdf.set_font(font, "B", 16)
    pdf.multi_cell(0, 8, text(doc.text.title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(font, size=8)
    pdf.set_text_color(90)
    pdf.multi_cell(
        0,
        4,
        text(
            f"Settlement agreement sealed on {utc(doc.sealed_at)} by {doc.site_name}.\n"
            f"Version {doc.version}; its canonical text has the SHA-256 {digest}."
        ),
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.set_text_color(0)
    pdf.ln(4)
    for number, clause in enumerate(doc.text.clauses, start=1):
        head = f"{number}. {clause.heading}" if clause.heading else f"{number}."
        pdf.set_font(font, "B", 11)
        pdf.multi_cell(0, 6, text(head), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font(font, size=10)
        pdf.multi_cell(0, 5, text(clause.body), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(3)

    pdf.add_page()
    pdf.set_font(font, "B", 14)
    pdf.cell(0, 8, "Signatures", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(font, size=8)
    pdf.set_text_color(90)
    pdf.multi_cell(
        0,
        4,
        text(
            "Each signatory reviewed the text above, confirmed their identity again at the "
            "moment of signing and typed their full name. The server recorded what follows; "
            "every signature is of the canonical text with the SHA-256 in the footer."
        ),
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.set_text_color(0)
    for line in doc.signatures:
        pdf.ln(4)
        pdf.set_font(font, "B", 11)
        pdf.multi_cell(
            0, 6, text(clean_text(line.typed_name, 200)), new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        pdf.set_font(font, size=9)
        facts = [
            f"Typed full name: {clean_text(line.typed_name, 200)}",
            f"Account: {clean_text(line.display_name, 200)} ({line.role}), user id {line.user_id}",
            f"Signed at: {utc(line.signed_at)}",
            f"Client address: {clean_text(line.client_address, 100)}",
            f"Identity confirmed by: {AUTH_WORDS.get(line.auth_method, line.auth_method)}",
            f"Signed text SHA-256: {line.document_sha256}",
        ]
        pdf.multi_cell(0, 5, text("\n".join(facts)), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(6)
    pdf.set_font(font, size=8)
    pdf.set_text_color(90)
    pdf.multi_cell(
        0,
        4,
        text(
            f"Sealed by the installation's seal key {doc.key_id} (Ed25519). The detached "
            "signature file that comes with this PDF proves it is unaltered; check both with "
            "`caucus verify-agreement` or the installation's verification page. This is an "
            "electronic record of the signatures, not a qualified electronic signature."
        ),
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    return bytes(pdf.output())
