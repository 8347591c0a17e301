"""One node's socket.io server: its namespaces, composed.

``/case`` and ``/spaces`` always run here.  ``/media`` and ``/recording`` run here when
this process hosts the SFU (``worker``), or stand here for the media worker processes
that host them (``forwarder``): the same events are declared and checked either way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import socketio

from signaling.realtime.events import EventNamespace
from signaling.realtime.namespaces.case import CaseNamespace
from signaling.realtime.namespaces.forwarding import Forwarder, ForwardingNamespace
from signaling.realtime.namespaces.media import MediaNamespace
from signaling.realtime.namespaces.recording import RecordingNamespace
from signaling.realtime.namespaces.spaces import SpaceChannel, SpacesNamespace
from signaling.realtime.schemas.media import MEDIA_NAMESPACE
from signaling.realtime.schemas.recording import RECORDING_NAMESPACE
from signaling.services import Services
from signaling.settings import Settings

if TYPE_CHECKING:
    from sfu import Worker


class NodeChannel(SpaceChannel, Protocol):
    """What carries space changes and ended sessions to every node's sockets
    (``signaling.cluster.node_bus.NodeBus``)."""

    on_sessions_ended: Callable[[list[str]], Awaitable[None]]


@dataclass
class Realtime:
    """A node's socket.io server and its namespaces."""

    server: socketio.AsyncServer
    namespaces: list[EventNamespace]
    spaces: SpacesNamespace
    case: CaseNamespace
    #: ``/media`` and ``/recording`` when they run in this process.
    media: MediaNamespace | None = None
    recording: RecordingNamespace | None = None

    def present(self) -> set[tuple[str, str]]:
        """(case id, user id) of everyone online in a case on this node."""
        return set().union(*(namespace.present() for namespace in self.namespaces))

    async def end_sessions(self, token_hashes: list[str]) -> None:
        """Disconnect this node's sockets opened with these (ended) sessions."""
        for namespace in self.namespaces:
            for token_hash in token_hashes:
                await namespace.end_session(token_hash)


def same_origin(settings: Settings) -> Callable[[str | None, dict[str, Any]], bool]:
    """The origin check of the engine.io handshake: the page must come from this server.

    The server speaks HTTPS only, but engine.io's own same-origin rule assumes ``http``
    behind aiohttp, so the check is spelled out here (plus ``public_url`` behind a proxy).
    """
    public = settings.public_url.rstrip("/") if settings.public_url else None

    def allowed(origin: str | None, environ: dict[str, Any]) -> bool:
        host = environ.get("HTTP_HOST")
        return origin is not None and (origin == f"https://{host}" or origin == public)

    return allowed


def compose(
    services: Services,
    bus: NodeChannel,
    *,
    worker: Worker | None = None,
    forwarder: Forwarder | None = None,
) -> Realtime:
    """The socket.io server and its namespaces; with an SFU ``worker`` (in this process)
    or a ``forwarder`` (to worker processes), also ``/media`` and ``/recording``."""
    manager = None
    if services.settings.redis_url:
        manager = socketio.AsyncRedisManager(services.settings.redis_url)
    server = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=manager,
        cors_allowed_origins=same_origin(services.settings),
        max_http_buffer_size=1_000_000,
        ping_interval=services.settings.socket_ping_interval,
        logger=False,
        engineio_logger=False,
    )
    spaces = SpacesNamespace(services, bus)
    case = CaseNamespace(services)
    realtime = Realtime(server, [case, spaces], spaces, case)
    bus.on_sessions_ended = realtime.end_sessions
    if forwarder is not None:
        realtime.namespaces += [
            ForwardingNamespace(MEDIA_NAMESPACE, MediaNamespace, services, forwarder),
            ForwardingNamespace(RECORDING_NAMESPACE, RecordingNamespace, services, forwarder),
        ]
    elif worker is not None:
        realtime.media = MediaNamespace(services, worker)
        realtime.recording = RecordingNamespace(services, worker, realtime.media)
        realtime.namespaces += [realtime.media, realtime.recording]
    for namespace in realtime.namespaces:
        server.register_namespace(namespace)
    return realtime
