"""Spaces: private areas of a case where chosen members exchange messages and files.

A space belongs to one case. The case's neutral or a co-neutral creates it, names it,
chooses its members among the people of the case, and archives it (read-only from then
on). Everybody, neutrals included, reads and writes only in the spaces they are a member
of; neutrals also see the list of all spaces of their case so they can manage them.

Messages are numbered per space (``seq`` 1, 2, ...): history pages go backwards by seq,
and a member's unread count is the number of other people's messages after the last seq
they marked read. An author may edit their message (it is then marked edited); only a
neutral may delete a message, which removes its body for everybody.

User data is encrypted with the case key: space names, message bodies and file names are
sealed values in their rows, file contents are vault blobs named by the file id. Changes
are announced to listeners (the socket.io namespace) as ``SpaceEvent`` objects after they
are committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from rooms.cases.cases import Cases, Member
from rooms.cases.keys import CaseKeys
from rooms.cases.roles import NEUTRAL_ROLES
from rooms.errors import (
    Conflict,
    Forbidden,
    IntegrityFailure,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from rooms.filetypes import SNIFF_BYTES, TextCheck, sniff
from rooms.storage.schema import case_members, messages, new_id, space_files, space_members, spaces
from rooms.storage.store import Store
from rooms.vault.format import BlobNotFoundError, VaultIntegrityError
from rooms.vault.reader import BlobReader
from rooms.vault.sealed import seal, unseal
from rooms.vault.store import SpaceVault

log = logging.getLogger(__name__)

MAX_NAME = 200
MAX_BODY = 10_000
MAX_FILE_NAME = 255
PAGE_LIMIT = 200


def _aad(kind: str, row_id: str) -> bytes:
    return f"{kind}:{row_id}".encode()


@dataclass(frozen=True)
class Space:
    id: str
    case_id: str
    name: str
    created_by: str
    created_at: float
    archived_at: float | None
    last_seq: int

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "case_id": self.case_id,
            "name": self.name,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "archived": self.archived_at is not None,
            "archived_at": self.archived_at,
            "last_seq": self.last_seq,
        }


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


@dataclass(frozen=True)
class SpaceEvent:
    """Something that changed in a space, announced after commit.

    kind: ``message.new`` / ``message.edited`` / ``message.deleted`` (data: the message),
    ``file.new`` (data: the file), ``space.updated`` (data: the space),
    ``member.added`` / ``member.removed`` (``user_id``), ``space.closed`` (the case was
    closed; ``space_ids`` lists every space it had).
    """

    kind: str
    case_id: str
    space_id: str | None
    data: dict[str, Any] = field(default_factory=dict)
    user_id: str | None = None
    space_ids: tuple[str, ...] = ()


Listener = Callable[[SpaceEvent], Awaitable[None]]


class Spaces:
    """Owns spaces, their membership, messages and files (rows and vault blobs)."""

    def __init__(
        self,
        store: Store,
        cases: Cases,
        keys: CaseKeys,
        vault: SpaceVault,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.cases = cases
        self.keys = keys
        self.vault = vault
        self.clock = clock
        self.__listeners: list[Listener] = []

    # -- events --------------------------------------------------------------------------
    def listen(self, listener: Listener) -> None:
        self.__listeners.append(listener)

    async def publish(self, event: SpaceEvent) -> None:
        for listener in list(self.__listeners):
            try:
                await listener(event)
            except Exception:
                log.exception("space event listener failed", extra={"kind": event.kind})

    async def case_closed(self, case_id: str, space_ids: tuple[str, ...]) -> None:
        """A closed case's spaces are gone (``rooms.cases.closing.CaseClosedListener``)."""
        await self.publish(SpaceEvent("space.closed", case_id, None, space_ids=space_ids))

    # -- sealing -------------------------------------------------------------------------
    def _open(self, key: bytes, kind: str, row_id: str, sealed: bytes) -> str:
        try:
            return unseal(key, _aad(kind, row_id), bytes(sealed)).decode("utf-8")
        except VaultIntegrityError as exc:
            log.warning("sealed value failed authentication", extra={"what": kind, "id": row_id})
            raise IntegrityFailure(
                f"Stored data of this space is damaged and cannot be read ({kind} {row_id}).",
            ) from exc

    def _space(self, key: bytes, row: sa.Row) -> Space:
        return Space(
            row.id,
            row.case_id,
            self._open(key, "space-name", row.id, row.name),
            row.created_by,
            row.created_at,
            row.archived_at,
            row.last_seq,
        )

    def _message(self, key: bytes, row: sa.Row) -> Message:
        body = None if row.body is None else self._open(key, "message", row.id, row.body)
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

    def _file(self, key: bytes, row: sa.Row) -> SpaceFile:
        return SpaceFile(
            row.id,
            row.space_id,
            row.uploader_id,
            self._open(key, "file-name", row.id, row.name),
            row.content_type,
            row.size,
            row.created_at,
            row.kind,
            row.duration_s,
        )

    # -- checks --------------------------------------------------------------------------
    @staticmethod
    def _require_neutral(actor: Member) -> None:
        if actor.role not in NEUTRAL_ROLES:
            raise Forbidden("Only the case's neutral or a co-neutral manages spaces.")

    @staticmethod
    def _name(name: str) -> str:
        name = " ".join(name.split())
        if not 1 <= len(name) <= MAX_NAME:
            raise InvalidInput(f"A space name has 1 to {MAX_NAME} characters.")
        return name

    async def _space_row(self, conn: Any, case_id: str, space_id: str) -> sa.Row:
        row = (
            await conn.execute(
                sa.select(spaces).where(spaces.c.id == space_id, spaces.c.case_id == case_id)
            )
        ).first()
        if row is None:
            raise NotFound("No such space.", code="not_found")
        return row

    async def is_member(self, space_id: str, user_id: str) -> bool:
        async with self.store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(space_members.c.user_id).where(
                        space_members.c.space_id == space_id, space_members.c.user_id == user_id
                    )
                )
            ).first()
        return row is not None

    async def require_member(self, case_id: str, space_id: str, user_id: str) -> None:
        """Nothing when ``user_id`` is a member of the case's space; NotFound otherwise.

        A space one does not belong to answers exactly like one that does not exist.
        """
        async with self.store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(space_members.c.user_id)
                    .join(spaces, spaces.c.id == space_members.c.space_id)
                    .where(
                        spaces.c.case_id == case_id,
                        space_members.c.space_id == space_id,
                        space_members.c.user_id == user_id,
                    )
                )
            ).first()
        if row is None:
            raise NotFound("No such space.", code="not_found")

    async def _check_case_members(self, conn: Any, case_id: str, user_ids: Iterable[str]) -> None:
        wanted = set(user_ids)
        if not wanted:
            return
        found = set(
            (
                await conn.execute(
                    sa.select(case_members.c.user_id).where(
                        case_members.c.case_id == case_id, case_members.c.user_id.in_(wanted)
                    )
                )
            ).scalars()
        )
        if wanted - found:
            raise InvalidInput(
                "Only people of this case can be members of its spaces.", code="not_case_member"
            )

    # -- spaces --------------------------------------------------------------------------
    async def create(
        self, case_id: str, actor: Member, name: str, member_ids: Iterable[str]
    ) -> Space:
        self._require_neutral(actor)
        name = self._name(name)
        members = {actor.user_id, *member_ids}
        key = await self.keys.key_for(case_id)
        space_id = new_id()
        now = self.clock()
        async with self.store.begin() as conn:
            await self._check_case_members(conn, case_id, members)
            await conn.execute(
                sa.insert(spaces).values(
                    id=space_id,
                    case_id=case_id,
                    name=seal(key, _aad("space-name", space_id), name.encode()),
                    created_by=actor.user_id,
                    created_at=now,
                    archived_at=None,
                    last_seq=0,
                )
            )
            await conn.execute(
                sa.insert(space_members),
                [
                    {"space_id": space_id, "user_id": u, "added_at": now, "last_read_seq": 0}
                    for u in sorted(members)
                ],
            )
            await self.cases.audit(conn, actor.user_id, "space.create", case_id, space=space_id)
        space = await self.get(case_id, space_id)
        for user_id in sorted(members):
            await self.publish(
                SpaceEvent("member.added", case_id, space_id, space.public(), user_id=user_id)
            )
        return space

    async def get(self, case_id: str, space_id: str) -> Space:
        key = await self.keys.key_for(case_id)
        async with self.store.connect() as conn:
            return self._space(key, await self._space_row(conn, case_id, space_id))

    async def update(
        self,
        case_id: str,
        space_id: str,
        actor: Member,
        *,
        name: str | None = None,
        archived: bool | None = None,
    ) -> Space:
        """Rename and/or archive (``archived=True``) or reopen (``False``) a space."""
        self._require_neutral(actor)
        values: dict[str, Any] = {}
        if name is not None:
            key = await self.keys.key_for(case_id)
            values["name"] = seal(key, _aad("space-name", space_id), self._name(name).encode())
        async with self.store.begin() as conn:
            row = await self._space_row(conn, case_id, space_id)
            if archived is not None and archived != (row.archived_at is not None):
                values["archived_at"] = self.clock() if archived else None
            if values:
                await conn.execute(sa.update(spaces).where(spaces.c.id == space_id).values(values))
                await self.cases.audit(
                    conn,
                    actor.user_id,
                    "space.update",
                    case_id,
                    space=space_id,
                    fields=sorted(k if k != "archived_at" else "archived" for k in values),
                )
        space = await self.get(case_id, space_id)
        if values:
            await self.publish(SpaceEvent("space.updated", case_id, space_id, space.public()))
        return space

    async def add_member(self, case_id: str, space_id: str, actor: Member, user_id: str) -> None:
        self._require_neutral(actor)
        now = self.clock()
        async with self.store.begin() as conn:
            await self._space_row(conn, case_id, space_id)
            await self._check_case_members(conn, case_id, [user_id])
            exists = (
                await conn.execute(
                    sa.select(space_members.c.user_id).where(
                        space_members.c.space_id == space_id, space_members.c.user_id == user_id
                    )
                )
            ).first()
            if exists:
                return
            await conn.execute(
                sa.insert(space_members).values(
                    space_id=space_id, user_id=user_id, added_at=now, last_read_seq=0
                )
            )
            await self.cases.audit(
                conn, actor.user_id, "space.member.add", case_id, space=space_id, user=user_id
            )
        space = await self.get(case_id, space_id)
        await self.publish(
            SpaceEvent("member.added", case_id, space_id, space.public(), user_id=user_id)
        )

    async def remove_member(self, case_id: str, space_id: str, actor: Member, user_id: str) -> None:
        """Take ``user_id`` out of the space; listeners cut their live subscriptions before
        this returns."""
        self._require_neutral(actor)
        async with self.store.begin() as conn:
            await self._space_row(conn, case_id, space_id)
            result = await conn.execute(
                sa.delete(space_members).where(
                    space_members.c.space_id == space_id, space_members.c.user_id == user_id
                )
            )
            if result.rowcount != 1:
                raise NotFound("This person is not a member of the space.")
            await self.cases.audit(
                conn, actor.user_id, "space.member.remove", case_id, space=space_id, user=user_id
            )
        await self.publish(SpaceEvent("member.removed", case_id, space_id, user_id=user_id))

    async def members(self, case_id: str, space_id: str) -> list[dict[str, Any]]:
        async with self.store.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        space_members.c.user_id,
                        case_members.c.display_name,
                        case_members.c.role,
                    )
                    .join(
                        case_members,
                        sa.and_(
                            case_members.c.user_id == space_members.c.user_id,
                            case_members.c.case_id == case_id,
                        ),
                    )
                    .where(space_members.c.space_id == space_id)
                    .order_by(space_members.c.added_at, space_members.c.user_id)
                )
            ).all()
        return [
            {"user_id": r.user_id, "display_name": r.display_name, "role": r.role} for r in rows
        ]

    async def spaces_for(self, case_id: str, member: Member) -> list[dict[str, Any]]:
        """The spaces ``member`` may see, newest first, with ``member`` and ``unread``.

        Neutrals see every space of the case (to manage them); everybody else only the
        spaces they belong to.
        """
        mine = sa.select(space_members.c.space_id, space_members.c.last_read_seq).where(
            space_members.c.user_id == member.user_id
        )
        mine_sq = mine.subquery()
        query = (
            sa.select(spaces, mine_sq.c.last_read_seq)
            .outerjoin(mine_sq, mine_sq.c.space_id == spaces.c.id)
            .where(spaces.c.case_id == case_id)
            .order_by(spaces.c.created_at.desc(), spaces.c.id)
        )
        if member.role not in NEUTRAL_ROLES:
            query = query.where(mine_sq.c.space_id.is_not(None))
        unread_query = (
            sa.select(messages.c.space_id, sa.func.count().label("n"))
            .join(space_members, space_members.c.space_id == messages.c.space_id)
            .join(spaces, spaces.c.id == messages.c.space_id)
            .where(
                spaces.c.case_id == case_id,
                space_members.c.user_id == member.user_id,
                messages.c.seq > space_members.c.last_read_seq,
                messages.c.author_id != member.user_id,
                messages.c.deleted_at.is_(None),
            )
            .group_by(messages.c.space_id)
        )
        async with self.store.connect() as conn:
            rows = (await conn.execute(query)).all()
            unread = {r.space_id: r.n for r in (await conn.execute(unread_query)).all()}
        if not rows:
            return []
        key = await self.keys.key_for(case_id)
        return [
            {
                **self._space(key, row).public(),
                "member": row.last_read_seq is not None,
                "unread": unread.get(row.id, 0),
            }
            for row in rows
        ]

    # -- messages ------------------------------------------------------------------------
    async def post(
        self, case_id: str, space_id: str, author_id: str, body: str, *, kind: str | None = None
    ) -> Message:
        if not body.strip() or len(body) > MAX_BODY:
            raise InvalidInput(f"A message has 1 to {MAX_BODY} characters.")
        key = await self.keys.key_for(case_id)
        message_id = new_id()
        now = self.clock()
        sealed = seal(key, _aad("message", message_id), body.encode())
        async with self.store.begin() as conn:
            row = await self._space_row(conn, case_id, space_id)
            if row.archived_at is not None:
                raise Conflict("This space is archived: it can be read, not written.")
            seq = await self._insert_message(
                conn, space_id, message_id, author_id, sealed, now, kind=kind
            )
        message = Message(message_id, space_id, seq, author_id, body, now, None, None, kind)
        await self.publish(SpaceEvent("message.new", case_id, space_id, message.public()))
        return message

    async def _insert_message(
        self,
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
            space = await self._space_row(conn, case_id, space_id)
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
                .values(body=seal(key, _aad("message", message_id), body.encode()), edited_at=now)
            )
        message = Message(
            message_id, space_id, row.seq, row.author_id, body, row.created_at, now, None
        )
        await self.publish(SpaceEvent("message.edited", case_id, space_id, message.public()))
        return message

    async def delete(self, case_id: str, space_id: str, message_id: str, actor: Member) -> Message:
        """Remove a message's body for everybody; neutrals only."""
        if actor.role not in NEUTRAL_ROLES:
            raise Forbidden("Only the case's neutral or a co-neutral can delete messages.")
        now = self.clock()
        async with self.store.begin() as conn:
            await self._space_row(conn, case_id, space_id)
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
        await self.publish(SpaceEvent("message.deleted", case_id, space_id, message.public()))
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
            await self._space_row(conn, case_id, space_id)
            rows = (await conn.execute(query)).all()
        more = len(rows) > limit
        return [self._message(key, r) for r in reversed(rows[:limit])], more

    async def mark_read(self, case_id: str, space_id: str, user_id: str, seq: int) -> int:
        """Move the member's read marker forward to ``seq`` (never back); the new marker."""
        async with self.store.begin() as conn:
            space = await self._space_row(conn, case_id, space_id)
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

    # -- files ---------------------------------------------------------------------------
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
            space = await self._space_row(conn, case_id, space_id)
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
                        name=seal(key, _aad("file-name", file_id), name.encode()),
                        content_type=kind.content_type,
                        size=size,
                        created_at=now,
                    )
                )
        except BaseException:
            await self.vault.delete_blob(case_id, file_id)
            raise
        record = SpaceFile(file_id, space_id, uploader_id, name, kind.content_type, size, now)
        await self.publish(SpaceEvent("file.new", case_id, space_id, record.public()))
        return record

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
            space = await self._space_row(conn, case_id, space_id)
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
                    name=seal(key, _aad("file-name", file_id), name.encode()),
                    content_type=content_type,
                    size=size,
                    created_at=now,
                    kind=kind,
                    duration_s=duration_s,
                )
            )
            if message_body is not None:
                message_id = new_id()
                sealed = seal(key, _aad("message", message_id), message_body.encode())
                seq = await self._insert_message(
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
        await self.publish(SpaceEvent("file.new", case_id, space_id, record.public()))
        if message is not None:
            await self.publish(SpaceEvent("message.new", case_id, space_id, message.public()))
        return record, message

    async def files(self, case_id: str, space_id: str) -> list[SpaceFile]:
        key = await self.keys.key_for(case_id)
        async with self.store.connect() as conn:
            await self._space_row(conn, case_id, space_id)
            rows = (
                await conn.execute(
                    sa.select(space_files)
                    .where(space_files.c.space_id == space_id)
                    .order_by(space_files.c.created_at, space_files.c.id)
                )
            ).all()
        return [self._file(key, r) for r in rows]

    async def file(self, case_id: str, space_id: str, file_id: str) -> SpaceFile:
        key = await self.keys.key_for(case_id)
        async with self.store.connect() as conn:
            await self._space_row(conn, case_id, space_id)
            row = (
                await conn.execute(
                    sa.select(space_files).where(
                        space_files.c.id == file_id, space_files.c.space_id == space_id
                    )
                )
            ).first()
        if row is None:
            raise NotFound("No such file.")
        return self._file(key, row)

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


__all__ = [
    "Message",
    "Space",
    "SpaceEvent",
    "SpaceFile",
    "Spaces",
]
