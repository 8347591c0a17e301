"""Case keys: one random AES-256 data key per case, stored only wrapped by the master key.

``case_keys`` holds ``(case_id, wrapped_key, master_key_id)``. A case's key is created the
first time the case stores something encrypted, unwrapped on every use (AES-KW of 40
bytes costs microseconds, so no unwrapped key is kept in memory between requests) and
destroyed when the case is closed, which makes every blob and sealed value of the case
unreadable for good (crypto-shredding).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from rooms.errors import IntegrityFailure
from rooms.storage.schema import case_keys, users
from rooms.storage.store import Store
from rooms.vault.format import VaultIntegrityError, new_data_key
from rooms.vault.masterkey import MasterKey, rewrap, sealed_by


class CaseKeys:
    """Owns the ``case_keys`` table and the master key that wraps its rows."""

    def __init__(
        self, store: Store, master: MasterKey, clock: Callable[[], float] = time.time
    ) -> None:
        self.__store = store
        self.__master = master
        self.__clock = clock

    @property
    def master_key_id(self) -> str:
        return self.__master.key_id

    async def key_for(self, case_id: str) -> bytes:
        """The case's data key, created and stored wrapped on first use."""
        async with self.__store.connect() as conn:
            row = (
                await conn.execute(sa.select(case_keys).where(case_keys.c.case_id == case_id))
            ).first()
        if row is not None:
            return self.__unwrap(row)
        key = new_data_key()
        try:
            async with self.__store.begin() as conn:
                await conn.execute(
                    sa.insert(case_keys).values(
                        case_id=case_id,
                        wrapped_key=self.__master.wrap(key),
                        master_key_id=self.__master.key_id,
                        created_at=self.__clock(),
                    )
                )
        except IntegrityError:
            # Created by a concurrent request meanwhile (or the case is gone).
            async with self.__store.connect() as conn:
                row = (
                    await conn.execute(sa.select(case_keys).where(case_keys.c.case_id == case_id))
                ).first()
            if row is None:
                raise
            return self.__unwrap(row)
        return key

    def __unwrap(self, row: sa.Row) -> bytes:
        if row.master_key_id != self.__master.key_id:
            raise IntegrityFailure(
                f"The case key is wrapped by master key {row.master_key_id}, but this server "
                f"runs with master key {self.__master.key_id}; finish the key rotation "
                "(caucus keys rotate) or start with the right master key.",
                code="master_key_mismatch",
            )
        try:
            return self.__master.unwrap(bytes(row.wrapped_key))
        except VaultIntegrityError as exc:
            raise IntegrityFailure(
                "The stored case key does not unwrap: it was altered.", code="integrity_error"
            ) from exc

    async def destroy(self, conn: Any, case_id: str) -> bool:
        """Delete the case's wrapped key inside the caller's transaction."""
        result = await conn.execute(sa.delete(case_keys).where(case_keys.c.case_id == case_id))
        return bool(result.rowcount)


async def rotate_master_key(store: Store, old: MasterKey, new: MasterKey) -> int:
    """Rewrap every case key from ``old`` to ``new`` in one transaction; return how many.

    Rows already wrapped by ``new`` (a rotation that was interrupted after its commit and
    is run again) are left alone; a row wrapped by any other master key stops the
    rotation before anything changes.
    """
    async with store.begin() as conn:
        rows = (
            await conn.execute(
                sa.select(case_keys.c.case_id, case_keys.c.wrapped_key, case_keys.c.master_key_id)
            )
        ).all()
        strangers = {r.master_key_id for r in rows} - {old.key_id, new.key_id}
        if strangers:
            raise IntegrityFailure(
                "Some case keys are wrapped by master keys that are neither the current nor "
                f"the new one ({', '.join(sorted(strangers))}); nothing was changed.",
                code="master_key_mismatch",
            )
        await _reseal_account_secrets(conn, old, new)
        count = 0
        for row in rows:
            if row.master_key_id != old.key_id:
                continue
            await conn.execute(
                sa.update(case_keys)
                .where(
                    case_keys.c.case_id == row.case_id,
                    case_keys.c.master_key_id == old.key_id,
                )
                .values(
                    wrapped_key=rewrap(bytes(row.wrapped_key), old, new), master_key_id=new.key_id
                )
            )
            count += 1
    return count


async def _reseal_account_secrets(conn: Any, old: MasterKey, new: MasterKey) -> int:
    """Reseal the TOTP seeds sealed by ``old`` with ``new`` (and seal any stored in clear),
    inside the rotation's transaction; a seed sealed by another master key stops it."""
    rows = (
        await conn.execute(
            sa.select(users.c.id, users.c.totp_secret).where(users.c.totp_secret.is_not(None))
        )
    ).all()
    sealers = {sealed_by(r.totp_secret) for r in rows}
    strangers = {k for k in sealers if k is not None} - {old.key_id, new.key_id}
    if strangers:
        raise IntegrityFailure(
            "Some two-factor secrets are sealed by master keys that are neither the current "
            f"nor the new one ({', '.join(sorted(strangers))}); nothing was changed.",
            code="master_key_mismatch",
        )
    count = 0
    for row in rows:
        owner = row.id.encode()
        by = sealed_by(row.totp_secret)
        if by == new.key_id:
            continue
        plain = row.totp_secret.encode() if by is None else old.open_sealed(row.totp_secret, owner)
        await conn.execute(
            sa.update(users).where(users.c.id == row.id).values(totp_secret=new.seal(plain, owner))
        )
        count += 1
    return count
