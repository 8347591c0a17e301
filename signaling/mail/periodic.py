"""A task that writes mail on a schedule (activity digests, session reminders): every
``interval`` seconds it runs one pass and wakes the sender when the pass wrote something."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class PeriodicMail:
    """Owns one periodic task of a process (``start`` / ``stop``)."""

    def __init__(
        self,
        name: str,
        run: Callable[[], Awaitable[int]],
        interval: float,
        written: Callable[[], None],
    ) -> None:
        self.name = name
        self.run = run
        self.interval = interval
        self.written = written
        self.__task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.__task = asyncio.create_task(self.__loop(), name=self.name)

    async def stop(self) -> None:
        if self.__task is not None:
            self.__task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.__task
            self.__task = None

    async def tick(self) -> int:
        count = await self.run()
        if count:
            self.written()
        return count

    async def __loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("%s failed; it is tried again", self.name)
            await asyncio.sleep(self.interval)
