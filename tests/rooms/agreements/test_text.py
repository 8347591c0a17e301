"""The text of an agreement: normalisation, the canonical form and its hash, safe
Markdown, comparing versions."""

from __future__ import annotations

import hashlib

import pytest

from rooms.agreements.diff import compare
from rooms.agreements.text import MAX_CLAUSES, AgreementText, agreement_text
from rooms.errors import InvalidInput


def test_canonical_text_and_its_hash() -> None:
    text = agreement_text(
        "  Settlement   of the\tlease ",
        [
            ("Payment", "Tenant pays 100.\r\n\r\n\r\n\r\nWithin 30 days.  "),
            ("", "Costs: each own."),
        ],
    )
    canonical = (
        "Settlement of the lease\n\n1. Payment\nTenant pays 100.\n\nWithin 30 days.\n\n"
        "2.\nCosts: each own.\n"
    )
    assert text.canonical() == canonical
    assert text.sha256() == hashlib.sha256(canonical.encode()).hexdigest()
    assert AgreementText.from_json(text.to_json()) == text


def test_hidden_characters_never_reach_the_signed_text() -> None:
    text = agreement_text("Deal", [("", "Pay \u202eEUR 001\u202c now\x07, e\u0301\u200b")])
    assert text.clauses[0].body == "Pay EUR 001 now, é"
    # joiners some scripts need stay
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    assert agreement_text("T", [("", persian)]).clauses[0].body == persian


@pytest.mark.parametrize(
    ("title", "clauses"),
    [
        ("", [("", "x")]),
        ("T" * 201, [("", "x")]),
        ("T", []),
        ("T", [("", "  \n ")]),
        ("T", [("H" * 201, "x")]),
        ("T", [("", "x")] * (MAX_CLAUSES + 1)),
        ("T", [("", "x" * 10_001)]),
        ("T", [("", "x" * 9_000)] * 6),
        (None, [("", "x")]),
    ],
)
def test_bad_texts_are_refused(title: object, clauses: list) -> None:
    with pytest.raises(InvalidInput):
        agreement_text(title, clauses)


def test_markdown_is_rendered_without_raw_html_scripts_or_images() -> None:
    text = agreement_text(
        "T",
        [
            (
                "",
                "**Pay** <script>alert(1)</script> <img src=x onerror=alert(1)> "
                "[link](javascript:alert(1)) ![pic](https://evil.example/x.png) "
                "[ok](https://example.org)",
            )
        ],
    )
    html = text.public()["clauses"][0]["html"]
    assert "<strong>Pay</strong>" in html
    assert "<script" not in html and "<img" not in html
    assert 'href="javascript' not in html.lower()  # left as the text it was
    assert "&lt;script&gt;" in html
    assert '<a href="https://example.org">ok</a>' in html


def test_compare_says_what_changed() -> None:
    old = agreement_text("Deal", [("Pay", "100 within 30 days"), ("", "Costs each own")])
    new = agreement_text(
        "Deal", [("Pay", "120 within 30 days"), ("", "Costs each own"), ("", "New")]
    )
    diff = compare(old, new, "version 1", "version 2")
    assert diff["changed_clauses"] == [1] and diff["added_clauses"] == [3]
    assert diff["removed_clauses"] == [] and not diff["title_changed"]
    assert {"op": "delete", "text": "100 within 30 days"} in diff["lines"]
    assert {"op": "insert", "text": "120 within 30 days"} in diff["lines"]
    assert "-100 within 30 days\n+120 within 30 days" in diff["unified"]
    assert compare(old, old, "a", "b")["unified"] == ""
