"""Members of a space: who may read and write in it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from rooms.cases.cases import Member
from rooms.errors import NotFound
from rooms.spaces.events import SpaceEvent
from rooms.spaces.spaces import (
    SpacePart,
    check_case_members,
    require_neutral,
    space_row,
)
from rooms.storage.schema import case_members, space_members, spaces


class SpaceMembers(SpacePart):
    """Owns the membership rows of spaces."""

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

    async def add_member(self, case_id: str, space_id: str, actor: Member, user_id: str) -> None:
        require_neutral(actor)
        now = self.clock()
        async with self.store.begin() as conn:
            await space_row(conn, case_id, space_id)
            await check_case_members(conn, case_id, [user_id])
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
        space = await self.directory.get(case_id, space_id)
        await self.events.publish(
            SpaceEvent("member.added", case_id, space_id, space.public(), user_id=user_id)
        )

    async def remove_member(self, case_id: str, space_id: str, actor: Member, user_id: str) -> None:
        """Take ``user_id`` out of the space; listeners cut their live subscriptions before
        this returns."""
        require_neutral(actor)
        async with self.store.begin() as conn:
            await space_row(conn, case_id, space_id)
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
        await self.events.publish(SpaceEvent("member.removed", case_id, space_id, user_id=user_id))

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
