"""The databases tests run on: SQLite always, PostgreSQL when ``CAUCUS_TEST_DATABASE_URL``
is set (CI sets it). Tests marked ``store`` run on each; every other test on SQLite."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator

PG_URL = os.environ.get("CAUCUS_TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]


@contextlib.asynccontextmanager
async def fresh_postgres_database(admin_url: str, prefix: str) -> AsyncIterator[str]:
    """Creates ``<prefix>_<random>`` next to the database of ``admin_url``; drops it after."""
    import asyncpg  # type: ignore[import-untyped]  # only when the run asks for PostgreSQL

    name = f"{prefix}_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    scheme, rest = admin_url.split("://", 1)
    authority = rest.split("/", 1)[0]
    try:
        yield f"{scheme}://{authority}/{name}"
    finally:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
