"""Text typed by people, made safe to print in a PDF, and the font that prints it.

Text is hostile: control characters and bidirectional overrides are removed ("Trojan
Source": they can make text read differently from how it is stored), each field is cut to
a sane length (``…`` marks a cut).

Fonts: the PDF core fonts (Helvetica) only print Latin-1. When the DejaVu Sans font of
Debian's ``fonts-dejavu-core`` package is found at ``UNICODE_FONT`` it is embedded (as a
subset) and names like "Łukasz" or "Ελένη" print as typed. Without it the PDF falls back to
Helvetica and every character outside Latin-1 is replaced: letters with accents lose the
accent where that gives a Latin-1 letter ("Ł" -> "L", "ő" -> "o"), a few punctuation marks
get their ASCII form, anything else becomes "?". Characters DejaVu Sans has no glyph for
(Chinese, Japanese, Korean among them) are printed as "?" rather than silently left out.
Right-to-left scripts are printed in logical order (no text shaping).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import TTFFont

#: DejaVu Sans from Debian's fonts-dejavu-core; embedded when present.
UNICODE_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
#: How much of a text is looked at before it is cleaned and cut (bounds the work).
MAX_SCANNED = 4000

#: Bidirectional embeddings, overrides and isolates.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
# Latin-1 stand-ins, for the Helvetica fallback, of characters NFKD cannot take apart.
_LATIN1_STAND_INS = str.maketrans(
    {
        "Ł": "L",
        "ł": "l",
        "Đ": "D",
        "đ": "d",
        "\u0126": "H",
        "\u0127": "h",
        "\u0131": "i",
        "Œ": "OE",
        "œ": "oe",
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": ",",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2010": "-",
        "\u2212": "-",
        "\u2022": "·",
        "\u20ac": "EUR",
        "\u00a0": " ",
    }
)


def clean_text(text: str, limit: int) -> str:
    """One line of display text: NFC, no control or bidi characters, at most ``limit`` long."""
    return cut(" ".join(strip_controls(text).split()), limit)


def clean_block(text: str, limit: int, max_lines: int) -> list[str]:
    """A multi-line text (an address) as at most ``max_lines`` clean, non-empty lines."""
    lines = [" ".join(strip_controls(raw).split()) for raw in text.splitlines()]
    kept = [line for line in lines if line]
    if len(kept) > max_lines:
        kept = [*kept[: max_lines - 1], cut(kept[max_lines - 1] + " …", limit)]
    out: list[str] = []
    room = limit
    for line in kept:
        if room <= 0:
            break
        out.append(cut(line, room))
        room -= len(out[-1])
    return out


def strip_controls(text: str, scanned: int = MAX_SCANNED) -> str:
    """The first ``scanned`` characters of ``text``, NFC, with bidi controls, surrogates,
    private-use and unassigned characters removed and other controls (but the newline)
    turned into spaces."""
    normalized = unicodedata.normalize("NFC", text[:scanned])
    return "".join(
        " " if unicodedata.category(char) in ("Cc", "Zl", "Zp") and char != "\n" else char
        for char in normalized
        if char not in BIDI_CONTROLS and unicodedata.category(char) not in ("Cs", "Co", "Cn")
    )


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def to_latin1(text: str) -> str:
    """``text`` with every character outside Latin-1 replaced (the Helvetica fallback)."""
    out: list[str] = []
    for char in text.translate(_LATIN1_STAND_INS):
        if ord(char) < 256:
            out.append(char)
            continue
        out.append(_nearest_latin1(char))
    return "".join(out)


def _nearest_latin1(char: str) -> str:
    """ "ễ" -> "ê", "ő" -> "o", "ﬁ" -> "fi": accents dropped from the last until Latin-1 fits."""
    decomposed = unicodedata.normalize("NFKD", char)
    base = "".join(c for c in decomposed if not unicodedata.combining(c))
    marks = "".join(c for c in decomposed if unicodedata.combining(c))
    while marks:
        composed = unicodedata.normalize("NFC", base + marks)
        if all(ord(c) < 256 for c in composed):
            return composed
        marks = marks[:-1]
    return base if base and all(ord(c) < 256 for c in base) else "?"


def within_font(cmap: Mapping[int, object]) -> Callable[[str], str]:
    """Replaces the characters the embedded font has no glyph for (CJK in DejaVu) with "?"."""

    def within(text: str) -> str:
        return "".join(c if ord(c) in cmap or c in "\n " else "?" for c in text)

    return within


def use_font(pdf: FPDF, unicode_font: Path | None) -> tuple[str, Callable[[str], str]]:
    """Add the font the document prints with; answers its family and the function that
    makes any text printable in it.

    ``unicode_font`` (a TrueType file; its ``-Bold`` sibling is used for bold when present)
    is embedded when it exists; with ``None`` or a missing file: Helvetica, Latin-1 only.
    """
    if unicode_font is not None and unicode_font.is_file():
        font = "DejaVu"
        bold = unicode_font.with_name(f"{unicode_font.stem}-Bold{unicode_font.suffix}")
        pdf.add_font(font, "", unicode_font)
        pdf.add_font(font, "B", bold if bold.is_file() else unicode_font)
        embedded = pdf.fonts[font.lower()]
        assert isinstance(embedded, TTFFont)
        return font, within_font(embedded.cmap)
    return "Helvetica", to_latin1
