"""Fixtures for the browser tests: a real Caucus server in a subprocess and Debian's chromium.

Set ``CAUCUS_TEST_DATABASE_URL`` (for example ``postgresql://postgres@127.0.0.1:5432/test``)
to run the server on a fresh PostgreSQL database created for the run and dropped afterwards;
without it the server uses SQLite in its temporary data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, async_playwright, expect

from tests.processes import free_port, fresh_postgres_database

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_SECONDS = 60.0
SHUTDOWN_SECONDS = 15.0

LISTENING = re.compile(r"^Caucus listening on (https://\S+?)/?$")
ADMIN_USER = re.compile(r"^Admin user: (\S+)$")
ADMIN_PASSWORD = re.compile(r"^One-time password: (\S+)$")

expect.set_options(timeout=10_000)


@dataclass
class RunningServer:
    """A `caucus serve` subprocess and what it printed when it started."""

    url: str
    admin_username: str
    admin_password: str
    database: str
    output: list[str] = field(default_factory=list)

    def log(self) -> str:
        return "\n".join(self.output[-200:])


def _caucus_command() -> list[str]:
    script = Path(sys.executable).with_name("caucus")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "signaling.cli"]


async def _read_banner(
    process: asyncio.subprocess.Process, output: list[str], deadline: float
) -> dict[str, str]:
    """Reads the server's output until it has printed its URL and the first admin's
    credentials; every line read is kept in `output`."""
    found: dict[str, str] = {}
    patterns = {"url": LISTENING, "username": ADMIN_USER, "password": ADMIN_PASSWORD}
    assert process.stdout is not None
    while len(found) < len(patterns):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the server did not print its address and admin credentials")
        raw = await asyncio.wait_for(process.stdout.readline(), remaining)
        if not raw:
            raise RuntimeError(f"the server exited with status {await process.wait()}")
        line = raw.decode(errors="replace").rstrip("\r\n")
        output.append(line)
        for key, pattern in patterns.items():
            match = pattern.match(line.strip())
            if match and key not in found:
                found[key] = match.group(1)
    return found


async def _drain(process: asyncio.subprocess.Process, output: list[str]) -> None:
    """Keeps reading the server's output so it never blocks on a full pipe."""
    assert process.stdout is not None
    while raw := await process.stdout.readline():
        output.append(raw.decode(errors="replace").rstrip("\r\n"))


async def _wait_healthy(url: str, process: asyncio.subprocess.Process, deadline: float) -> None:
    async with aiohttp.ClientSession() as http:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"the server exited with status {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(
                    f"{url}/healthz", ssl=False, timeout=aiohttp.ClientTimeout(total=2)
                ) as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise TimeoutError(f"GET {url}/healthz did not answer 200 in time")
            await asyncio.sleep(0.1)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), SHUTDOWN_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()


@pytest.fixture
async def caucus_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A freshly started `caucus serve` on a free port with its own data directory."""
    async with contextlib.AsyncExitStack() as stack:
        command = [
            *_caucus_command(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "data"),
        ]
        database = "sqlite"
        admin_url = os.environ.get("CAUCUS_TEST_DATABASE_URL")
        if admin_url:
            database_url = await stack.enter_async_context(
                fresh_postgres_database(admin_url, "caucus_browser")
            )
            command += ["--database-url", database_url]
            database = "postgresql"
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        stack.push_async_callback(_stop, process)
        output: list[str] = []
        deadline = time.monotonic() + STARTUP_SECONDS
        try:
            banner = await _read_banner(process, output, deadline)
        except BaseException:
            await _stop(process)
            print("\n".join(output), file=sys.stderr)
            raise
        drain = asyncio.create_task(_drain(process, output))
        stack.push_async_callback(_finish, drain)
        stack.push_async_callback(_stop, process)  # runs first: the drain ends with the output
        server = RunningServer(
            url=banner["url"].rstrip("/"),
            admin_username=banner["username"],
            admin_password=banner["password"],
            database=database,
            output=output,
        )
        await _wait_healthy(server.url, process, deadline)
        try:
            yield server
        finally:
            # Shown by pytest only when the test failed.
            print(server.log())


async def _finish(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, SHUTDOWN_SECONDS)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


MEDIA_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture
async def media_browser() -> AsyncIterator[Browser]:
    """Chromium with a fake camera and microphone, granted without asking."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *MEDIA_ARGS]
        )
        try:
            yield chromium
        finally:
            await chromium.close()
