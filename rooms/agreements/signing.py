"""Publishing a version for signature and signing it.

The neutral publishes the current version and names its signatories (members of the
space who are parties or counsel of the case). Each signatory signs the exact published
text: the request carries the document hash they reviewed, a full name they typed, and
the server takes a fresh proof of identity from their session (password, and the second
factor when on, given at most five minutes before; ``rooms.accounts.sessions``), used up
by the signature. The record kept: who, when, from which client address, how they proved
their identity, and the hash of the text signed; the typed name, display name and address
are sealed with the case key. The last signature seals the agreement in the same
transaction (``rooms.agreements.sealing``).
"""

from __future__ import annotations

import sqlalchemy as sa

from rooms.accounts.sessions import REAUTH_MAX_AGE, take_fresh_proof
from rooms.agreements.drafts import require_neutral
from rooms.agreements.records import (
    DRAFT,
    EDIT,
    FINAL,
    SEALED,
    SIGNING_ROLES,
    AgreementParts,
    add_event,
    agreement_row,
    record_aad,
    seal_json,
    version_row,
)
from rooms.agreements.sealing import AgreementSealer
from rooms.cases.cases import Member
from rooms.errors import Conflict, Forbidden, InvalidInput
from rooms.printing.pdf_text import clean_text
from rooms.storage.schema import agreement_signatures, agreements, case_members, space_members

MAX_SIGNATORIES = 50
MAX_TYPED_NAME = 200


