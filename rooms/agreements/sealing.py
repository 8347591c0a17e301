"""Sealing a fully signed agreement, handing out sealed copies, checking them.

When the last signatory signs, in the same transaction: the sealed PDF is printed
(``rooms.agreements.pdf``), its SHA-256 and the document hash are signed with the
installation's seal key (``rooms.agreements.seal_file``), the PDF is stored encrypted in
the vault like every other case document (blob ``agreement-<id>``), the detached
signature file is kept on the agreement's row, and one line goes into
``agreement_seal_log``: the agreement id, the document and PDF hashes, the key id and the
times of sealing and of each signature. No names, no text: that line outlives the case,
so a copy can be checked long after everything else is gone.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import sqlalchemy as sa

from rooms.agreements.pdf import SealedDocument, SignatureLine, render_sealed_pdf
from rooms.agreements.records import (
    SEALED,
    AgreementParts,
    add_event,
    agreement_row,
    blob_id,
    open_json,
    record_aad,
    version_row,
    version_text,
)
from rooms.agreements.seal_file import (
    SealCheckFailed,
    SealStatement,
    check_seal,
    sign_seal,
)
from rooms.cases.cases import Member
from rooms.errors import Conflict, IntegrityFailure
from rooms.storage.schema import agreement_seal_log, agreement_signatures, agreements
from rooms.vault.format import BlobNotFoundError, VaultIntegrityError

log = logging.getLogger(__name__)


class AgreementSealer:
    """Owns sealed PDFs (vault blobs), their signature files and the seal log."""

    def __init__(self, parts: AgreementParts) -> None:
        self.parts = parts

    async def seal(self, conn: Any, key: bytes, row: sa.Row, now: float) -> None:
        """Seal the agreement of ``row`` (locked, every signatory of its final version
        signed) inside the caller's transaction."""
        version = row.final_version
        text = version_text(key, await version_row(conn, row.id, version))
        signed = (
            await conn.execute(
                sa.select(agreement_signatures)
                .where(
                    agreement_signatures.c.agreement_id == row.id,
                    agreement_signatures.c.version == version,
                    agreement_signatures.c.voided_at.is_(None),
                )
                .order_by(agreement_signatures.c.signed_at, agreement_signatures.c.user_id)
            )
        ).all()
        lines = []
        for sig in signed:
            record = open_json(key, record_aad(row.id, version, sig.user_id), sig.record)
            lines.append(
                SignatureLine(
                    typed_name=record["typed_name"],
                    display_name=record["display_name"],
                    role=sig.role,
                    user_id=sig.user_id,
                    signed_at=sig.signed_at,
                    client_address=record["client_address"],
                    auth_method=sig.auth_method,
                    document_sha256=sig.document_sha256,
                )
            )
        sealed_at = float(int(now))
        seal_key = self.parts.seal_key
        document = SealedDocument(
            row.id, version, text, lines, sealed_at, seal_key.key_id, self.parts.site_name
        )
        pdf = await asyncio.to_thread(render_sealed_pdf, document)
        statement = SealStatement(
            row.id,
            version,
            sealed_at,
            text.sha256(),
            hashlib.sha256(pdf).hexdigest(),
            seal_key.key_id,
        )
        signature = sign_seal(seal_key, statement)
        await self.parts.vault.write_bytes(row.case_id, key, blob_id(row.id), pdf)
        await conn.execute(
            sa.update(agreements)
            .where(agreements.c.id == row.id)
            .values(
                status=SEALED,
                sealed_at=sealed_at,
                pdf_sha256=statement.pdf_sha256,
                seal_signature=signature,
            )
        )
        await conn.execute(
            sa.insert(agreement_seal_log).values(
                agreement_id=row.id,
                document_sha256=statement.document_sha256,
                pdf_sha256=statement.pdf_sha256,
                key_id=statement.key_id,
                sealed_at=sealed_at,
                signed_at=[line.signed_at for line in lines],
            )
        )
        await add_event(conn, row.id, now, "sealed", None, version=version)
        await self.parts.cases.audit(
            conn, None, "agreement.seal", row.case_id, agreement=row.id, version=version
        )
        log.info("agreement sealed", extra={"agreement": row.id, "case": row.case_id})

    async def _sealed_row(self, case_id: str, space_id: str, agreement_id: str) -> sa.Row:
        async with self.parts.store.connect() as conn:
            row = await agreement_row(conn, case_id, space_id, agreement_id)
        if row.status != SEALED:
            raise Conflict("This agreement is not sealed yet.", code="not_sealed")
        return row

    async def sealed_pdf(
        self, case_id: str, space_id: str, agreement_id: str, viewer: Member
    ) -> bytes:
        """The sealed PDF; a signatory's first download is recorded (closing asks)."""
        row = await self._sealed_row(case_id, space_id, agreement_id)
        key = await self.parts.keys.key_for(case_id)
        pdf = await read_sealed_pdf(self.parts, case_id, key, agreement_id)
        async with self.parts.store.begin() as conn:
            await conn.execute(
                sa.update(agreement_signatures)
                .where(
                    agreement_signatures.c.agreement_id == agreement_id,
                    agreement_signatures.c.version == row.final_version,
                    agreement_signatures.c.user_id == viewer.user_id,
                    agreement_signatures.c.voided_at.is_(None),
                    agreement_signatures.c.downloaded_at.is_(None),
                )
                .values(downloaded_at=self.parts.clock())
            )
        return pdf

    async def signature_file(self, case_id: str, space_id: str, agreement_id: str) -> str:
        row = await self._sealed_row(case_id, space_id, agreement_id)
        signature: str = row.seal_signature
        return signature

    async def verify(self, pdf: bytes, signature_file: bytes) -> dict[str, Any]:
        """Check a PDF and its signature file against this installation's seal key.

        ``{"valid": True, ...the statement, "logged": bool, "signed_at": [...]}``, or
        ``{"valid": False, "error": {"code", "message"}}``. ``logged`` says whether the
        seal log (which outlives closed cases) holds this very PDF's hash."""
        try:
            statement = check_seal(pdf, signature_file, self.parts.seal_key.public)
        except SealCheckFailed as failure:
            return {"valid": False, "error": {"code": failure.code, "message": failure.message}}
        async with self.parts.store.connect() as conn:
            logged = (
                await conn.execute(
                    sa.select(agreement_seal_log).where(
                        agreement_seal_log.c.agreement_id == statement.agreement_id,
                        agreement_seal_log.c.pdf_sha256 == statement.pdf_sha256,
                    )
                )
            ).first()
        return {
            "valid": True,
            **statement.public(),
            "logged": logged is not None,
            "signed_at": list(logged.signed_at) if logged is not None else None,
        }


async def read_sealed_pdf(
    parts: AgreementParts, case_id: str, key: bytes, agreement_id: str
) -> bytes:
    try:
        return await parts.vault.read_bytes(case_id, key, blob_id(agreement_id))
    except (VaultIntegrityError, BlobNotFoundError) as exc:
        log.warning("sealed agreement PDF unreadable", extra={"agreement": agreement_id})
        raise IntegrityFailure(
            "The sealed copy of this agreement is damaged or missing and cannot be read."
        ) from exc
