"""Money in minor units: parsing, formatting, sharing fees between parties, rounding."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rooms.billing.money import (
    CURRENCIES,
    MAX_MINOR_UNITS,
    Money,
    check_currency,
    format_percent,
    format_quantity,
    line_total,
    parse_amount,
    parse_quantity,
    percent_to_basis_points,
    split_shares,
    tax,
)
from rooms.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("1234.50", "USD", 123450),
        ("1234.5", "USD", 123450),
        ("1234", "USD", 123400),
        ("0", "USD", 0),
        ("0.01", "EUR", 1),
        ("  12.30 ", "gbp", 1230),
        ("1235", "JPY", 1235),
        ("1.25", "KWD", 1250),
        ("1.250", "BHD", 1250),
        ("007.5", "USD", 750),
        ("100000000000", "USD", MAX_MINOR_UNITS),
        (123450, "USD", 123450),
        (0, "JPY", 0),
    ],
)
def test_parse_amount_reads_what_people_type(text: str | int, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("12.345", "USD", "fractional minor units"),
        ("12.5", "JPY", "fractional minor units"),
        ("12.0", "JPY", "fractional minor units"),
        ("1.2345", "KWD", "fractional minor units"),
        ("-5", "USD", "negative"),
        ("-0.01", "USD", "negative"),
        ("+5", "USD", "digits"),
        ("NaN", "USD", "digits"),
        ("nan", "USD", "digits"),
        ("inf", "USD", "digits"),
        ("1e3", "USD", "digits"),
        ("1E3", "USD", "digits"),
        ("1,234.50", "USD", "digits"),
        ("1 234", "USD", "digits"),
        ("12.", "USD", "digits"),
        (".5", "USD", "digits"),
        ("1.2.3", "USD", "digits"),
        ("0x10", "USD", "digits"),
        ("١٢٣", "USD", "digits"),  # Arabic-Indic digits are not read as numbers
        ("", "USD", "empty"),
        ("   ", "USD", "empty"),
        ("100000000000.01", "USD", "too large"),
        ("9" * 33, "USD", "too long"),
        (-1, "USD", "negative"),
        (MAX_MINOR_UNITS + 1, "USD", "too large"),
        ("12.00", "XXX", "unsupported currency"),
        ("12.00", "US", "three-letter"),
    ],
)
def test_parse_amount_refuses(text: str | int, currency: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_amount(text, currency)


@pytest.mark.parametrize("value", [True, 12.5, None, b"12", [12]])
def test_parse_amount_refuses_other_types(value: object) -> None:
    with pytest.raises(InvalidInput):
        parse_amount(value, "USD")  # type: ignore[arg-type]


def test_currencies_and_their_exponents() -> None:
    assert CURRENCIES["USD"] == 2
    assert CURRENCIES["JPY"] == 0
    assert CURRENCIES["KWD"] == 3
    assert CURRENCIES["BHD"] == 3
    assert check_currency("eur") == "EUR"
    for bad in ("", "XYZ", "EURO", "€", 978):
        with pytest.raises(InvalidInput):
            check_currency(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (123450, "USD", "USD 1,234.50"),
        (0, "USD", "USD 0.00"),
        (5, "EUR", "EUR 0.05"),
        (-300, "EUR", "EUR -3.00"),
        (-5, "GBP", "GBP -0.05"),
        (1235, "JPY", "JPY 1,235"),
        (0, "JPY", "JPY 0"),
        (1250, "KWD", "KWD 1.250"),
        (1234567, "BHD", "BHD 1,234.567"),
        (MAX_MINOR_UNITS, "USD", "USD 100,000,000,000.00"),
    ],
)
def test_format_by_the_currency_decimals(amount: int, currency: str, text: str) -> None:
    assert Money(amount, currency).format() == text


def test_public_form() -> None:
    assert Money(123450, "usd").public() == {
        "amount": 123450,
        "currency": "USD",
        "display": "USD 1,234.50",
    }


def test_arithmetic_in_one_currency() -> None:
    assert Money(150, "USD") + Money(250, "USD") == Money(400, "USD")
    assert Money(150, "USD") - Money(250, "USD") == Money(-100, "USD")
    assert -Money(150, "USD") == Money(-150, "USD")
    assert Money.zero("JPY") == Money(0, "JPY")


def test_mixed_currencies_are_refused() -> None:
    with pytest.raises(ValueError, match="USD with EUR"):
        Money(100, "USD") + Money(100, "EUR")
    with pytest.raises(ValueError, match="USD with EUR"):
        Money(100, "USD") - Money(100, "EUR")
    with pytest.raises(TypeError):
        Money(100, "USD") + 100  # type: ignore[operator]


@pytest.mark.parametrize("amount", [MAX_MINOR_UNITS + 1, -MAX_MINOR_UNITS - 1, 1.5, True, "5"])
def test_money_checks_its_amount(amount: object) -> None:
    with pytest.raises(InvalidInput):
        Money(amount, "USD")  # type: ignore[arg-type]


def test_sums_out_of_range_are_refused() -> None:
    with pytest.raises(InvalidInput, match="too large"):
        Money(MAX_MINOR_UNITS, "USD") + Money(1, "USD")


def test_split_gives_the_leftover_to_the_named_party() -> None:
    shares = [("claimant", 3333), ("respondent", 3333), ("insurer", 3334)]
    assert split_shares(100, shares, "respondent") == {
        "claimant": 33,
        "respondent": 34,  # floor(33.33) + the one cent left over
        "insurer": 33,  # floor(33.34)
    }
    assert split_shares(1000, [("a", 3333), ("b", 6667)], "a") == {"a": 334, "b": 666}
    assert split_shares(101, [("a", 5000), ("b", 5000)], "b") == {"a": 50, "b": 51}


def test_split_of_a_credit_note_mirrors_the_invoice() -> None:
    shares = [("a", 6000), ("b", 4000)]
    invoice = split_shares(999, shares, "a")
    credit = split_shares(-999, shares, "a")
    assert invoice == {"a": 600, "b": 399}
    assert credit == {party: -amount for party, amount in invoice.items()}


def test_split_keeps_parties_with_no_share() -> None:
    assert split_shares(500, [("a", 10000), ("b", 0)], "a") == {"a": 500, "b": 0}
    assert split_shares(0, [("a", 5000), ("b", 5000)], "a") == {"a": 0, "b": 0}


@pytest.mark.parametrize(
    "shares",
    [
        [("a", 5000), ("b", 4999)],
        [("a", 5000), ("b", 5001)],
        [("a", 10000), ("b", 10000)],
        [("a", 0)],
    ],
)
def test_shares_not_summing_to_100_are_refused(shares: list[tuple[str, int]]) -> None:
    with pytest.raises(InvalidInput, match="shares must sum to 100%"):
        split_shares(1000, shares, "a")


@pytest.mark.parametrize(
    ("shares", "remainder_to"),
    [
        ([("a", 5000), ("b", 5000)], "c"),
        ([("a", 10000), ("b", 0)], "b"),
        ([("a", 10000)], ""),
    ],
)
def test_remainder_must_go_to_a_paying_party(
    shares: list[tuple[str, int]], remainder_to: str
) -> None:
    with pytest.raises(InvalidInput, match="remainder"):
        split_shares(1000, shares, remainder_to)


@pytest.mark.parametrize(
    "shares",
    [
        [],
        [("a", 5000), ("a", 5000)],
        [("", 10000)],
        [("a", -1), ("b", 10001)],
        [("a", 5000.0), ("b", 5000)],
        [("a", True), ("b", 9999)],
        [("a",)],
        "ab",
        [(f"p{i}", 0) for i in range(64)] + [("a", 10000)],
    ],
)
def test_bad_share_lists_are_refused(shares: object) -> None:
    with pytest.raises(InvalidInput):
        split_shares(1000, shares, "a")  # type: ignore[arg-type]


def test_split_checks_the_total() -> None:
    with pytest.raises(InvalidInput):
        split_shares(MAX_MINOR_UNITS + 1, [("a", 10000)], "a")
    with pytest.raises(InvalidInput):
        split_shares(10.0, [("a", 10000)], "a")  # type: ignore[arg-type]


@st.composite
def share_lists(draw: st.DrawFn) -> list[tuple[str, int]]:
    """2..8 parties whose basis points add up to 10000 (some may be 0)."""
    parties = draw(st.integers(min_value=1, max_value=8))
    cuts = sorted(draw(st.lists(st.integers(0, 10000), min_size=parties - 1, max_size=parties - 1)))
    bounds = [0, *cuts, 10000]
    return [(f"party-{i}", bounds[i + 1] - bounds[i]) for i in range(parties)]


@given(
    total=st.integers(min_value=-MAX_MINOR_UNITS, max_value=MAX_MINOR_UNITS),
    shares=share_lists(),
    data=st.data(),
)
def test_split_always_adds_up(
    total: int, shares: list[tuple[str, int]], data: st.DataObject
) -> None:
    paying = [party for party, points in shares if points > 0]
    remainder_to = data.draw(st.sampled_from(paying))
    split = split_shares(total, shares, remainder_to)

    assert sum(split.values()) == total
    assert set(split) == {party for party, _ in shares}
    for party, points in shares:
        exact = Fraction(total * points, 10000)
        assert abs(split[party] - exact) <= len(shares)
        # every party but the named one gets its exact share rounded toward zero
        if party != remainder_to:
            assert split[party] == (abs(total) * points // 10000) * (1 if total >= 0 else -1)
    # the leftover (fewer minor units than there are parties) lands on the named party only
    leftover = abs(split[remainder_to]) - abs(total) * dict(shares)[remainder_to] // 10000
    assert 0 <= leftover < len(shares)


@pytest.mark.parametrize(
    ("text", "points"),
    [
        ("33.33", 3333),
        ("60", 6000),
        ("7.5", 750),
        ("0", 0),
        ("100", 10000),
        ("100.00", 10000),
        (" 12.05 ", 1205),
        (33.33, 3333),
        (0.01, 1),
        (60.0, 6000),
        (50, 5000),
    ],
)
def test_percent_to_basis_points(text: str | float | int, points: int) -> None:
    assert percent_to_basis_points(text) == points


@pytest.mark.parametrize(
    "text",
    [
        "33.333",
        "100.01",
        "101",
        "-1",
        "",
        "abc",
        "1e2",
        "NaN",
        33.333,
        float("nan"),
        float("inf"),
        -0.5,
        101,
        -1,
        True,
        None,
        "60%",
    ],
)
def test_percent_refuses(text: object) -> None:
    with pytest.raises(InvalidInput):
        percent_to_basis_points(text)  # type: ignore[arg-type]


def test_format_percent() -> None:
    assert [format_percent(p) for p in (3333, 750, 2000, 0, 10000, 5)] == [
        "33.33%",
        "7.5%",
        "20%",
        "0%",
        "100%",
        "0.05%",
    ]


def test_quantities_in_thousandths() -> None:
    assert parse_quantity("1.5") == 1500
    assert parse_quantity("2") == 2000
    assert parse_quantity("0.001") == 1
    assert parse_quantity(1250) == 1250
    for bad in ("0", "0.0001", "-1", "1e3", "", "1000000.001", 0, -5, 2.5, True):
        with pytest.raises(InvalidInput):
            parse_quantity(bad)  # type: ignore[arg-type]
    assert [format_quantity(q) for q in (1500, 2000, 1250, 1, 1_000_000_000)] == [
        "1.5",
        "2",
        "1.25",
        "0.001",
        "1,000,000",
    ]


@pytest.mark.parametrize(
    ("unit", "quantity", "total"),
    [
        (10000, 1000, 10000),  # 1 x 100.00
        (10000, 1500, 15000),  # 1.5 hours at 100.00
        (333, 1500, 500),  # 499.5 cents rounds half up to 500
        (333, 1499, 499),  # 499.167 rounds down
        (1, 500, 1),  # half a cent rounds up
        (1, 499, 0),
        (-333, 1500, -500),  # a credit note line is the exact negative
        (-1, 500, -1),
        (12345, 1, 12),  # 12.345 -> 12
        (0, 1000, 0),
    ],
)
def test_line_total_rounds_half_up(unit: int, quantity: int, total: int) -> None:
    assert line_total(unit, quantity) == total


def test_line_total_refuses_bad_input() -> None:
    for unit, quantity in [(100, 0), (100, -1000), (100, 10**9 + 1), (1.5, 1000), (100, 1.5)]:
        with pytest.raises(InvalidInput):
            line_total(unit, quantity)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="too large"):
        line_total(MAX_MINOR_UNITS, 2000)


@pytest.mark.parametrize(
    ("amount", "rate", "result"),
    [
        (10000, 2000, 2000),  # 20% of 100.00
        (1025, 1000, 103),  # 102.5 -> 103 (half up)
        (1024, 1000, 102),
        (-1025, 1000, -103),  # credit notes mirror invoices
        (999, 825, 82),  # 8.25% of 9.99 = 82.4175 -> 82
        (1000, 0, 0),
        (1000, 10000, 1000),
        (1, 5000, 1),  # half a cent rounds up
    ],
)
def test_tax_rounds_half_up(amount: int, rate: int, result: int) -> None:
    assert tax(amount, rate) == result


@given(amount=st.integers(-MAX_MINOR_UNITS, MAX_MINOR_UNITS), rate=st.integers(0, 10000))
def test_tax_is_the_nearest_minor_unit_and_symmetric(amount: int, rate: int) -> None:
    result = tax(amount, rate)
    exact = Fraction(amount * rate, 10000)
    assert abs(result - exact) <= Fraction(1, 2)
    assert tax(-amount, rate) == -result


@pytest.mark.parametrize("rate", [-1, 10001, 20.0, True])
def test_tax_refuses_bad_rates(rate: object) -> None:
    with pytest.raises(InvalidInput):
        tax(1000, rate)  # type: ignore[arg-type]
