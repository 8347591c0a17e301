"""Activity digests: a mail telling a member that messages or files wait in a space,
instead of one mail per message.

For each member of a space (with an address, digests on for the case, the case open):
the messages to tell are the ones by others (video messages included), not deleted,
newer than both what the member read and what the last digest covered, and written after
the member was last seen online in the case; the files to tell are the ones others
uploaded after the member was last seen, after the last digest and after they joined the
space (files have no read marker: being online in the case counts as having seen them).
The first of them starts a window of ``window`` seconds; when it has passed (and at least
``window`` seconds after the previous digest of the space), one digest is written
covering everything up to the space's newest message and file. Reading them, or being
online in the case, before the window ends means no mail. The digest and the marker
that it was sent are one transaction, and the marker's update is guarded, so two
processes running digests write one mail."""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from rooms.storage.outbox import enqueue
from rooms.storage.schema import (
    case_members,
    cases,
    messages,
    space_files,
    space_members,
    spaces,
    users,
)
from rooms.storage.store import Store

#: Files that count as activity: uploads and hearing recordings (a video message's file
#: is counted as its message).
UPLOADS = (sa.or_(space_files.c.kind.is_(None), space_files.c.kind != "video_message"),)


def _same(column: sa.ColumnElement, value: float | None) -> sa.ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


class SpaceDigests:
    """Decides and writes activity digests (run periodically by the server)."""

    def __init__(
        self, store: Store, window: float = 900.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.window = window
        self.clock = clock

    async def run(self) -> int:
        """Write the digests due now; answers how many."""
        now = self.clock()
        candidates = (
            sa.select(
                space_members.c.space_id,
                space_members.c.user_id,
                space_members.c.last_read_seq,
                space_members.c.digest_seq,
                space_members.c.digest_sent_at,
                space_members.c.added_at,
                spaces.c.last_seq,
                spaces.c.case_id,
                cases.c.title,
                cases.c.mail_reference,
                cases.c.title_in_mail,
                case_members.c.seen_at,
                users.c.email,
            )
            .join(spaces, spaces.c.id == space_members.c.space_id)
            .join(cases, cases.c.id == spaces.c.case_id)
            .join(
                case_members,
                sa.and_(
                    case_members.c.case_id == spaces.c.case_id,
                    case_members.c.user_id == space_members.c.user_id,
                ),
            )
            .join(users, users.c.id == space_members.c.user_id)
            .where(
                sa.or_(
                    sa.and_(
                        spaces.c.last_seq > space_members.c.last_read_seq,
                        spaces.c.last_seq > space_members.c.digest_seq,
                    ),
                    sa.exists().where(
                        space_files.c.space_id == space_members.c.space_id,
                        space_files.c.uploader_id != space_members.c.user_id,
                        space_files.c.created_at
                        > sa.func.coalesce(space_members.c.digest_sent_at, 0.0),
                        space_files.c.created_at > sa.func.coalesce(case_members.c.seen_at, 0.0),
                        space_files.c.created_at >= space_members.c.added_at,
                        *UPLOADS,
                    ),
                ),
                spaces.c.archived_at.is_(None),
                cases.c.status == "open",
                case_members.c.digests.is_(True),
                users.c.email.is_not(None),
                users.c.email_verified_at.is_not(None),
            )
        )
        written = 0
        async with self.store.connect() as conn:
            rows = (await conn.execute(candidates)).all()
        for row in rows:
            if await self._maybe_write(row, now):
                written += 1
        return written

    async def _maybe_write(self, row: sa.Row, now: float) -> bool:
        covered = max(row.last_read_seq, row.digest_seq)
        news = sa.select(sa.func.min(messages.c.created_at), sa.func.count()).where(
            messages.c.space_id == row.space_id,
            messages.c.seq > covered,
            messages.c.author_id != row.user_id,
            messages.c.deleted_at.is_(None),
        )
        if row.seen_at is not None:
            news = news.where(messages.c.created_at > row.seen_at)
        since = max(row.seen_at or 0.0, row.digest_sent_at or 0.0)
        files = sa.select(sa.func.min(space_files.c.created_at), sa.func.count()).where(
            space_files.c.space_id == row.space_id,
            space_files.c.uploader_id != row.user_id,
            space_files.c.created_at > since,
            space_files.c.created_at >= row.added_at,
            *UPLOADS,
        )
        async with self.store.begin() as conn:
            first_message_at, count = (await conn.execute(news)).one()
            first_file_at, file_count = (await conn.execute(files)).one()
            if not count and not file_count:
                return False
            first_at = min(t for t in (first_message_at, first_file_at) if t is not None)
            due = max(first_at, row.digest_sent_at or first_at) + self.window
            if now < due:
                return False
            marked = await conn.execute(
                sa.update(space_members)
                .where(
                    space_members.c.space_id == row.space_id,
                    space_members.c.user_id == row.user_id,
                    space_members.c.digest_seq == row.digest_seq,
                    space_members.c.last_read_seq == row.last_read_seq,
                    _same(space_members.c.digest_sent_at, row.digest_sent_at),
                )
                .values(digest_seq=row.last_seq, digest_sent_at=now)
            )
            if marked.rowcount != 1:  # read meanwhile, or another process wrote it
                return False
            params: dict[str, object] = {
                "count": int(count),
                "files": int(file_count),
                "path": f"/cases/{row.case_id}/spaces",
            }
            name = row.title if row.title_in_mail else row.mail_reference
            if name:
                params["case_ref"] = name
            await enqueue(conn, "space_digest", row.email, params, now=now)
        return True
