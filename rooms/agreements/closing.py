"""Sealed agreements when their case closes.

Before a case closes, every signatory of each sealed agreement should hold their copy:
the close-case page lists them (``closing_list``), and closing is refused with
``agreements_not_downloaded`` while one has not downloaded theirs, unless the neutral
confirms closing anyway. Either way each signatory with a verified address is mailed the
sealed PDF and its signature file, written to the outbox in the closing transaction; then
the agreement's rows go with the case, and its PDF blob with the case's vault directory.
What stays: the seal log line (no names, no text) and the installation's seal key.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from rooms.agreements.records import SEALED, AgreementParts
from rooms.agreements.sealing import read_sealed_pdf
from rooms.errors import Conflict
from rooms.storage.outbox import enqueue
from rooms.storage.schema import (
    agreement_comments,
    agreement_events,
    agreement_signatures,
    agreement_versions,
    agreements,
    case_members,
    users,
)

MAIL_KIND = "agreement_sealed_copy"


@dataclass(frozen=True)
class SealedCopyMail:
    """One signatory's sealed copy, read before the case key goes."""

    recipient: str
    agreement_id: str
    pdf: bytes
    signature: str


@dataclass(frozen=True)
class ClosePlan:
    """What closing writes: the case's part of the mails, and the mails."""

    mail_params: dict[str, Any]
    mails: list[SealedCopyMail]


class AgreementsAtClose:
    """The agreements' part of closing a case (``rooms.cases.closing``)."""

    def __init__(self, parts: AgreementParts) -> None:
        self.parts = parts

    async def closing_list(self, case_id: str) -> list[dict[str, Any]]:
        """Every sealed agreement of the case with its signatories: whether each
        downloaded the sealed copy, and whether a verified address will get it by mail."""
        async with self.parts.store.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(agreements)
                    .where(agreements.c.case_id == case_id, agreements.c.status == SEALED)
                    .order_by(agreements.c.sealed_at, agreements.c.id)
                )
            ).all()
            listing = []
            for row in rows:
                signatories = (
                    await conn.execute(
                        sa.select(
                            agreement_signatures.c.user_id,
                            agreement_signatures.c.role,
                            agreement_signatures.c.downloaded_at,
                            case_members.c.display_name,
                            users.c.email,
                            users.c.email_verified_at,
                        )
                        .join(users, users.c.id == agreement_signatures.c.user_id)
                        .outerjoin(
                            case_members,
                            sa.and_(
                                case_members.c.user_id == agreement_signatures.c.user_id,
                                case_members.c.case_id == case_id,
                            ),
                        )
                        .where(
                            agreement_signatures.c.agreement_id == row.id,
                            agreement_signatures.c.version == row.final_version,
                            agreement_signatures.c.voided_at.is_(None),
                        )
                        .order_by(agreement_signatures.c.signed_at)
                    )
                ).all()
                listing.append(
                    {
                        "id": row.id,
                        "space_id": row.space_id,
                        "version": row.final_version,
                        "sealed_at": row.sealed_at,
                        "document_sha256": row.document_sha256,
                        "signatories": [
                            {
                                "user_id": s.user_id,
                                "display_name": s.display_name,
                                "role": s.role,
                                "downloaded_at": s.downloaded_at,
                                "downloaded": s.downloaded_at is not None,
                                "will_be_mailed": bool(s.email and s.email_verified_at is not None),
                                "email": s.email if s.email_verified_at is not None else None,
                            }
                            for s in signatories
                        ],
                    }
                )
        return listing

    async def before_close(self, case_id: str, *, confirmed: bool) -> object:
        listing = await self.closing_list(case_id)
        missing = [
            {"agreement_id": a["id"], "user_id": s["user_id"], "display_name": s["display_name"]}
            for a in listing
            for s in a["signatories"]
            if not s["downloaded"]
        ]
        if missing and not confirmed:
            refusal = Conflict(
                "Some signatories have not downloaded their sealed agreement yet. Wait until "
                "they have, or confirm closing anyway (each signatory with a verified address "
                "is mailed their copy).",
                code="agreements_not_downloaded",
            )
            refusal.extra["missing"] = missing
            raise refusal
        if not listing:
            return ClosePlan({}, [])
        key = await self.parts.keys.key_for(case_id)
        mails: list[SealedCopyMail] = []
        async with self.parts.store.connect() as conn:
            signatures = {
                row.id: row.seal_signature
                for row in (
                    await conn.execute(
                        sa.select(agreements.c.id, agreements.c.seal_signature).where(
                            agreements.c.case_id == case_id, agreements.c.status == SEALED
                        )
                    )
                ).all()
            }
        for agreement in listing:
            pdf = await read_sealed_pdf(self.parts, case_id, key, agreement["id"])
            for signatory in agreement["signatories"]:
                if signatory["will_be_mailed"]:
                    mails.append(
                        SealedCopyMail(
                            signatory["email"], agreement["id"], pdf, signatures[agreement["id"]]
                        )
                    )
        case = await self.parts.cases.get(case_id)
        return ClosePlan(case.mail_params(), mails)

    async def while_closing(self, conn: Any, case_id: str, prepared: object, now: float) -> None:
        assert isinstance(prepared, ClosePlan)
        for mail in prepared.mails:
            name = f"agreement-{mail.agreement_id}"
            await enqueue(
                conn,
                MAIL_KIND,
                mail.recipient,
                {
                    **prepared.mail_params,
                    "agreement_id": mail.agreement_id,
                    "verify_path": "/agreements/verify",
                    "attachments": [
                        {
                            "filename": f"{name}.pdf",
                            "content_type": "application/pdf",
                            "data_base64": base64.b64encode(mail.pdf).decode("ascii"),
                        },
                        {
                            "filename": f"{name}.sig",
                            "content_type": "text/plain",
                            "text": mail.signature,
                        },
                    ],
                },
                now=now,
            )
        of_case = sa.select(agreements.c.id).where(agreements.c.case_id == case_id)
        for table in (
            agreement_comments,
            agreement_signatures,
            agreement_versions,
            agreement_events,
        ):
            await conn.execute(sa.delete(table).where(table.c.agreement_id.in_(of_case)))
        await conn.execute(sa.delete(agreements).where(agreements.c.case_id == case_id))
