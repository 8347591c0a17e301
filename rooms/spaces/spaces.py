"""Spaces: private areas of a case where chosen members exchange messages and files.

A space belongs to one case. The case's neutral or a co-neutral creates it, names it,
chooses its members among the people of the case, and archives it (read-only from then
on). Everybody, neutrals included, reads and writes only in the spaces they are a member
of; neutrals also see the list of all spaces of their case so they can manage them.

User data is encrypted with the case key: space names, message bodies and file names are
sealed values in their rows (``rooms.spaces.sealing``), file contents are vault blobs
named by the file id. Changes are announced as ``SpaceEvent`` objects after they are
committed (``rooms.spaces.events``).

This module owns the ``spaces`` rows and the checks every part of a space shares;
``members``, ``messages``, ``files`` and ``recordings`` build on it, and
``rooms.spaces.facade.Spaces`` puts them together.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from rooms.cases.cases import Cases, Member
from rooms.cases.keys import CaseKeys
from rooms.cases.roles import NEUTRAL_ROLES
from rooms.errors import Forbidden, InvalidInput, NotFound
from rooms.spaces.events import SpaceEvent, SpaceEvents
from rooms.spaces.sealing import aad, open_sealed
from rooms.storage.schema import case_members, messages, new_id, space_members, spaces
from rooms.storage.store import Store
from rooms.vault.sealed import seal

MAX_NAME = 200


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


def space_from_row(key: bytes, row: sa.Row) -> Space:
    return Space(
        row.id,
        row.case_id,
        open_sealed(key, "space-name", row.id, row.name),
        row.created_by,
        row.created_at,
        row.archived_at,
        row.last_seq,
    )


def require_neutral(actor: Member) -> None:
    if actor.role not in NEUTRAL_ROLES:
        raise Forbidden("Only the case's neutral or a co-neutral manages spaces.")


def space_name(name: str) -> str:
    name = " ".join(name.split())
    if not 1 <= len(name) <= MAX_NAME:
        raise InvalidInput(f"A space name has 1 to {MAX_NAME} characters.")
    return name


async def space_row(conn: Any, case_id: str, space_id: str) -> sa.Row:
    row = (
        await conn.execute(
            sa.select(spaces).where(spaces.c.id == space_id, spaces.c.case_id == case_id)
        )
    ).first()
    if row is None:
        raise NotFound("No such space.", code="not_found")
    return row


async def check_case_members(conn: Any, case_id: str, user_ids: Iterable[str]) -> None:
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


class SpacePart:
    """A part of the spaces (members, messages, files, recordings): works on the spaces of
    ``directory`` with the same store, cases, case keys, events and clock."""

    def __init__(self, directory: SpaceDirectory) -> None:
        self.directory = directory
        self.store = directory.store
        self.cases = directory.cases
        self.keys = directory.keys
        self.events = directory.events
        self.clock = directory.clock


class SpaceDirectory:
    """Owns the spaces of cases: creating, renaming, archiving, listing them."""

    def __init__(
        self,
        store: Store,
        cases: Cases,
        keys: CaseKeys,
        events: SpaceEvents,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.cases = cases
        self.keys = keys
        self.events = events
        self.clock = clock

    async def create(
        self, case_id: str, actor: Member, name: str, member_ids: Iterable[str]
    ) -> Space:
        require_neutral(actor)
        name = space_name(name)
        members = {actor.user_id, *member_ids}
        key = await self.keys.key_for(case_id)
        space_id = new_id()
        now = self.clock()
        async with self.store.begin() as conn:
            await check_case_members(conn, case_id, members)
            await conn.execute(
                sa.insert(spaces).values(
                    id=space_id,
                    case_id=case_id,
                    name=seal(key, aad("space-name", space_id), name.encode()),
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
            await self.events.publish(
                SpaceEvent("member.added", case_id, space_id, space.public(), user_id=user_id)
            )
        return space

    async def get(self, case_id: str, space_id: str) -> Space:
        key = await self.keys.key_for(case_id)
        async with self.store.connect() as conn:
            return space_from_row(key, await space_row(conn, case_id, space_id))

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
        require_neutral(actor)
        values: dict[str, Any] = {}
        if name is not None:
            key = await self.keys.key_for(case_id)
            values["name"] = seal(key, aad("space-name", space_id), space_name(name).encode())
        async with self.store.begin() as conn:
            row = await space_row(conn, case_id, space_id)
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
            await self.events.publish(
                SpaceEvent("space.updated", case_id, space_id, space.public())
            )
        return space

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
                **space_from_row(key, row).public(),
                "member": row.last_read_seq is not None,
                "unread": unread.get(row.id, 0),
            }
            for row in rows
        ]
