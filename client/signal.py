"""How a headless participant negotiates with the SFU.

A :class:`Signal` carries two exchanges: the client's publish offer (answered by the
SFU) and the SFU's subscribe offers (answered by the client).  :class:`LocalSignal`
calls an in-process :class:`sfu.Worker` directly; a socket.io signal implements the
same three methods against the real server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from sfu import Worker

OfferHandler = Callable[[str], Awaitable[str]]


class Signal(Protocol):
    async def connect(self, participant_id: str, on_subscribe_offer: OfferHandler) -> None:
        """Join the room; ``on_subscribe_offer(offer) -> answer`` serves the SFU's offers."""

    async def publish(self, offer_sdp: str) -> str:
        """Send the publish offer; returns the SFU's answer."""

    async def close(self) -> None:
        """Leave the room and release server-side transports."""


class LocalSignal:
    """Negotiates by calling ``worker`` in the same process."""

    def __init__(self, worker: Worker, room_id: str) -> None:
        self._worker = worker
        self._room_id = room_id
        self._participant_id: str | None = None
        self._publish = None
        self._subscribe = None

    async def connect(self, participant_id: str, on_subscribe_offer: OfferHandler) -> None:
        self._participant_id = participant_id
        self._subscribe = await self._worker.create_transport(participant_id, "subscribe")
        self._subscribe.negotiator = on_subscribe_offer
        self._worker.router(self._room_id).join(participant_id)

    async def publish(self, offer_sdp: str) -> str:
        if self._publish is None:
            self._publish = await self._worker.create_transport(self._participant_id, "publish")
        return await self._publish.accept_offer(offer_sdp)

    async def close(self) -> None:
        if self._participant_id is not None:
            self._worker.router(self._room_id).leave(self._participant_id)
        for transport in (self._publish, self._subscribe):
            if transport is not None:
                await transport.close()
