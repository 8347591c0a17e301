"""The application's typed state (aiohttp ``AppKey`` s), set by ``signaling.http.app``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import socketio
from aiohttp import web

from signaling.cluster.node_bus import NodeBus
from signaling.mail.periodic import PeriodicMail
from signaling.mail.sender import MailSender
from signaling.realtime.compose import Realtime
from signaling.realtime.events import EventNamespace
from signaling.realtime.namespaces.media import MediaNamespace
from signaling.realtime.namespaces.recording import RecordingNamespace

if TYPE_CHECKING:
    from sfu import Worker
    from signaling.payments.gateway import PaymentGateway

#: The node's socket.io server and namespaces.
REALTIME = web.AppKey("realtime", Realtime)
SOCKETS = web.AppKey("sockets", socketio.AsyncServer)
NAMESPACES = web.AppKey("namespaces", list[EventNamespace])
#: What this node tells the other nodes (space changes, ended sessions).
NODE_BUS = web.AppKey("node_bus", NodeBus)
#: The SFU's statistics as ``GET /api/admin/media`` and ``/metrics`` read them: this
#: process's worker, or every worker process's merged.
MEDIA_STATS: web.AppKey[Callable[[], Awaitable[dict[str, Any]]]] = web.AppKey("media_stats")
#: When media runs in this process (``--workers 0``): its SFU and namespaces.
MEDIA_WORKER: web.AppKey[Worker] = web.AppKey("media_worker")
MEDIA_NAMESPACE = web.AppKey("media_namespace", MediaNamespace)
RECORDING_NAMESPACE_KEY = web.AppKey("recording_namespace", RecordingNamespace)
#: This process's outbox sender.
MAIL_SENDER = web.AppKey("mail_sender", MailSender)
#: This process's activity digest task.
DIGESTS = web.AppKey("digests", PeriodicMail)
#: This process's session reminder task.
REMINDERS = web.AppKey("reminders", PeriodicMail)
#: The payment provider (None: card payments are not set up; offline records only).
PAYMENT_GATEWAY: web.AppKey[PaymentGateway | None] = web.AppKey("payment_gateway")
