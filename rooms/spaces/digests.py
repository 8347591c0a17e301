"""Activity digests: a mail telling a member that messages wait in a space, instead of
one mail per message.

For each member of a space (with an address, digests on for the case, the case open):
the messages to tell are the ones by others, not deleted, newer than both what the member
read and what the last digest covered, and written after the member was last seen online
in the case. The first of them starts a window of ``window`` seconds; when it has passed
(and at least ``window`` seconds after the previous digest of the space), one digest is
written covering everything up to the space's newest message. Reading them, or being
online in the case, before the window ends means no mail. The digest and the marker
that it was sent are one transaction, and the marker's update is guarded, so two
processes running digests write one mail."""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from rooms.storage.outbox import enqueue
from rooms.storage.schema import case_members, cases, messages, space_members, spaces, users
from rooms.storage.store import Store


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
                spaces.c.last_seq > space_members.c.last_read_seq,
                spaces.c.last_seq > space_members.c.digest_seq,
                spaces.c.archived_at.is_(None),
                cases.c.status == "open",
                case_members.c.digests.is_(True),
                users.c.email.is_not(None),
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
        async with self.store.begin() as conn:
            first_at, count = (await conn.execute(news)).one()
            if not count:
                return False
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
                )
                .values(digest_seq=row.last_seq, digest_sent_at=now)
            )
            if marked.rowcount != 1:  # read meanwhile, or another process wrote it
                return False
            params: dict[str, object] = {
                "count": int(count),
                "path": f"/cases/{row.case_id}/spaces",
            }
            name = row.title if row.title_in_mail else row.mail_reference
            if name:
                params["case_ref"] = name
            await enqueue(conn, "space_digest", row.email, params, now=now)
        return True
