"""Files of a space: uploads streamed into the vault, listed and opened for reading."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from rooms.errors import (
    Conflict,
    IntegrityFailure,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from rooms.spaces.events import SpaceEvent
from rooms.spaces.filetypes import SNIFF_BYTES, TextCheck, sniff
from rooms.spaces.sealing import aad, open_sealed
from rooms.spaces.spaces import SpaceDirectory, SpacePart, space_row
from rooms.storage.schema import new_id, space_files
from rooms.vault.format import BlobNotFoundError, VaultIntegrityError
from rooms.vault.reader import BlobReader
from rooms.vault.sealed import seal
from rooms.vault.store import SpaceVault

log = logging.getLogger(__name__)

MAX_FILE_NAME = 255


@dataclass(frozen=True)
class SpaceFile:
    id: str
    space_id: str
    uploader_id: str
    name: str
    content_type: str
    size: int
    created_at: float
    #: None for an upload; "video_message", "hearing_recording" or "hearing_timeline".
    kind: str | None = None
    duration_s: float | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "space_id": self.space_id,
            "uploader_id": self.uploader_id,
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "created_at": self.created_at,
            "kind": self.kind or "upload",
            "duration_s": self.duration_s,
        }


def file_from_row(key: bytes, row: sa.Row) -> SpaceFile:
    return SpaceFile(
        row.id,
        row.space_id,
        row.uploader_id,
        open_sealed(key, "file-name", row.id, row.name),
        row.content_type,
        row.size,
        row.created_at,
        row.kind,
        row.duration_s,
    )


class SpaceFiles(SpacePart):
    """Owns the files of spaces (rows and vault blobs)."""

    def __init__(self, directory: SpaceDirectory, vault: SpaceVault) -> None:
        super().__init__(directory)
        self.vault = vault

    async def upload(
        self,
        case_id: str,
        space_id: str,
        uploader_id: str,
        name: str,
        pieces: AsyncIterable[bytes],
        *,
        max_bytes: int,
        expected_size: int | None = None,
    ) -> SpaceFile:
        """Stream an upload into the vault: sniff its type from the first bytes, stop it
        as soon as it passes ``max_bytes``, and record it only once it is complete.

        Any failure (too large, refused type, a client that went away, a short body)
        leaves neither a blob nor a row.
        """
        name = " ".join(name.split())[:MAX_FILE_NAME] or "Untitled"
        if expected_size is not None and expected_size > max_bytes:
            raise PayloadTooLarge(f"The file is larger than the limit of {max_bytes} bytes.")
        key = await self.keys.key_for(case_id)
        async with self.store.connect() as conn:
            space = await space_row(conn, case_id, space_id)
        if space.archived_at is not None:
            raise Conflict("This space is archived: it can be read, not written.")
        file_id = new_id()
        iterator = aiter(pieces)
        head = bytearray()
        ended = False
        while len(head) < SNIFF_BYTES:
            try:
                head += await anext(iterator)
            except StopAsyncIteration:
                ended = True
                break
            if len(head) > max_bytes:
                raise PayloadTooLarge(f"The file is larger than the limit of {max_bytes} bytes.")
        kind = sniff(bytes(head[:SNIFF_BYTES]), name, complete=ended) if head else None
        if kind is None:
            raise UnsupportedMediaType(
                "This kind of file is not accepted. Upload PDF, Office documents, plain "
                "text, JPEG, PNG, GIF or WebP pictures, or MP4 or WebM videos."
            )
        text = TextCheck() if kind.kind == "text" else None

        async def accept(piece: bytes | bytearray) -> None:
            if text is not None and not text.feed(piece):
                raise UnsupportedMediaType("This file is not plain UTF-8 text.")
            await writer.write(piece)
            if writer.size > max_bytes:
                raise PayloadTooLarge(f"The file is larger than the limit of {max_bytes} bytes.")

        async with self.vault.writer(case_id, key, file_id) as writer:
            await accept(head)
            if not ended:
                async for piece in iterator:
                    await accept(piece)
            if text is not None and not text.finish():
                raise UnsupportedMediaType("This file is not plain UTF-8 text.")
            if expected_size is not None and writer.size != expected_size:
                raise InvalidInput("The upload ended before the whole file arrived.")
            size = await writer.finish()
        now = self.clock()
        try:
            async with self.store.begin() as conn:
                await conn.execute(
                    sa.insert(space_files).values(
                        id=file_id,
                        space_id=space_id,
                        uploader_id=uploader_id,
                        name=seal(key, aad("file-name", file_id), name.encode()),
                        content_type=kind.content_type,
                        size=size,
                        created_at=now,
                    )
                )
        except BaseException:
            await self.vault.delete_blob(case_id, file_id)
            raise
        record = SpaceFile(file_id, space_id, uploader_id, name, kind.content_type, size, now)
        await self.events.publish(SpaceEvent("file.new", case_id, space_id, record.public()))
        return record

    async def files(self, case_id: str, space_id: str) -> list[SpaceFile]:
        key = await self.keys.key_for(case_id)
        async with self.store.connect() as conn:
            await space_row(conn, case_id, space_id)
            rows = (
                await conn.execute(
                    sa.select(space_files)
                    .where(space_files.c.space_id == space_id)
                    .order_by(space_files.c.created_at, space_files.c.id)
                )
            ).all()
        return [file_from_row(key, r) for r in rows]

    async def file(self, case_id: str, space_id: str, file_id: str) -> SpaceFile:
        key = await self.keys.key_for(case_id)
        async with self.store.connect() as conn:
            await space_row(conn, case_id, space_id)
            row = (
                await conn.execute(
                    sa.select(space_files).where(
                        space_files.c.id == file_id, space_files.c.space_id == space_id
                    )
                )
            ).first()
        if row is None:
            raise NotFound("No such file.")
        return file_from_row(key, row)

    async def open_file(self, case_id: str, record: SpaceFile) -> BlobReader:
        """An opened reader of the file's plaintext (the caller closes it)."""
        key = await self.keys.key_for(case_id)
        reader = self.vault.reader(case_id, key, record.id)
        try:
            await reader.__aenter__()
        except VaultIntegrityError as exc:
            log.warning("blob failed authentication", extra={"file": record.id})
            raise IntegrityFailure(
                "This file is damaged and cannot be read (its encrypted copy failed the "
                "integrity check)."
            ) from exc
        except BlobNotFoundError as exc:
            raise NotFound("The contents of this file are missing.") from exc
        return reader
