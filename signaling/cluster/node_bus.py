"""What one signaling node must tell the others: space changes and ended sessions.

A change is committed by whichever node (or media worker) handled the request, but the
sockets it concerns may be connected to any node.  With Redis (a cluster), each message is
published on one channel and every node, the publishing one included, applies it to its
own sockets:

* a space change (a message posted, a member removed, a case closed): emits to its local
  subscribers of the space, and cuts its own sockets of a removed member;
* ended sessions (a sign-out, the other sessions after a password change): disconnects
  its own sockets opened with them.

Redis delivers a channel's messages in the order it received them, so a removal published
before a later message is applied before it on every node.  Without Redis the messages are
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

from rooms.spaces.events import SpaceEvent

log = logging.getLogger(__name__)

CHANNEL = "caucus:node-bus"

SpaceHandler = Callable[[SpaceEvent], Awaitable[None]]
SessionsHandler = Callable[[list[str]], Awaitable[None]]


async def _nothing(_message: Any) -> None:
    return None


class NodeBus:
    """Publishes to every node and delivers to this node's handlers."""

    def __init__(self, redis_url: str | None) -> None:
        self._url = redis_url
        self._redis: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        #: This node's sockets hear a space change.
        self.on_space_change: SpaceHandler = _nothing
        #: This node disconnects its sockets of these session token hashes.
        self.on_sessions_ended: SessionsHandler = _nothing

    @property
    def distributed(self) -> bool:
        """Whether messages travel through Redis (each node then emits to its own sockets
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

    async def space_changed(self, change: SpaceEvent) -> None:
        """A listener of ``Spaces``: carry ``change`` to every node."""
        body = {**asdict(change), "space_ids": list(change.space_ids)}
        await self._send({"kind": "space", "change": body})

    async def sessions_ended(self, token_hashes: list[str]) -> None:
        if token_hashes:
            await self._send({"kind": "sessions_ended", "token_hashes": list(token_hashes)})

    async def _send(self, message: dict[str, Any]) -> None:
        if self._redis is None:
            await self._apply(message)
        else:
            await self._redis.publish(CHANNEL, json.dumps(message))

    async def _apply(self, message: dict[str, Any]) -> None:
        if message["kind"] == "space":
            body = message["change"]
            body["space_ids"] = tuple(body.get("space_ids") or ())
            await self.on_space_change(SpaceEvent(**body))
        elif message["kind"] == "sessions_ended":
            await self.on_sessions_ended([str(h) for h in message["token_hashes"]])

    async def _read(self) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(CHANNEL)
        self._subscribed.set()
        try:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    await self._apply(json.loads(message["data"]))
                except Exception:
                    log.exception("a message from the other nodes could not be applied")
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
