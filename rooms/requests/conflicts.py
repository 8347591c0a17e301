"""The conflict-of-interest check: who in a new case request was already named in an
earlier case, request or decision record of the same neutral.

The check only *flags*; the neutral decides. So it errs towards showing a possible match
(a false alarm costs the neutral a glance, a missed conflict can void an award), but it must
not flag every "Smith" against every other "Smith".

Normalisation (``normalize_name``; input capped at 200 characters):

1. ``"Last, First"`` is reordered before punctuation is dropped. The text is split at commas;
   each part loses its leading honorifics (mr mrs ms miss mx dr prof hon judge sir dame rev)
   and trailing suffixes (esq esquire jr sr ii iii iv phd md jd); parts left empty are
   dropped (so ``"Jonathan Smith, Esq."`` is one part). If exactly two parts remain and the
   first is a single word, they are swapped: ``"Smith, John"`` -> ``"john smith"``.
2. Case folded, accents stripped (NFKD, combining marks removed: ``"Núñez"`` -> ``"nunez"``),
   apostrophes removed (``"O'Brien"`` -> ``"obrien"``), any other punctuation -> space.
3. Honorifics are dropped only at the front and suffixes only at the end, so a family
   name that happens to be a title ("Judy Judge") survives.

Person names match (``names_match``) when:

* both have two or more words: the **family names** (last word) match, ``rapidfuzz``
  ``ratio >= 90``; a hyphenated family name also matches on any of its parts
  (``"Mary Smith-Jones"`` ~ ``"Mary Jones"`` ~ ``"Mary Smith"``); **and** the **given
  names** (first word) are compatible: equal, or one is the initial of the other
  (``"j"`` ~ ``"john"``), or one is a prefix of the other at least 3 letters long
  (``"jon"`` ~ ``"jonathan"``), or both are in one group of ``NICKNAMES`` (``"bob"`` ~
  ``"robert"``). Middle names may be on one side only; when both sides have one, the first
  middle names must be compatible too (``"John A. Smith"`` does not match
  ``"John B. Smith"``). A first initial followed by a middle name may stand for someone
  who goes by the middle name: ``"J. Robert Smith"`` ~ ``"Bob Smith"``.
* either has a single word: it must equal the other single word or the other's family
  name (``ratio >= 95``): ``"Smith"`` ~ ``"Dr. John Smith"``.

The reported score is ``rapidfuzz.fuzz.token_set_ratio`` of the normalised strings.

Organisations (``normalize_organisation``) are normalised the same way, plus ``"&"`` ->
``"and"``, dotted abbreviations joined (``"L.L.C."`` -> ``"llc"``) and company forms
dropped from the end while another word remains (llc inc incorporated ltd limited llp lp
corp corporation co company plc gmbh ag sa pc pa pllc, ``"and co"``, ``"and company"``).
They match when ``token_set_ratio >= 90`` **and** they share a word that is not a stop word
(and the of group holdings partners associates law firm office offices services), so
"Smith Law Group" does not match "Jones Law Group" and "Law Offices" matches nothing alone.

``check`` compares every name of the request with every name of every earlier matter, and
every organisation with every organisation (empty ones skipped). A person whose *name* ends
in a company form (a company as a party: ``"Acme Corp"``) is compared as an organisation.

Limits: no phonetic matching (``"Smyth"`` vs ``"Smith"`` is ``ratio`` 80, not flagged);
nicknames only from the small table; names written family-name-first without a comma
(``"Tanaka Hiroshi"``) are read as given-name-first, and a multi-word family name before
a comma (``"Garcia Marquez, Gabriel"``) is not reordered; a change of family name (marriage)
is not seen; transliterations (``"Müller"`` -> ``"muller"``, not ``"mueller"``) differ;
organisation matching is lexical (a subsidiary with another name is not seen).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz

MAX_INPUT = 200
FAMILY_RATIO = 90.0
SINGLE_RATIO = 95.0
ORGANISATION_RATIO = 90.0

HONORIFICS = frozenset("mr mrs ms miss mx dr prof hon judge sir dame rev".split())
SUFFIXES = frozenset("esq esquire jr sr ii iii iv phd md jd".split())
COMPANY_FORMS = frozenset(
    "llc inc incorporated ltd limited llp lp corp corporation co company plc gmbh ag sa pc pa "
    "pllc".split()
)
ORGANISATION_STOP_WORDS = frozenset(
    "and the of group holdings partners associates law firm office offices services".split()
)

#: Groups of given names that are the same person's name (informal and formal forms).
NICKNAMES: tuple[frozenset[str], ...] = tuple(
    frozenset(group.split())
    for group in (
        "bob bobby rob robbie robert",
        "bill billy will willy liam william",
        "liz lizzie beth betty eliza elizabeth",
        "kate katie kathy cathy katherine catherine kathryn",
        "jim jimmy jamie james",
        "mike mick mickey michael",
        "tom tommy thomas",
        "dick rick ricky rich richie richard",
        "peggy maggie meg margaret",
        "tony anthony antony",
        "alex alec alexander",
        "alex sandra alexandra",
        "sam sammy samuel",
        "sam sammy samantha",
        "dan danny daniel",
        "chris christopher",
        "chris christine christina",
        "pat patrick paddy",
        "pat patty patricia",
        "ted teddy ed eddie edward",
        "ed eddie edwin",
        "nick nicky nicholas nicolas",
        "andy drew andrew",
        "ben benny benjamin",
        "joe joey joseph",
        "steve stevie steven stephen",
        "sue susie susan suzanne",
        "jenny jen jennifer",
        "kim kimberly kimberley",
        "jack john johnny jon",
        "jon jonny jonathan",
        "larry lawrence laurence",
        "harry hank henry",
        "chuck charlie charles",
        "dave davey david",
        "greg gregory",
        "fred freddie frederick",
        "gerry jerry gerald gerard",
        "ron ronnie ronald",
        "don donnie donald",
        "matt matthew",
        "nate nathan nathaniel",
        "abby abigail",
        "debbie deb deborah debra",
        "becky rebecca",
        "vicky victoria",
        "val valerie",
    )
)

_APOSTROPHES = re.compile("['\u2019\u02bc`]")
_HYPHENS = re.compile("(?<=[^\\W\\d_])[-\u2010\u2011\u2013](?=[^\\W\\d_])")
_NOT_WORD = re.compile(r"[\W_]+")
_DOTTED_ABBREVIATION = re.compile(r"\b(?:[^\W\d_]\.){2,}")
_HYPHEN_MARK = "\u2010"  # kept inside a word while parsing a name, spaced out in the result
_NAME_WORD = re.compile("[^\\W_]+(?:\u2010[^\\W_]+)*")


@dataclass(frozen=True)
class Person:
    """Someone named in a matter: their name, their role there and their firm or company."""

    name: str
    role: str
    organisation: str = ""


@dataclass(frozen=True)
class Matter:
    """An earlier case, request or decision record of the neutral, with the people named in it."""

    reference: str
    kind: str
    people: tuple[Person, ...]
    date: float


@dataclass(frozen=True)
class Hit:
    """One possible conflict: a name (or organisation) of the new request that matches one
    written in an earlier matter."""

    name: str
    matched: str
    field: str
    role: str
    reference: str
    kind: str
    date: float
    score: float

    def public(self) -> dict[str, Any]:
        """The hit as JSON for the neutral's conflict-check page."""
        return {
            "name": self.name,
            "matched": self.matched,
            "field": self.field,
            "role": self.role,
            "reference": self.reference,
            "kind": self.kind,
            "date": self.date,
            "score": round(self.score, 1),
        }


