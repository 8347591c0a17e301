"""Drafting an agreement in a space: versions, counsel's proposals, comments, comparing.

The neutral (or a co-neutral) creates an agreement in a space they are a member of, and
every edit is a new numbered version (``edit``) with its author and time. Counsel propose
changes as versions of their own (``proposal``): they never become the draft by
themselves; the neutral takes one over by making an edit from it (``adopted_from``).
Every member of the space reads every version, comments on a clause of a version and
compares any two versions. An edit made while a version is published for signature
withdraws it and voids its signatures (``rooms.agreements.signing``), said to everyone in
the agreement's trail and as a message in the space.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from rooms.agreements.diff import compare
from rooms.agreements.records import (
    DRAFT,
    EDIT,
    FINAL,
    PROPOSAL,
    SEALED,
    AgreementParts,
    add_event,
    agreement_row,
    comment_aad,
    open_value,
    seal_text,
    version_aad,
    version_row,
    version_text,
)
from rooms.agreements.text import AgreementText
from rooms.cases.cases import Member
from rooms.cases.roles import NEUTRAL_ROLES
from rooms.errors import Conflict, Forbidden, InvalidInput
from rooms.spaces.spaces import space_row
from rooms.storage.schema import (
    agreement_comments,
    agreement_signatures,
    agreement_versions,
    agreements,
    new_id,
)
from rooms.vault.sealed import seal

MAX_COMMENT = 5_000


def require_neutral(actor: Member) -> None:
    if actor.role not in NEUTRAL_ROLES:
        raise Forbidden("Only the case's neutral or a co-neutral drafts and publishes agreements.")


def version_public(row: sa.Row) -> dict[str, Any]:
    return {
        "number": row.number,
        "kind": row.kind,
        "based_on": row.based_on,
        "adopted_from": row.adopted_from,
        "author_id": row.author_id,
        "created_at": row.created_at,
        "document_sha256": row.document_sha256,
    }


class AgreementDrafts:
    """Owns agreements' versions and comments (rows sealed with the case key)."""

    def __init__(self, parts: AgreementParts) -> None:
        self.parts = parts

    async def _member_check(self, case_id: str, space_id: str, actor: Member) -> None:
        await self.parts.spaces.require_member(case_id, space_id, actor.user_id)

    async def create(self, case_id: str, space_id: str, actor: Member, text: AgreementText) -> str:
        """A new agreement whose version 1 is ``text``; answers its id."""
        require_neutral(actor)
        await self._member_check(case_id, space_id, actor)
        key = await self.parts.keys.key_for(case_id)
        agreement_id = new_id()
        now = self.parts.clock()
        async with self.parts.store.begin() as conn:
            space = await space_row(conn, case_id, space_id)
            if space.archived_at is not None:
                raise Conflict("This space is archived: it can be read, not written.")
            await conn.execute(
                sa.insert(agreements).values(
                    id=agreement_id,
                    case_id=case_id,
                    space_id=space_id,
                    created_by=actor.user_id,
                    created_at=now,
                    status=DRAFT,
                    last_version=1,
                    current_version=1,
                )
            )
            await self._insert_version(
                conn, key, agreement_id, 1, EDIT, actor.user_id, text, now, None, None
            )
            await add_event(conn, agreement_id, now, "created", actor.user_id, version=1)
            await self.parts.cases.audit(
                conn, actor.user_id, "agreement.create", case_id, agreement=agreement_id
            )
        return agreement_id

    async def _insert_version(
        self,
        conn: Any,
        key: bytes,
        agreement_id: str,
        number: int,
        kind: str,
        author_id: str,
        text: AgreementText,
        now: float,
        based_on: int | None,
        adopted_from: int | None,
    ) -> None:
        await conn.execute(
            sa.insert(agreement_versions).values(
                agreement_id=agreement_id,
                number=number,
                kind=kind,
                based_on=based_on,
                adopted_from=adopted_from,
                author_id=author_id,
                created_at=now,
                content=seal_text(key, version_aad(agreement_id, number), text),
                document_sha256=text.sha256(),
            )
        )

    async def edit(
        self,
        case_id: str,
        space_id: str,
        agreement_id: str,
        actor: Member,
        text: AgreementText,
        *,
        based_on: int,
        adopted_from: int | None = None,
    ) -> tuple[int, list[str]]:
        """A new version by the neutral, made from the current one (``based_on`` must be
        it: an edit never silently overwrites another). Answers the new version's number
        and the users whose signatures it voided (none unless the agreement was
        published for signature and signed by someone)."""
        require_neutral(actor)
        await self._member_check(case_id, space_id, actor)
        key = await self.parts.keys.key_for(case_id)
        now = self.parts.clock()
        async with self.parts.store.begin() as conn:
            row = await agreement_row(conn, case_id, space_id, agreement_id, lock=True)
            if row.status == SEALED:
                raise Conflict(
                    "This agreement is sealed: it cannot change any more.", code="agreement_sealed"
                )
            if based_on != row.current_version:
                raise Conflict(
                    f"The draft moved on to version {row.current_version} meanwhile; start "
                    "from it.",
                    code="stale_version",
                )
            if adopted_from is not None:
                proposal = await version_row(conn, agreement_id, adopted_from)
                if proposal.kind != PROPOSAL:
                    raise InvalidInput(
                        f"Version {adopted_from} is not a proposal.", code="not_a_proposal"
                    )
            number = row.last_version + 1
            await self._insert_version(
                conn,
                key,
                agreement_id,
                number,
                EDIT,
                actor.user_id,
                text,
                now,
                based_on,
                adopted_from,
            )
            voided: list[str] = []
            if row.status == FINAL:
                voided = await self._withdraw(conn, row, number, now)
            await conn.execute(
                sa.update(agreements)
                .where(agreements.c.id == agreement_id)
                .values(
                    last_version=number,
                    current_version=number,
                    status=DRAFT,
                    final_version=None,
                    finalized_at=None,
                    document_sha256=None,
                )
            )
            await add_event(
                conn,
                agreement_id,
                now,
                "edited",
                actor.user_id,
                version=number,
                based_on=based_on,
                adopted_from=adopted_from,
            )
            if voided:
                await add_event(
                    conn,
                    agreement_id,
                    now,
                    "signatures_voided",
                    actor.user_id,
                    version=row.final_version,
                    by_version=number,
                    user_ids=voided,
                )
                await self.parts.cases.audit(
                    conn,
                    actor.user_id,
                    "agreement.signatures_voided",
                    case_id,
                    agreement=agreement_id,
                    version=row.final_version,
                    signatures=len(voided),
                )
        if voided:
            await self._tell_space(
                case_id, space_id, actor, text, row.final_version, number, voided
            )
        return number, voided

    async def _withdraw(self, conn: Any, row: sa.Row, by_version: int, now: float) -> list[str]:
        """The published version stops being for signature: every signatory row of it is
        voided; answers the users who had signed."""
        of_final = sa.and_(
            agreement_signatures.c.agreement_id == row.id,
            agreement_signatures.c.version == row.final_version,
            agreement_signatures.c.voided_at.is_(None),
        )
        signed = list(
            (
                await conn.execute(
                    sa.select(agreement_signatures.c.user_id)
                    .where(of_final, agreement_signatures.c.signed_at.is_not(None))
                    .order_by(agreement_signatures.c.signed_at)
                )
            ).scalars()
        )
        await conn.execute(
            sa.update(agreement_signatures)
            .where(of_final)
            .values(voided_at=now, voided_by_version=by_version)
        )
        if not signed:
            await add_event(
                conn,
                row.id,
                now,
                "withdrawn",
                None,
                version=row.final_version,
                by_version=by_version,
            )
        return signed

    async def _tell_space(
        self,
        case_id: str,
        space_id: str,
        actor: Member,
        text: AgreementText,
        final_version: int,
        number: int,
        voided: list[str],
    ) -> None:
        members = {
            m["user_id"]: m["display_name"]
            for m in await self.parts.spaces.members(case_id, space_id)
        }
        names = ", ".join(members.get(user_id, "a former member") for user_id in voided)
        notice = (
            f"Agreement “{text.title}”: version {number} changed the text after it was "
            f"published for signature, so the signatures of version {final_version} "
            f"({names}) are void. The new version has to be published and signed again."
        )
        await self.parts.spaces.post(case_id, space_id, actor.user_id, notice)

    async def propose(
        self,
        case_id: str,
        space_id: str,
        agreement_id: str,
        actor: Member,
        text: AgreementText,
        *,
        based_on: int,
    ) -> int:
        """Counsel's proposal, made from any version; answers its number."""
        if actor.role != "counsel":
            raise Forbidden("Only counsel propose changes; the neutral edits the draft.")
        await self._member_check(case_id, space_id, actor)
        key = await self.parts.keys.key_for(case_id)
        now = self.parts.clock()
        async with self.parts.store.begin() as conn:
            row = await agreement_row(conn, case_id, space_id, agreement_id, lock=True)
            if row.status == SEALED:
                raise Conflict(
                    "This agreement is sealed: it cannot change any more.", code="agreement_sealed"
                )
            await version_row(conn, agreement_id, based_on)
            number = row.last_version + 1
            await self._insert_version(
                conn, key, agreement_id, number, PROPOSAL, actor.user_id, text, now, based_on, None
            )
            await conn.execute(
                sa.update(agreements)
                .where(agreements.c.id == agreement_id)
                .values(last_version=number)
            )
            await add_event(
                conn,
                agreement_id,
                now,
                "proposed",
                actor.user_id,
                version=number,
                based_on=based_on,
            )
        return number

    async def version(
        self, case_id: str, space_id: str, agreement_id: str, number: int
    ) -> dict[str, Any]:
        key = await self.parts.keys.key_for(case_id)
        async with self.parts.store.connect() as conn:
            await agreement_row(conn, case_id, space_id, agreement_id)
            row = await version_row(conn, agreement_id, number)
        return {**version_public(row), **version_text(key, row).public()}

    async def compare(
        self, case_id: str, space_id: str, agreement_id: str, older: int, newer: int
    ) -> dict[str, Any]:
        key = await self.parts.keys.key_for(case_id)
        async with self.parts.store.connect() as conn:
            await agreement_row(conn, case_id, space_id, agreement_id)
            a = await version_row(conn, agreement_id, older)
            b = await version_row(conn, agreement_id, newer)
        return {
            "from": version_public(a),
            "to": version_public(b),
            **compare(
                version_text(key, a), version_text(key, b), f"version {older}", f"version {newer}"
            ),
        }

    async def comment(
        self,
        case_id: str,
        space_id: str,
        agreement_id: str,
        actor: Member,
        version: int,
        clause: int,
        body: str,
    ) -> dict[str, Any]:
        body = body.strip()
        if not 1 <= len(body) <= MAX_COMMENT:
            raise InvalidInput(f"A comment has 1 to {MAX_COMMENT} characters.")
        await self._member_check(case_id, space_id, actor)
        key = await self.parts.keys.key_for(case_id)
        comment_id = new_id()
        now = self.parts.clock()
        async with self.parts.store.begin() as conn:
            await agreement_row(conn, case_id, space_id, agreement_id)
            text = version_text(key, await version_row(conn, agreement_id, version))
            if not 1 <= clause <= len(text.clauses):
                raise InvalidInput(
                    f"Version {version} has clauses 1 to {len(text.clauses)}.",
                    code="no_such_clause",
                )
            await conn.execute(
                sa.insert(agreement_comments).values(
                    id=comment_id,
                    agreement_id=agreement_id,
                    version=version,
                    clause=clause,
                    author_id=actor.user_id,
                    created_at=now,
                    body=seal(key, comment_aad(comment_id), body.encode("utf-8")),
                )
            )
        return {
            "id": comment_id,
            "version": version,
            "clause": clause,
            "author_id": actor.user_id,
            "created_at": now,
            "body": body,
        }

    async def comments(
        self, case_id: str, space_id: str, agreement_id: str
    ) -> list[dict[str, Any]]:
        key = await self.parts.keys.key_for(case_id)
        async with self.parts.store.connect() as conn:
            await agreement_row(conn, case_id, space_id, agreement_id)
            rows = (
                await conn.execute(
                    sa.select(agreement_comments)
                    .where(agreement_comments.c.agreement_id == agreement_id)
                    .order_by(agreement_comments.c.created_at, agreement_comments.c.id)
                )
            ).all()
        return [
            {
                "id": r.id,
                "version": r.version,
                "clause": r.clause,
                "author_id": r.author_id,
                "created_at": r.created_at,
                "body": open_value(key, comment_aad(r.id), r.body).decode("utf-8"),
            }
            for r in rows
        ]
