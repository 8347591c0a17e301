"""The store under concurrent writers, as many browsers signing in at once produce."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from rooms.accounts.accounts import Accounts
from rooms.accounts.passwords import PasswordPolicy
from rooms.accounts.sessions import Sessions
from rooms.accounts.throttle import LoginThrottle
from rooms.storage.schema import sessions, users
from rooms.vault.masterkey import MasterKey
from tests.support.databases import PG_URL

pytestmark = pytest.mark.store  # about SQL: runs on every database backend

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


def newest_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from rooms.storage.store import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


async def test_an_existing_install_with_accounts_upgrades(tmp_path) -> None:
    """A database made by an earlier version (revision 0004), with a signed-in user whose
    TOTP seed is in clear, migrates to the newest revision and the seed gets sealed."""
    from rooms.storage.store import Store

    old = Store(f"sqlite:///{tmp_path / 'old.db'}")
    await old.migrate("0004")
    async with old.begin() as conn:
        await conn.execute(
            sa.insert(users).values(
                id="u1",
                username="early",
                display_name="Early",
                role="member",
                password_hash="x",
                must_change_password=False,
                totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                totp_enabled=True,
                created_at=0.0,
            )
        )
        await conn.execute(
            sa.insert(sessions).values(
                token_hash="t" * 64,
                user_id="u1",
                stage="active",
                created_at=0.0,
                last_seen_at=0.0,
                expires_at=1e12,
            )
        )
    await old.migrate()
    accounts = Accounts(
        old,
        PasswordPolicy(12, PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)),
        LoginThrottle(old),
        sealer=MasterKey.generate(),
    )
    assert await accounts.seal_plain_secrets() == 1
    async with old.connect() as conn:
        version = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalar()
        sessions_left = (
            await conn.execute(sa.select(sa.func.count()).select_from(sessions))
        ).scalar()
    assert version == newest_revision() and sessions_left == 1
    await old.close()


@pytest.mark.skipif(not PG_URL, reason="needs CAUCUS_TEST_DATABASE_URL (PostgreSQL)")
async def test_nodes_starting_together_migrate_one_after_the_other() -> None:
    """Several processes migrating one empty PostgreSQL database at once all succeed."""
    from rooms.storage.store import Store
    from tests.support.databases import fresh_postgres_database

    assert PG_URL is not None
    async with fresh_postgres_database(PG_URL, "caucus_migrate") as url:
        stores = [Store(url) for _ in range(3)]
        try:
            await asyncio.gather(*(store.migrate() for store in stores))
            async with stores[0].connect() as conn:
                version = (
                    await conn.exec_driver_sql("SELECT version_num FROM alembic_version")
                ).scalar()
            assert version == newest_revision()
        finally:
            for store in stores:
                await store.close()


async def test_addresses_proved_before_revision_0011_count_as_verified(database_url) -> None:
    """Upgrading: an address from an emailed invitation the account accepted, or from a
    confirmed change, is verified; one an admin typed is not."""
    from rooms.storage.schema import cases, email_changes, invitations
    from rooms.storage.store import Store

    url, schema = database_url
    old = Store(url, schema=schema)
    await old.migrate("0010")

    def user(user_id: str, email: str | None) -> dict:
        return {
            "id": user_id,
            "username": user_id,
            "display_name": user_id,
            "role": "member",
            "password_hash": "x",
            "must_change_password": False,
            "totp_enabled": False,
            "created_at": 0.0,
            "email": email,
        }

    async with old.begin() as conn:
        await conn.execute(
            sa.insert(users),
            [
                user("invited", "Inv@example.org"),
                user("changed", "new@example.org"),
                user("typed", "typed@example.org"),
                user("pending", "old@example.org"),
                user("none", None),
            ],
        )
        await conn.execute(
            sa.insert(cases).values(
                id="c1",
                title="T",
                description="",
                process="mediation",
                case_type="",
                intake={},
                neutral_id="typed",
                status="open",
                created_at=0.0,
            )
        )
        await conn.execute(
            sa.insert(invitations).values(
                id="i1",
                token_hash="h" * 64,
                case_id="c1",
                role="party",
                display_name="P",
                created_by="typed",
                created_at=0.0,
                expires_at=1.0,
                used_at=5.0,
                used_by="invited",
                email="inv@example.org",
            )
        )
        link = {"created_at": 0.0, "expires_at": 1e12}
        # the table as revision 0010 has it (no purpose column yet)
        changes_0010 = sa.table(
            "email_changes",
            *(sa.column(c) for c in ("token_hash", "user_id", "new_email", "created_at")),
            *(sa.column(c) for c in ("expires_at", "used_at")),
        )
        await conn.execute(
            sa.insert(changes_0010),
            [
                {
                    "token_hash": "a" * 64,
                    "user_id": "changed",
                    "new_email": "new@example.org",
                    "used_at": 7.0,
                    **link,
                },
                {
                    "token_hash": "b" * 64,
                    "user_id": "pending",
                    "new_email": "else@example.org",
                    "used_at": None,
                    **link,
                },
            ],
        )
    await old.migrate()
    async with old.connect() as conn:
        verified = dict(
            (await conn.execute(sa.select(users.c.id, users.c.email_verified_at))).all()
        )
        purposes = set((await conn.execute(sa.select(email_changes.c.purpose))).scalars().all())
    await old.close()
    assert verified == {
        "invited": 5.0,
        "changed": 7.0,
        "typed": None,
        "pending": None,
        "none": None,
    }
    assert purposes == {"change"}
