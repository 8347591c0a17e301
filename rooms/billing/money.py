"""Money for fees and invoices: amounts in integer minor units of an ISO 4217 currency.

Amounts are never floats. Every amount is an ``int`` of minor units (cents for USD, yen
for JPY, fils for KWD) with ``abs(amount) <= MAX_MINOR_UNITS``; only credit notes carry
negative amounts, and nothing typed by a person is read as negative.

Rounding, stated once for the whole module: where a result falls between two minor
units (a quantity times a unit price, a tax), it is rounded **half-up on the magnitude**,
i.e. half away from zero: 0.5 cent becomes 1 cent and -0.5 cent becomes -1 cent. So a
credit note line is always the exact negative of the invoice line it reverses.

Sharing a fee between parties (``split_shares``) never rounds: each party gets the floor
of its exact share and the few minor units left over go to one named party, so the shares
always add up to the total.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rooms.errors import InvalidInput

#: ISO 4217 code -> minor-unit exponent (number of decimals).
CURRENCIES: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CAD": 2,
    "AUD": 2,
    "CHF": 2,
    "JPY": 0,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "NZD": 2,
    "SGD": 2,
    "HKD": 2,
    "MXN": 2,
    "BRL": 2,
    "INR": 2,
    "ZAR": 2,
    "PLN": 2,
    "CZK": 2,
    "KWD": 3,
    "BHD": 3,
}

#: Largest magnitude of any amount, in minor units (10**11 dollars for USD).
MAX_MINOR_UNITS = 10**13
#: Basis points in 100%.
WHOLE = 10_000
#: Quantities are counted in thousandths (1.5 hours = 1500); at most a million units.
QUANTITY_SCALE = 1000
MAX_QUANTITY_THOUSANDTHS = 10**9
#: Most parties a fee is split between.
MAX_SHARE_PARTIES = 64
#: Longest text read as an amount, a percentage or a quantity.
MAX_NUMBER_TEXT = 32

_DECIMAL = re.compile(r"([0-9]+)(?:\.([0-9]+))?", re.ASCII)


def check_currency(code: str) -> str:
    """The ISO 4217 code upper-cased, or ``InvalidInput`` if Caucus does not bill in it."""
    if not isinstance(code, str) or len(code) != 3:
        raise InvalidInput("currency must be a three-letter ISO 4217 code", code="bad_currency")
    upper = code.upper()
    if upper not in CURRENCIES:
        raise InvalidInput(f"unsupported currency {upper!r}", code="bad_currency")
    return upper


def check_amount(amount: int, *, allow_negative: bool = True) -> int:
    """``amount`` if it is an ``int`` (not a bool) within ``MAX_MINOR_UNITS``."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise InvalidInput("amount must be an integer number of minor units")
    if amount < 0 and not allow_negative:
        raise InvalidInput("amount must not be negative")
    if abs(amount) > MAX_MINOR_UNITS:
        raise InvalidInput("amount is too large")
    return amount


@dataclass(frozen=True)
class Money:
    """An amount of one currency in integer minor units.

    Negative only on credit notes. Adding or subtracting amounts of different currencies
    is a programming error (``ValueError``); a result out of range is ``InvalidInput``.
    """

    amount: int
    currency: str

    def __post_init__(self) -> None:
        check_amount(self.amount)
        object.__setattr__(self, "currency", check_currency(self.currency))

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def _same_currency(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount + self._same_currency(other).amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount - self._same_currency(other).amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def format(self) -> str:
        """``"USD 1,234.50"``, ``"JPY 1,235"``, ``"KWD 1.250"``, ``"EUR -3.00"``."""
        return f"{self.currency} {format_minor_units(self.amount, self.currency)}"

    def public(self) -> dict[str, object]:
        """The amount as JSON for the API: minor units, the code and the display text."""
        return {"amount": self.amount, "currency": self.currency, "display": self.format()}


def format_minor_units(amount: int, currency: str) -> str:
    """``123450`` USD as ``"1,234.50"`` (no code); a minus sign for negative amounts."""
    exponent = CURRENCIES[check_currency(currency)]
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**exponent)
    text = f"{major:,}"
    if exponent:
        text += f".{minor:0{exponent}d}"
    return sign + text


