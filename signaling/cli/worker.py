"""``caucus worker``: one media worker process (the SFU and the live rooms of the cases
placed on it), started by ``caucus serve`` (``signaling.cluster.supervisor``) or by an
operator adding workers to a cluster."""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import signal
import sys
import uuid

from sfu.heap import freeze_startup_heap
from signaling.cli.logconfig import configure_logging
from signaling.cluster.placement import RedisDirectory, WorkerInfo
from signaling.cluster.supervisor import READY_KEY, SETTINGS_ENV
from signaling.services import Services
from signaling.settings import Settings

log = logging.getLogger(__name__)


async def run_worker(settings: Settings, worker_id: str, *, port: int = 0) -> None:
    """Run one media worker until SIGTERM/SIGINT."""
    from signaling.cluster.media_host import MediaHost  # imports the SFU: only in workers

    secret = settings.cluster_secret
    if not secret:
        raise ValueError("a media worker needs the cluster secret (CAUCUS_CLUSTER_SECRET)")
    services = Services.build(settings)  # the node migrated the store before starting us
    directory = RedisDirectory(settings.redis_url) if settings.redis_url else None
    info = WorkerInfo(
        id=worker_id, node=settings.effective_node_id, host=settings.cluster_host, port=port
    )
    host = MediaHost(services, info, secret, directory)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await host.start()
    if os.environ.get(SETTINGS_ENV):  # started by a node: end with it
        _end_with_parent()
    ready = {
        "id": info.id,
        "node": info.node,
        "host": info.host,
        "port": info.port,
        "pid": info.pid,
        "native": info.native,
    }
    print(json.dumps({READY_KEY: ready}), flush=True)
    log.info("media worker ready", extra=ready)
    try:
        await stop.wait()
    finally:
        await host.close()
        if directory is not None:
            await directory.close()
        await services.close()
    log.info("media worker stopped", extra={"worker": info.id})


def _end_with_parent() -> None:
    """Have the kernel send SIGTERM to this worker when the node that started it dies,
    even by SIGKILL (Linux: PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # it died before that took effect
        os.kill(os.getpid(), signal.SIGTERM)


def worker_main(worker_id: str | None = None) -> int:
    """``caucus worker``: settings from ``CAUCUS_WORKER_SETTINGS`` when a node started
    this worker, else from the environment."""
    raw = os.environ.get(SETTINGS_ENV)
    settings = Settings.model_validate_json(raw) if raw else Settings()
    configure_logging(settings.log_level, settings.log_format)
    worker_id = worker_id or f"{settings.effective_node_id}-{uuid.uuid4().hex[:8]}"
    freeze_startup_heap()
    try:
        asyncio.run(run_worker(settings, worker_id))
    except (OSError, ValueError) as exc:
        print(f"caucus worker: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0
