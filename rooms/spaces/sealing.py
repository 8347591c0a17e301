"""Sealed text of a space: names, message bodies and file names under the case key.

The associated data names what a value is and its row (``message:<id>``), so a sealed
value copied to another row or purpose does not open there.
"""

from __future__ import annotations

import logging

from rooms.errors import IntegrityFailure
from rooms.vault.format import VaultIntegrityError
from rooms.vault.sealed import unseal

log = logging.getLogger(__name__)


def aad(kind: str, row_id: str) -> bytes:
    return f"{kind}:{row_id}".encode()


def open_sealed(key: bytes, kind: str, row_id: str, sealed: bytes) -> str:
    try:
        return unseal(key, aad(kind, row_id), bytes(sealed)).decode("utf-8")
    except VaultIntegrityError as exc:
        log.warning("sealed value failed authentication", extra={"what": kind, "id": row_id})
        raise IntegrityFailure(
            f"Stored data of this space is damaged and cannot be read ({kind} {row_id}).",
        ) from exc
