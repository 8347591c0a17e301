"""The seal: the installation's key file, the signature file, the sealed PDF."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from pypdf import PdfReader

from rooms.agreements.pdf import SealedDocument, SignatureLine, render_sealed_pdf
from rooms.agreements.seal_file import (
    SealCheckFailed,
    SealStatement,
    check_seal,
    parse_signature_file,
    sign_seal,
)
from rooms.agreements.seal_key import SealKey, SealVerifyKey, load_verify_key, public_key_path
from rooms.agreements.text import agreement_text
from rooms.printing.pdf_text import UNICODE_FONT
from tests.support.fonts import need_unicode_font

TEXT = agreement_text(
    "Settlement of the Harbor Lane lease",
    [("Payment", "Tenant pays **EUR 100** within 30 days.\n\nŁódź, Ελένη.")] * 12
    + [("Costs", "Each side bears its own costs.")],
)


def sealed_pdf(key: SealKey, font: Path | None = UNICODE_FONT) -> bytes:
    line = SignatureLine(
        "Paula Party",
        "paula",
        "party",
        "b" * 32,
        1.7e9,
        "192.0.2.7",
        "password+totp",
        TEXT.sha256(),
    )
    doc = SealedDocument("a" * 32, 3, TEXT, [line], 1.7e9 + 5, key.key_id, "Caucus")
    return render_sealed_pdf(doc, unicode_font=font)


def signed(key: SealKey, pdf: bytes) -> bytes:
    import hashlib

    statement = SealStatement(
        "a" * 32, 3, 1.7e9 + 5, TEXT.sha256(), hashlib.sha256(pdf).hexdigest(), key.key_id
    )
    return sign_seal(key, statement).encode()


def test_the_key_file_is_private_created_once_and_its_public_half_beside_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data" / "agreement-seal.key"
    key = SealKey.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert SealKey.load_or_create(path).key_id == key.key_id
    assert load_verify_key(public_key_path(path)).key_id == key.key_id
    assert load_verify_key(path).key_id == key.key_id
    assert SealVerifyKey.from_pem(key.public.pem().encode()).key_id == key.key_id


@pytest.mark.parametrize("font", [UNICODE_FONT, None], ids=["dejavu", "helvetica"])
def test_the_pdf_carries_the_document_hash_on_every_page(font: Path | None) -> None:
    if font is not None:
        need_unicode_font()
    pdf = sealed_pdf(SealKey.generate(), font)
    pages = [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]
    assert len(pages) >= 2
    for page in pages:
        assert TEXT.sha256() in page
    assert "Tenant pays **EUR 100** within 30 days." in pages[0]
    assert "Paula Party" in pages[-1] and "192.0.2.7" in pages[-1]
    assert "authenticator code (TOTP)" in pages[-1]
    assert "not a qualified electronic signature" in pages[-1]


def test_a_sealed_pdf_checks_out_and_any_changed_byte_does_not() -> None:
    key = SealKey.generate()
    pdf = sealed_pdf(key, None)
    signature = signed(key, pdf)
    statement = check_seal(pdf, signature, key.public)
    assert statement.agreement_id == "a" * 32 and statement.version == 3
    assert statement.sealed_at == 1.7e9 + 5

    for position in range(len(signature)):
        changed = bytearray(signature)
        changed[position] ^= 0x01
        with pytest.raises(SealCheckFailed) as failure:
            check_seal(pdf, bytes(changed), key.public)
        assert failure.value.code in ("malformed_signature", "bad_signature", "unknown_key")
        assert failure.value.message
    for position in (0, len(pdf) // 2, len(pdf) - 1):
        changed = bytearray(pdf)
        changed[position] ^= 0x01
        with pytest.raises(SealCheckFailed) as failure:
            check_seal(bytes(changed), signature, key.public)
        assert failure.value.code == "pdf_mismatch"
        assert "PDF does not match" in failure.value.message


def test_another_installations_key_or_signature_is_refused_clearly() -> None:
    ours, theirs = SealKey.generate(), SealKey.generate()
    pdf = sealed_pdf(theirs, None)
    with pytest.raises(SealCheckFailed) as failure:
        check_seal(pdf, signed(theirs, pdf), ours.public)
    assert failure.value.code == "unknown_key"
    # a forger who copies our key id still cannot sign
    statement, _, _ = parse_signature_file(signed(theirs, pdf))
    forged = sign_seal(theirs, SealStatement(**{**statement.__dict__, "key_id": ours.key_id}))
    with pytest.raises(SealCheckFailed) as failure:
        check_seal(pdf, forged.encode(), ours.public)
    assert failure.value.code == "bad_signature"
    for junk in (b"", b"\xff" * 10, b"x" * 5000, b"Caucus sealed agreement signature v1\n"):
        with pytest.raises(SealCheckFailed) as failure:
            check_seal(pdf, junk, ours.public)
        assert failure.value.code == "malformed_signature"
