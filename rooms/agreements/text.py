"""The text of an agreement: a title and numbered clauses, its canonical form and hash.

Clause texts are Markdown. What is signed is the *canonical text*, not any rendering of
it: the title, a blank line, then each clause as ``<n>. <heading>`` on one line and its
body below, clauses separated by one blank line, the whole ending with one newline, in
UTF-8. Before anything is stored the text is normalised so that the canonical form is
what people typed, minus what could hide meaning: Unicode NFC, line breaks as ``\\n``,
tabs as four spaces, no bidirectional controls, no other control characters, no trailing
spaces at line ends, no blank lines around a body, at most one blank line in a row.
The SHA-256 of the canonical text in UTF-8 is the agreement's *document hash*.

Markdown is rendered for the pages with markdown-it-py (CommonMark) with raw HTML off,
images off and links checked by markdown-it's ``validateLink`` (no ``javascript:``,
``vbscript:``, ``file:`` or ``data:`` links): whatever a clause holds, the HTML is
escaped text and a fixed set of tags. The PDF prints the canonical text itself.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt

from rooms.errors import InvalidInput
from rooms.printing.pdf_text import BIDI_CONTROLS

MAX_TITLE = 200
MAX_HEADING = 200
MAX_CLAUSE = 10_000
MAX_CLAUSES = 100
MAX_TOTAL = 50_000

_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).disable("image")
#: The line break, and the zero-width (non-)joiners some scripts need to spell words.
_KEPT_FORMAT = frozenset("\n\u200c\u200d")
_BLANK_RUNS = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Clause:
    """One numbered clause: an optional heading and its Markdown body."""

    heading: str
    body: str

    def public(self, number: int) -> dict[str, Any]:
        return {
            "number": number,
            "heading": self.heading,
            "body": self.body,
            "html": render_markdown(self.body),
        }


@dataclass(frozen=True)
class AgreementText:
    """A version's content, normalised (see the module docstring)."""

    title: str
    clauses: tuple[Clause, ...]

    def canonical(self) -> str:
        parts = [self.title, ""]
        for number, clause in enumerate(self.clauses, start=1):
            head = f"{number}. {clause.heading}" if clause.heading else f"{number}."
            parts.extend([head, clause.body, ""])
        return "\n".join(parts).rstrip("\n") + "\n"

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical().encode("utf-8")).hexdigest()

    def to_json(self) -> bytes:
        return json.dumps(
            {"title": self.title, "clauses": [[c.heading, c.body] for c in self.clauses]},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> AgreementText:
        raw = json.loads(data)
        return cls(raw["title"], tuple(Clause(h, b) for h, b in raw["clauses"]))

    def public(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "clauses": [c.public(n) for n, c in enumerate(self.clauses, start=1)],
            "canonical_text": self.canonical(),
            "document_sha256": self.sha256(),
        }


def render_markdown(body: str) -> str:
    """Safe HTML of a clause body (module docstring)."""
    return _MARKDOWN.render(body)


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\t", "    ")
    kept = "".join(
        char
        for char in text
        if char in _KEPT_FORMAT
        or (
            char not in BIDI_CONTROLS
            and unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
        )
    )
    lines = [line.rstrip() for line in kept.split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n")


def _one_line(text: str) -> str:
    return " ".join(_normalise(text).split())


def agreement_text(title: Any, clauses: Any) -> AgreementText:
    """Validate and normalise what a person typed; ``InvalidInput`` names what is wrong."""
    if not isinstance(title, str):
        raise InvalidInput("The title is text.", code="invalid_agreement")
    clean_title = _one_line(title[: MAX_TITLE * 4])
    if not 1 <= len(clean_title) <= MAX_TITLE:
        raise InvalidInput(
            f"An agreement's title has 1 to {MAX_TITLE} characters.", code="invalid_agreement"
        )
    if not isinstance(clauses, list | tuple) or not 1 <= len(clauses) <= MAX_CLAUSES:
        raise InvalidInput(
            f"An agreement has 1 to {MAX_CLAUSES} clauses.", code="invalid_agreement"
        )
    out: list[Clause] = []
    total = len(clean_title)
    for number, (heading, body) in enumerate(clauses, start=1):
        if not isinstance(heading, str) or not isinstance(body, str):
            raise InvalidInput(f"Clause {number}: heading and text are text.")
        clean_heading = _one_line(heading[: MAX_HEADING * 4])
        clean_body = _normalise(body[: MAX_CLAUSE * 2])
        if len(clean_heading) > MAX_HEADING:
            raise InvalidInput(
                f"Clause {number}: a heading has at most {MAX_HEADING} characters.",
                code="invalid_agreement",
            )
        if not 1 <= len(clean_body) <= MAX_CLAUSE:
            raise InvalidInput(
                f"Clause {number}: a clause has 1 to {MAX_CLAUSE} characters of text.",
                code="invalid_agreement",
            )
        total += len(clean_heading) + len(clean_body)
        out.append(Clause(clean_heading, clean_body))
    if total > MAX_TOTAL:
        raise InvalidInput(
            f"An agreement has at most {MAX_TOTAL} characters in all.", code="invalid_agreement"
        )
    return AgreementText(clean_title, tuple(out))
