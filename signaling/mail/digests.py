"""The periodic part of activity digests: every ``digest_check_seconds`` this node records
who is online in which case (its sockets), then writes the digests due
(``rooms.spaces.digests``) and wakes the sender."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from rooms.cases.cases import Cases
from rooms.spaces.digests import SpaceDigests

log = logging.getLogger(__name__)


class DigestRunner:
    """Owns the digest task of one process (``start`` / ``stop``)."""

    def __init__(
        self,
        digests: SpaceDigests,
        cases: Cases,
        present: Callable[[], set[tuple[str, str]]],
        interval: float,
        written: Callable[[], None],
    ) -> None:
        self.digests = digests
        self.cases = cases
        self.present = present
        self.interval = interval
        self.written = written
        self.__task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.__task = asyncio.create_task(self.__run(), name="mail-digests")

    async def stop(self) -> None:
        if self.__task is not None:
            self.__task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.__task
            self.__task = None

    async def tick(self) -> int:
        await self.cases.seen(self.present())
        count = await self.digests.run()
        if count:
            self.written()
        return count

    async def __run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("activity digests failed; they are tried again")
            await asyncio.sleep(self.interval)