def _fold(text: str) -> str:
    """Case folded, accents stripped, apostrophes removed; punctuation left in place."""
    decomposed = unicodedata.normalize("NFKD", text[:MAX_INPUT].casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _APOSTROPHES.sub("", plain)


def _words(text: str) -> list[str]:
    return [word for word in _NOT_WORD.sub(" ", text).split() if word]


def _trim(words: list[str], leading: frozenset[str], trailing: frozenset[str]) -> list[str]:
    start, end = 0, len(words)
    while start < end and words[start] in leading:
        start += 1
    while end > start and words[end - 1] in trailing:
        end -= 1
    return words[start:end]


def _name_words(text: str) -> list[str]:
    """The words of a person's name in given-first order; hyphenated words keep a marker."""
    folded = _HYPHENS.sub(_HYPHEN_MARK, _fold(text))
    parts = []
    for part in folded.split(","):
        words = _trim(_NAME_WORD.findall(part), HONORIFICS, SUFFIXES)
        if words:
            parts.append(words)
    if len(parts) == 2 and len(parts[0]) == 1:
        parts.reverse()
    return _trim([word for part in parts for word in part], HONORIFICS, SUFFIXES)


def normalize_name(text: str) -> str:
    """A person's name reduced for comparison (see the module docstring)."""
    return " ".join(_name_words(text)).replace(_HYPHEN_MARK, " ")


def normalize_organisation(text: str) -> str:
    """An organisation's name reduced for comparison (see the module docstring)."""
    folded = _fold(text).replace("&", " and ")
    folded = _DOTTED_ABBREVIATION.sub(lambda found: found.group(0).replace(".", ""), folded)
    words = _trim(_words(folded), HONORIFICS, frozenset())
    while len(words) >= 2:
        if len(words) >= 3 and words[-2] == "and" and words[-1] in ("co", "company"):
            words = words[:-2]
        elif words[-1] in SUFFIXES or words[-1] in COMPANY_FORMS:
            words = words[:-1]
        else:
            break
    return " ".join(words)


def looks_like_organisation(name: str) -> bool:
    """Whether a person's name is a company's (it ends in a company form: "Acme Corp.")."""
    folded = _DOTTED_ABBREVIATION.sub(lambda found: found.group(0).replace(".", ""), _fold(name))
    words = _words(folded)
    return len(words) >= 2 and words[-1] in COMPANY_FORMS


def _given_compatible(a: str, b: str) -> bool:
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    if len(short) == 1:
        return long.startswith(short)
    if len(short) >= 3 and long.startswith(short):
        return True
    return any(a in group and b in group for group in NICKNAMES)


def _family_forms(word: str) -> set[str]:
    parts = word.split(_HYPHEN_MARK)
    return {word.replace(_HYPHEN_MARK, ""), *parts} if len(parts) > 1 else {word}


def _families_match(a: str, b: str, threshold: float) -> bool:
    return any(fuzz.ratio(x, y) >= threshold for x in _family_forms(a) for y in _family_forms(b))


def _given_names(words: list[str]) -> list[str]:
    return [part for word in words[:-1] for part in word.split(_HYPHEN_MARK) if part]


def _givens_compatible(a: list[str], b: list[str]) -> bool:
    if _given_compatible(a[0], b[0]):
        return len(a) < 2 or len(b) < 2 or _given_compatible(a[1], b[1])
    # "J. Robert Smith" goes by his middle name.
    return (len(a[0]) == 1 and len(a) >= 2 and _given_compatible(a[1], b[0])) or (
        len(b[0]) == 1 and len(b) >= 2 and _given_compatible(b[1], a[0])
    )


def names_match(a: str, b: str) -> tuple[bool, float]:
    """Whether two person names may be the same person, and their similarity score (0..100)."""
    words_a, words_b = _name_words(a), _name_words(b)
    if not words_a or not words_b:
        return False, 0.0
    score = float(fuzz.token_set_ratio(normalize_name(a), normalize_name(b)))
    if len(words_a) == 1 or len(words_b) == 1:
        return _families_match(words_a[-1], words_b[-1], SINGLE_RATIO), score
    if not _families_match(words_a[-1], words_b[-1], FAMILY_RATIO):
        return False, score
    return _givens_compatible(_given_names(words_a), _given_names(words_b)), score


def organisations_match(a: str, b: str) -> tuple[bool, float]:
    """Whether two organisation names may be the same organisation, and their score."""
    norm_a, norm_b = normalize_organisation(a), normalize_organisation(b)
    if not norm_a or not norm_b:
        return False, 0.0
    score = float(fuzz.token_set_ratio(norm_a, norm_b))
    shared = (set(norm_a.split()) & set(norm_b.split())) - ORGANISATION_STOP_WORDS
    return score >= ORGANISATION_RATIO and bool(shared), score


def _organisations(person: Person) -> list[str]:
    names = [person.organisation] if person.organisation.strip() else []
    if looks_like_organisation(person.name):
        names.append(person.name)
    return names


def _hit(name: str, matched: str, field: str, score: float, earlier: Person, matter: Matter) -> Hit:
    return Hit(
        name=name,
        matched=matched,
        field=field,
        role=earlier.role,
        reference=matter.reference,
        kind=matter.kind,
        date=matter.date,
        score=score,
    )


def _compare(person: Person, earlier: Person, matter: Matter) -> Iterator[Hit]:
    if not looks_like_organisation(person.name) and not looks_like_organisation(earlier.name):
        matched, score = names_match(person.name, earlier.name)
        if matched:
            yield _hit(person.name, earlier.name, "name", score, earlier, matter)
    for organisation in _organisations(person):
        for earlier_organisation in _organisations(earlier):
            matched, score = organisations_match(organisation, earlier_organisation)
            if matched:
                yield _hit(
                    organisation, earlier_organisation, "organisation", score, earlier, matter
                )


def check(people: Sequence[Person], matters: Iterable[Matter]) -> list[Hit]:
    """Every possible conflict between the people of a new request and the neutral's earlier
    matters, best score first (then the most recent matter first)."""
    hits = [
        hit
        for matter in matters
        for earlier in matter.people
        for person in people
        for hit in _compare(person, earlier, matter)
    ]
    hits.sort(key=lambda hit: (-hit.score, -hit.date, hit.reference, hit.name, hit.matched))
    return hits
