"""Messages of a space.

Messages are numbered per space (``seq`` 1, 2, ...): history pages go backwards by seq,
and a member's unread count is the number of other people's messages after the last seq
they marked read. An author may edit their message (it is then marked edited); only a
neutral may delete a message, which removes its body for everybody.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from rooms.cases.cases import Member
from rooms.cases.roles import NEUTRAL_ROLES
from rooms.errors import Conflict, Forbidden, InvalidInput, NotFound
from rooms.spaces.events import SpaceEvent
from rooms.spaces.sealing import aad, open_sealed
from rooms.spaces.spaces import SpacePart, space_row
from rooms.storage.schema import messages, new_id, space_members, spaces
from rooms.vault.sealed import seal

MAX_BODY = 10_000
PAGE_LIMIT = 200


@dataclass(frozen=True)
class Message:
    id: str
    space_id: str
    seq: int
    author_id: str
    body: str | None
    created_at: float
    edited_at: float | None
    deleted_at: float | None
    #: None for text; "video" (a video message, its file ``file_id``) or "video_failed".
    kind: str | None = None
    file_id: str | None = None
    duration_s: float | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "space_id": self.space_id,
            "seq": self.seq,
            "author_id": self.author_id,
            "body": self.body,
            "created_at": self.created_at,
            "edited": self.edited_at is not None,
            "edited_at": self.edited_at,
            "deleted": self.deleted_at is not None,
            "kind": self.kind or "text",
            "file_id": self.file_id,
            "duration_s": self.duration_s,
        }


def message_from_row(key: bytes, row: sa.Row) -> Message:
    body = None if row.body is None else open_sealed(key, "message", row.id, row.body)
    return Message(
        row.id,
        row.space_id,
        row.seq,
        row.author_id,
        body,
        row.created_at,
        row.edited_at,
        row.deleted_at,
        row.kind,
        row.file_id,
        row.duration_s,
    )


async def insert_message(
    conn: Any,
    space_id: str,
    message_id: str,
    author_id: str,
    sealed: bytes,
    now: float,
    *,
    kind: str | None = None,
    file_id: str | None = None,
    duration_s: float | None = None,
) -> int:
    """Insert a message with the space's next seq (in the caller's transaction); its seq."""
    seq = (
        await conn.execute(
            sa.update(spaces)
            .where(spaces.c.id == space_id)
            .values(last_seq=spaces.c.last_seq + 1)
            .returning(spaces.c.last_seq)
        )
    ).scalar_one()
    await conn.execute(
        sa.insert(messages).values(
            id=message_id,
            space_id=space_id,
            seq=seq,
            author_id=author_id,
            body=sealed,
            created_at=now,
            kind=kind,
            file_id=file_id,
            duration_s=duration_s,
        )
    )
    await conn.execute(
        sa.update(space_members)
        .where(space_members.c.space_id == space_id, space_members.c.user_id == author_id)
        .values(last_read_seq=seq)
    )
    return seq


class SpaceMessages(SpacePart):
    """Owns the messages of spaces: posting, editing, deleting, history, read markers."""

    async def post(
        self, case_id: str, space_id: str, author_id: str, body: str, *, kind: str | None = None
    ) -> Message:
        if not body.strip() or len(body) > MAX_BODY:
            raise InvalidInput(f"A message has 1 to {MAX_BODY} characters.")
        key = await self.keys.key_for(case_id)
        message_id = new_id()
        now = self.clock()
        sealed = seal(key, aad("message", message_id), body.encode())
        async with self.store.begin() as conn:
            row = await space_row(conn, case_id, space_id)
            if row.archived_at is not None:
                raise Conflict("This space is archived: it can be read, not written.")
            seq = await insert_message(
                conn, space_id, message_id, author_id, sealed, now, kind=kind
            )
        message = Message(message_id, space_id, seq, author_id, body, now, None, None, kind)
        await self.events.publish(SpaceEvent("message.new", case_id, space_id, message.public()))
        return message

    async def _message_row(self, conn: Any, space_id: str, message_id: str) -> sa.Row:
        row = (
            await conn.execute(
                sa.select(messages).where(
                    messages.c.id == message_id, messages.c.space_id == space_id
                )
            )
        ).first()
        if row is None:
            raise NotFound("No such message.")
        return row

    async def edit(
        self, case_id: str, space_id: str, message_id: str, user_id: str, body: str
    ) -> Message:
        if not body.strip() or len(body) > MAX_BODY:
            raise InvalidInput(f"A message has 1 to {MAX_BODY} characters.")
        key = await self.keys.key_for(case_id)
        now = self.clock()
        async with self.store.begin() as conn:
            space = await space_row(conn, case_id, space_id)
            row = await self._message_row(conn, space_id, message_id)
            if row.author_id != user_id:
                raise Forbidden("Only its author can edit a message.")
            if row.deleted_at is not None:
                raise Conflict("This message was deleted.")
            if space.archived_at is not None:
                raise Conflict("This space is archived: it can be read, not written.")
            await conn.execute(
                sa.update(messages)
                .where(messages.c.id == message_id)
                .values(body=seal(key, aad("message", message_id), body.encode()), edited_at=now)
            )
        message = Message(
            message_id, space_id, row.seq, row.author_id, body, row.created_at, now, None
        )
        await self.events.publish(SpaceEvent("message.edited", case_id, space_id, message.public()))
        return message

    async def delete(self, case_id: str, space_id: str, message_id: str, actor: Member) -> Message:
        """Remove a message's body for everybody; neutrals only."""
        if actor.role not in NEUTRAL_ROLES:
            raise Forbidden("Only the case's neutral or a co-neutral can delete messages.")
        now = self.clock()
        async with self.store.begin() as conn:
            await space_row(conn, case_id, space_id)
            row = await self._message_row(conn, space_id, message_id)
            if row.deleted_at is None:
                await conn.execute(
                    sa.update(messages)
                    .where(messages.c.id == message_id)
                    .values(body=None, deleted_at=now, deleted_by=actor.user_id)
                )
                await self.cases.audit(
                    conn, actor.user_id, "message.delete", case_id, message=message_id
                )
        message = Message(
            message_id, space_id, row.seq, row.author_id, None, row.created_at, row.edited_at, now
        )
        await self.events.publish(
            SpaceEvent("message.deleted", case_id, space_id, message.public())
        )
        return message

    async def history(
        self, case_id: str, space_id: str, *, before: int | None = None, limit: int = 50
    ) -> tuple[list[Message], bool]:
        """Up to ``limit`` messages with seq below ``before`` (newest when None), oldest
        first, and whether older ones exist."""
        limit = max(1, min(limit, PAGE_LIMIT))
        query = sa.select(messages).where(messages.c.space_id == space_id)
        if before is not None:
            query = query.where(messages.c.seq < before)
        query = query.order_by(messages.c.seq.desc()).limit(limit + 1)
        key = await self.keys.key_for(case_id)
        async with self.store.connect() as conn:
            await space_row(conn, case_id, space_id)
            rows = (await conn.execute(query)).all()
        more = len(rows) > limit
        return [message_from_row(key, r) for r in reversed(rows[:limit])], more

    async def mark_read(self, case_id: str, space_id: str, user_id: str, seq: int) -> int:
        """Move the member's read marker forward to ``seq`` (never back); the new marker."""
        async with self.store.begin() as conn:
            space = await space_row(conn, case_id, space_id)
            seq = max(0, min(seq, space.last_seq))
            await conn.execute(
                sa.update(space_members)
                .where(
                    space_members.c.space_id == space_id,
                    space_members.c.user_id == user_id,
                    space_members.c.last_read_seq < seq,
                )
                .values(last_read_seq=seq)
            )
            marker = (
                await conn.execute(
                    sa.select(space_members.c.last_read_seq).where(
                        space_members.c.space_id == space_id, space_members.c.user_id == user_id
                    )
                )
            ).scalar_one_or_none()
        return marker or 0
