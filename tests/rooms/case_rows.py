"""A case row to hang case-owned state on in store tests."""

from __future__ import annotations

import time

import sqlalchemy as sa

from rooms.storage.schema import cases, new_id, users


async def make_case(store) -> str:
    user_id, case_id = new_id(), new_id()
    async with store.begin() as conn:
        await conn.execute(
            sa.insert(users).values(
                id=user_id,
                username=f"n{user_id[:8]}",
                display_name="Neutral",
                password_hash="-",
                role="neutral",
                must_change_password=False,
                totp_enabled=False,
                created_at=time.time(),
            )
        )
        await conn.execute(
            sa.insert(cases).values(
                id=case_id,
                title="Case",
                process="mediation",
                case_type="",
                description="",
                intake={},
                neutral_id=user_id,
                status="open",
                created_at=time.time(),
            )
        )
    return case_id
