"""How a headless participant negotiates with the SFU.

A :class:`Signal` carries two exchanges: the client's publish offer (answered by the
SFU) and the SFU's subscribe offers (answered by the client).  :class:`LocalSignal`
calls an in-process :class:`sfu.Worker` directly; a socket.io signal implements the
same three methods against the real server.

A signal reports the end of its live session by calling ``on_ended(reason)`` when set
(``"removed"`` when a mediator removed the participant: it must not come back by itself);
``connect`` may then be called again to join with fresh transports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from sfu import Transport, Worker

OfferHandler = Callable[[str], Awaitable[str]]

#: The ending after which a participant waits to be admitted again: no rejoining.
REMOVED = "removed"


class Signal(Protocol):
    #: Called with the reason when the live session ends without ``close()``.
    on_ended: Callable[[str], None] | None

    async def connect(self, participant_id: str, on_subscribe_offer: OfferHandler) -> None:
        """Join the room; ``on_subscribe_offer(offer) -> answer`` serves the SFU's offers.
        Called again after an ending, joins again."""

    async def publish(self, offer_sdp: str) -> str:
        """Send the publish offer; returns the SFU's answer."""

    async def close(self) -> None:
        """Leave the room and release server-side transports."""


class LocalSignal:
    """Negotiates by calling ``worker`` in the same process; owns the participant's two
    transports.  A subscribe transport that closes by itself (failed ICE, DTLS or
    negotiation) ends the session with ``"connection_failed"``, as the server does."""

    def __init__(self, worker: Worker, room_id: str) -> None:
        self.on_ended: Callable[[str], None] | None = None
        self._worker = worker
        self._room_id = room_id
        self._participant_id: str | None = None
        self._publish: Transport | None = None
        self._subscribe: Transport | None = None

    @property
    def subscribe_transport(self) -> Transport | None:
        """The SFU side of the current subscribe connection (tests close it)."""
        return self._subscribe

    async def connect(self, participant_id: str, on_subscribe_offer: OfferHandler) -> None:
        await self._release()
        self._participant_id = participant_id
        subscribe = self._subscribe = await self._worker.create_transport(
            participant_id, "subscribe"
        )
        subscribe.negotiator = on_subscribe_offer
        subscribe.on_close = self._subscribe_closed
        self._worker.router(self._room_id).join(participant_id)

    async def publish(self, offer_sdp: str) -> str:
        assert self._participant_id is not None, "connect first"
        if self._publish is None or self._publish.closed:
            self._publish = await self._worker.create_transport(self._participant_id, "publish")
        return await self._publish.accept_offer(offer_sdp)

    async def close(self) -> None:
        await self._release()

    async def _release(self) -> None:
        if self._participant_id is not None:
            self._worker.router(self._room_id).leave(self._participant_id)
        transports, self._publish, self._subscribe = (self._publish, self._subscribe), None, None
        for transport in transports:
            if transport is not None:
                transport.on_close = None
                await transport.close()

    def _subscribe_closed(self, transport: Transport) -> None:
        if transport is not self._subscribe:
            return
        self._subscribe = None
        if self._participant_id is not None:
            self._worker.router(self._room_id).leave(self._participant_id)
        if self.on_ended is not None:
            self.on_ended("connection_failed")
