"""A case's fee terms and each party's acceptance of them.

The neutral sets the terms: an hourly rate or a flat fee per session, a deposit due before
the first session, cancellation terms, the currency, a tax rate, and each party's share
(basis points summing to 10,000, i.e. 100 %, with the minor units left over by rounding
going to one named party). Every change raises the version. A party accepts one version,
with the SHA-256 of exactly the terms they were shown; an acceptance of an earlier
version does not count for the current one. Invoices are issued only when every party
with a share accepted the current version."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from rooms.billing.money import check_amount, check_currency
from rooms.cases.cases import Cases, Member
from rooms.cases.roles import NEUTRAL_ROLES
from rooms.errors import Conflict, Forbidden, InvalidInput, NotFound
from rooms.storage.schema import case_members, fee_acceptances, fee_terms
from rooms.storage.store import Store

RATE_KINDS = ("hourly", "per_session")
FULL = 10_000  # basis points in 100 %


@dataclass(frozen=True)
class Share:
    user_id: str
    basis_points: int


@dataclass(frozen=True)
class FeeTerms:
    currency: str
    rate_kind: str  # hourly | per_session
    rate: int  # minor units per hour or per session
    deposit: int  # minor units, due before the first session (0: none)
    cancellation_hours: int  # a session cancelled this long before is not charged
    cancellation_terms: str
    tax_basis_points: int
    payment_days: int  # invoices are due this many days after issue
    seller_name: str
    seller_address: str
    shares: tuple[Share, ...]
    remainder_to: str  # the party who gets the minor units left over by rounding

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["shares"] = [asdict(s) for s in self.shares]
        return data

    def share_of(self, user_id: str) -> int:
        return next((s.basis_points for s in self.shares if s.user_id == user_id), 0)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeeTerms:
        try:
            shares = tuple(
                Share(str(s["user_id"]), _whole(s["basis_points"])) for s in data["shares"]
            )
            terms = cls(
                currency=check_currency(str(data["currency"])),
                rate_kind=str(data["rate_kind"]),
                rate=_whole(data["rate"]),
                deposit=_whole(data.get("deposit", 0)),
                cancellation_hours=_whole(data.get("cancellation_hours", 48)),
                cancellation_terms=str(data.get("cancellation_terms", ""))[:2000],
                tax_basis_points=_whole(data.get("tax_basis_points", 0)),
                payment_days=_whole(data.get("payment_days", 14)),
                seller_name=str(data["seller_name"])[:200],
                seller_address=str(data.get("seller_address", ""))[:500],
                shares=shares,
                remainder_to=str(data["remainder_to"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"Incomplete fee terms: {exc}.", code="invalid_terms") from None
        terms.check()
        return terms

    def check(self) -> None:
        if self.rate_kind not in RATE_KINDS:
            raise InvalidInput("The rate is hourly or per session.", code="invalid_terms")
        for what, value in (("rate", self.rate), ("deposit", self.deposit)):
            if value < 0:
                raise InvalidInput(f"The {what} cannot be negative.", code="invalid_amount")
            check_amount(value, allow_negative=False)
        if not 0 <= self.tax_basis_points <= 5000:
            raise InvalidInput("A tax rate is 0 to 50 %.", code="invalid_terms")
        if not 0 <= self.cancellation_hours <= 24 * 60:
            raise InvalidInput("Cancellation notice is 0 to 60 days.", code="invalid_terms")
        if not 0 <= self.payment_days <= 365:
            raise InvalidInput("Invoices are due within 0 to 365 days.", code="invalid_terms")
        if not self.seller_name.strip():
            raise InvalidInput("Name who invoices (you or your practice).", code="invalid_terms")
        if not self.shares or len(self.shares) > 20:
            raise InvalidInput("Give each party a share.", code="invalid_shares")
        if any(not 0 <= s.basis_points <= FULL for s in self.shares):
            raise InvalidInput("A share is 0 to 100 %.", code="invalid_shares")
        if len({s.user_id for s in self.shares}) != len(self.shares):
            raise InvalidInput("Each party has one share.", code="invalid_shares")
        if sum(s.basis_points for s in self.shares) != FULL:
            raise InvalidInput("The parties' shares must sum to 100 %.", code="invalid_shares")
        if self.share_of(self.remainder_to) <= 0:
            raise InvalidInput(
                "Rounding leftovers go to a party with a share.", code="invalid_shares"
            )

    def digest(self, version: int) -> str:
        """What a party accepts: the terms exactly as shown, and their version."""
        text = json.dumps({"version": version, **self.to_json()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def _whole(value: Any) -> int:
    """An integer as JSON gives it; a fraction (a fractional minor unit) is refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not a whole number")
    return value


