"""The conflict-of-interest check: name and organisation matching, and check() over matters."""

from __future__ import annotations

import pytest

from rooms.requests.conflicts import (
    Hit,
    Matter,
    Person,
    check,
    looks_like_organisation,
    names_match,
    normalize_name,
    normalize_organisation,
    organisations_match,
)

# (first name, second name, expected to match)
NAME_PAIRS = [
    # the brief's fixed points
    ("Jonathan Smith, Esq.", "Jon Smith", True),
    ("Jane Smith", "Jon Smith", False),
    # honorifics and suffixes
    ("Dr. John Smith", "John Smith", True),
    ("Mrs. Mary O'Brien", "mary obrien", True),
    ("Prof. Dame Ann Lee", "Ann Lee", True),
    ("John Smith Jr.", "John Smith", True),
    ("John Smith, Jr., Esq.", "John Smith", True),
    ("John Smith III", "John Smith PhD", True),
    ("Judge Judy Judge", "Judy Judge", True),
    # initials
    ("J. Smith", "John Smith", True),
    ("J Smith", "Jane Smith", True),
    ("K. Smith", "John Smith", False),
    ("John A. Smith", "John Smith", True),
    ("John A. Smith", "John Alan Smith", True),
    ("John A. Smith", "John B. Smith", False),
    ("J. Robert Smith", "Bob Smith", True),
    # prefixes and nicknames
    ("Jon Smith", "Jonathan Smith", True),
    ("Jo Smith", "Jonathan Smith", False),
    ("Bob Jones", "Robert Jones", True),
    ("Bill Gates", "William Gates", True),
    ("Liz Taylor", "Elizabeth Taylor", True),
    ("Peggy Olson", "Margaret Olson", True),
    ("Mike Ross", "Michael Ross", True),
    ("Ted Lasso", "Edward Lasso", True),
    ("Steve Rogers", "Stephen Rogers", True),
    ("Bob Jones", "William Jones", False),
    # unrelated people sharing a family name, or a given name
    ("Alice Smith", "Mark Smith", False),
    ("John Smith", "John Smyth", False),
    ("John Smith", "John Brown", False),
    # accents, apostrophes, hyphens
    ("José Núñez", "Jose Nunez", True),
    ("Zoë Brontë", "ZOE BRONTE", True),
    ("Mary Smith-Jones", "Mary Smith Jones", True),
    ("Mary Smith-Jones", "Mary Jones", True),
    ("Mary Smith-Jones", "Mary Smith", True),
    ("Mary Smith-Jones", "Mary Brown-Jones", True),
    ("Mary Smith-Jones", "Mary Brown-Green", False),
    ("Jean-Luc Picard", "Jean Picard", True),
    ("Jean-Luc Picard", "J. L. Picard", True),
    # "Last, First"
    ("Smith, John", "John Smith", True),
    ("Smith, Dr. John", "John Smith", True),
    ("Smith Jr., John", "J. Smith", True),
    ("Smith, John", "Smith John", False),  # read as family name "john"
    # single words
    ("Smith", "Dr. John Smith", True),
    ("Smith", "Smith", True),
    ("Madonna", "Madonna Louise Ciccone", False),
    ("Smith", "Smithers", False),
    # empty and degenerate input
    ("", "John Smith", False),
    ("", "", False),
    ("   ,, ..", "John Smith", False),
    ("Esq.", "John Smith", False),
    # very long input is capped at 200 characters, still compared
    ("John " + "x" * 500, "John " + "x" * 194, True),
    ("John " + "x" * 500 + " Smith", "John Smith", False),
]


@pytest.mark.parametrize(("a", "b", "expected"), NAME_PAIRS)
def test_names_match(a: str, b: str, expected: bool) -> None:
    matched, score = names_match(a, b)
    assert matched is expected, (normalize_name(a), normalize_name(b), score)
    assert 0.0 <= score <= 100.0
    assert names_match(b, a)[0] is expected  # symmetric


ORGANISATION_PAIRS = [
    ("Smith & Jones LLP", "Smith and Jones", True),
    ("Acme Corp.", "ACME Corporation", True),
    ("Acme Corp", "Apex Corp", False),
    ("Acme, Inc.", "Acme Incorporated", True),
    ("Acme L.L.C.", "acme llc", True),
    ("Acme Ltd", "Acme Limited", True),
    ("Müller GmbH", "Muller AG", True),
    ("Smith & Co.", "Smith and Company Ltd", True),
    ("The Acme Company", "Acme", True),
    ("Acme Holdings", "Acme", True),
    ("Smith Law Group", "Jones Law Group", False),
    ("Law Offices", "The Law Office", False),  # only stop words in common
    ("Baker McKenzie", "Baker Botts", False),
    ("Northwind Traders", "Northwind Traders Inc.", True),
    ("", "Acme", False),
    ("Inc.", "Ltd.", False),
    ("Acme " + "x" * 400, "Acme " + "x" * 195, True),
]


@pytest.mark.parametrize(("a", "b", "expected"), ORGANISATION_PAIRS)
def test_organisations_match(a: str, b: str, expected: bool) -> None:
    matched, score = organisations_match(a, b)
    assert matched is expected, (normalize_organisation(a), normalize_organisation(b), score)
    assert organisations_match(b, a)[0] is expected


