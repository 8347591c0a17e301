"""MasterKey: key file and environment sources, wrapping, rotation."""

import base64
import os
import stat
from pathlib import Path

import pytest

from rooms.vault.format import VaultIntegrityError, new_data_key
from rooms.vault.masterkey import MasterKey, MasterKeyError, rewrap
from rooms.vault.sealed import seal, unseal
from rooms.vault.store import SpaceVault


def test_key_file_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "master.key"
    first = MasterKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(base64.b64decode(path.read_text().strip())) == 32
    again = MasterKey.load_or_create(path)
    assert again.key_id == first.key_id
    data_key = new_data_key()
    assert again.unwrap(first.wrap(data_key)) == data_key
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]  # no temp left behind


def test_env_key_used_when_given(tmp_path: Path) -> None:
    raw = os.urandom(32)
    path = tmp_path / "master.key"
    from_env = MasterKey.load_or_create(path, base64.b64encode(raw).decode())
    assert from_env.key_id == MasterKey(raw).key_id
    assert not path.exists()  # the environment wins; no file is written
    MasterKey.load_or_create(path)
    assert MasterKey.load_or_create(path, from_env.to_base64()).key_id == from_env.key_id


@pytest.mark.parametrize("value", ["", "   ", "not base64!", base64.b64encode(b"x" * 16).decode()])
def test_bad_env_key_rejected(tmp_path: Path, value: str) -> None:
    with pytest.raises(MasterKeyError, match="CAUCUS_MASTER_KEY"):
        MasterKey.load_or_create(tmp_path / "master.key", value)


def test_corrupt_key_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text("dGVzdA==\n")
    with pytest.raises(MasterKeyError, match="32 bytes"):
        MasterKey.load_or_create(path)


def test_key_id_does_not_reveal_key() -> None:
    key = MasterKey.generate()
    assert len(key.key_id) == 16
    assert key.key_id not in key.to_base64()
    assert key.to_base64() not in repr(key)


def test_wrap_round_trip_and_size() -> None:
    master = MasterKey.generate()
    data_key = new_data_key()
    wrapped = master.wrap(data_key)
    assert len(wrapped) == 40 and data_key not in wrapped
    assert master.unwrap(wrapped) == data_key


def test_unwrap_with_other_master_key_fails_clearly() -> None:
    wrapped = MasterKey.generate().wrap(new_data_key())
    other = MasterKey.generate()
    with pytest.raises(VaultIntegrityError, match=f"master key {other.key_id}"):
        other.unwrap(wrapped)


def test_unwrap_tampered_or_malformed_fails() -> None:
    master = MasterKey.generate()
    wrapped = bytearray(master.wrap(new_data_key()))
    wrapped[5] ^= 1
    with pytest.raises(VaultIntegrityError):
        master.unwrap(bytes(wrapped))
    with pytest.raises(VaultIntegrityError, match="40 bytes"):
        master.unwrap(b"short")


async def test_rewrap_keeps_blobs_and_sealed_values_readable(tmp_path: Path) -> None:
    old, new = MasterKey.generate(), MasterKey.generate()
    case_key = new_data_key()
    wrapped_old = old.wrap(case_key)
    vault = SpaceVault(tmp_path / "blobs")
    await vault.write_bytes("c", case_key, "doc", b"exhibit A" * 10000)
    sealed = seal(case_key, b"message:1", b"hello")
    blob_before = (tmp_path / "blobs" / "c" / "doc").read_bytes()

    wrapped_new = rewrap(wrapped_old, old, new)

    assert wrapped_new != wrapped_old
    with pytest.raises(VaultIntegrityError):
        old.unwrap(wrapped_new)
    restored = new.unwrap(wrapped_new)
    assert await vault.read_bytes("c", restored, "doc") == b"exhibit A" * 10000
    assert unseal(restored, b"message:1", sealed) == b"hello"
    assert (tmp_path / "blobs" / "c" / "doc").read_bytes() == blob_before  # not re-encrypted


def test_rewrap_with_wrong_old_key_fails() -> None:
    wrapped = MasterKey.generate().wrap(new_data_key())
    with pytest.raises(VaultIntegrityError):
        rewrap(wrapped, MasterKey.generate(), MasterKey.generate())
