"""The type sniffer: the allowed set from the bytes; names never make a file acceptable."""

from __future__ import annotations

import io
import zipfile

import pytest

from rooms.spaces.filetypes import DOCX, PDF, TEXT, XLSX, TextCheck, sniff
from tests.samples import jpeg_bytes, pdf_bytes


def ooxml(*parts: str, first: str = "[Content_Types].xml") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(first, "<x/>")
        for part in parts:
            archive.writestr(part, "<x/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "name", "content_type"),
    [
        (pdf_bytes(), "x", PDF),
        (jpeg_bytes(), "x.exe", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n" + bytes(8), "", "image/png"),
        (b"GIF87a" + bytes(8), "", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8L", "", "image/webp"),
        (b"\x00\x00\x00\x20ftypisom" + bytes(8), "", "video/mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "", "video/webm"),
        (ooxml("word/document.xml"), "a.bin", DOCX),
        (ooxml("xl/workbook.xml"), "", XLSX),
        (ooxml(), "sheet.xlsx", XLSX),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(8), "budget.xls", "application/vnd.ms-excel"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(8), "", "application/x-ole-storage"),
        ("Zeugenaussage: Straße, 10 €\r\n\tend\f".encode(), "", TEXT),
    ],
)
def test_allowed(data: bytes, name: str, content_type: str) -> None:
    found = sniff(data, name)
    assert found is not None and found.content_type == content_type


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"", "empty.txt"),
        (b"MZ\x90\x00", "a.pdf"),
        (b"\x7fELF\x02\x01", "a.txt"),
        (ooxml(first="mimetype"), "a.docx"),  # a plain zip (or ODF), not OOXML
        (b"PK\x03\x04", "a.docx"),
        (b"\x00\x00\x00\x20ftypheic", "a.mp4"),  # HEIC picture, not an allowed video
        (b"\x1a\x45\xdf\xa3\x42\x82\x88matroska", "a.webm"),
        ("caf\xe9".encode("latin-1"), "a.txt"),
        (b"text with a bell \x07", "a.txt"),
    ],
)
def test_refused(data: bytes, name: str) -> None:
    assert sniff(data, name, complete=True) is None


def test_text_check_spans_pieces() -> None:
    check = TextCheck()
    encoded = "ü".encode()
    assert check.feed(b"ok " + encoded[:1]) and check.feed(encoded[1:]) and check.finish()
    cut = TextCheck()
    assert cut.feed(b"ends inside " + encoded[:1]) and not cut.finish()
