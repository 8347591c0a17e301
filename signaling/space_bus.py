"""Space changes for every node's ``/spaces`` sockets.

A change (a message posted, a member removed, a case closed) is committed by whichever
node or media worker handled the request, but the sockets subscribed to the space may be
connected to any node.  With Redis (a cluster), each change is published on one channel
and every node, the publishing one included, applies it to its own sockets: emits to its
local members of the space's room, and cuts its own sockets of a removed member.  Redis
delivers a channel's messages in the order it received them, so a removal published
before a later message is applied before it on every node.  Without Redis the change is
applied directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from rooms.spaces import SpaceEvent

log = logging.getLogger(__name__)

CHANNEL = "caucus:space-events"

Deliver = Callable[[SpaceEvent], Awaitable[None]]


class SpaceEventBus:
    """Publishes committed space changes and delivers them to this node's sockets."""

    def __init__(self, redis_url: str | None, deliver: Deliver) -> None:
        self._url = redis_url
        self._deliver = deliver
        self._redis: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    @property
    def distributed(self) -> bool:
        """Whether changes travel through Redis (each node then emits to its own sockets
        only)."""
        return self._url is not None

    async def start(self) -> None:
        if self._url is None:
            return
        import redis.asyncio as redis

        self._redis = redis.from_url(self._url)
        self._reader = asyncio.ensure_future(self._read())
        async with asyncio.timeout(10):
            await self._subscribed.wait()

    async def publish(self, change: SpaceEvent) -> None:
        """A listener of ``Spaces``: carry ``change`` to every node."""
        if self._redis is None:
            await self._deliver(change)
            return
        body = {**asdict(change), "space_ids": list(change.space_ids)}
        await self._redis.publish(CHANNEL, json.dumps(body))

    async def _read(self) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(CHANNEL)
        self._subscribed.set()
        try:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    body = json.loads(message["data"])
                    body["space_ids"] = tuple(body.get("space_ids") or ())
                    await self._deliver(SpaceEvent(**body))
                except Exception:
                    log.exception("a space change from the cluster could not be applied")
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._redis is not None:
            await self._redis.aclose()
