"""coturn (Debian's ``turnserver``) for the tests: started from the deployment's
docs/deploy/turnserver.conf with its addresses, ports, TLS and secret replaced by loopback
ones, so that the configuration operators copy is the one the tests run.

Only loopback is used: coturn listens on 127.0.0.1 and relays from 127.0.0.1, and
``allow-loopback-peers`` lets it relay to peers on this machine (the SFU's candidates
are this machine's own addresses; the kernel delivers them locally)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pytest
from aioice import stun

from tests.support.eventually import eventually
from tests.support.server import REPO, free_port

TURNSERVER = "turnserver"
TEMPLATE = REPO / "docs" / "deploy" / "turnserver.conf"

#: The template's options that describe the production host; replaced for loopback.
_REPLACED = frozenset(
    {
        "listening-ip",
        "relay-ip",
        "external-ip",
        "listening-port",
        "tls-listening-port",
        "alt-listening-port",
        "alt-tls-listening-port",
        "min-port",
        "max-port",
        "cert",
        "pkey",
        "static-auth-secret",
        "realm",
        "log-file",
        "pidfile",
        "userdb",
        "allow-loopback-peers",
        "no-tls",
    }
)


def need_turnserver() -> str:
    """The ``turnserver`` executable; skips the test where coturn is not installed, except
    in CI (``make browser`` installs it there), where its absence fails."""
    path = shutil.which(TURNSERVER)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("coturn (turnserver) is not installed: `make browser` installs it")
        pytest.skip("coturn (turnserver) is not installed: apt-get install coturn")
    return path


def loopback_config(
    template: str, *, port: int, relay_ports: tuple[int, int], secret: str, directory: Path
) -> str:
    """``template`` (a turnserver.conf) for a coturn on 127.0.0.1:``port`` (UDP and TCP,
    no TLS) relaying from 127.0.0.1 within ``relay_ports``, with ``secret``."""
    kept = []
    for line in template.splitlines():
        option = line.strip().split("=", 1)[0].strip()
        if line.strip().startswith("#") or option in _REPLACED:
            continue
        kept.append(line)
    kept += [
        "# --- loopback, for the tests ---",
        "listening-ip=127.0.0.1",
        "relay-ip=127.0.0.1",
        f"listening-port={port}",
        f"min-port={relay_ports[0]}",
        f"max-port={relay_ports[1]}",
        f"static-auth-secret={secret}",
        "realm=caucus.test",
        "no-tls",
        "no-dtls",
        "allow-loopback-peers",
        f"userdb={directory / 'turndb'}",
        f"pidfile={directory / 'turnserver.pid'}",
        "log-file=stdout",
    ]
    return "\n".join(kept) + "\n"


@dataclass
class Coturn:
    """A running coturn on 127.0.0.1:``port`` with the shared ``secret``."""

    port: int
    secret: str
    log_path: Path
    process: asyncio.subprocess.Process

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def urls(self) -> list[str]:
        """The URLs Caucus hands browsers for it (``turn_urls``)."""
        return [
            f"turn:127.0.0.1:{self.port}?transport=udp",
            f"turn:127.0.0.1:{self.port}?transport=tcp",
        ]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


async def _answers_binding(port: int) -> bool:
    """Whether something answers a STUN Binding request on 127.0.0.1:``port`` (UDP)."""
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(("127.0.0.1", port))
        sock.send(bytes(request))
        try:
            async with asyncio.timeout(0.2):
                data = await loop.sock_recv(sock, 2048)
        except (TimeoutError, ConnectionRefusedError):
            return False
    return stun.parse_message(data).transaction_id == request.transaction_id


def _prepare(directory: Path, secret: str) -> tuple[Path, int]:
    """Write the loopback configuration into ``directory``: (its path, the TURN port)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    first = random.randrange(50_000, 60_000)
    config = directory / "turnserver.conf"
    config.write_text(
        loopback_config(
            TEMPLATE.read_text(),
            port=port,
            relay_ports=(first, first + 99),
            secret=secret,
            directory=directory,
        )
    )
    return config, port


def _open_log(path: Path) -> BinaryIO:
    return open(path, "wb")  # handed to the child process, closed after


@contextlib.asynccontextmanager
async def running_coturn(directory: Path, secret: str) -> AsyncIterator[Coturn]:
    """coturn started from the deployment's configuration on loopback; stopped after."""
    executable = need_turnserver()
    config, port = _prepare(directory, secret)
    log_path = directory / "turnserver.log"
    with _open_log(log_path) as log:
        process = await asyncio.create_subprocess_exec(
            executable, "-c", str(config), stdout=log, stderr=asyncio.subprocess.STDOUT
        )
    coturn = Coturn(port, secret, log_path, process)
    try:
        await eventually(
            lambda: _answers_binding(port),
            within=20,
            what="coturn answers STUN on loopback",
            details=coturn.log,
        )
        yield coturn
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
