"""The periodic pass of activity digests: this node records who is online in which case
(its sockets), then writes the digests due (``rooms.spaces.digests``). Run every
``digest_check_seconds`` by a :class:`signaling.mail.periodic.PeriodicMail`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from rooms.cases.cases import Cases
from rooms.spaces.digests import SpaceDigests


def digest_pass(
    digests: SpaceDigests, cases: Cases, present: Callable[[], set[tuple[str, str]]]
) -> Callable[[], Awaitable[int]]:
    """One pass: presence recorded, then the digests due written; answers how many."""

    async def run() -> int:
        await cases.seen(present())
        return await digests.run()

    return run