class AgreementSigning:
    """Owns the signatory rows: who is to sign which version, and their signatures."""

    def __init__(self, parts: AgreementParts, sealer: AgreementSealer) -> None:
        self.parts = parts
        self.sealer = sealer

    async def publish(
        self,
        case_id: str,
        space_id: str,
        agreement_id: str,
        actor: Member,
        version: int,
        signatory_ids: list[str],
    ) -> None:
        """Mark the current version final and name who signs it."""
        require_neutral(actor)
        await self.parts.spaces.require_member(case_id, space_id, actor.user_id)
        wanted = list(dict.fromkeys(signatory_ids))
        if not 1 <= len(wanted) <= MAX_SIGNATORIES:
            raise InvalidInput(
                f"Name 1 to {MAX_SIGNATORIES} signatories.", code="invalid_signatories"
            )
        now = self.parts.clock()
        async with self.parts.store.begin() as conn:
            row = await agreement_row(conn, case_id, space_id, agreement_id, lock=True)
            if row.status != DRAFT:
                raise Conflict(
                    "This agreement is already published for signature or sealed; an edit "
                    "withdraws a published version.",
                    code="not_draft",
                )
            if version != row.current_version:
                raise Conflict(
                    f"Only the current version ({row.current_version}) can be published.",
                    code="stale_version",
                )
            published = await version_row(conn, agreement_id, version)
            assert published.kind == EDIT
            roles = dict(
                (
                    await conn.execute(
                        sa.select(case_members.c.user_id, case_members.c.role)
                        .join(
                            space_members,
                            sa.and_(
                                space_members.c.user_id == case_members.c.user_id,
                                space_members.c.space_id == space_id,
                            ),
                        )
                        .where(
                            case_members.c.case_id == case_id,
                            case_members.c.user_id.in_(wanted),
                        )
                    )
                ).all()
            )
            strangers = [u for u in wanted if roles.get(u) not in SIGNING_ROLES]
            if strangers:
                raise InvalidInput(
                    "Signatories are parties or counsel of the case who are members of this space.",
                    code="invalid_signatories",
                )
            await conn.execute(
                sa.insert(agreement_signatures),
                [
                    {
                        "agreement_id": agreement_id,
                        "version": version,
                        "user_id": user_id,
                        "role": roles[user_id],
                        "named_at": now,
                    }
                    for user_id in wanted
                ],
            )
            await conn.execute(
                sa.update(agreements)
                .where(agreements.c.id == agreement_id)
                .values(
                    status=FINAL,
                    final_version=version,
                    finalized_at=now,
                    document_sha256=published.document_sha256,
                )
            )
            await add_event(
                conn,
                agreement_id,
                now,
                "published",
                actor.user_id,
                version=version,
                signatories=wanted,
            )
            await self.parts.cases.audit(
                conn,
                actor.user_id,
                "agreement.publish",
                case_id,
                agreement=agreement_id,
                version=version,
            )

    async def sign(
        self,
        case_id: str,
        space_id: str,
        agreement_id: str,
        actor: Member,
        session_token_hash: str,
        *,
        document_sha256: str,
        full_name: str,
        client_address: str,
    ) -> bool:
        """Sign the published version; answers whether this signature sealed it."""
        typed = clean_text(full_name, MAX_TYPED_NAME + 1)
        if not 2 <= len(typed) <= MAX_TYPED_NAME:
            raise InvalidInput(
                f"Type your full name (2 to {MAX_TYPED_NAME} characters).", code="invalid_name"
            )
        await self.parts.spaces.require_member(case_id, space_id, actor.user_id)
        key = await self.parts.keys.key_for(case_id)
        now = self.parts.clock()
        async with self.parts.store.begin() as conn:
            row = await agreement_row(conn, case_id, space_id, agreement_id, lock=True)
            if row.status == SEALED:
                raise Conflict("This agreement is sealed already.", code="agreement_sealed")
            if row.status != FINAL:
                raise Conflict(
                    "No version of this agreement is published for signature.", code="not_final"
                )
            mine = (
                await conn.execute(
                    sa.select(agreement_signatures).where(
                        agreement_signatures.c.agreement_id == agreement_id,
                        agreement_signatures.c.version == row.final_version,
                        agreement_signatures.c.user_id == actor.user_id,
                        agreement_signatures.c.voided_at.is_(None),
                    )
                )
            ).first()
            if mine is None:
                raise Forbidden("You are not a signatory of this agreement.", code="not_signatory")
            if mine.signed_at is not None:
                raise Conflict("You signed this version already.", code="already_signed")
            if document_sha256 != row.document_sha256:
                raise Conflict(
                    "The text you reviewed is not the text published for signature; read it again.",
                    code="text_changed",
                )
            proof = await take_fresh_proof(conn, session_token_hash, now=now)
            if proof is None:
                refusal = Forbidden(
                    "Confirm your identity again (password, and your code when two-factor "
                    "sign-in is on) right before signing: a confirmation counts for "
                    f"{int(REAUTH_MAX_AGE // 60)} minutes, for one signature.",
                    code="reauth_required",
                )
                refusal.extra["max_age_seconds"] = int(REAUTH_MAX_AGE)
                raise refusal
            record = {
                "typed_name": typed,
                "display_name": actor.display_name,
                "client_address": client_address[:100],
            }
            await conn.execute(
                sa.update(agreement_signatures)
                .where(
                    agreement_signatures.c.agreement_id == agreement_id,
                    agreement_signatures.c.version == row.final_version,
                    agreement_signatures.c.user_id == actor.user_id,
                )
                .values(
                    signed_at=now,
                    auth_method=proof.method,
                    document_sha256=row.document_sha256,
                    record=seal_json(
                        key, record_aad(agreement_id, row.final_version, actor.user_id), record
                    ),
                )
            )
            await add_event(
                conn, agreement_id, now, "signed", actor.user_id, version=row.final_version
            )
            await self.parts.cases.audit(
                conn,
                actor.user_id,
                "agreement.sign",
                case_id,
                agreement=agreement_id,
                version=row.final_version,
            )
            unsigned = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(agreement_signatures)
                    .where(
                        agreement_signatures.c.agreement_id == agreement_id,
                        agreement_signatures.c.version == row.final_version,
                        agreement_signatures.c.voided_at.is_(None),
                        agreement_signatures.c.signed_at.is_(None),
                    )
                )
            ).scalar_one()
            if unsigned:
                return False
            await self.sealer.seal(conn, key, row, now)
        return True
