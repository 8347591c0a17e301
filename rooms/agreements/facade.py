"""``Agreements``: the one object the HTTP API and closing use for settlement agreements;
it delegates to the part that owns each concern (drafts, signing, sealing, closing).

Every change (a new agreement, a version, a proposal, a comment, publishing, a
signature) is announced to the agreement's space once committed, as an
``agreement.changed`` space event carrying ids only (the space's members subscribed to it
reload the agreement through the HTTP API, which checks their access)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa

from rooms.agreements.closing import AgreementsAtClose
from rooms.agreements.drafts import AgreementDrafts, version_public
from rooms.agreements.records import (
    FINAL,
    SEALED,
    AgreementParts,
    agreement_row,
    open_json,
    open_value,
    record_aad,
    version_aad,
    version_row,
    version_text,
)
from rooms.agreements.sealing import AgreementSealer
from rooms.agreements.signing import AgreementSigning
from rooms.agreements.text import AgreementText
from rooms.cases.cases import Member
from rooms.cases.roles import NEUTRAL_ROLES
from rooms.spaces.events import SpaceEvent
from rooms.storage.schema import (
    agreement_events,
    agreement_signatures,
    agreement_versions,
    agreements,
    case_members,
)

P = ParamSpec("P")
T = TypeVar("T")


class Agreements:
    """Owns the settlement agreements of every case (see ``docs/agreements.md``)."""

    def __init__(self, parts: AgreementParts) -> None:
        self.parts = parts
        drafts = AgreementDrafts(parts)
        self.sealer = sealer = AgreementSealer(parts)
        signing = AgreementSigning(parts, sealer)
        #: The closing participant (``rooms.cases.closing.CaseClosingParticipant``).
        self.at_close = AgreementsAtClose(parts)
        self.seal_key = parts.seal_key
        # drafting
        self.create = self._announced("created", drafts.create)
        self.edit = self._announced("version", drafts.edit)
        self.propose = self._announced("proposal", drafts.propose)
        self.version = drafts.version
        self.compare = drafts.compare
        self.comment = self._announced("comment", drafts.comment)
        self.comments = drafts.comments
        # signing and sealing
        self.publish = self._announced("published", signing.publish)
        self.sign = self._announced("signed", signing.sign)
        self.sealed_pdf = sealer.sealed_pdf
        self.signature_file = sealer.signature_file
        self.verify = sealer.verify
        self.closing_list = self.at_close.closing_list

    def _announced(
        self, change: str, method: Callable[P, Awaitable[T]]
    ) -> Callable[P, Awaitable[T]]:
        """``method`` (taking case id, space id and, but for ``create``, which answers
        it, the agreement id, first and by position), then ``agreement.changed`` to the
        space once it returned: what changed and ids, nothing of the text."""

        @functools.wraps(method)
        async def announced(*args: P.args, **kwargs: P.kwargs) -> T:
            result = await method(*args, **kwargs)
            case_id, space_id = str(args[0]), str(args[1])
            agreement_id = str(result) if change == "created" else str(args[2])
            data = {
                "case_id": case_id,
                "space_id": space_id,
                "agreement_id": agreement_id,
                "change": change,
            }
            await self.parts.spaces.publish(
                SpaceEvent("agreement.changed", case_id, space_id, data)
            )
            return result

        return announced

    async def listing(self, case_id: str, space_id: str) -> list[dict[str, Any]]:
        """The agreements of a space, newest first, with their current titles."""
        key = await self.parts.keys.key_for(case_id)
        async with self.parts.store.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(agreements, agreement_versions.c.content)
                    .join(
                        agreement_versions,
                        sa.and_(
                            agreement_versions.c.agreement_id == agreements.c.id,
                            agreement_versions.c.number == agreements.c.current_version,
                        ),
                    )
                    .where(agreements.c.case_id == case_id, agreements.c.space_id == space_id)
                    .order_by(agreements.c.created_at.desc(), agreements.c.id)
                )
            ).all()
        return [
            {
                **_agreement_public(row),
                "title": AgreementText.from_json(
                    open_value(key, version_aad(row.id, row.current_version), row.content)
                ).title,
            }
            for row in rows
        ]

    async def view(
        self, case_id: str, space_id: str, agreement_id: str, viewer: Member
    ) -> dict[str, Any]:
        """Everything a member of the space sees of an agreement (docs/agreements.md)."""
        key = await self.parts.keys.key_for(case_id)
        async with self.parts.store.connect() as conn:
            row = await agreement_row(conn, case_id, space_id, agreement_id)
            current = await version_row(conn, agreement_id, row.current_version)
            final = (
                await version_row(conn, agreement_id, row.final_version)
                if row.final_version is not None
                else None
            )
            versions = (
                await conn.execute(
                    sa.select(agreement_versions)
                    .where(agreement_versions.c.agreement_id == agreement_id)
                    .order_by(agreement_versions.c.number)
                )
            ).all()
            signatures = (
                await conn.execute(
                    sa.select(agreement_signatures, case_members.c.display_name)
                    .outerjoin(
                        case_members,
                        sa.and_(
                            case_members.c.user_id == agreement_signatures.c.user_id,
                            case_members.c.case_id == case_id,
                        ),
                    )
                    .where(agreement_signatures.c.agreement_id == agreement_id)
                    .order_by(
                        agreement_signatures.c.version,
                        agreement_signatures.c.named_at,
                        agreement_signatures.c.user_id,
                    )
                )
            ).all()
            events = (
                await conn.execute(
                    sa.select(agreement_events)
                    .where(agreement_events.c.agreement_id == agreement_id)
                    .order_by(agreement_events.c.id)
                )
            ).all()
        current_text = version_text(key, current)
        shown_signatures = [_signature_public(key, agreement_id, s) for s in signatures]
        mine = [
            s
            for s in signatures
            if s.user_id == viewer.user_id
            and s.version == row.final_version
            and s.voided_at is None
        ]
        neutral = viewer.role in NEUTRAL_ROLES
        return {
            "agreement": {**_agreement_public(row), "title": current_text.title},
            "current": {**version_public(current), **current_text.public()},
            "final": (
                {**version_public(final), **version_text(key, final).public()}
                if final is not None
                else None
            ),
            "versions": [version_public(v) for v in versions],
            "signatures": shown_signatures,
            "events": [
                {"at": e.at, "kind": e.kind, "actor_id": e.actor_id, "detail": e.detail}
                for e in events
            ],
            "me": {
                "user_id": viewer.user_id,
                "can_edit": neutral and row.status != SEALED,
                "can_publish": neutral and row.status not in (FINAL, SEALED),
                "can_propose": viewer.role == "counsel" and row.status != SEALED,
                "is_signatory": bool(mine),
                "has_signed": bool(mine) and mine[0].signed_at is not None,
                "can_sign": row.status == FINAL and bool(mine) and mine[0].signed_at is None,
            },
        }


def _agreement_public(row: sa.Row) -> dict[str, Any]:
    return {
        "id": row.id,
        "case_id": row.case_id,
        "space_id": row.space_id,
        "status": row.status,
        "created_by": row.created_by,
        "created_at": row.created_at,
        "current_version": row.current_version,
        "last_version": row.last_version,
        "final_version": row.final_version,
        "finalized_at": row.finalized_at,
        "document_sha256": row.document_sha256,
        "sealed_at": row.sealed_at,
        "pdf_sha256": row.pdf_sha256,
    }


def _signature_public(key: bytes, agreement_id: str, row: sa.Row) -> dict[str, Any]:
    record = (
        open_json(key, record_aad(agreement_id, row.version, row.user_id), row.record)
        if row.record is not None
        else {}
    )
    return {
        "version": row.version,
        "user_id": row.user_id,
        "display_name": row.display_name,
        "role": row.role,
        "named_at": row.named_at,
        "signed": row.signed_at is not None,
        "signed_at": row.signed_at,
        "typed_name": record.get("typed_name"),
        "client_address": record.get("client_address"),
        "auth_method": row.auth_method,
        "document_sha256": row.document_sha256,
        "voided": row.voided_at is not None,
        "voided_at": row.voided_at,
        "voided_by_version": row.voided_by_version,
        "downloaded_at": row.downloaded_at,
    }
