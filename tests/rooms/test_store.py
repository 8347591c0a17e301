"""The store under concurrent writers, as many browsers signing in at once produce."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from argon2 import PasswordHasher

from rooms.accounts import Accounts
from rooms.masterkey import MasterKey
from rooms.passwords import PasswordPolicy
from rooms.schema import sessions, users
from rooms.sessions import Sessions
from rooms.throttle import LoginThrottle

PASSWORD = "a sound passphrase 42"


async def test_concurrent_sign_ups_and_sign_ins_do_not_fail(store) -> None:
    fast = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    accounts = Accounts(
        store, PasswordPolicy(12, fast), LoginThrottle(store), sealer=MasterKey.generate()
    )
    session_store = Sessions(store)

    async def one(i: int) -> None:
        user = await accounts.create_user(f"user{i:02d}", PASSWORD)
        for _ in range(3):
            await accounts.authenticate(user.username, PASSWORD, f"10.0.0.{i}")
            await session_store.create(user.id, "active")

    await asyncio.gather(*(one(i) for i in range(24)))
    async with store.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(users))).scalar() == 24
        count = (await conn.execute(sa.select(sa.func.count()).select_from(sessions))).scalar()
    assert count == 72
