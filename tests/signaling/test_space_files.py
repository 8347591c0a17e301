"""Files in spaces: streamed uploads with a size limit and sniffed types, downloads with
ranges, and clear answers for damaged files, refused types and cut-off uploads."""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
import sqlalchemy as sa

from rooms.storage.schema import messages, space_files
from rooms.vault.format import HEADER_SIZE, TAG_SIZE
from signaling.cookies import CSRF_COOKIE, SESSION_COOKIE
from signaling.settings import Settings
from tests.samples import jpeg_bytes, pdf_bytes
from tests.signaling.spaces_setup import CaseSpaces, open_spaces
from tests.support.eventually import eventually
from tests.support.plugin import make_settings
from tests.support.world import ApiClient, World

pytestmark = pytest.mark.store  # about SQL: runs on every database backend

LIMIT = 1024 * 1024


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, max_upload_bytes=LIMIT)


async def upload(
    client: ApiClient, spaces: CaseSpaces, space_id: str, name: str, data, **headers: str
) -> tuple[int, dict]:
    if client.csrf is None:
        await client.session()
    status, body, _ = await client.request(
        "POST",
        spaces.path(space_id, "/files"),
        None,
        data=data,
        headers={"X-File-Name": quote(name), **headers},
    )
    return status, body


def vault_files(world: World) -> list[Path]:
    root = world.server.services.settings.vault_path
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def file_rows(world: World) -> int:
    async with world.server.services.store.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(space_files))).scalar()


