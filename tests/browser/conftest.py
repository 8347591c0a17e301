"""Fixtures for the browser tests: a real Caucus server in a subprocess (SQLite in its
temporary data directory, one media worker unless the test is marked
``@pytest.mark.media_workers(n)``) and one Debian chromium for the whole session, with a
fresh browser context per page the test opens (contexts a test leaves open are closed
after it); the tests that also run in Firefox get one Debian Firefox ESR for the session
(``firefox``), its pages closed after each test.

Browser tests run in the session's event loop (``pytestmark`` of each module), the loop
the shared chromium lives in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright, expect

from tests.browser.firefox.driver import Firefox
from tests.support.server import ServeProcess, free_port, serving
from tests.support.smtp import MailServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # a fake camera and microphone, granted without asking (the media tests' pages)
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]

expect.set_options(timeout=10_000)


@dataclass
class RunningServer:
    """A `caucus serve` subprocess and what it printed when it started."""

    served: ServeProcess
    admin_username: str = "admin"
    database: str = "sqlite"

    @property
    def url(self) -> str:
        return self.served.url

    @property
    def admin_password(self) -> str:
        assert self.served.admin_password is not None
        return self.served.admin_password

    def log(self) -> str:
        return self.served.log()


@pytest_asyncio.fixture(loop_scope="session")
async def caucus_server(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[RunningServer]:
    """A freshly started `caucus serve` on a free port with its own data directory."""
    marker = request.node.get_closest_marker("media_workers")
    workers = marker.args[0] if marker else 1
    async with serving(tmp_path / "data", workers=workers) as served:
        yield RunningServer(served)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium() -> AsyncIterator[Browser]:
    """The session's one chromium."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def browser(chromium: Browser) -> AsyncIterator[Browser]:
    """The session's chromium; the contexts the test opens are closed after it."""
    before = set(chromium.contexts)
    yield chromium
    for context in chromium.contexts:
        if context not in before:
            await context.close()


@pytest_asyncio.fixture(loop_scope="session")
async def media_browser(browser: Browser) -> Browser:
    """The same chromium: it has a fake camera and microphone, granted without asking."""
    return browser


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def firefox_esr() -> AsyncIterator[Firefox]:
    """The session's one Debian Firefox ESR (driven over WebDriver BiDi, see
    tests/browser/firefox/driver.py), with a fake camera and microphone."""
    launched = await Firefox.launch()
    try:
        yield launched
    finally:
        await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def firefox(firefox_esr: Firefox) -> AsyncIterator[Firefox]:
    """The session's Firefox; the pages the test opens are closed after it."""
    yield firefox_esr
    await firefox_esr.close_pages()


@asynccontextmanager
async def serving_with_mail(
    data_dir: Path, mail_server: MailServer, **env: str
) -> AsyncIterator[RunningServer]:
    """`caucus serve` (media in its own process) sending through ``mail_server`` quickly,
    its links to itself; ``env``: more settings."""
    port = free_port()
    settings = {
        "CAUCUS_SMTP_URL": mail_server.url,
        "CAUCUS_PUBLIC_URL": f"https://127.0.0.1:{port}",
        "CAUCUS_MAIL_POLL_SECONDS": "0.1",
        **env,
    }
    async with serving(data_dir, port=port, workers=0, env=settings) as served:
        yield RunningServer(served)


@pytest_asyncio.fixture(loop_scope="session")
async def mail_caucus(tmp_path: Path, mail_server: MailServer) -> AsyncIterator[RunningServer]:
    """`caucus serve` sending through the test's SMTP server, its links to itself."""
    async with serving_with_mail(tmp_path / "data", mail_server) as server:
        yield server
