"""The world fixtures of the suite, registered as a pytest plugin by ``tests/conftest.py``:
a store, settings, services, the app served over HTTPS, API clients and the signed-in world.

The database matrix is for tests about SQL only: ``backend`` runs on SQLite and PostgreSQL
for tests marked ``store`` (and on SQLite alone for every other test). CI must set
``CAUCUS_TEST_DATABASE_URL``; a CI run without it fails instead of quietly testing one
backend."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web

from certs.authority import ensure_self_signed
from rooms.storage.store import Store
from signaling.cli.main import SHUTDOWN_SECONDS
from signaling.http.app import build_app
from signaling.services import Services
from signaling.settings import Settings

from .databases import BACKENDS, PG_URL
from .localstripe import localstripe  # noqa: F401  (a fixture)
from .smtp import mail_server  # noqa: F401  (a fixture)
from .world import ApiClient, RunningServer, World, build_world


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") and not PG_URL:
        raise pytest.UsageError("CI must set CAUCUS_TEST_DATABASE_URL to test PostgreSQL")


def pytest_report_header(config: pytest.Config) -> str:
    backends = "sqlite, postgresql" if PG_URL else "sqlite (postgresql not set)"
    return f"database backends of store tests: {backends}; other tests: sqlite"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures tests measured (``record_property("figures", json_line)``, the
    weak-network tests' say), one line per test, whether it passed or not: CI logs keep
    them."""
    lines = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name == "figures":
                    lines.append(f"{report.nodeid}: {value}")
    if lines:
        terminalreporter.section("measured figures")
        for line in lines:
            terminalreporter.line(line)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        if "backend" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return  # the test chose its backends
    store_test = metafunc.definition.get_closest_marker("store") is not None
    metafunc.parametrize("backend", BACKENDS if store_test else ["sqlite"], indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def database_url(backend: str, tmp_path: Path) -> AsyncIterator[tuple[str, str | None]]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'caucus.db'}", None
        return
    assert PG_URL
    schema = f"t_{secrets.token_hex(6)}"
    admin = Store(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield PG_URL, schema
    finally:
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.close()


_sqlite_template: list[Path] = []


async def _migrated_sqlite(directory: Path) -> Path:
    """A SQLite database migrated once per session; stores start from a copy of it (the
    migrations still run, on the template and on PostgreSQL)."""
    if not _sqlite_template:
        path = directory / "template.db"
        template = Store(f"sqlite:///{path}")
        await template.migrate()
        await template.close()
        _sqlite_template.append(path)
    return _sqlite_template[0]


@pytest.fixture
async def store(
    database_url: tuple[str, str | None], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Store]:
    url, schema = database_url
    if url.startswith("sqlite:///"):
        template = await _migrated_sqlite(tmp_path_factory.getbasetemp())
        shutil.copyfile(template, url.removeprefix("sqlite:///"))  # a fresh tmp_path's file
    store = Store(url, schema=schema)
    await store.migrate()
    yield store
    await store.close()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings of a test's server: its own data directory, any free port, a cheap
    password hash (sign-ins are not what most tests watch)."""
    return Settings(
        data_dir=tmp_path / "data",
        port=0,
        argon2_time_cost=1,
        argon2_memory_kib=8 * 1024,
        argon2_parallelism=1,
        **overrides,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def services(settings: Settings, store: Store) -> AsyncIterator[Services]:
    services = Services.build(settings, store=store)
    yield services


@pytest.fixture
async def server(services: Services, tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The whole Caucus app served over HTTPS on a free loopback port."""
    cert = ensure_self_signed(tmp_path / "certs", ["127.0.0.1"])
    app = build_app(services)
    # as `caucus serve` stops: connections still open after a few seconds are closed
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=cert.ssl_context())
    await site.start()
    port = runner.addresses[0][1]
    yield RunningServer(f"https://127.0.0.1:{port}", app, services)
    await runner.cleanup()


@pytest.fixture
async def clients(server: RunningServer) -> AsyncIterator[Callable[[], ApiClient]]:
    made: list[ApiClient] = []

    def make() -> ApiClient:
        client = ApiClient(server.url)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
async def world(server: RunningServer, clients: Callable[[], ApiClient]) -> World:
    return await build_world(server, clients)