async def test_upload_list_download_and_preview(world: World) -> None:
    spaces = await open_spaces(world)
    paula, carl = world.clients["paula"], world.clients["carl"]
    pdf, jpeg = pdf_bytes(), jpeg_bytes()
    # The type comes from the bytes; what the client claims is ignored.
    status, body = await upload(
        paula, spaces, spaces.shared, "Témoignage — Ada.pdf", pdf, **{"Content-Type": "image/png"}
    )
    assert status == 201, body
    pdf_id = body["file"]["id"]
    assert body["file"]["content_type"] == "application/pdf"
    assert body["file"]["name"] == "Témoignage — Ada.pdf" and body["file"]["size"] == len(pdf)
    status, body = await upload(paula, spaces, spaces.shared, "photo.bin", jpeg)
    assert status == 201 and body["file"]["content_type"] == "image/jpeg"
    jpeg_id = body["file"]["id"]

    status, listing, _ = await carl.get(spaces.path(spaces.shared, "/files"))
    assert [f["name"] for f in listing["files"]] == ["Témoignage — Ada.pdf", "photo.bin"]

    async with carl.http.get(carl.base + spaces.path(spaces.shared, f"/files/{pdf_id}")) as r:
        assert r.status == 200 and await r.read() == pdf
        assert r.headers["Content-Type"] == "application/pdf"
        assert r.headers["Content-Disposition"].startswith("attachment;")
        assert "filename*=UTF-8''T%C3%A9moignage" in r.headers["Content-Disposition"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Accept-Ranges"] == "bytes"
    url = carl.base + spaces.path(spaces.shared, f"/files/{jpeg_id}?inline=1")
    async with carl.http.get(url) as r:
        assert r.status == 200 and await r.read() == jpeg
        assert r.headers["Content-Disposition"].startswith("inline;")
        assert "frame-ancestors 'self'" in r.headers["Content-Security-Policy"]


async def test_range_requests_decrypt_only_what_is_asked(world: World) -> None:
    spaces = await open_spaces(world)
    paula = world.clients["paula"]
    video = b"\x00\x00\x00\x18ftypmp42" + os.urandom(300_000)  # spans several chunks
    status, body = await upload(paula, spaces, spaces.private, "clip.mp4", video)
    assert status == 201 and body["file"]["content_type"] == "video/mp4"
    url = paula.base + spaces.path(spaces.private, f"/files/{body['file']['id']}?inline=1")
    cases = {
        "bytes=0-99": (0, 99),
        "bytes=65530-131080": (65530, 131080),
        "bytes=299990-": (299990, len(video) - 1),
        "bytes=-10": (len(video) - 10, len(video) - 1),
        "bytes=100-99999999": (100, len(video) - 1),
    }
    for header, (start, end) in cases.items():
        async with paula.http.get(url, headers={"Range": header}) as r:
            assert r.status == 206, header
            assert r.headers["Content-Range"] == f"bytes {start}-{end}/{len(video)}"
            assert int(r.headers["Content-Length"]) == end - start + 1
            assert await r.read() == video[start : end + 1], header
    for header in (f"bytes={len(video)}-", "bytes=-0", "bytes=500-400"):
        async with paula.http.get(url, headers={"Range": header}) as r:
            assert r.status == 416, header
            assert r.headers["Content-Range"] == f"bytes */{len(video)}"
    # Malformed and multiple ranges are ignored: the whole file.
    for header in ("bytes=abc", "bytes=0-1,5-6", "items=0-5"):
        async with paula.http.get(url, headers={"Range": header}) as r:
            assert r.status == 200 and await r.read() == video, header


async def test_over_limit_upload_stops_while_streaming(world: World) -> None:
    spaces = await open_spaces(world)
    paula = world.clients["paula"]
    body_finished = False

    async def endless():
        nonlocal body_finished
        yield b"%PDF-1.7\n"
        for _ in range(3 * LIMIT // (64 * 1024)):
            yield b"A" * (64 * 1024)
        # The rest never comes: the answer must arrive while the body is still open.
        await asyncio.wait_for(asyncio.Event().wait(), 60)
        body_finished = True

    status, body = await upload(paula, spaces, spaces.shared, "huge.pdf", endless())
    assert status == 413 and body["error"]["code"] == "payload_too_large", body
    assert not body_finished
    assert vault_files(world) == [] and await file_rows(world) == 0
    # A declared Content-Length over the limit is refused before any byte is stored.
    status, body = await upload(paula, spaces, spaces.shared, "big.pdf", b"%PDF-" + b"A" * LIMIT)
    assert status == 413
    assert vault_files(world) == [] and await file_rows(world) == 0
    status, body = await upload(paula, spaces, spaces.shared, "fits.pdf", b"%PDF-" + b"A" * 1000)
    assert status == 201


async def test_refused_types(world: World) -> None:
    spaces = await open_spaces(world)
    paula = world.clients["paula"]
    refused = {
        "program.exe": b"MZ\x90\x00" + os.urandom(2000),
        "elf.pdf": b"\x7fELF" + bytes(200),
        "empty.txt": b"",
        "latin1.txt": "Déclaration".encode("latin-1"),
        "archive.zip": b"PK\x03\x04" + bytes(26) + os.urandom(100),
        "song.m4a": b"\x00\x00\x00\x18ftypM4A " + bytes(100),
        "movie.mkv": b"\x1a\x45\xdf\xa3\x42\x82\x88matroska" + bytes(50),
        # Text whose binary part comes after the sniffed head is caught while streaming.
        "late-binary.txt": b"plain words\n" * 20_000 + b"\x00\x01\x02",
    }
    for name, data in refused.items():
        status, body = await upload(paula, spaces, spaces.shared, name, data)
        assert status == 415 and body["error"]["code"] == "unsupported_media_type", (name, body)
    assert vault_files(world) == [] and await file_rows(world) == 0
    accepted = {
        "notes.txt": ("Notes — ünïcode ✓\n".encode(), "text/plain; charset=utf-8"),
        "still.png": (b"\x89PNG\r\n\x1a\n" + bytes(40), "image/png"),
        "anim.gif": (b"GIF89a" + bytes(40), "image/gif"),
        "pic.webp": (b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(40), "image/webp"),
        "call.webm": (
            b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + bytes(40),
            "video/webm",
        ),
        "old.doc": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), "application/msword"),
    }
    for name, (data, content_type) in accepted.items():
        status, body = await upload(paula, spaces, spaces.shared, name, data)
        assert status == 201, (name, body)
        assert body["file"]["content_type"] == content_type, name


