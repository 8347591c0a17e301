"""Caucus nodes as real processes for the scale-out tests: ``caucus serve --workers N``,
one or two nodes sharing a database, a data directory (master key, certificates, vault)
and, for two nodes, Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio

from client import Participant, SocketSignal
from client.loadtest_setup import ApiSession, create_accounts
from signaling.cluster.placement import REGISTRATION_TTL_SECONDS
from tests.support.databases import fresh_postgres_database
from tests.support.eventually import eventually
from tests.support.server import ServeProcess, start_serve

ROOT = Path(__file__).resolve().parents[2]
WORKER_STARTED = re.compile(r"media worker started worker='([^']+)' pid=(\d+)")
NEW_ADMIN_PASSWORD = "violet tram 42 lanterns"
CLUSTER_SECRET = "the cluster secret of the scale-out tests"


@dataclass
class Node:
    """One ``caucus serve`` process and what it printed."""

    node_id: str
    served: ServeProcess

    @property
    def url(self) -> str:
        return self.served.url

    @property
    def process(self) -> asyncio.subprocess.Process:
        return self.served.process

    @property
    def output(self) -> list[str]:
        return self.served.output

    @property
    def admin_password(self) -> str | None:
        return self.served.admin_password

    def workers(self) -> dict[str, int]:
        """Worker id -> pid of every worker this node started (restarts included)."""
        found: dict[str, int] = {}
        for line in self.output:
            match = WORKER_STARTED.search(line)
            if match:
                found[match.group(1)] = int(match.group(2))
        return found

    def log(self) -> str:
        return self.served.log(150)

    async def stop(self) -> None:
        await self.served.stop()


async def start_node(
    data_dir: Path,
    *,
    node_id: str,
    workers: int,
    database_url: str | None,
    redis_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Node:
    env = {"CAUCUS_LOG_LEVEL": "INFO", "CAUCUS_CLUSTER_SECRET": CLUSTER_SECRET, **(extra_env or {})}
    served = await start_serve(
        data_dir,
        env=env,
        workers=workers,
        node_id=node_id,
        database_url=database_url,
        redis_url=redis_url,
    )
    return Node(node_id, served)


@contextlib.asynccontextmanager
async def shared_database() -> AsyncIterator[str | None]:
    """A fresh PostgreSQL database when the run has one (``CAUCUS_TEST_DATABASE_URL``),
    dropped afterwards; else ``None`` (the nodes share SQLite in their data directory)."""
    admin_url = os.environ.get("CAUCUS_TEST_DATABASE_URL")
    if not admin_url:
        yield None
        return
    async with fresh_postgres_database(admin_url, "caucus_cluster") as url:
        yield url


#: The key prefix of the cluster's directory in Redis (``RedisDirectory``'s default).
PREFIX = "caucus"


@contextlib.asynccontextmanager
async def running_nodes(
    data_dir: Path, names: tuple[str, ...], *, workers: int, redis_url: str | None
) -> AsyncIterator[list[Node]]:
    """Nodes sharing a fresh database and ``data_dir``, started one after the other (the
    first creates the certificate and master key), stopped at the end.  With Redis, they
    start once no media worker of an earlier test is registered there."""
    if redis_url is not None:
        await no_worker_registered(redis_url)
    async with shared_database() as database:
        nodes: list[Node] = []
        try:
            for name in names:
                nodes.append(
                    await start_node(
                        data_dir,
                        node_id=name,
                        workers=workers,
                        database_url=database,
                        redis_url=redis_url,
                    )
                )
            yield nodes
        finally:
            for node in nodes:
                await node.stop()


async def no_worker_registered(redis_url: str) -> None:
    """Wait until no media worker is registered in Redis.  A worker an earlier test
    stopped or killed stays registered until its registration expires
    (``REGISTRATION_TTL_SECONDS``); a case of this test placed on it meanwhile would be
    served against the earlier test's database (``media.join`` then fails)."""
    client = redis.asyncio.from_url(redis_url)
    try:

        async def none_left() -> bool:
            return not await client.keys(f"{PREFIX}:worker:*")

        await eventually(none_left, 3 * REGISTRATION_TTL_SECONDS, what="earlier workers gone")
    finally:
        await client.aclose()


async def caucus_command(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``caucus ARGS``; its exit status and output (standard output and error)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signaling.cli",
        *args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def one_case(node: Node, people: int) -> dict[str, Any]:
    """A neutral and a case with ``people`` parties, made over the API of ``node``."""
    assert node.admin_password is not None
    accounts = await create_accounts(
        node.url,
        rooms=1,
        per_room=people,
        admin_user="admin",
        admin_password=node.admin_password,
        admin_new_password=NEW_ADMIN_PASSWORD,
        insecure=True,
    )
    return accounts


async def media_stats(node: Node) -> dict[str, Any]:
    """``GET /api/admin/media`` of ``node`` (every worker's statistics, merged)."""
    async with ApiSession(node.url, insecure=True) as admin:
        await admin.sign_in("admin", NEW_ADMIN_PASSWORD)
        return await admin.request("GET", "/api/admin/media")


@contextlib.asynccontextmanager
async def people_in(
    nodes: list[Node], accounts: dict[str, Any], *, rejoin: bool = False
) -> AsyncIterator[list[Participant]]:
    """The case's neutral and parties, each publishing audio and video; person ``i``
    connects to ``nodes[i % len(nodes)]`` (and to the others when it cannot)."""
    case = accounts["rooms"][0]
    logins = [accounts["neutral"], *case["accounts"]]
    people = []
    for index, login in enumerate(logins):
        node = nodes[index % len(nodes)]
        signal_ = SocketSignal(
            node.url,
            login["username"],
            login["password"],
            case["case_id"],
            insecure=True,
            urls=[n.url for n in nodes if n is not node],
        )
        people.append(Participant(login["username"], signal_, rejoin=rejoin))
    try:
        await asyncio.gather(*(person.join() for person in people))
        yield people
    finally:
        await asyncio.gather(*(person.close() for person in people), return_exceptions=True)
