"""A namespace standing for one whose events run elsewhere (in a media worker process).

A :class:`ForwardingNamespace` declares the same events as the namespace class it stands
for (its own methods and its components'), validates and authorizes each one here, where
the sockets and sessions are, then hands it to a :class:`Forwarder`
(``signaling.cluster.gateway.MediaCluster``), which runs it where the event's case is
hosted and relays what that code says back to the sockets.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel

from signaling.realtime.events import Caller, Event, EventNamespace
from signaling.services import Services


class Forwarder(Protocol):
    """Where forwarded events go."""

    def attach(self, namespace: EventNamespace) -> None:
        """``namespace`` stands for its name on this node: emits and calls to its
        sockets go through it."""
        ...

    async def forward(
        self, namespace: str, event: str, caller: Caller, payload: BaseModel
    ) -> dict[str, Any]:
        """Run the event where its case is hosted; the acknowledgement."""
        ...

    async def left(self, namespace: str, sid: str) -> None:
        """Socket ``sid`` of ``namespace`` disconnected."""
        ...


class ForwardingNamespace(EventNamespace):
    """Stands for ``source`` (a namespace class) on a node whose media runs in workers."""

    def __init__(
        self,
        namespace: str,
        source: type[EventNamespace],
        services: Services,
        forwarder: Forwarder,
    ) -> None:
        super().__init__(namespace, services)
        self.forwarder = forwarder
        self.events.update(source.declarations())
        forwarder.attach(self)

    async def handle(self, spec: Event, caller: Caller, payload: BaseModel) -> dict[str, Any]:
        return await self.forwarder.forward(self.namespace, spec.name, caller, payload)

    async def left(self, sid: str) -> None:
        await self.forwarder.left(self.namespace, sid)
