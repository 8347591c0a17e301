"""A Router is one live room: who is in it, what they publish, who receives what.

Every member's subscribe transport consumes every other member's producers.  Members are
participant ids; their transports are looked up through the router's listener (the
:class:`~sfu.worker.Worker`, see :class:`~sfu.listeners.RouterListener`), so a participant
may join before or after creating its transports.  The router keeps which consumers it
gave each producer of the room.

Room moves reuse m-lines: a consumer that stops (its subscriber or its publisher left the
room, or its producer closed) is *parked* -- switched to the worker's idle producer of the
same codec, so nothing reaches it -- and the next producer of that codec the subscriber
must receive takes the parked slot over with ``Consumer.switch_to``, without a
renegotiation.  The subscribe SDP therefore never has more m-lines than the most tracks
the participant received at once.  Parking and switching are synchronous: once
``join``/``leave`` returns, no packet of the old room can be written to the participant.
Because a slot's rewritten sequence numbers stay continuous, the worker records where each
assignment begins (``Worker.first_sequence_number``): signaling tells the subscriber, so a
packet can be attributed to the assignment in force when it was sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .consumer import Consumer
    from .listeners import RouterListener
    from .simulcast import Track


class Router:
    """The live room ``room_id``: members, their producers, and the consumers between them
    (a map from each producer to the consumers this router gave it)."""

    def __init__(self, listener: RouterListener, room_id: str) -> None:
        self.room_id = room_id
        self.members: set[str] = set()
        #: Called after a consumer is created (signaling may tell the client who it is).
        self.on_consumer_added: Callable[[Consumer], None] | None = None
        #: Producers not forwarded in this room (e.g. a screen while sharing is disabled).
        self.blocked: set[str] = set()
        self._listener = listener
        #: producer -> the consumers this router gave it (an ordered set)
        self._consumers: dict[Track, dict[Consumer, None]] = {}

    @property
    def producers(self) -> list[Track]:
        found: list[Track] = []
        for participant_id in self.members:
            for transport in self._listener.transports_of(participant_id, "publish"):
                found.extend(
                    p
                    for p in transport.producers.values()
                    if not p.closed and p.id not in self.blocked
                )
        return found

    def join(self, participant_id: str) -> None:
        """Add ``participant_id`` (leaving any other router of this worker)."""
        current = self._listener.router_of(participant_id)
        if current is self:
            return
        if current is not None:
            current.leave(participant_id)
        self._listener.on_router_member_changed(participant_id, self)
        self.members.add(participant_id)
        for producer in self.producers:
            if producer.participant_id != participant_id:
                self._consume(participant_id, producer)
            else:  # a participant moving in brings its tracks along
                self.producer_added(producer)
        self.subscriber_ready(participant_id)

    def leave(self, participant_id: str) -> None:
        """Remove ``participant_id``: nobody receives it, it receives nobody here."""
        if participant_id not in self.members:
            return
        self.members.discard(participant_id)
        self._listener.on_router_member_changed(participant_id, None)
        for transport in self._listener.transports_of(participant_id, "subscribe"):
            for consumer in list(transport.consumers.values()):
                producer = consumer.producer
                if producer is not None and producer.participant_id in self.members:
                    self._forget(producer, consumer)
                    self._listener.park(consumer)
        for transport in self._listener.transports_of(participant_id, "publish"):
            for producer in transport.producers.values():
                self.producer_closed(producer)

    def subscriber_ready(self, participant_id: str) -> None:
        """A member's subscribe transport appeared: give it every producer of the room."""
        for producer in self.producers:
            if producer.participant_id != participant_id:
                self._consume(participant_id, producer)

    def producer_added(self, producer: Track) -> None:
        for member in self.members:
            if member != producer.participant_id:
                self._consume(member, producer)

    def producer_closed(self, producer: Track) -> None:
        """Nobody receives ``producer`` any more (its consumers are parked)."""
        for consumer in self._consumers.pop(producer, {}):
            if consumer.closed or consumer.producer is not producer:
                continue
            transport = self._listener.transport_of_consumer(consumer)
            if transport is not None and not transport.closed:
                self._listener.park(consumer)
            else:
                consumer.close()

    def block(self, producer: Track) -> None:
        """Stop forwarding ``producer`` in this room until :meth:`unblock`."""
        self.blocked.add(producer.id)
        self.producer_closed(producer)

    def unblock(self, producer: Track) -> None:
        if producer.id in self.blocked:
            self.blocked.discard(producer.id)
            if producer.participant_id in self.members and not producer.closed:
                self.producer_added(producer)

    def _consume(self, participant_id: str, producer: Track) -> None:
        if producer.id in self.blocked:
            return
        for transport in self._listener.transports_of(participant_id, "subscribe"):
            if transport.closed:
                continue
            if any(c.producer is producer for c in transport.consumers.values()):
                continue
            consumer = self._listener.parked_consumer(transport, producer)
            if consumer is not None:
                self._listener.switch(consumer, producer)
            else:
                consumer = transport.consume(producer)
                self._listener.consumer_created(consumer)
            given = self._consumers.setdefault(producer, {})
            for stale in [c for c in given if c.closed or c.producer is not producer]:
                del given[stale]
            given[consumer] = None
            if self.on_consumer_added is not None:
                self.on_consumer_added(consumer)

    def consumers_of(self, producer: Track) -> list[Consumer]:
        """The consumers this router gave ``producer`` that still carry it."""
        return [
            c for c in self._consumers.get(producer, ()) if not c.closed and c.producer is producer
        ]

    def _forget(self, producer: Track, consumer: Consumer) -> None:
        given = self._consumers.get(producer)
        if given is not None:
            given.pop(consumer, None)

    def stats(self) -> dict[str, object]:
        return {
            "room_id": self.room_id,
            "members": sorted(self.members),
            "producers": len(self.producers),
        }
