"""Recordings filed in a space: video messages and hearing recordings that the recorder
already wrote to the vault."""

from __future__ import annotations

import sqlalchemy as sa

from rooms.errors import Conflict, NotFound
from rooms.spaces.events import SpaceEvent
from rooms.spaces.files import MAX_FILE_NAME, SpaceFile
from rooms.spaces.messages import Message, insert_message
from rooms.spaces.sealing import aad
from rooms.spaces.spaces import SpacePart, space_row
from rooms.storage.schema import new_id, space_files, space_members
from rooms.vault.sealed import seal


class SpaceRecordings(SpacePart):
    """Records finished recordings as files of a space, and video messages with them."""

    async def add_recording(
        self,
        case_id: str,
        space_id: str,
        uploader_id: str,
        file_id: str,
        name: str,
        content_type: str,
        size: int,
        *,
        kind: str,
        duration_s: float | None,
        message_body: str | None = None,
    ) -> tuple[SpaceFile, Message | None]:
        """Record a blob the recorder already wrote to the vault (named ``file_id``) as a
        file of the space; with ``message_body``, also post it as a video message of
        ``uploader_id`` in the same transaction.

        The uploader must still be a member and the space open; otherwise nothing is
        recorded and the caller deletes the blob.
        """
        name = " ".join(name.split())[:MAX_FILE_NAME] or "Recording"
        key = await self.keys.key_for(case_id)
        now = self.clock()
        message: Message | None = None
        async with self.store.begin() as conn:
            space = await space_row(conn, case_id, space_id)
            if space.archived_at is not None:
                raise Conflict("This space is archived: it can be read, not written.")
            member = (
                await conn.execute(
                    sa.select(space_members.c.user_id).where(
                        space_members.c.space_id == space_id,
                        space_members.c.user_id == uploader_id,
                    )
                )
            ).first()
            if member is None:
                raise NotFound("No such space.", code="not_found")
            await conn.execute(
                sa.insert(space_files).values(
                    id=file_id,
                    space_id=space_id,
                    uploader_id=uploader_id,
                    name=seal(key, aad("file-name", file_id), name.encode()),
                    content_type=content_type,
                    size=size,
                    created_at=now,
                    kind=kind,
                    duration_s=duration_s,
                )
            )
            if message_body is not None:
                message_id = new_id()
                sealed = seal(key, aad("message", message_id), message_body.encode())
                seq = await insert_message(
                    conn,
                    space_id,
                    message_id,
                    uploader_id,
                    sealed,
                    now,
                    kind="video",
                    file_id=file_id,
                    duration_s=duration_s,
                )
                message = Message(
                    message_id,
                    space_id,
                    seq,
                    uploader_id,
                    message_body,
                    now,
                    None,
                    None,
                    "video",
                    file_id,
                    duration_s,
                )
        record = SpaceFile(
            file_id, space_id, uploader_id, name, content_type, size, now, kind, duration_s
        )
        await self.events.publish(SpaceEvent("file.new", case_id, space_id, record.public()))
        if message is not None:
            await self.events.publish(
                SpaceEvent("message.new", case_id, space_id, message.public())
            )
        return record, message
