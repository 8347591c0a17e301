"""Cases, their members and roles, and invitation links.

A case belongs to the neutral who opened it. Everybody else enters a case through a
single-use, expiring invitation that fixes their role in that case.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from rooms.accounts.accounts import Accounts, User
from rooms.accounts.addresses import optional_email
from rooms.accounts.sessions import token_hash
from rooms.cases.roles import INVITABLE_ROLES, NEUTRAL_ROLES
from rooms.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound
from rooms.storage.outbox import enqueue
from rooms.storage.schema import audit_log, case_members, cases, invitations, new_id, users
from rooms.storage.store import Store

PROCESSES = ("mediation", "arbitration", "other")


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    process: str
    case_type: str
    description: str
    intake: dict[str, Any]
    neutral_id: str
    status: str
    created_at: float
    mail_reference: str | None = None
    title_in_mail: bool = False

    @property
    def mail_name(self) -> str | None:
        """How mails name the case (None: they say "a case on <site>")."""
        if self.title_in_mail:
            return self.title
        return self.mail_reference

    def mail_params(self) -> dict[str, Any]:
        """The case's part of a mail's parameters."""
        name = self.mail_name
        return {"case_ref": name} if name else {}

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "process": self.process,
            "case_type": self.case_type,
            "description": self.description,
            "intake": self.intake,
            "neutral_id": self.neutral_id,
            "status": self.status,
            "created_at": self.created_at,
            "mail_reference": self.mail_reference,
            "title_in_mail": self.title_in_mail,
        }


@dataclass(frozen=True)
class Member:
    case_id: str
    user_id: str
    role: str
    display_name: str
    represents: str | None

    def public(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "display_name": self.display_name,
            "role": self.role,
            "represents": self.represents,
        }


def _case(row: sa.Row) -> Case:
    return Case(
        row.id,
        row.title,
        row.process,
        row.case_type,
        row.description,
        dict(row.intake or {}),
        row.neutral_id,
        row.status,
        row.created_at,
        row.mail_reference,
        bool(row.title_in_mail),
    )


def _member(row: sa.Row) -> Member:
    return Member(row.case_id, row.user_id, row.role, row.display_name, row.represents)


class Cases:
    """Owns cases, case membership, invitations and the audit trail of case actions."""

    def __init__(
        self, store: Store, accounts: Accounts, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.clock = clock

    async def audit(
        self, conn: Any, actor_id: str | None, action: str, case_id: str | None, **detail: Any
    ) -> None:
        await conn.execute(
            sa.insert(audit_log).values(
                at=self.clock(), actor_id=actor_id, action=action, case_id=case_id, detail=detail
            )
        )

    # -- cases ---------------------------------------------------------------------------
    async def open_case(self, neutral: User, intake: dict[str, Any]) -> Case:
        if neutral.role != "neutral":
            raise Forbidden("Only a neutral can open a case.")
        async with self.store.begin() as conn:
            case_id = await self.open_case_in(conn, neutral, intake)
        return await self.get(case_id)

    async def open_case_in(self, conn: Any, neutral: User, intake: dict[str, Any]) -> str:
        """Open the case inside the caller's transaction (a request becoming a case opens
        it with its invitations and first session, all or nothing); answers its id."""
        case_id = new_id()
        now = self.clock()
        await conn.execute(
            sa.insert(cases).values(
                id=case_id,
                title=intake["title"],
                process=intake["process"],
                case_type=intake.get("case_type", ""),
                description=intake.get("description", ""),
                intake=intake,
                neutral_id=neutral.id,
                status="open",
                created_at=now,
                mail_reference=None,
                title_in_mail=False,
            )
        )
        await conn.execute(
            sa.insert(case_members).values(
                case_id=case_id,
                user_id=neutral.id,
                role="neutral",
                display_name=neutral.display_name,
                represents=None,
                joined_at=now,
            )
        )
        await self.audit(conn, neutral.id, "case.open", case_id)
        return case_id

    async def set_mail_naming(
        self, case_id: str, actor: Member, reference: str | None, title_in_mail: bool
    ) -> Case:
        """How mails about the case name it: a reference of the neutral's choosing, or
        the title when the neutral allows it; neither: "a case on <site>"."""
        if actor.case_id != case_id or actor.role not in NEUTRAL_ROLES:
            raise Forbidden("Only the case's neutral decides how mails name it.")
        text = " ".join((reference or "").split())[:100] or None
        async with self.store.begin() as conn:
            await conn.execute(
                sa.update(cases)
                .where(cases.c.id == case_id)
                .values(mail_reference=text, title_in_mail=title_in_mail)
            )
            await self.audit(conn, actor.user_id, "case.mail_naming", case_id)
        return await self.get(case_id)

    async def get(self, case_id: str) -> Case:
        async with self.store.connect() as conn:
            return await self.get_in(conn, case_id)

    async def get_in(self, conn: Any, case_id: str) -> Case:
        """The case as the caller's transaction sees it."""
        row = (await conn.execute(sa.select(cases).where(cases.c.id == case_id))).first()
        if row is None:
            raise NotFound("No such case.")
        return _case(row)

    async def cases_of(self, user_id: str) -> list[tuple[Case, str]]:
        async with self.store.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(cases, case_members.c.role.label("my_role"))
                    .join(case_members, case_members.c.case_id == cases.c.id)
                    .where(case_members.c.user_id == user_id)
                    .order_by(cases.c.created_at.desc())
                )
            ).all()
        return [(_case(r), r.my_role) for r in rows]

    async def members(self, case_id: str) -> list[Member]:
        async with self.store.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(case_members)
                    .where(case_members.c.case_id == case_id)
                    .order_by(case_members.c.joined_at)
                )
            ).all()
        return [_member(r) for r in rows]

    async def membership(self, case_id: str, user_id: str) -> Member | None:
        async with self.store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(case_members).where(
                        case_members.c.case_id == case_id, case_members.c.user_id == user_id
                    )
                )
            ).first()
        return _member(row) if row else None

    async def require_role(self, case_id: str, user_id: str, roles: Iterable[str]) -> Member:
        """The caller's membership when it has one of ``roles``; otherwise Forbidden.

        A case the caller does not belong to answers the same as a case that does not
        exist, so case ids cannot be probed.
        """
        member = await self.membership(case_id, user_id)
        if member is None:
            raise NotFound("No such case.")
        if member.role not in tuple(roles):
            raise Forbidden("Your role in this case does not allow this.")
        return member

    # -- presence and mail choices ---------------------------------------------------------
    async def seen(self, pairs: Iterable[tuple[str, str]]) -> None:
        """The members (case id, user id) are online in their cases now."""
        pairs = list(pairs)
        if not pairs:
            return
        now = self.clock()
        async with self.store.begin() as conn:
            for case_id, user_id in pairs:
                await conn.execute(
                    sa.update(case_members)
                    .where(case_members.c.case_id == case_id, case_members.c.user_id == user_id)
                    .values(seen_at=now)
                )

    async def digest_choices(self, user_id: str) -> list[dict[str, Any]]:
        """The caller's cases and whether each sends them activity digests."""
        async with self.store.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(cases.c.id, cases.c.title, case_members.c.digests)
                    .join(case_members, case_members.c.case_id == cases.c.id)
                    .where(case_members.c.user_id == user_id)
                    .order_by(cases.c.created_at.desc())
                )
            ).all()
        return [{"case_id": r.id, "title": r.title, "digests": bool(r.digests)} for r in rows]

    async def set_digests(self, case_id: str, user_id: str, enabled: bool) -> None:
        async with self.store.begin() as conn:
            result = await conn.execute(
                sa.update(case_members)
                .where(case_members.c.case_id == case_id, case_members.c.user_id == user_id)
                .values(digests=enabled)
            )
        if result.rowcount != 1:
            raise NotFound("No such case.")

    # -- invitations ---------------------------------------------------------------------
    async def invite(
        self,
        case_id: str,
        inviter: Member,
        *,
        role: str,
        display_name: str,
        represents: str | None,
        expires_in_hours: float,
        email: str | None = None,
    ) -> tuple[dict[str, Any], str]:
        """A new invitation link; with ``email``, the link is also mailed there (the mail
        commits with the invitation)."""
        address = optional_email(email)
        if inviter.role not in NEUTRAL_ROLES:
            raise Forbidden("Only the case's neutral can invite participants.")
        if role not in INVITABLE_ROLES:
            raise InvalidInput(f"Unknown role {role!r}.", code="invalid_role")
        if role == "counsel":
            if not represents:
                raise InvalidInput("Name the party this counsel represents.", code="invalid_input")
            party = await self.membership(case_id, represents)
            if party is None or party.role != "party":
                raise InvalidInput("Counsel must represent a party of this case.")
        elif represents:
            raise InvalidInput("Only counsel represents a party.")
        case = await self.get(case_id)
        if case.status != "open":
            raise Conflict("This case is closed.", code="case_closed")
        async with self.store.begin() as conn:
            row, token = await self.invite_in(
                conn,
                case,
                inviter.user_id,
                role=role,
                display_name=display_name,
                represents=represents,
                expires_at=self.clock() + expires_in_hours * 3600,
                email=address,
            )
        return _invitation_public(row), token

    async def invite_in(
        self,
        conn: Any,
        case: Case,
        inviter_id: str,
        *,
        role: str,
        display_name: str,
        represents: str | None,
        expires_at: float,
        email: str | None,
    ) -> tuple[dict[str, Any], str]:
        """Write an invitation (and its mail, with an address) in the caller's transaction.
        ``represents`` of counsel may name the invitation of a party who has not joined
        yet: it becomes that party's account when they accept."""
        token = secrets.token_urlsafe(32)
        row: dict[str, Any] = {
            "id": new_id(),
            "token_hash": token_hash(token),
            "case_id": case.id,
            "role": role,
            "display_name": display_name,
            "represents": represents,
            "created_by": inviter_id,
            "created_at": self.clock(),
            "expires_at": expires_at,
            "used_at": None,
            "used_by": None,
            "email": email,
            "revoked_at": None,
        }
        await conn.execute(sa.insert(invitations).values(**row))
        await self.audit(conn, inviter_id, "invitation.create", case.id, role=role)
        if email is not None:
            await self._mail_invitation(conn, case, email, token, role, expires_at)
        return row, token

    async def _mail_invitation(
        self, conn: Any, case: Case, address: str, token: str, role: str, expires_at: float
    ) -> None:
        # The mail names no one and nothing of the case: the role, the link and the name
        # the neutral chose for mails.
        params = {"path": f"/invite/{token}", "role": role, "expires_at": expires_at}
        await enqueue(
            conn, "invitation", address, {**params, **case.mail_params()}, now=self.clock()
        )

    async def _open_invitation(self, conn: Any, case_id: str, invitation_id: str) -> sa.Row:
        row = (
            await conn.execute(
                sa.select(invitations).where(
                    invitations.c.id == invitation_id, invitations.c.case_id == case_id
                )
            )
        ).first()
        if row is None:
            raise NotFound("No such invitation.")
        if row.used_at is not None:
            raise Conflict("This invitation was accepted already.", code="invitation_used")
        if row.revoked_at is not None:
            raise Conflict("This invitation was revoked.", code="invitation_revoked")
        return row

    async def resend_invitation(
        self, case_id: str, invitation_id: str, actor: Member, expires_in_hours: float
    ) -> dict[str, Any]:
        """Mail the invitation again with a new link (the old link stops working: only
        the link's hash is kept, so the old one cannot be sent again)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        case = await self.get(case_id)
        async with self.store.begin() as conn:
            row = await self._open_invitation(conn, case_id, invitation_id)
            if row.email is None:
                raise Conflict(
                    "This invitation was not sent by email; create a new one with an address.",
                    code="invitation_without_email",
                )
            expires_at = now + expires_in_hours * 3600
            await conn.execute(
                sa.update(invitations)
                .where(invitations.c.id == invitation_id)
                .values(token_hash=token_hash(token), expires_at=expires_at)
            )
            await self.audit(conn, actor.user_id, "invitation.resend", case_id)
            await self._mail_invitation(conn, case, row.email, token, row.role, expires_at)
            updated = (
                await conn.execute(sa.select(invitations).where(invitations.c.id == invitation_id))
            ).one()
        return _invitation_public(updated._asdict())

    async def revoke_invitation(
        self, case_id: str, invitation_id: str, actor: Member
    ) -> dict[str, Any]:
        """The link stops working at once."""
        async with self.store.begin() as conn:
            await self._open_invitation(conn, case_id, invitation_id)
            await conn.execute(
                sa.update(invitations)
                .where(invitations.c.id == invitation_id)
                .values(revoked_at=self.clock())
            )
            await self.audit(conn, actor.user_id, "invitation.revoke", case_id)
            updated = (
                await conn.execute(sa.select(invitations).where(invitations.c.id == invitation_id))
            ).one()
        return _invitation_public(updated._asdict())

    async def invitations(self, case_id: str) -> list[dict[str, Any]]:
        async with self.store.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(invitations)
                    .where(invitations.c.case_id == case_id)
                    .order_by(invitations.c.created_at)
                )
            ).all()
        return [_invitation_public(r._asdict()) for r in rows]

    async def _valid_invitation(self, conn: Any, token: str) -> sa.Row:
        if not token or len(token) > 200:
            raise Gone("This invitation link is not valid.", code="invitation_invalid")
        row = (
            await conn.execute(
                sa.select(invitations, cases.c.title, cases.c.status)
                .join(cases, cases.c.id == invitations.c.case_id)
                .where(invitations.c.token_hash == token_hash(token))
            )
        ).first()
        if row is None or row.used_at is not None or row.revoked_at is not None:
            raise Gone("This invitation link is not valid.", code="invitation_invalid")
        if row.expires_at < self.clock():
            raise Gone("This invitation link has expired.", code="invitation_invalid")
        if row.status != "open":
            raise Gone("This case is closed.", code="invitation_invalid")
        return row

    async def describe_invitation(self, token: str) -> dict[str, Any]:
        async with self.store.connect() as conn:
            row = await self._valid_invitation(conn, token)
        return {
            "case_title": row.title,
            "role": row.role,
            "display_name": row.display_name,
            "expires_at": row.expires_at,
        }

    async def accept_invitation(self, token: str, username: str, password: str) -> tuple[User, str]:
        """Create the invitee's account and membership; the link is spent."""
        async with self.store.connect() as conn:
            invitation = await self._valid_invitation(conn, token)
        # An emailed invitation proves the address: the account takes it.
        user = await self.accounts.create_user(
            username,
            password,
            role="member",
            display_name=invitation.display_name,
            email=invitation.email,
            email_verified=invitation.email is not None,
        )
        now = self.clock()
        try:
            async with self.store.begin() as conn:
                spent = await conn.execute(
                    sa.update(invitations)
                    .where(invitations.c.id == invitation.id, invitations.c.used_at.is_(None))
                    .values(used_at=now, used_by=user.id)
                )
                if spent.rowcount != 1:
                    raise Gone("This invitation link is not valid.", code="invitation_invalid")
                await conn.execute(
                    sa.insert(case_members).values(
                        case_id=invitation.case_id,
                        user_id=user.id,
                        role=invitation.role,
                        display_name=invitation.display_name,
                        represents=invitation.represents,
                        joined_at=now,
                    )
                )
                # counsel invited for this party before the party had an account
                await conn.execute(
                    sa.update(case_members)
                    .where(
                        case_members.c.case_id == invitation.case_id,
                        case_members.c.represents == invitation.id,
                    )
                    .values(represents=user.id)
                )
                represents = invitation.represents
                if represents is not None:
                    party = (
                        await conn.execute(
                            sa.select(invitations.c.used_by).where(
                                invitations.c.id == represents,
                                invitations.c.case_id == invitation.case_id,
                            )
                        )
                    ).first()
                    if party is not None and party.used_by is not None:
                        await conn.execute(
                            sa.update(case_members)
                            .where(
                                case_members.c.case_id == invitation.case_id,
                                case_members.c.user_id == user.id,
                            )
                            .values(represents=party.used_by)
                        )
                await self.audit(
                    conn, user.id, "invitation.accept", invitation.case_id, role=invitation.role
                )
        except Exception:
            async with self.store.begin() as conn:  # the account exists only with its case
                await conn.execute(sa.delete(users).where(users.c.id == user.id))
            raise
        return user, invitation.case_id


def _invitation_public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "role": row["role"],
        "display_name": row["display_name"],
        "represents": row["represents"],
        "expires_at": row["expires_at"],
        "used_at": row["used_at"],
        "email": row.get("email"),
        "revoked_at": row.get("revoked_at"),
    }