@dataclass(frozen=True)
class Agreement:
    """A case's current terms and who accepted them."""

    terms: FeeTerms
    version: int
    accepted: dict[str, float]  # party user id -> when they accepted this version
    billing: dict[str, tuple[str, str]]  # party user id -> (name, address) they gave

    def public(self, viewer: str | None = None) -> dict[str, Any]:
        return {
            "terms": self.terms.to_json(),
            "version": self.version,
            "digest": self.terms.digest(self.version),
            "accepted": self.accepted,
            "complete": self.complete,
            "my_share": self.terms.share_of(viewer) if viewer else None,
        }

    @property
    def complete(self) -> bool:
        return all(s.user_id in self.accepted for s in self.terms.shares if s.basis_points)


class FeeAgreements:
    """Owns ``fee_terms`` and ``fee_acceptances``."""

    def __init__(self, store: Store, cases: Cases, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.cases = cases
        self.clock = clock

    async def get(self, case_id: str) -> Agreement | None:
        async with self.store.connect() as conn:
            return await self.get_in(conn, case_id)

    async def get_in(self, conn: Any, case_id: str) -> Agreement | None:
        row = (
            await conn.execute(sa.select(fee_terms).where(fee_terms.c.case_id == case_id))
        ).first()
        if row is None:
            return None
        accepted = (
            await conn.execute(
                sa.select(fee_acceptances).where(
                    fee_acceptances.c.case_id == case_id,
                    fee_acceptances.c.version == row.version,
                )
            )
        ).all()
        return Agreement(
            FeeTerms.from_json(dict(row.terms)),
            row.version,
            {a.user_id: a.accepted_at for a in accepted},
            {a.user_id: (a.billing_name, a.billing_address) for a in accepted},
        )

    async def set_terms(self, case_id: str, actor: Member, data: dict[str, Any]) -> Agreement:
        if actor.case_id != case_id or actor.role not in NEUTRAL_ROLES:
            raise Forbidden("Only the case's neutral sets its fees.")
        terms = FeeTerms.from_json(data)
        async with self.store.begin() as conn:
            parties = set(
                (
                    await conn.execute(
                        sa.select(case_members.c.user_id).where(
                            case_members.c.case_id == case_id, case_members.c.role == "party"
                        )
                    )
                ).scalars()
            )
            if {s.user_id for s in terms.shares} - parties:
                raise InvalidInput("Shares go to parties of this case only.", code="invalid_shares")
            current = (
                await conn.execute(
                    sa.select(fee_terms.c.version).where(fee_terms.c.case_id == case_id)
                )
            ).scalar()
            values = {
                "terms": terms.to_json(),
                "updated_by": actor.user_id,
                "updated_at": self.clock(),
            }
            if current is None:
                await conn.execute(
                    sa.insert(fee_terms).values(case_id=case_id, version=1, **values)
                )
            else:
                await conn.execute(
                    sa.update(fee_terms)
                    .where(fee_terms.c.case_id == case_id)
                    .values(version=current + 1, **values)
                )
            await self.cases.audit(conn, actor.user_id, "fees.terms", case_id)
        agreement = await self.get(case_id)
        assert agreement is not None
        return agreement

    async def accept(
        self,
        case_id: str,
        member: Member,
        version: int,
        digest: str,
        billing_name: str,
        billing_address: str,
    ) -> Agreement:
        """The party accepts the terms they were shown: ``version`` and ``digest`` must be
        the current ones (terms changed meanwhile need a new look)."""
        if member.case_id != case_id or member.role != "party":
            raise Forbidden("Only a party of the case accepts its fee terms.")
        if not billing_name.strip():
            raise InvalidInput("Give the name to invoice.", code="invalid_input")
        async with self.store.begin() as conn:
            agreement = await self.get_in(conn, case_id)
            if agreement is None:
                raise NotFound("This case has no fee terms yet.")
            if version != agreement.version or digest != agreement.terms.digest(version):
                raise Conflict(
                    "The fee terms changed since you opened them; read them again.",
                    code="terms_changed",
                )
            if member.user_id in agreement.accepted:
                raise Conflict("You accepted these terms already.", code="terms_accepted")
            await conn.execute(
                sa.insert(fee_acceptances).values(
                    case_id=case_id,
                    user_id=member.user_id,
                    version=version,
                    terms_digest=digest,
                    billing_name=billing_name.strip()[:200],
                    billing_address=billing_address.strip()[:500],
                    accepted_at=self.clock(),
                )
            )
            await self.cases.audit(conn, member.user_id, "fees.accept", case_id, version=version)
        found = await self.get(case_id)
        assert found is not None
        return found
