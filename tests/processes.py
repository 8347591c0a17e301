"""Helpers of the tests that run Caucus servers in their own processes: a free port and a
fresh PostgreSQL database."""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import AsyncIterator


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def fresh_postgres_database(admin_url: str, prefix: str) -> AsyncIterator[str]:
    """Creates ``<prefix>_<random>`` next to the database of ``admin_url``; drops it after."""
    import asyncpg  # only needed when the run asks for PostgreSQL

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
