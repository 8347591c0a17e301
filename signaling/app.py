"""The aiohttp application of a Caucus node: API, pages, socket.io, wired explicitly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from rooms import __version__
from sfu import Worker
from signaling import api_accounts, api_admin, api_cases, api_spaces, metrics, pages
from signaling.access import access, security_middleware
from signaling.cluster.gateway import MediaCluster
from signaling.cluster.node_bus import NodeBus
from signaling.media import (
    MEDIA_NAMESPACE,
    MEDIA_STATS,
    MEDIA_WORKER,
    MediaNamespace,
    media_context,
    media_settings,
)
from signaling.recording import RECORDING_NAMESPACE_KEY, RecordingNamespace, recording_context
from signaling.services import SERVICES, Services
from signaling.sockets import NAMESPACES, SOCKETS, create_socket_server, node_bus

health = web.RouteTableDef()


@health.get("/healthz")
@access("public")
async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    async with services.store.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")
    return web.json_response(
        {"status": "ok", "database": services.store.backend, "version": __version__}
    )


def build_app(services: Services, cluster: MediaCluster | None = None) -> web.Application:
    """The application for ``services``; the caller starts/stops the services (and the
    ``cluster`` of media worker processes, when media does not run in this process)."""
    app = web.Application(
        middlewares=[security_middleware], client_max_size=services.settings.max_json_bytes
    )
    app[SERVICES] = services
    for table in (health, api_accounts.routes, api_admin.routes, api_cases.routes, pages.routes):
        app.add_routes(table)
    app.add_routes(api_spaces.routes)

    if cluster is None:  # the SFU runs in this process
        worker = Worker(media_settings(services.settings))
        sockets, namespaces = create_socket_server(services, worker)
        media = next(n for n in namespaces if isinstance(n, MediaNamespace))
        app[MEDIA_WORKER] = worker
        app[MEDIA_NAMESPACE] = media

        async def local_stats() -> dict[str, Any]:
            return media.stats()

        app[MEDIA_STATS] = local_stats
        app.cleanup_ctx.append(media_context(media))
        recording = next(n for n in namespaces if isinstance(n, RecordingNamespace))
        app[RECORDING_NAMESPACE_KEY] = recording
        app.cleanup_ctx.append(recording_context(recording))  # torn down before the SFU
    else:  # media worker processes host the live rooms (signaling.cluster.media_host)
        sockets, namespaces = create_socket_server(services, cluster=cluster)
        app[MEDIA_STATS] = cluster.stats
    app[SOCKETS] = sockets
    app[NAMESPACES] = namespaces
    app.cleanup_ctx.append(node_bus_context(node_bus(app)))
    metrics.install(app)

    # socket.io authenticates its connections itself (session cookie at connect); the
    # engine.io handshake is same-origin only, so its polling POSTs carry no CSRF header.
    @access("public", csrf=False)
    async def socketio_endpoint(request: web.Request) -> web.StreamResponse:
        return await sockets.handle_request(request)

    app.router.add_route("*", "/socket.io/", socketio_endpoint)
    return app


def node_bus_context(bus: NodeBus):
    """A cleanup context: this node hears the other nodes while it runs."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        await bus.start()
        yield
        await bus.close()

    return context


def services_context(services: Services):
    """A cleanup context that starts the services with the app and closes them after."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        await services.start()
        yield
        await services.close()

    return context
