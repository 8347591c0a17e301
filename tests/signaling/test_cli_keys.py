"""``caucus keys rotate``: a new master key, every case key rewrapped and every two-factor
seed resealed, no blob rewritten."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa

from rooms.cases.keys import rotate_master_key
from rooms.errors import IntegrityFailure
from rooms.storage.schema import case_keys, users
from rooms.storage.store import Store
from rooms.vault.masterkey import ENV_VAR, MasterKey, MasterKeyError
from signaling.cli.keys import NEW_ENV_VAR, rotate_keys
from signaling.services import Services
from signaling.settings import Settings
from tests.support.world import INTAKE

pytestmark = pytest.mark.store  # about SQL: runs on every database backend

ROOT = Path(__file__).resolve().parents[2]


async def case_with_content(services: Services) -> tuple[str, str, str]:
    """A case with a space, a message and a file; (case id, space id, file id)."""
    neutral = await services.accounts.create_user("nora", "a sound passphrase 42", role="neutral")
    case = await services.cases.open_case(neutral, {**INTAKE, "title": "Rotation"})
    member = await services.cases.membership(case.id, neutral.id)
    space = await services.spaces.create(case.id, member, "Caucus", [])
    await services.spaces.post(case.id, space.id, neutral.id, "a sealed message")

    async def pieces():
        yield b"%PDF-1.7\n" + os.urandom(200_000)

    record = await services.spaces.upload(
        case.id, space.id, neutral.id, "brief.pdf", pieces(), max_bytes=10**6
    )
    return case.id, space.id, record.id


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def readable(settings: Settings, store: Store, case_id: str, space_id: str, file_id: str):
    services = Services.build(settings, store=store)
    history, _ = await services.spaces.history(case_id, space_id)
    record = await services.spaces.file(case_id, space_id, file_id)
    reader = await services.spaces.open_file(case_id, record)
    try:
        data = await reader.read_all()
    finally:
        await reader.close()
    return history[0].body, len(data), services.master_key.key_id


async def wrapping_ids(store: Store) -> set[str]:
    async with store.connect() as conn:
        return set((await conn.execute(sa.select(case_keys.c.master_key_id))).scalars())


@pytest.mark.parametrize("keep_old", [False, True])
async def test_rotate_key_file(
    services: Services, settings: Settings, store: Store, keep_old: bool
) -> None:
    case_id, space_id, file_id = await case_with_content(services)
    key_file = settings.master_key_path
    old_id = services.master_key.key_id
    blob = services.vault.blob_path(case_id, file_id)
    before = digest(blob)

    message = await rotate_keys(settings, keep_old=keep_old, store=store)

    new_id = MasterKey.load_or_create(key_file).key_id
    assert new_id != old_id and f"to {new_id}" in message
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert await wrapping_ids(store) == {new_id}
    assert digest(blob) == before  # nothing re-encrypted
    assert not key_file.with_name("master.key.new").exists()
    backups = sorted(p.name for p in key_file.parent.glob("master.key.*.old"))
    assert backups == ([f"master.key.{old_id}.old"] if keep_old else [])
    body, size, running_id = await readable(settings, store, case_id, space_id, file_id)
    assert (body, size, running_id) == ("a sealed message", 200_009, new_id)
    # A server still holding the old key gets a clear answer, not garbage.
    with pytest.raises(Exception, match="finish the key rotation"):
        await services.spaces.history(case_id, space_id)


async def test_interrupted_rotation_resumes(
    services: Services, settings: Settings, store: Store
) -> None:
    case_id, space_id, file_id = await case_with_content(services)
    key_file = settings.master_key_path
    # A rotation that committed its rows and stopped before replacing the key file.
    pending = MasterKey.load_or_create(key_file.with_name("master.key.new"))
    await rotate_master_key(store, services.master_key, pending)
    await rotate_keys(settings, keep_old=False, store=store)
    assert MasterKey.load_or_create(key_file).key_id == pending.key_id
    body, _, _ = await readable(settings, store, case_id, space_id, file_id)
    assert body == "a sealed message"


async def test_rotate_with_the_key_in_the_environment(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = MasterKey.generate(), MasterKey.generate()
    monkeypatch.setenv(ENV_VAR, old.to_base64())
    settings = Settings(data_dir=tmp_path / "env-data", argon2_time_cost=1, argon2_memory_kib=8192)
    services = Services.build(settings, store=store)
    case_id, space_id, file_id = await case_with_content(services)
    with pytest.raises(MasterKeyError, match=NEW_ENV_VAR):
        await rotate_keys(settings, keep_old=False, store=store)
    monkeypatch.setenv(NEW_ENV_VAR, new.to_base64())
    await rotate_keys(settings, keep_old=False, store=store)
    assert not settings.master_key_path.exists()  # the key never goes to disk
    assert await wrapping_ids(store) == {new.key_id}
    monkeypatch.setenv(ENV_VAR, new.to_base64())
    body, _, _ = await readable(settings, store, case_id, space_id, file_id)
    assert body == "a sealed message"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_command(services: Services, settings: Settings) -> None:
    await case_with_content(services)
    old_id = services.master_key.key_id
    env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, NEW_ENV_VAR)}
    url = services.store.url.render_as_string(hide_password=False).replace("+aiosqlite", "")
    command = [sys.executable, "-m", "signaling.cli", "keys", "rotate", "--keep-old"]
    command += ["--data-dir", str(settings.data_dir), "--database-url", url]

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )

    result = await asyncio.to_thread(run)
    assert result.returncode == 0, result.stderr
    assert f"from master key {old_id}" in result.stdout
    command[-3] = str(settings.data_dir / "nowhere")
    result = await asyncio.to_thread(run)
    assert result.returncode == 1 and "no master key file" in result.stderr


async def test_rotation_reseals_two_factor_seeds(
    services: Services, settings: Settings, store: Store
) -> None:
    accounts = services.accounts
    user = await accounts.create_user("twofa", "a sound passphrase 42")
    secret, _ = await accounts.totp_begin(user.id)
    now = time.time()
    await accounts.totp_confirm(user.id, pyotp.TOTP(secret).at(now - 30))
    await rotate_keys(settings, keep_old=False, store=store)
    new = MasterKey.load_or_create(settings.master_key_path)
    async with store.connect() as conn:
        query = sa.select(users.c.totp_secret).where(users.c.id == user.id)
        sealed = (await conn.execute(query)).scalar_one()
    assert sealed.startswith(f"s1.{new.key_id}.") and secret not in sealed
    # a server started with the new key reads it; the old key cannot
    restarted = Services.build(settings, store=store)
    await restarted.accounts.verify_second_factor(user.id, pyotp.TOTP(secret).at(now), "10.0.0.9")
    with pytest.raises(IntegrityFailure):
        await accounts.verify_second_factor(user.id, pyotp.TOTP(secret).at(now + 30), "10.0.0.9")
