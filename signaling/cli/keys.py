"""``caucus keys rotate``: replace the master key, rewrapping every case key.

Only the 40-byte wrapped case keys in ``case_keys`` change; blobs and sealed values stay
as they are, because the case keys themselves do not change. Run it with the server
stopped (a running server keeps using the master key it started with).

Key file (the default, ``<data_dir>/master.key``):

1. The new key is written to ``master.key.new`` (mode 0600, fsynced, created atomically;
   an existing one is reused, so an interrupted rotation resumes with the same key).
2. One transaction rewraps every case key from the current key to the new one.
3. With ``--keep-old`` the current file is kept as ``master.key.<key id>.old``;
   otherwise it is dropped. Then ``master.key.new`` is renamed over ``master.key``
   (atomic) and the directory fsynced.

A crash between 2 and 3 leaves rows wrapped by the key in ``master.key.new``: running the
command again finishes the rotation. Without ``--keep-old`` no copy of the old key is
left by Caucus (backups of the data directory are the operator's to handle).

Environment (``CAUCUS_MASTER_KEY`` set): the new key comes from ``CAUCUS_NEW_MASTER_KEY``
(base64 of 32 bytes; ``openssl rand -base64 32``), nothing is written to disk, and the
operator moves the new value into ``CAUCUS_MASTER_KEY`` before starting the server.
"""

from __future__ import annotations

import os
from pathlib import Path

from rooms.cases.keys import rotate_master_key
from rooms.storage.store import Store
from rooms.vault.masterkey import ENV_VAR, MasterKey, MasterKeyError
from signaling.settings import Settings

NEW_ENV_VAR = "CAUCUS_NEW_MASTER_KEY"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def rotate_keys(settings: Settings, *, keep_old: bool, store: Store | None = None) -> str:
    """Rotate the master key as described above; a sentence for the operator."""
    own_store = store is None
    store = store or Store(settings.effective_database_url)
    try:
        await store.migrate()
        env_value = os.environ.get(ENV_VAR)
        if env_value is not None:
            new_value = os.environ.get(NEW_ENV_VAR)
            if not new_value:
                raise MasterKeyError(
                    f"${ENV_VAR} is set: put the new master key in ${NEW_ENV_VAR} "
                    "(base64 of 32 random bytes, e.g. from 'openssl rand -base64 32')"
                )
            old = MasterKey.from_base64(env_value)
            new = MasterKey.from_base64(new_value)
            if new.key_id == old.key_id:
                raise MasterKeyError(f"${NEW_ENV_VAR} holds the current master key")
            count = await rotate_master_key(store, old, new)
            return (
                f"Rewrapped {count} case keys from master key {old.key_id} to {new.key_id}. "
                f"Set {ENV_VAR} to the value of {NEW_ENV_VAR} before starting the server."
            )
        path = settings.master_key_path
        if not path.exists():
            raise MasterKeyError(f"there is no master key file at {path}: nothing to rotate")
        old = MasterKey.load_or_create(path)
        pending = path.with_name(path.name + ".new")
        new = MasterKey.load_or_create(pending)  # created here, or the one being rotated to
        count = await rotate_master_key(store, old, new)
        kept = ""
        if keep_old:
            backup = path.with_name(f"{path.name}.{old.key_id}.old")
            if not backup.exists():
                os.link(path, backup)
            kept = f" The old key is kept in {backup}; delete it once backups no longer need it."
        os.replace(pending, path)
        _fsync_dir(path.parent)
        return (
            f"Rewrapped {count} case keys from master key {old.key_id} to {new.key_id}; "
            f"{path} now holds the new key.{kept}"
        )
    finally:
        if own_store:
            await store.close()