def parse_amount(text: str | int, currency: str) -> int:
    """Minor units from what a person typed: ``"1234.50"`` USD is ``123450``.

    An ``int`` is taken as minor units already. Text is digits with at most one ``.`` and
    no more decimals than the currency has (``"12.345"`` USD and ``"12.0"`` JPY are refused:
    fractional minor units). Refused too: signs, exponents, ``NaN``, thousands separators,
    empty text, and anything above ``MAX_MINOR_UNITS``.
    """
    exponent = CURRENCIES[check_currency(currency)]
    if isinstance(text, int) and not isinstance(text, bool):
        return check_amount(text, allow_negative=False)
    if not isinstance(text, str):
        raise InvalidInput("amount must be text or an integer number of minor units")
    cleaned = text.strip()
    if not cleaned:
        raise InvalidInput("amount is empty")
    if len(cleaned) > MAX_NUMBER_TEXT:
        raise InvalidInput("amount is too long")
    if cleaned.startswith("-"):
        raise InvalidInput("amount must not be negative")
    match = _DECIMAL.fullmatch(cleaned)
    if match is None:
        raise InvalidInput("amount must be digits with an optional decimal point, like 1234.50")
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > exponent:
        raise InvalidInput(
            f"fractional minor units: {currency.upper()} has {exponent} decimals",
            code="fractional_minor_units",
        )
    amount = int(whole) * 10**exponent + int(fraction.ljust(exponent, "0") or "0")
    return check_amount(amount)


