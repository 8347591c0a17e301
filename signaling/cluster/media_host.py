"""A media worker process: the SFU and the live rooms of the cases placed on it.

Signaling nodes keep the browsers' socket.io connections, check every event (payload and
authorization) and forward the events of ``/media`` and ``/recording`` to the worker that
hosts the event's case (``signaling.cluster.gateway``).  The worker runs the same namespace
code as a single-process server (:class:`~signaling.realtime.namespaces.media.MediaNamespace`,
:class:`~signaling.realtime.namespaces.recording.RecordingNamespace`) over its own
:class:`sfu.Worker`; what
those namespaces say to a socket goes back through the node that forwarded that socket's
events.  Media itself never passes through signaling: browsers send it to the worker's
UDP ports.

This module loads the SFU (aiortc, PyAV): it is imported by media workers, and by a node
that hosts media in its own process (``--workers 0``), never by a signaling node's other
modules.  :func:`media_settings` turns the server's settings into the SFU's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import resource
import time
from dataclasses import asdict
from typing import Any, cast
from urllib.parse import unquote

from pydantic import BaseModel

from rooms.cases.cases import Member
from rooms.spaces.events import SpaceEvent
from sfu import IceServer, MediaSettings, Worker
from sfu.rtc import native_paths
from signaling.cluster.placement import HEARTBEAT_SECONDS, Directory, WorkerInfo
from signaling.cluster.rpc import ConnectionLost, RpcConnection
from signaling.realtime.events import Caller, EventNamespace
from signaling.realtime.namespaces.media import MediaNamespace
from signaling.realtime.namespaces.recording import RecordingNamespace
from signaling.services import Services
from signaling.settings import Settings

log = logging.getLogger(__name__)


def parse_ice_server(url: str) -> IceServer:
    """``stun:host:port``, or ``turn[s]:user:secret@host:port[?transport=udp]`` (the user
    and secret percent-encoded) as a STUN/TURN server for browsers."""
    scheme, sep, rest = url.partition(":")
    if not sep or scheme not in ("stun", "stuns", "turn", "turns") or not rest:
        raise ValueError(f"not a STUN or TURN URL: {url!r}")
    if "@" in rest and scheme.startswith("turn"):
        credentials, _, address = rest.rpartition("@")
        username, _, secret = credentials.partition(":")
        return IceServer((f"{scheme}:{address}",), unquote(username), unquote(secret))
    return IceServer((url,))


def media_settings(settings: Settings) -> MediaSettings:
    """The SFU's settings from the server's settings."""
    options: dict[str, Any] = dict(media_limits(settings.media_limits))
    if settings.rtc_port_min or settings.rtc_port_max:
        options["udp_port_min"] = settings.rtc_port_min
        options["udp_port_max"] = settings.rtc_port_max
    return MediaSettings(
        **options,
        announced_ip=settings.rtc_announced_ip or None,
        ice_servers=tuple(parse_ice_server(url) for url in settings.rtc_ice_servers),
        srtp_profiles=tuple(settings.srtp_profiles),
        room_video_codecs=tuple(settings.rtc_room_video_codecs),
    )


def media_limits(values: dict[str, float]) -> dict[str, float | int]:
    """The operator's ``media_limits``, checked against the SFU's limit fields."""
    fields = {f.name: f for f in dataclasses.fields(MediaSettings)}
    limits: dict[str, float | int] = {}
    for name, value in values.items():
        if name not in fields or name not in MEDIA_LIMIT_FIELDS:
            raise ValueError(f"media_limits: unknown limit {name!r}")
        if value <= 0:
            raise ValueError(f"media_limits: {name} must be positive")
        limits[name] = int(value) if fields[name].type in ("int", int) else float(value)
    return limits


#: The fields of ``sfu.MediaSettings`` an operator may set through ``media_limits``.
MEDIA_LIMIT_FIELDS = frozenset(
    (
        "max_offer_media_sections",
        "max_tracks_per_publisher",
        "max_sdp_chars",
        "connect_timeout",
        "max_datagram",
        "max_unknown_ssrc_packets",
        "abuse_window",
        "rtcp_rate",
        "max_nack_items",
        "nack_entries_rate",
        "nack_rate",
        "keyframe_request_interval",
        "subscriber_keyframe_interval",
        "remb_expiry",
        "remb_floor",
        "max_simulcast_layers",
        "layer_interval",
        "downlink_start_bitrate",
        "downlink_min_bitrate",
        "layer_up_wait",
        "layer_max_up_wait",
        "layer_pause_loss",
        "max_video_bitrate",
        "max_audio_bitrate",
        "publisher_budget_multiple",
        "publisher_budget_cap",
        "max_over_budget_share",
        "repeated_log_interval",
    )
)


class Relay:
    """Routes what a hosted namespace says to a socket: through the signaling node that
    forwarded that socket's events."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], RpcConnection] = {}
        self.users: dict[tuple[str, str], str] = {}

    def remember(self, namespace: str, sid: str, via: RpcConnection, user_id: str) -> None:
        self.routes[(namespace, sid)] = via
        self.users[(namespace, sid)] = user_id

    def forget(self, namespace: str, sid: str) -> None:
        self.routes.pop((namespace, sid), None)
        self.users.pop((namespace, sid), None)

    def sids_via(self, connection: RpcConnection) -> list[tuple[str, str]]:
        return [key for key, via in self.routes.items() if via is connection]

    async def emit(self, namespace: str, event: str, data: Any, sid: str) -> None:
        via = self.routes.get((namespace, sid))
        if via is None:
            return  # the socket's node is gone, and with it the socket
        with contextlib.suppress(ConnectionLost):
            await via.notify(
                "emit", {"namespace": namespace, "event": event, "data": data, "sid": sid}
            )

    async def call(
        self, namespace: str, event: str, data: Any, sid: str, within: float | None
    ) -> Any:
        via = self.routes.get((namespace, sid))
        if via is None:
            raise TimeoutError(f"socket {sid} is not connected to a signaling node")
        seconds = within or 60.0
        try:
            return await via.call(
                "call",
                {
                    "namespace": namespace,
                    "event": event,
                    "data": data,
                    "sid": sid,
                    "within": seconds,
                },
                within=seconds + 5,
            )
        except ConnectionLost as exc:
            raise TimeoutError(str(exc)) from exc


