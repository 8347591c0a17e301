"""One launcher of ``caucus serve`` processes for the tests: it starts the server with
``--ready-json`` and reads that one JSON line (url, port, admin password, CA path, workers)
instead of parsing the human banner."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
START_SECONDS = 90.0
STOP_SECONDS = 30.0

#: Cheap password hashing: tests sign in many times; the parameters are tested elsewhere.
FAST_HASHING = {
    "CAUCUS_ARGON2_TIME_COST": "1",
    "CAUCUS_ARGON2_MEMORY_KIB": "8192",
    "CAUCUS_ARGON2_PARALLELISM": "1",
}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Ready:
    """What ``caucus serve --ready-json`` prints once it listens."""

    url: str  # without the trailing slash
    host: str
    port: int
    admin_password: str | None
    ca_path: str | None
    workers: int

    @classmethod
    def parse(cls, line: str) -> Ready | None:
        """The ready line's fields, or ``None`` for any other line."""
        if not line.startswith("{"):
            return None
        try:
            data = json.loads(line)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("ready") is not True:
            return None
        return cls(
            url=str(data["url"]).rstrip("/"),
            host=data["host"],
            port=int(data["port"]),
            admin_password=data.get("admin_password"),
            ca_path=data.get("ca_path"),
            workers=int(data["workers"]),
        )


def serve_command(
    data_dir: Path,
    *,
    port: int = 0,
    workers: int | None = 1,
    database_url: str | None = None,
    redis_url: str | None = None,
    node_id: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """``caucus serve --ready-json`` with these options. One media worker unless told
    (``None``: the default, one per core; ``0``: media in the server process)."""
    command = [sys.executable, "-m", "signaling.cli", "serve", "--ready-json"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    if workers is not None:
        command += ["--workers", str(workers)]
    if database_url:
        command += ["--database-url", database_url]
    if redis_url:
        command += ["--redis-url", redis_url]
    if node_id:
        command += ["--node-id", node_id]
    return [*command, *extra]


def serve_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **FAST_HASHING, **(env or {})}


@dataclass
class ServeProcess:
    """A running ``caucus serve`` (asyncio subprocess): its ready line and every line it
    printed on standard output and error, read as they come."""

    process: asyncio.subprocess.Process
    ready: Ready
    output: list[str] = field(default_factory=list)
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.ready.url

    @property
    def admin_password(self) -> str | None:
        return self.ready.admin_password

    def log(self, lines: int = 200) -> str:
        return "\n".join(self.output[-lines:])

    async def stop(self, seconds: float = STOP_SECONDS) -> int:
        """SIGTERM, then SIGKILL after ``seconds``; the exit status."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(seconds):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        for reader in self._readers:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(reader, 5)
        assert self.process.returncode is not None
        return self.process.returncode


async def _read(stream: asyncio.StreamReader, output: list[str]) -> None:
    while raw := await stream.readline():
        output.append(raw.decode(errors="replace").rstrip("\r\n"))


async def start_serve(
    data_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    start_seconds: float = START_SECONDS,
    **options: Any,
) -> ServeProcess:
    """Starts ``caucus serve`` (options: those of :func:`serve_command`) and returns once
    it printed its ready line; fails with its output if it exits or takes too long."""
    process = await asyncio.create_subprocess_exec(
        *serve_command(data_dir, **options),
        cwd=REPO,
        env=serve_environment(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    output: list[str] = []
    errors = asyncio.ensure_future(_read(process.stderr, output))
    deadline = time.monotonic() + start_seconds
    ready = None
    try:
        while ready is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"caucus serve printed no ready line in {start_seconds:g} s")
            raw = await asyncio.wait_for(process.stdout.readline(), remaining)
            if not raw:
                status = await process.wait()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(errors, 5)
                raise RuntimeError(f"caucus serve exited with status {status}")
            line = raw.decode(errors="replace").rstrip("\r\n")
            output.append(line)
            ready = Ready.parse(line)
    except BaseException as failure:
        if process.returncode is None:
            process.kill()
            await process.wait()
        errors.cancel()
        if isinstance(failure, Exception):
            raise RuntimeError(f"{failure}\n" + "\n".join(output[-200:])) from failure
        raise
    served = ServeProcess(process, ready, output, [errors])
    served._readers.append(asyncio.ensure_future(_read(process.stdout, output)))
    return served


@contextlib.asynccontextmanager
async def serving(data_dir: Path, **options: Any) -> AsyncIterator[ServeProcess]:
    """:func:`start_serve`, stopped at the end; its output is printed (pytest shows it
    when the test failed)."""
    served = await start_serve(data_dir, **options)
    try:
        yield served
    finally:
        await served.stop()
        print(served.log())


@dataclass
class ServePopen:
    """A running ``caucus serve`` started with :mod:`subprocess` (for synchronous tests):
    the lines it printed before its ready line are in ``before``; the rest of its output
    is left to the test (``process.communicate()``)."""

    process: subprocess.Popen[str]
    ready: Ready
    before: list[str]

    @property
    def url(self) -> str:
        return self.ready.url

    def stop(self, sig: int = signal.SIGTERM, seconds: float = STOP_SECONDS) -> tuple[str, str]:
        """Sends ``sig`` and returns what is left of standard output and error."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            out, err = self.process.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        return out or "", err or ""


def start_serve_sync(
    data_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    stderr: int | None = subprocess.PIPE,
    **options: Any,
) -> ServePopen:
    """Starts ``caucus serve`` and returns once it printed its ready line. Standard error
    is piped by default; read it with ``stop()`` (a chatty server can fill the pipe: pass
    ``stderr=subprocess.DEVNULL`` when nothing is read)."""
    process = subprocess.Popen(
        serve_command(data_dir, **options),
        cwd=REPO,
        env=serve_environment(env),
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    assert process.stdout is not None
    before: list[str] = []
    while True:
        line = process.stdout.readline()
        if not line:
            process.wait(STOP_SECONDS)
            err = process.stderr.read() if process.stderr else ""
            raise RuntimeError(
                f"caucus serve exited with status {process.returncode}\n"
                + "\n".join(before)
                + f"\n{err[-5000:]}"
            )
        ready = Ready.parse(line.strip())
        if ready is not None:
            return ServePopen(process, ready, before)
        before.append(line.rstrip("\n"))
