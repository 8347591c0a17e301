"""The store: one async SQLAlchemy engine over SQLite (aiosqlite) or PostgreSQL (asyncpg).

``Store`` owns the engine, runs the Alembic migrations at start, and hands out connections.
The URL forms operators write (``sqlite:///path``, ``postgresql://user@host/db``) are mapped
to their async drivers here, so the rest of Caucus never names a driver.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

#: The PostgreSQL advisory lock that serialises migrations (any fixed 64-bit number).
MIGRATION_LOCK_ID = 0x43415543_55530001

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def async_url(url: str) -> sa.URL:
    """Map an operator's database URL to the async driver Caucus uses for it."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own implicit BEGIN is turned off; ``_sqlite_begin`` emits ours.
    dbapi_connection.isolation_level = None


def _sqlite_begin(connection: sa.Connection) -> None:
    """Writes take SQLite's write lock at BEGIN (IMMEDIATE), so two writers queue on the
    busy timeout instead of one failing with "database is locked" when its read
    transaction tries to become a write transaction."""
    options = connection.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return
    mode = "IMMEDIATE" if options.get("caucus_write") else "DEFERRED"
    connection.exec_driver_sql(f"BEGIN {mode}")


class Store:
    """Owns the database engine of one Caucus process."""

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self.url = async_url(url)
        self.backend = "sqlite" if self.url.get_backend_name() == "sqlite" else "postgresql"
        connect_args: dict[str, Any] = {}
        if self.backend == "postgresql" and schema:
            connect_args["server_settings"] = {"search_path": schema}
        kwargs: dict[str, Any] = {"connect_args": connect_args}
        if self.backend == "postgresql":
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.backend == "sqlite":
            sa.event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            sa.event.listen(self.engine.sync_engine, "connect", _sqlite_no_implicit_begin)
            sa.event.listen(self.engine.sync_engine, "begin", _sqlite_begin)

    async def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` (by default the newest Alembic revision)."""

        def upgrade(sync_connection: sa.Connection) -> None:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = sync_connection
            command.upgrade(config, revision)

        async with self.begin() as connection:
            if self.backend == "postgresql":
                # nodes starting together migrate one after the other (released at commit)
                await connection.exec_driver_sql(
                    f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"
                )
            await connection.run_sync(upgrade)
        log.info("database migrated", extra={"backend": self.backend})

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside a write transaction, committed on success."""
        async with self.engine.connect() as connection:
            connection = await connection.execution_options(caucus_write=True)
            async with connection.begin():
                yield connection

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads."""
        async with self.engine.connect() as connection:
            yield connection

    async def vacuum(self) -> None:
        """Reclaim freed pages (SQLite) so deleted rows leave no readable remains.

        ``VACUUM`` rewrites the database file; in WAL mode the old page images (deleted
        rows included) still sit in the ``-wal`` file until a checkpoint, so the WAL is
        then checkpointed and truncated to zero bytes. PostgreSQL: nothing to do here
        (deleted rows are gone from every query and dump; autovacuum reclaims the pages).
        """
        if self.backend != "sqlite":
            return
        async with self.engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.exec_driver_sql("VACUUM")
            for attempt in range(50):
                # (busy, log frames, checkpointed frames)
                busy = (await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")).one()[
                    0
                ]
                if not busy:
                    return
                await asyncio.sleep(0.02 * (attempt + 1))  # a reader holds an old snapshot
            log.warning("the SQLite WAL could not be truncated after VACUUM (readers busy)")

    async def close(self) -> None:
        await self.engine.dispose()