def test_enough_pairs_are_checked() -> None:
    assert len(NAME_PAIRS) + len(ORGANISATION_PAIRS) >= 34
    assert {expected for _, _, expected in NAME_PAIRS} == {True, False}


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Jonathan Smith, Esq.", "jonathan smith"),
        ("Smith, John", "john smith"),
        ("  Dr.   José   Núñez-García  ", "jose nunez garcia"),
        ("Mr. O\u2019Brien", "obrien"),
        ("Judge Judy Judge", "judy judge"),
        ("John Smith Jr. PhD", "john smith"),
        ("", ""),
        ("x" * 1000, "x" * 200),
    ],
)
def test_normalize_name(raw: str, normalised: str) -> None:
    assert normalize_name(raw) == normalised


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Smith & Jones LLP", "smith and jones"),
        ("ACME Corporation", "acme"),
        ("Smith & Co.", "smith"),
        ("Acme, L.L.C.", "acme"),
        ("Société Générale S.A.", "societe generale"),
        ("Co", "co"),
    ],
)
def test_normalize_organisation(raw: str, normalised: str) -> None:
    assert normalize_organisation(raw) == normalised


def test_score_is_the_token_set_ratio_of_the_normalised_names() -> None:
    assert names_match("Smith, John", "Dr. John Smith")[1] == 100.0
    matched, score = names_match("Jonathan Smith, Esq.", "Jon Smith")
    assert matched and 70.0 < score < 100.0


def test_company_names_are_recognised() -> None:
    assert looks_like_organisation("Acme Corp.")
    assert looks_like_organisation("Acme, L.L.C.")
    assert not looks_like_organisation("John Smith")
    assert not looks_like_organisation("Corp")


MATTERS = [
    Matter(
        reference="Harbor Lane lease",
        kind="case",
        people=(
            Person("Jonathan Smith, Esq.", "attorney", "Smith & Jones LLP"),
            Person("Harbor Lane Properties LLC", "party"),
            Person("Maria Lopez", "party"),
        ),
        date=1_700_000_000.0,
    ),
    Matter(
        reference="REQ-3F9A2C",
        kind="request",
        people=(Person("Robert Smith", "requester", "Acme Corporation"),),
        date=1_750_000_000.0,
    ),
    Matter(
        reference="Decision 2024-7",
        kind="record",
        people=(Person("Chen Wei", "party", "Northwind Traders"),),
        date=1_720_000_000.0,
    ),
]


def test_check_lists_every_hit_best_first() -> None:
    people = [
        Person("Jon Smith", "attorney", "Smith and Jones"),
        Person("Harbor Lane Properties, L.L.C.", "party"),
    ]
    hits = check(people, MATTERS)
    assert [(hit.field, hit.name, hit.matched, hit.reference, hit.role) for hit in hits] == [
        (
            "organisation",
            "Harbor Lane Properties, L.L.C.",
            "Harbor Lane Properties LLC",
            "Harbor Lane lease",
            "party",
        ),
        ("organisation", "Smith and Jones", "Smith & Jones LLP", "Harbor Lane lease", "attorney"),
        ("name", "Jon Smith", "Jonathan Smith, Esq.", "Harbor Lane lease", "attorney"),
    ]
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert hits[0].score == 100.0
    assert hits[-1].kind == "case" and hits[-1].date == 1_700_000_000.0
    # "Jon Smith" is not "Robert Smith"
    assert all(hit.reference != "REQ-3F9A2C" for hit in hits)


def test_check_ties_put_the_most_recent_matter_first() -> None:
    hits = check([Person("Bob Smith", "party", "ACME Corp.")], MATTERS)
    assert [(hit.field, hit.reference) for hit in hits] == [
        ("organisation", "REQ-3F9A2C"),
        ("name", "REQ-3F9A2C"),
    ]
    assert hits[0].role == "requester"


def test_check_finds_nothing_for_unrelated_people() -> None:
    people = [Person("Alice Brown", "party", "Globex Inc."), Person("Smith", "party", "")]
    hits = check(people, MATTERS)
    # A bare family name is flagged against both Smiths; nothing else is.
    assert {(hit.name, hit.matched) for hit in hits} == {
        ("Smith", "Jonathan Smith, Esq."),
        ("Smith", "Robert Smith"),
    }
    assert check([Person("Alice Brown", "party", "Globex Inc.")], MATTERS) == []
    assert check([], MATTERS) == []
    assert check(people, []) == []


def test_empty_organisations_are_not_compared() -> None:
    matters = [Matter("M1", "case", (Person("Ann Lee", "party", ""),), 1.0)]
    assert check([Person("Bo Chen", "party", "")], matters) == []


def test_hit_public_form() -> None:
    hit = Hit(
        name="Jon Smith",
        matched="Jonathan Smith, Esq.",
        field="name",
        role="attorney",
        reference="Harbor Lane lease",
        kind="case",
        date=1_700_000_000.0,
        score=78.26086,
    )
    assert hit.public() == {
        "name": "Jon Smith",
        "matched": "Jonathan Smith, Esq.",
        "field": "name",
        "role": "attorney",
        "reference": "Harbor Lane lease",
        "kind": "case",
        "date": 1_700_000_000.0,
        "score": 78.3,
    }
