"""The aiohttp application of a Caucus node: API, pages, socket.io, wired explicitly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from rooms import __version__
from signaling.cluster.gateway import MediaCluster
from signaling.cluster.node_bus import NodeBus
from signaling.http import metrics, pages
from signaling.http.access import access, security_middleware
from signaling.http.api import (
    accounts,
    admin,
    agreements,
    billing,
    cases,
    requests,
    sessions,
    spaces,
)
from signaling.http.state import (
    DIGESTS,
    MAIL_SENDER,
    MEDIA_NAMESPACE,
    MEDIA_STATS,
    MEDIA_WORKER,
    NAMESPACES,
    NODE_BUS,
    PAYMENT_GATEWAY,
    REALTIME,
    RECORDING_NAMESPACE_KEY,
    REMINDERS,
    SOCKETS,
)
from signaling.mail.digests import digest_pass
from signaling.mail.periodic import PeriodicMail
from signaling.mail.sender import MailSender
from signaling.realtime.compose import Realtime, compose
from signaling.realtime.namespaces.media import MediaNamespace
from signaling.realtime.namespaces.recording import RecordingNamespace
from signaling.services import SERVICES, Services
from signaling.settings import Settings

if TYPE_CHECKING:
    from signaling.payments.gateway import PaymentGateway

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
    for table in (health, accounts.routes, admin.routes, cases.routes, pages.routes):
        app.add_routes(table)
    app.add_routes(spaces.routes)
    app.add_routes(requests.routes)
    app.add_routes(sessions.routes)
    app.add_routes(billing.routes)
    app.add_routes(agreements.routes)

    bus = NodeBus(services.settings.redis_url)
    if cluster is None:  # the SFU runs in this process
        realtime = _with_local_media(app, services, bus)
    else:  # media worker processes host the live rooms (signaling.cluster.media_host)
        realtime = compose(services, bus, forwarder=cluster)
        app[MEDIA_STATS] = cluster.stats
    app[REALTIME] = realtime
    app[SOCKETS] = realtime.server
    app[NAMESPACES] = realtime.namespaces
    app[NODE_BUS] = bus
    app.cleanup_ctx.append(node_bus_context(bus))
    app[MAIL_SENDER] = sender = MailSender(services.outbox, services.settings)
    app[DIGESTS] = digests = PeriodicMail(
        "mail-digests",
        digest_pass(services.digests, services.cases, realtime.present),
        services.settings.digest_check_seconds,
        sender.wake,
    )
    app[REMINDERS] = reminders = PeriodicMail(
        "session-reminders",
        services.case_sessions.send_reminders,
        services.settings.reminder_check_seconds,
        sender.wake,
    )
    app.cleanup_ctx.append(mail_context(sender, digests, reminders))
    app[PAYMENT_GATEWAY] = gateway = payment_gateway(services.settings)
    if gateway is not None:
        app.cleanup_ctx.append(gateway_context(gateway))
    metrics.install(app)

    # socket.io authenticates its connections itself (session cookie at connect); the
    # engine.io handshake is same-origin only, so its polling POSTs carry no CSRF header.
    @access("public", csrf=False)
    async def socketio_endpoint(request: web.Request) -> web.StreamResponse:
        return await realtime.server.handle_request(request)

    app.router.add_route("*", "/socket.io/", socketio_endpoint)
    return app


def _with_local_media(app: web.Application, services: Services, bus: NodeBus) -> Realtime:
    """Host the SFU and the media namespaces in this process (``--workers 0``): only then
    are the SFU, aiortc and PyAV loaded."""
    from sfu import Worker
    from sfu.rtc import native_paths
    from signaling.cluster.media_host import media_settings

    worker = Worker(media_settings(services.settings))
    realtime = compose(services, bus, worker=worker)
    media, recording = realtime.media, realtime.recording
    assert media is not None and recording is not None
    app[MEDIA_WORKER] = worker
    app[MEDIA_NAMESPACE] = media
    app[RECORDING_NAMESPACE_KEY] = recording
    in_process = services.settings.effective_node_id

    async def local_stats() -> dict[str, Any]:
        return {**media.stats(), "native_paths": {in_process: native_paths()}}

    app[MEDIA_STATS] = local_stats
    app.cleanup_ctx.append(media_context(media))
    app.cleanup_ctx.append(recording_context(recording))  # torn down before the SFU
    return realtime


def media_context(namespace: MediaNamespace):
    """A cleanup context: the SFU worker lives as long as the application."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        await namespace.controls.resume_timers()
        yield
        await namespace.close()
        await namespace.worker.close()

    return context


def recording_context(namespace: RecordingNamespace):
    """A cleanup context: recordings in progress are finished before the SFU stops."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        yield
        await namespace.close()

    return context


def node_bus_context(bus: NodeBus):
    """A cleanup context: this node hears the other nodes while it runs."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        await bus.start()
        yield
        await bus.close()

    return context


def mail_context(sender: MailSender, digests: PeriodicMail, reminders: PeriodicMail):
    """A cleanup context: the outbox is sent, and digests and reminders written, while the
    app runs."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        sender.start()
        digests.start()
        reminders.start()
        yield
        await reminders.stop()
        await digests.stop()
        await sender.stop()

    return context


def payment_gateway(settings: Settings) -> PaymentGateway | None:
    """The Stripe gateway when the installation has its keys (the library is loaded only
    then)."""
    secret, webhook = settings.stripe_secret_key, settings.stripe_webhook_secret
    if not (secret and webhook and settings.stripe_publishable_key):
        return None
    from signaling.payments.gateway import PaymentGateway, StripeSettings

    return PaymentGateway(
        StripeSettings(
            secret_key=secret.get_secret_value(),
            publishable_key=settings.stripe_publishable_key,
            webhook_secret=webhook.get_secret_value(),
            api_base=settings.stripe_api_base,
            js_url=settings.stripe_js_url,
        )
    )


def gateway_context(gateway: PaymentGateway):
    """A cleanup context: the gateway's HTTP session is closed with the app."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        yield
        await gateway.aclose()

    return context


def services_context(services: Services):
    """A cleanup context that starts the services with the app and closes them after."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        await services.start()
        yield
        await services.close()

    return context
