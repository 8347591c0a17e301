"""Neutrals' public booking profiles: the handle of their request link, whether they take
requests, and their availability (``rooms.scheduling.availability``)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from rooms.accounts.accounts import User
from rooms.errors import Conflict, Forbidden, InvalidInput, NotFound
from rooms.scheduling.availability import Availability
from rooms.storage.schema import neutral_profiles, users
from rooms.storage.store import Store

#: Lowercase letters, digits and inner hyphens, 3 to 40 characters.
HANDLE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,38})[a-z0-9]$")
RESERVED_HANDLES = frozenset({"confirm", "admin", "api", "static", "new", "neutral", "caucus"})

DEFAULT_AVAILABILITY: dict[str, Any] = {
    "time_zone": "UTC",
    "weekly": {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    "blocked_days": [],
    "lengths": [60, 120, 180],
    "buffer_minutes": 15,
    "step_minutes": 30,
    "notice_hours": 24,
    "horizon_days": 60,
}


@dataclass(frozen=True)
class NeutralProfile:
    user_id: str
    name: str
    handle: str
    availability: Availability
    accepting: bool

    def public(self) -> dict[str, Any]:
        return {
            "handle": self.handle,
            "accepting": self.accepting,
            "availability": self.availability.to_json(),
            "link": f"/request/{self.handle}",
        }


def check_handle(handle: str) -> str:
    text = handle.strip().lower()
    if not HANDLE.match(text) or "--" in text:
        raise InvalidInput(
            "A link name has 3 to 40 lowercase letters, digits or single hyphens inside.",
            code="invalid_handle",
        )
    if text in RESERVED_HANDLES:
        raise InvalidInput("This link name is reserved; choose another.", code="invalid_handle")
    return text


class NeutralProfiles:
    """Owns ``neutral_profiles``."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def get(self, user_id: str) -> NeutralProfile | None:
        async with self.store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(neutral_profiles, users.c.display_name)
                    .join(users, users.c.id == neutral_profiles.c.user_id)
                    .where(neutral_profiles.c.user_id == user_id)
                )
            ).first()
        return _profile(row) if row else None

    async def by_handle(self, handle: str) -> NeutralProfile:
        """The profile behind a public link; a missing or closed one answers the same."""
        if len(handle) > 40:
            raise NotFound("No such request link.")
        async with self.store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(neutral_profiles, users.c.display_name)
                    .join(users, users.c.id == neutral_profiles.c.user_id)
                    .where(neutral_profiles.c.handle == handle.lower())
                )
            ).first()
        if row is None or not row.accepting:
            raise NotFound("No such request link.")
        return _profile(row)

    async def save(
        self, user: User, handle: str, availability: dict[str, Any], accepting: bool
    ) -> NeutralProfile:
        if user.role != "neutral":
            raise Forbidden("Only a neutral has a request link.")
        checked = check_handle(handle)
        parsed = Availability.from_json(availability)
        values = {
            "handle": checked,
            "availability": parsed.to_json(),
            "accepting": accepting,
            "updated_at": self.clock(),
        }
        try:
            async with self.store.begin() as conn:
                updated = await conn.execute(
                    sa.update(neutral_profiles)
                    .where(neutral_profiles.c.user_id == user.id)
                    .values(**values)
                )
                if updated.rowcount == 0:
                    await conn.execute(
                        sa.insert(neutral_profiles).values(user_id=user.id, **values)
                    )
        except IntegrityError:
            raise Conflict(
                "Another neutral has this link name; choose another.", code="handle_taken"
            ) from None
        profile = await self.get(user.id)
        assert profile is not None
        return profile


def _profile(row: sa.Row) -> NeutralProfile:
    return NeutralProfile(
        row.user_id,
        row.display_name,
        row.handle,
        Availability.from_json(row.availability),
        bool(row.accepting),
    )