def ooxml(parts: list[str]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        for part in parts:
            archive.writestr(part, "<x/>")
    return buffer.getvalue()


async def test_office_documents(world: World) -> None:
    spaces = await open_spaces(world)
    paula = world.clients["paula"]
    cases = {
        "brief.docx": (ooxml(["word/document.xml"]), "wordprocessingml"),
        "figures.xlsx": (ooxml(["xl/workbook.xml"]), "spreadsheetml"),
        "slides.pptx": (ooxml(["ppt/presentation.xml"]), "presentationml"),
    }
    for name, (data, family) in cases.items():
        status, body = await upload(paula, spaces, spaces.shared, name, data)
        assert status == 201 and family in body["file"]["content_type"], (name, body)
    status, body = await upload(
        paula, spaces, spaces.shared, "plain.zip", ooxml([])[:0] + b"PK\x03\x04"
    )
    assert status == 415


async def test_interrupted_upload_leaves_nothing(world: World) -> None:
    spaces = await open_spaces(world)
    paula = world.clients["paula"]
    await paula.session()
    url = urlsplit(world.server.url)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    _reader, writer = await asyncio.open_connection(url.hostname, url.port, ssl=context)
    head = (
        f"POST {spaces.path(spaces.shared, '/files')} HTTP/1.1\r\n"
        f"Host: {url.netloc}\r\n"
        f"Cookie: {SESSION_COOKIE}={paula.cookie(SESSION_COOKIE)}; "
        f"{CSRF_COOKIE}={paula.cookie(CSRF_COOKIE)}\r\n"
        f"X-CSRF-Token: {paula.csrf}\r\n"
        "X-File-Name: cut.pdf\r\n"
        f"Content-Length: {LIMIT - 10}\r\n\r\n"
    )
    writer.write(head.encode() + b"%PDF-1.7\n" + b"B" * 300_000)
    await writer.drain()

    async def partial_exists() -> bool:
        return any(p.name.endswith(".partial") for p in vault_files(world))

    await eventually(partial_exists, what="the upload to reach the vault")
    writer.transport.abort()  # the client goes away mid-body

    async def nothing_left() -> bool:
        return vault_files(world) == []

    await eventually(nothing_left, what="the partial blob to be removed")
    assert await file_rows(world) == 0
    _status, listing, _ = await paula.get(spaces.path(spaces.shared, "/files"))
    assert listing == {"files": []}


async def test_damaged_files_and_messages_answer_integrity_error(world: World) -> None:
    spaces = await open_spaces(world)
    paula = world.clients["paula"]
    small = pdf_bytes()
    status, body = await upload(paula, spaces, spaces.shared, "small.pdf", small)
    small_id = body["file"]["id"]
    big = b"%PDF-1.7\n" + os.urandom(4 * 65536)
    status, body = await upload(paula, spaces, spaces.shared, "big.pdf", big)
    big_id = body["file"]["id"]
    vault = world.server.services.vault

    def flip(blob_id: str, offset: int) -> None:
        path = vault.blob_path(spaces.case_id, blob_id)
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x01
        path.write_bytes(bytes(data))

    flip(small_id, HEADER_SIZE + 3)  # inside chunk 0
    status, body, _ = await paula.get(spaces.path(spaces.shared, f"/files/{small_id}"))
    assert status == 500 and body["error"]["code"] == "integrity_error", body
    assert "Traceback" not in str(body)

    flip(big_id, HEADER_SIZE + 2 * (65536 + TAG_SIZE) + 10)  # inside chunk 2
    url = paula.base + spaces.path(spaces.shared, f"/files/{big_id}")
    async with paula.http.get(url, headers={"Range": "bytes=0-65535"}) as r:
        assert r.status == 206 and await r.read() == big[:65536]  # untouched chunk
    with pytest.raises(aiohttp.ClientPayloadError):  # a failed download, never a short file
        async with paula.http.get(url) as r:
            assert r.status == 200
            await r.read()

    # A damaged sealed message body.
    status, body, _ = await paula.post(spaces.path(spaces.shared, "/messages"), {"body": "hi"})
    async with world.server.services.store.begin() as conn:
        sealed = (
            await conn.execute(
                sa.select(messages.c.body).where(messages.c.id == body["message"]["id"])
            )
        ).scalar_one()
        damaged = bytearray(sealed)
        damaged[-1] ^= 0x01
        await conn.execute(
            sa.update(messages)
            .where(messages.c.id == body["message"]["id"])
            .values(body=bytes(damaged))
        )
    status, body, _ = await paula.get(spaces.path(spaces.shared, "/messages"))
    assert status == 500 and body["error"]["code"] == "integrity_error", body
