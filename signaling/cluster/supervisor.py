"""A node's media worker processes: starting them, watching them, starting them again.

``caucus serve --workers N`` starts N workers (``caucus worker``, see
``signaling.cli.worker``; one per core by default, mediasoup's model: one event loop per
core), each with its own slice of the UDP port range, waits until each listens for
signaling nodes, and starts a worker again when one dies (its cases are placed again when
their participants come back, see ``signaling.cluster.placement``).  A worker reports
that it is ready by printing one JSON line on its standard output::

    {"caucus_worker": {"id": ..., "node": ..., "host": ..., "port": ..., "pid": ...,
                       "native": {"fastpath": ..., "fastreceive": ...}}}

The worker's settings reach it as JSON in ``CAUCUS_WORKER_SETTINGS`` (the node's settings
as resolved from its file, environment and command line, with the worker's port range),
so the cluster secret never appears on a command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import uuid
from dataclasses import dataclass

from signaling.cluster.placement import HEARTBEAT_SECONDS, Directory, MemoryDirectory, WorkerInfo
from signaling.settings import Settings

log = logging.getLogger(__name__)

SETTINGS_ENV = "CAUCUS_WORKER_SETTINGS"
READY_KEY = "caucus_worker"
START_SECONDS = 60.0


def port_slices(port_min: int, port_max: int, count: int) -> list[tuple[int, int]]:
    """Split ``[port_min, port_max]`` into ``count`` disjoint ranges (``(0, 0)`` each
    when no range is set: every worker takes ephemeral ports)."""
    if not port_min and not port_max:
        return [(0, 0)] * count
    size = (port_max - port_min + 1) // count
    if size < 2:
        raise ValueError(
            f"the UDP port range {port_min}-{port_max} is too small for {count} workers"
        )
    return [
        (port_min + i * size, port_min + (i + 1) * size - 1 if i < count - 1 else port_max)
        for i in range(count)
    ]


@dataclass
class _Slot:
    index: int
    ports: tuple[int, int]
    process: asyncio.subprocess.Process | None = None
    info: WorkerInfo | None = None
    restarts: int = 0


class WorkerSupervisor:
    """Starts a node's media workers, keeps them registered, restarts those that die."""

    def __init__(self, settings: Settings, count: int, directory: Directory, secret: str) -> None:
        self.settings = settings
        self.directory = directory
        self._secret = secret
        self._slots = [
            _Slot(i, ports)
            for i, ports in enumerate(
                port_slices(settings.rtc_port_min, settings.rtc_port_max, count)
            )
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def workers(self) -> list[WorkerInfo]:
        return [slot.info for slot in self._slots if slot.info is not None]

    def pids(self) -> list[int]:
        return [s.process.pid for s in self._slots if s.process and s.process.returncode is None]

    async def start(self, progress: bool = False) -> None:
        """Start every worker and wait until each is ready."""
        started = await asyncio.gather(*(self._spawn(slot) for slot in self._slots))
        for slot, ok in zip(self._slots, started, strict=True):
            if not ok:
                await self.stop()
                raise OSError(f"media worker {slot.index} did not start")
            if progress:
                print(
                    f"Media worker {slot.index + 1}/{len(self._slots)} ready "
                    f"(pid {slot.process.pid if slot.process else '?'})",
                    file=sys.stderr,
                    flush=True,
                )
        self._tasks = [asyncio.ensure_future(self._watch(slot)) for slot in self._slots]
        if isinstance(self.directory, MemoryDirectory):
            self._tasks.append(asyncio.ensure_future(self._keep_registered()))

    async def _spawn(self, slot: _Slot) -> bool:
        worker_id = f"{self.settings.effective_node_id}-w{slot.index}-{uuid.uuid4().hex[:6]}"
        settings = self.settings.model_copy(
            update={
                "rtc_port_min": slot.ports[0],
                "rtc_port_max": slot.ports[1],
                "cluster_secret": self._secret,
            }
        )
        env = {**os.environ, SETTINGS_ENV: settings.worker_json()}
        slot.info = None
        slot.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "signaling.cli",
            "worker",
            "--worker-id",
            worker_id,
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(START_SECONDS):
                info = await self._ready_line(slot.process)
        except TimeoutError:
            info = None
        if info is None:
            with contextlib.suppress(ProcessLookupError):
                slot.process.kill()
            return False
        slot.info = info
        await self.directory.register(info)  # a Redis directory has it already: renewed
        log.info("media worker started", extra={"worker": info.id, "pid": slot.process.pid})
        return True

    @staticmethod
    async def _ready_line(process: asyncio.subprocess.Process) -> WorkerInfo | None:
        assert process.stdout is not None
        while True:
            line = await process.stdout.readline()
            if not line:
                return None  # it exited
            with contextlib.suppress(ValueError, TypeError, KeyError):
                data = json.loads(line)[READY_KEY]
                return WorkerInfo(
                    id=data["id"],
                    node=data["node"],
                    host=data["host"],
                    port=int(data["port"]),
                    pid=int(data.get("pid", process.pid)),
                    native={str(k): bool(v) for k, v in data.get("native", {}).items()},
                )

    async def _watch(self, slot: _Slot) -> None:
        """Wait for the worker to exit; start it again unless the node is stopping."""
        while not self._stopping:
            process = slot.process
            assert process is not None
            drain = asyncio.ensure_future(_drain(process))
            code = await process.wait()
            drain.cancel()
            if self._stopping:
                return
            dead = slot.info
            log.error(
                "media worker exited; starting it again",
                extra={"worker": dead.id if dead else None, "code": code},
            )
            if dead is not None:
                with contextlib.suppress(Exception):
                    await self.directory.unregister(dead.id)
            slot.restarts += 1
            delay = 0.5
            while not self._stopping:
                if await self._spawn(slot):
                    break
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    async def _keep_registered(self) -> None:
        while not self._stopping:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            for slot in self._slots:
                if slot.info is not None and slot.process and slot.process.returncode is None:
                    await self.directory.register(slot.info)

    async def stop(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL after 10 s)."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for slot in self._slots:
            process = slot.process
            if process is None or process.returncode is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                async with asyncio.timeout(10):
                    await _drain(process)
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            if slot.info is not None:
                with contextlib.suppress(Exception):
                    await self.directory.unregister(slot.info.id)


async def _drain(process: asyncio.subprocess.Process) -> None:
    """Read (and drop) what a worker prints after its ready line, so it never blocks."""
    if process.stdout is None:
        return
    with contextlib.suppress(Exception):
        while await process.stdout.readline():
            pass