def split_shares(
    total: int, shares: Sequence[tuple[str, int]], remainder_to: str
) -> dict[str, int]:
    """``total`` divided between parties by basis points, adding up exactly to ``total``.

    ``shares`` lists ``(party key, basis points 0..10000)`` summing to exactly 10000. Each
    party gets ``floor(abs(total) * bp / 10000)``; the minor units left over (fewer than
    the number of parties) all go to ``remainder_to``, which must hold a share above 0.
    A negative total (a credit note) is split as its magnitude and every share negated, so
    a credit note reverses each party's share of the invoice exactly.
    """
    check_amount(total)
    if not isinstance(shares, Sequence) or isinstance(shares, str | bytes):
        raise InvalidInput("shares must be a list of (party, basis points)")
    if not shares:
        raise InvalidInput("shares must name at least one party")
    if len(shares) > MAX_SHARE_PARTIES:
        raise InvalidInput(f"at most {MAX_SHARE_PARTIES} parties share a fee")
    basis: dict[str, int] = {}
    for entry in shares:
        if not isinstance(entry, tuple) or len(entry) != 2:
            raise InvalidInput("each share must be a (party, basis points) pair")
        party, points = entry
        if not isinstance(party, str) or not party:
            raise InvalidInput("a share's party must be a non-empty text key")
        if party in basis:
            raise InvalidInput(f"party {party!r} has two shares")
        if not isinstance(points, int) or isinstance(points, bool) or not 0 <= points <= WHOLE:
            raise InvalidInput("a share must be 0 to 10000 basis points (0% to 100%)")
        basis[party] = points
    if sum(basis.values()) != WHOLE:
        raise InvalidInput("shares must sum to 100%", code="shares_not_whole")
    if basis.get(remainder_to, 0) <= 0:
        raise InvalidInput(
            "the remainder must go to a party with a share above 0", code="bad_remainder_party"
        )
    magnitude = abs(total)
    split = {party: magnitude * points // WHOLE for party, points in basis.items()}
    split[remainder_to] += magnitude - sum(split.values())
    if total < 0:
        split = {party: -amount for party, amount in split.items()}
    return split


def percent_to_basis_points(text: str | float | int) -> int:
    """``"33.33"`` (or ``33.33``) percent as ``3333`` basis points: 0 to 100, at most 2 decimals."""
    if isinstance(text, bool):
        raise InvalidInput("percentage must be a number")
    if isinstance(text, int):
        if not 0 <= text <= 100:
            raise InvalidInput("percentage must be between 0 and 100")
        return text * 100
    if isinstance(text, float):
        if not math.isfinite(text):
            raise InvalidInput("percentage must be a finite number")
        # repr gives the shortest text that reads back as the same float: 33.33 -> "33.33"
        text = repr(text)
    if not isinstance(text, str):
        raise InvalidInput("percentage must be a number")
    cleaned = text.strip()
    if not cleaned or len(cleaned) > MAX_NUMBER_TEXT:
        raise InvalidInput("percentage must be a number like 33.33")
    match = _DECIMAL.fullmatch(cleaned)
    if match is None:
        raise InvalidInput("percentage must be a number like 33.33")
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > 2:
        raise InvalidInput("percentage has at most 2 decimals")
    points = int(whole) * 100 + int(fraction.ljust(2, "0"))
    if points > WHOLE:
        raise InvalidInput("percentage must be between 0 and 100")
    return points


def format_percent(basis_points: int) -> str:
    """``3333`` as ``"33.33%"``, ``750`` as ``"7.5%"``, ``2000`` as ``"20%"``."""
    whole, fraction = divmod(basis_points, 100)
    text = str(whole) if not fraction else f"{whole}.{fraction:02d}".rstrip("0")
    return f"{text}%"


def parse_quantity(text: str | int) -> int:
    """A quantity as thousandths: ``"1.5"`` is ``1500``; more than 0, at most 3 decimals.

    An ``int`` is taken as thousandths already.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        return _check_quantity(text)
    if not isinstance(text, str):
        raise InvalidInput("quantity must be a number like 1.5")
    cleaned = text.strip()
    match = _DECIMAL.fullmatch(cleaned) if len(cleaned) <= MAX_NUMBER_TEXT else None
    if match is None:
        raise InvalidInput("quantity must be a number like 1.5")
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > 3:
        raise InvalidInput("quantity has at most 3 decimals")
    return _check_quantity(int(whole) * QUANTITY_SCALE + int(fraction.ljust(3, "0")))


def format_quantity(quantity_thousandths: int) -> str:
    """``1500`` as ``"1.5"``, ``2000`` as ``"2"``, ``1250`` as ``"1.25"``."""
    whole, fraction = divmod(quantity_thousandths, QUANTITY_SCALE)
    return f"{whole:,}" if not fraction else f"{whole:,}.{fraction:03d}".rstrip("0")


def _check_quantity(quantity_thousandths: int) -> int:
    if not 0 < quantity_thousandths <= MAX_QUANTITY_THOUSANDTHS:
        raise InvalidInput("quantity must be more than 0 and at most 1,000,000")
    return quantity_thousandths


def _divide_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half away from zero (``denominator > 0``)."""
    quotient, rest = divmod(abs(numerator), denominator)
    if 2 * rest >= denominator:
        quotient += 1
    return -quotient if numerator < 0 else quotient


def line_total(unit_amount: int, quantity_thousandths: int) -> int:
    """``unit_amount`` times the quantity, rounded half-up on the magnitude to a minor unit.

    ``line_total(333, 1500)`` is 499.5 cents, so 500; ``line_total(-333, 1500)`` is -500.
    Quantity is in thousandths (1.5 hours = 1500) and must be more than 0.
    """
    check_amount(unit_amount)
    if not isinstance(quantity_thousandths, int) or isinstance(quantity_thousandths, bool):
        raise InvalidInput("quantity must be an integer number of thousandths")
    _check_quantity(quantity_thousandths)
    return check_amount(_divide_half_up(unit_amount * quantity_thousandths, QUANTITY_SCALE))


def tax(amount: int, rate_basis_points: int) -> int:
    """Tax on ``amount`` at ``rate_basis_points`` (2000 = 20%), rounded half-up on the magnitude.

    ``tax(1025, 1000)`` is 102.5 cents, so 103; ``tax(-1025, 1000)`` is -103.
    """
    check_amount(amount)
    if (
        not isinstance(rate_basis_points, int)
        or isinstance(rate_basis_points, bool)
        or not 0 <= rate_basis_points <= WHOLE
    ):
        raise InvalidInput("tax rate must be 0 to 10000 basis points (0% to 100%)")
    return check_amount(_divide_half_up(amount * rate_basis_points, WHOLE))
