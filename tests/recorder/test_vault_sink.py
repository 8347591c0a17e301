"""The vault sink: late header rewrites stay in memory, the rest is encrypted as written."""

import io

import pytest

from recorder.vault_sink import RecordingWriteError, VaultSink

from .conftest import CASE, files_under


async def test_head_rewrites_and_streamed_body_make_one_encrypted_blob(vault, case_key):
    sink = VaultSink(vault, CASE, case_key, "blob", head_size=16, flush_size=64)
    await sink.open()
    sink.write(b"H" * 10)
    sink.write(b"0123456789" * 30)  # crosses into the body, triggers the pump
    sink.seek(2)
    sink.write(b"patched")  # a late header rewrite
    sink.seek(0, io.SEEK_END)
    sink.write(b"-tail")
    assert sink.tell() == 315
    # only encrypted data on disk while recording: the spool holds the body
    for data in files_under(vault.root):
        assert b"0123456789" not in data
    size = await sink.finish()
    expected = bytearray(b"H" * 10 + b"0123456789" * 30 + b"-tail")
    expected[2:9] = b"patched"
    assert size == len(expected)
    assert await vault.read_bytes(CASE, case_key, "blob") == bytes(expected)
    assert await vault.blob_ids(CASE) == ["blob"]  # the spool is gone


async def test_rewriting_encrypted_data_fails_and_abort_leaves_nothing(vault, case_key):
    sink = VaultSink(vault, CASE, case_key, "blob", head_size=16, flush_size=64)
    await sink.open()
    sink.write(b"x" * 200)
    sink.seek(100)
    with pytest.raises(RecordingWriteError):
        sink.write(b"y")
    await sink.abort()
    assert files_under(vault.root) == []
    assert await vault.blob_ids(CASE) == []


async def test_small_file_lives_in_the_head_only(vault, case_key):
    sink = VaultSink(vault, CASE, case_key, "small")
    await sink.open()
    sink.write(b"tiny")
    assert await sink.finish() == 4
    assert await vault.read_bytes(CASE, case_key, "small") == b"tiny"
    assert await vault.blob_ids(CASE) == ["small"]
