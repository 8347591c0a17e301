"""What a file is, judged from its first bytes, never from the name or type a client claims.

The allowed set is small on purpose: PDF; JPEG, PNG, GIF and WebP pictures; MP4 and WebM
video; Office documents (OOXML: a zip whose entries include ``[Content_Types].xml``;
legacy OLE compound files); and UTF-8 plain text. Anything else is refused.

``sniff`` looks at the head of the upload (``SNIFF_BYTES``; the whole file when it is
smaller). Plain text has no signature, so a text upload is also checked to the end by
``TextCheck`` while it streams: valid UTF-8 without control characters other than tab,
newline, carriage return and form feed. The file name only picks among Office subtypes
that the bytes alone cannot tell apart (a ``.xls`` and a ``.doc`` are both OLE files); it
never makes a file acceptable.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

SNIFF_BYTES = 64 * 1024

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
OLE = "application/x-ole-storage"
TEXT = "text/plain; charset=utf-8"

_OLE_BY_EXTENSION = {
    ".doc": "application/msword",
    ".dot": "application/msword",
    ".xls": "application/vnd.ms-excel",
    ".xlt": "application/vnd.ms-excel",
    ".ppt": "application/vnd.ms-powerpoint",
    ".pps": "application/vnd.ms-powerpoint",
}
_OOXML_BY_PART = ((b"word/", DOCX), (b"xl/", XLSX), (b"ppt/", PPTX))
_OOXML_BY_EXTENSION = {".docx": DOCX, ".xlsx": XLSX, ".pptx": PPTX}
_MP4_BRANDS = {
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1",
    b"M4V ", b"dash", b"mmp4", b"MSNV", b"f4v ",
}  # fmt: skip
_ZIP_LOCAL_HEADER = b"PK\x03\x04"
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f]")


@dataclass(frozen=True)
class FileType:
    content_type: str
    kind: str  # document | picture | video | text

    @property
    def previewable(self) -> bool:
        """Shown inline in the browser (pictures, PDF, video); the rest downloads."""
        return self.kind in ("picture", "video") or self.content_type == PDF


def _extension(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot >= 0 else ""


def _ooxml(head: bytes, name: str) -> FileType | None:
    # Local file headers carry each entry's name at offset 30; look at every entry in the head.
    names: list[bytes] = []
    at = 0
    while (at := head.find(_ZIP_LOCAL_HEADER, at)) >= 0 and len(names) < 64:
        if at + 30 > len(head):
            break
        length = int.from_bytes(head[at + 26 : at + 28], "little")
        names.append(head[at + 30 : at + 30 + length])
        at += 4
    if b"[Content_Types].xml" not in names:
        return None
    for prefix, content_type in _OOXML_BY_PART:
        if any(n.startswith(prefix) for n in names):
            return FileType(content_type, "document")
    by_extension = _OOXML_BY_EXTENSION.get(_extension(name))
    return FileType(by_extension, "document") if by_extension else None


def sniff(head: bytes, name: str = "", *, complete: bool = False) -> FileType | None:
    """The type of a file whose first bytes are ``head``; None when it is not allowed.

    ``complete``: ``head`` is the whole file (so text must not end mid-character).
    """
    if head.startswith(b"\xff\xd8\xff"):
        return FileType("image/jpeg", "picture")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return FileType("image/png", "picture")
    if head.startswith((b"GIF87a", b"GIF89a")):
        return FileType("image/gif", "picture")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return FileType("image/webp", "picture")
    if b"%PDF-" in head[:1024]:
        return FileType(PDF, "document")
    if head[4:8] == b"ftyp" and head[8:12] in _MP4_BRANDS:
        return FileType("video/mp4", "video")
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"\x42\x82" in head[:64] and b"webm" in head[:64]:
        return FileType("video/webm", "video")
    if head.startswith(_ZIP_LOCAL_HEADER):
        return _ooxml(head, name)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return FileType(_OLE_BY_EXTENSION.get(_extension(name), OLE), "document")
    check = TextCheck()
    if head and check.feed(head) and (not complete or check.finish()):
        return FileType(TEXT, "text")
    return None


class TextCheck:
    """Checks a stream is UTF-8 text, piece by piece; ``feed`` and ``finish`` say if it is."""

    def __init__(self) -> None:
        self.__decoder = codecs.getincrementaldecoder("utf-8")("strict")

    def feed(self, data: bytes | bytearray | memoryview) -> bool:
        try:
            text = self.__decoder.decode(bytes(data))
        except UnicodeDecodeError:
            return False
        return _CONTROL.search(text) is None

    def finish(self) -> bool:
        try:
            self.__decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
        return True
