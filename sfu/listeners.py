"""What each object of the media tree needs of its owner (mediasoup's ``Listener``
interfaces): events go up through these protocols, never through an owner's private
methods.  The :class:`~sfu.worker.Worker` implements both.

Worker → Router (a live room) → Transport (a peer connection) → Track / Consumer.
A Consumer changes its Track only through the Producer's methods
(``add_consumer``, ``remove_consumer``, ``consumer_waits_for_keyframe``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .consumer import Consumer
    from .router import Router
    from .rtc import ReceivePoller
    from .settings import MediaSettings
    from .simulcast import Track
    from .transport import Transport


class TransportListener(Protocol):
    """Told by a :class:`~sfu.transport.Transport` of its producers and its end."""

    settings: MediaSettings
    #: Reads the publish connections' media sockets (``None``: each on its own event).
    receive_poller: ReceivePoller | None

    def on_transport_new_producer(self, transport: Transport, producer: Track) -> None:
        """``producer`` was negotiated on ``transport`` (a publish transport)."""

    def on_transport_producer_closed(self, transport: Transport, producer: Track) -> None:
        """``producer`` is closing with its transport; its consumers must stop."""

    def video_codecs_for(self, participant_id: str) -> tuple[str, ...]:
        """The video codecs ``participant_id`` may publish, most preferred first."""
        ...

    def on_transport_closed(self, transport: Transport) -> None:
        """``transport`` closed (for any reason)."""


class RouterListener(Protocol):
    """What a :class:`~sfu.router.Router` needs of the worker holding it: membership
    events going up, and the transports and parked m-lines it shares with other rooms."""

    def on_router_member_changed(self, participant_id: str, router: Router | None) -> None:
        """``participant_id`` joined ``router`` (``None``: left the router it was in)."""

    def router_of(self, participant_id: str) -> Router | None:
        """The router ``participant_id`` is a member of."""

    def transports_of(
        self, participant_id: str, direction: str | None = None
    ) -> Iterator[Transport]:
        """The participant's transports (publish and subscribe ones live in the worker)."""

    def transport_of_consumer(self, consumer: Consumer) -> Transport | None: ...

    def park(self, consumer: Consumer) -> None:
        """Keep ``consumer``'s m-line for a later producer of the same codec."""

    def parked_consumer(self, transport: Transport, producer: Track) -> Consumer | None:
        """A parked consumer of ``transport`` that can carry ``producer``, if any."""

    def switch(self, consumer: Consumer, producer: Track) -> None:
        """Move ``consumer`` (a parked one) to ``producer``."""

    def consumer_created(self, consumer: Consumer) -> None:
        """A new consumer exists (its first assignment begins)."""
