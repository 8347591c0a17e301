"""What every part of the agreements shares: their dependencies, the sealed values'
purposes, the row look-ups and the event trail."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from rooms.agreements.seal_key import SealKey
from rooms.agreements.text import AgreementText
from rooms.cases.cases import Cases
from rooms.cases.keys import CaseKeys
from rooms.errors import IntegrityFailure, NotFound
from rooms.spaces.facade import Spaces
from rooms.storage.schema import agreement_events, agreement_versions, agreements
from rooms.storage.store import Store
from rooms.vault.format import VaultIntegrityError
from rooms.vault.sealed import seal, unseal
from rooms.vault.store import SpaceVault

log = logging.getLogger(__name__)

DRAFT, FINAL, SEALED = "draft", "final", "sealed"
EDIT, PROPOSAL = "edit", "proposal"
#: The roles that may be named to sign (their case role).
SIGNING_ROLES = ("party", "counsel")


@dataclass
class AgreementParts:
    """The store, case keys, spaces, vault and seal key every part works with."""

    store: Store
    cases: Cases
    keys: CaseKeys
    spaces: Spaces
    vault: SpaceVault
    seal_key: SealKey
    site_name: str = "Caucus"
    clock: Callable[[], float] = field(default=time.time)


def version_aad(agreement_id: str, number: int) -> bytes:
    return f"agreement-version:{agreement_id}:{number}".encode()


def comment_aad(comment_id: str) -> bytes:
    return f"agreement-comment:{comment_id}".encode()


def record_aad(agreement_id: str, version: int, user_id: str) -> bytes:
    return f"agreement-signature:{agreement_id}:{version}:{user_id}".encode()


def blob_id(agreement_id: str) -> str:
    """The vault blob of an agreement's sealed PDF."""
    return f"agreement-{agreement_id}"


def seal_text(key: bytes, aad: bytes, text: AgreementText) -> bytes:
    return seal(key, aad, text.to_json())


def seal_json(key: bytes, aad: bytes, value: dict[str, Any]) -> bytes:
    return seal(key, aad, json.dumps(value, ensure_ascii=False).encode("utf-8"))


def open_value(key: bytes, aad: bytes, sealed: bytes) -> bytes:
    try:
        return unseal(key, aad, bytes(sealed))
    except VaultIntegrityError as exc:
        log.warning("sealed agreement value failed authentication", extra={"what": aad.decode()})
        raise IntegrityFailure(
            "Stored data of this agreement is damaged and cannot be read."
        ) from exc


def open_json(key: bytes, aad: bytes, sealed: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(open_value(key, aad, sealed))
    return value


async def agreement_row(
    conn: Any, case_id: str, space_id: str, agreement_id: str, *, lock: bool = False
) -> sa.Row:
    """The agreement of this case's space; ``NotFound`` for any other (exactly as for one
    that does not exist). ``lock``: hold the row until the transaction ends (PostgreSQL;
    SQLite's write transactions are serialised already)."""
    query = sa.select(agreements).where(
        agreements.c.id == agreement_id,
        agreements.c.case_id == case_id,
        agreements.c.space_id == space_id,
    )
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound("No such agreement.", code="not_found")
    return row


async def version_row(conn: Any, agreement_id: str, number: int) -> sa.Row:
    row = (
        await conn.execute(
            sa.select(agreement_versions).where(
                agreement_versions.c.agreement_id == agreement_id,
                agreement_versions.c.number == number,
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"This agreement has no version {number}.", code="no_such_version")
    return row


def version_text(key: bytes, row: sa.Row) -> AgreementText:
    return AgreementText.from_json(
        open_value(key, version_aad(row.agreement_id, row.number), row.content)
    )


async def add_event(
    conn: Any, agreement_id: str, at: float, kind: str, actor_id: str | None, **detail: Any
) -> None:
    """One line of the agreement's trail, shown to every member of its space: ids,
    version numbers and times only."""
    await conn.execute(
        sa.insert(agreement_events).values(
            agreement_id=agreement_id, at=at, kind=kind, actor_id=actor_id, detail=detail
        )
    )
