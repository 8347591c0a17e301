"""Shared fixtures: a store on each backend, the running HTTPS app, and an API client.

Every store-backed test runs on SQLite, and on PostgreSQL when ``CAUCUS_TEST_DATABASE_URL``
is set (CI sets it; a CI run without it fails instead of quietly testing one backend).
"""

from __future__ import annotations

import os
import secrets
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web

from certs.authority import ensure_self_signed
from rooms.store import Store
from signaling.app import build_app
from signaling.services import Services
from signaling.settings import Settings

PG_URL = os.environ.get("CAUCUS_TEST_DATABASE_URL")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") and not PG_URL:
        raise pytest.UsageError("CI must set CAUCUS_TEST_DATABASE_URL to test PostgreSQL")


def pytest_report_header(config: pytest.Config) -> str:
    return f"database backends: sqlite{', postgresql' if PG_URL else ' (postgresql not set)'}"


BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]


@pytest.fixture(params=BACKENDS)
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


@pytest.fixture
async def store(database_url: tuple[str, str | None]) -> AsyncIterator[Store]:
    url, schema = database_url
    store = Store(url, schema=schema)
    await store.migrate()
    yield store
    await store.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        port=0,
        argon2_time_cost=1,
        argon2_memory_kib=8 * 1024,
        argon2_parallelism=1,
    )


@pytest.fixture
async def services(settings: Settings, store: Store) -> AsyncIterator[Services]:
    services = Services.build(settings, store=store)
    yield services


@dataclass
class RunningServer:
    url: str
    app: web.Application
    services: Services


@pytest.fixture
async def server(services: Services, tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The whole Caucus app served over HTTPS on a free loopback port."""
    cert = ensure_self_signed(tmp_path / "certs", ["127.0.0.1"])
    app = build_app(services)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=cert.ssl_context())
    await site.start()
    port = runner.addresses[0][1]
    yield RunningServer(f"https://127.0.0.1:{port}", app, services)
    await runner.cleanup()


class ApiClient:
    """A browser-like API client: keeps cookies, sends the CSRF token on writes."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False),
            cookie_jar=aiohttp.CookieJar(unsafe=True),
        )
        self.csrf: str | None = None

    async def session(self) -> dict[str, Any]:
        async with self.http.get(self.base + "/api/session") as response:
            body = await response.json()
        self.csrf = body["csrf_token"]
        return body

    async def request(
        self, method: str, path: str, json: Any = None, *, csrf: bool = True, **kwargs: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = dict(kwargs.pop("headers", {}))
        if csrf and method not in ("GET", "HEAD"):
            if self.csrf is None:
                await self.session()
            headers.setdefault("X-CSRF-Token", self.csrf)
        async with self.http.request(
            method, self.base + path, json=json, headers=headers, **kwargs
        ) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = await response.text()
            return response.status, body, response

    async def get(self, path: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.request("GET", path, **kw)

    async def post(
        self, path: str, json: Any = None, **kw: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.request("POST", path, json if json is not None else {}, **kw)

    def cookie(self, name: str) -> str | None:
        for morsel in self.http.cookie_jar:
            if morsel.key == name:
                return morsel.value
        return None

    async def close(self) -> None:
        await self.http.close()


@pytest.fixture
async def clients(server: RunningServer) -> AsyncIterator[Any]:
    made: list[ApiClient] = []

    def make() -> ApiClient:
        client = ApiClient(server.url)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


def tls_context_without_verification() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