class Relayed:
    """Mixed into a namespace hosted by a worker: emits and calls go through the
    :class:`Relay` instead of a socket.io server."""

    namespace: str
    relay: Relay

    async def emit(
        self, event: str, data: Any = None, to: str | None = None, room: str | None = None, **_: Any
    ) -> None:
        target = to or room
        if target is not None:
            await self.relay.emit(self.namespace, event, data, target)

    async def call(
        self,
        event: str,
        data: Any = None,
        to: str | None = None,
        sid: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (python-socketio's signature)
        **_: Any,
    ) -> Any:
        return await self.relay.call(self.namespace, event, data, to or sid or "", timeout)

    async def get_session(self, sid: str, namespace: str | None = None) -> dict[str, Any]:
        user_id = self.relay.users.get((self.namespace, sid))
        return {"user_id": user_id} if user_id else {}


class HostedMedia(Relayed, MediaNamespace):
    pass


class HostedRecording(Relayed, RecordingNamespace):
    pass


class MediaHost:
    """One worker process: its SFU :class:`sfu.Worker`, the hosted namespaces, and the
    channel signaling nodes connect to."""

    def __init__(
        self, services: Services, info: WorkerInfo, secret: str, directory: Directory | None
    ) -> None:
        self.services = services
        self.info = info
        self._secret = secret
        self._directory = directory
        self.worker = Worker(media_settings(services.settings))
        #: which compiled paths this worker's media uses, told to the nodes with its
        #: registration and exported by them in ``/metrics``
        self.info.native = native_paths()
        self.relay = Relay()
        self.media = HostedMedia(services, self.worker)
        self.media.relay = self.relay
        self.recording = HostedRecording(services, self.worker, self.media)
        self.recording.relay = self.relay
        self.namespaces: dict[str, EventNamespace] = {
            self.media.namespace: self.media,
            self.recording.namespace: self.recording,
        }
        self._cases: set[str] = set()
        self._connections: set[RpcConnection] = set()
        services.spaces.listen(self._space_event)
        self._server: asyncio.Server | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._forwarded = (time.monotonic(), 0)
        self._pps = 0.0

    async def start(self) -> None:
        """Listen for signaling nodes on ``info.host:info.port`` (0: any free port)."""
        self._server = await asyncio.start_server(self._accept, self.info.host, self.info.port)
        self.info.port = self._server.sockets[0].getsockname()[1]
        self.info.pid = os.getpid()
        if self._directory is not None:
            await self._directory.register(self._with_load())
            self._heartbeat = asyncio.ensure_future(self._run_heartbeat())

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self._server is not None:
            self._server.close()
        await self.recording.close()
        await self.media.close()
        await self.worker.close()
        for connection in list(self._connections):
            await connection.close()
        if self._directory is not None:
            with contextlib.suppress(Exception):
                await self._directory.unregister(self.info.id)
                for case_id in self._cases:
                    await self._directory.release(case_id, self.info.id)

    # --- signaling nodes ----------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        holder: list[RpcConnection] = []

        async def handler(method: str, params: dict[str, Any]) -> Any:
            return await self._handle(holder[0], method, params)

        connection = await RpcConnection.accept(reader, writer, self._secret, handler)
        if connection is None:
            return
        holder.append(connection)
        self._connections.add(connection)
        connection.on_close = self._node_gone
        log.info("signaling node connected", extra={"peer": connection.name})

    def _node_gone(self, connection: RpcConnection) -> None:
        """A signaling node went away: its sockets went with it."""
        self._connections.discard(connection)
        gone = self.relay.sids_via(connection)
        log.info("signaling node gone", extra={"peer": connection.name, "sockets": len(gone)})
        for namespace, sid in gone:
            task = asyncio.ensure_future(self._left(namespace, sid))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _space_event(self, change: SpaceEvent) -> None:
        """A space changed here (a video message or a hearing was stored): the sockets
        of the space are on signaling nodes, one of which announces it (through Redis,
        to every node's sockets)."""
        body = {**asdict(change), "space_ids": list(change.space_ids)}
        for connection in list(self._connections):
            try:
                await connection.notify("space_event", body)
                return
            except ConnectionLost:
                continue
        log.warning("no signaling node to announce a space change", extra={"kind": change.kind})

    async def _left(self, namespace: str, sid: str) -> None:
        hosted = self.namespaces.get(namespace)
        if hosted is not None:
            await hosted.left(sid)
        self.relay.forget(namespace, sid)

    async def _handle(self, via: RpcConnection, method: str, params: dict[str, Any]) -> Any:
        if method == "event":
            return await self._event(via, params)
        if method == "left":
            await self._left(str(params["namespace"]), str(params["sid"]))
            return None
        if method == "space_closed":
            await self.recording.case_closed(str(params["case_id"]))
            return None
        if method == "load":
            return self._with_load().load
        if method == "stats":
            return self.media.stats()
        if method == "end_case":
            await self.end_case(str(params["case_id"]), str(params.get("reason", "moved")))
            return None
        raise ValueError(f"unknown method {method!r}")

    async def _event(self, via: RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """Run a forwarded event: it was validated and authorized by the node."""
        namespace = self.namespaces[str(params["namespace"])]
        spec = namespace.events[str(params["event"])]
        payload: BaseModel = spec.model.model_validate(params["payload"])
        raw = params["caller"]
        member = Member(**raw["member"]) if raw.get("member") else None
        caller = Caller(str(raw["sid"]), str(raw["user_id"]), str(raw["display_name"]), member)
        self.relay.remember(namespace.namespace, caller.sid, via, caller.user_id)
        case_id = getattr(payload, "case_id", None)
        if case_id is not None and case_id not in self._cases:
            self._cases.add(case_id)
            await self.media.controls.resume_case(case_id)
        return await namespace.handle(spec, caller, payload)

    async def end_case(self, case_id: str, reason: str) -> None:
        """End every live session of ``case_id`` here, telling the clients ``reason``
        (they join again, and are placed on another worker: the placement is handed back
        first, so that nobody joining meanwhile lands here again)."""
        self._cases.discard(case_id)
        if self._directory is not None:
            await self._directory.release(case_id, self.info.id)
        await self.media.end_case(case_id, reason)

    # --- load and heartbeat -------------------------------------------------------------

    def _with_load(self) -> WorkerInfo:
        stats = self.worker.stats()
        forwarded = 0
        consumers = 0
        transports = cast("list[dict[str, Any]]", stats["transports"])
        for transport in transports:
            for consumer in transport["consumers"]:
                consumers += 1
                forwarded += consumer["packets_forwarded"]
        now = time.monotonic()
        then, before = self._forwarded
        if now - then >= 0.5:
            self._pps = max(0.0, (forwarded - before) / (now - then))
            self._forwarded = (now, forwarded)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.info.load = {
            "cases": float(len(self._cases)),
            "participants": float(len(self.media.live)),
            "consumers": float(consumers),
            "forwarded_pps": round(self._pps, 1),
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "tasks": float(len(asyncio.all_tasks())),
        }
        return self.info

    async def _run_heartbeat(self) -> None:
        assert self._directory is not None
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self._directory.register(self._with_load())
                if self.info.node in await self._directory.draining_nodes():
                    await self._drain_idle_cases()
            except Exception:
                log.exception("worker heartbeat failed")

    async def _drain_idle_cases(self) -> None:
        """On a draining node, hand back the placement of every case nobody is in."""
        assert self._directory is not None
        busy = {s.case_id for s in self.media.live.values()}
        for case_id in list(self._cases - busy):
            self._cases.discard(case_id)
            await self._directory.release(case_id, self.info.id)
