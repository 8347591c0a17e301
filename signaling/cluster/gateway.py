"""The signaling node's side of media workers: forwarding ``/media`` and ``/recording``.

A ``ForwardingNamespace`` (``signaling.realtime.namespaces.forwarding``) declares the same
events as the namespace it stands for, validates and authorizes each one here (the node
holds the sockets and sessions), then :class:`MediaCluster` forwards it to the worker
hosting the event's case (``signaling.cluster.placement``) and relays the worker's emits
and calls back to the sockets.
When a worker's connection breaks, every socket that was in a live room there is told
``media.ended`` with reason ``media_worker_lost``; clients join again and their case is
placed on a worker that is alive, with the rooms they were in (kept in the store).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict
from typing import Any

from pydantic import BaseModel

from rooms.spaces.events import SpaceEvent
from signaling.cluster.placement import Directory, RecentPlacements, WorkerInfo, least_loaded
from signaling.cluster.rpc import ConnectionLost, RpcConnection, RpcError
from signaling.realtime.events import Caller, EventNamespace
from signaling.realtime.schemas.media import MEDIA_NAMESPACE
from signaling.realtime.schemas.recording import RECORDING_NAMESPACE
from signaling.services import Services

log = logging.getLogger(__name__)

#: Forwarded events that wait for the browser (a subscribe offer) may take this long.
FORWARD_SECONDS = 90.0
WORKER_LOST = "media_worker_lost"


def unavailable(message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": "media_unavailable", "message": message}}


class MediaCluster:
    """Places cases on workers, keeps one channel per worker, forwards events."""

    def __init__(self, services: Services, directory: Directory, secret: str) -> None:
        self.services = services
        self.directory = directory
        self.namespaces: dict[str, EventNamespace] = {}
        self._secret = secret
        self._connections: dict[str, RpcConnection] = {}
        self._connecting: dict[str, asyncio.Future[RpcConnection]] = {}
        #: cases this node placed a moment ago, not yet in their workers' loads
        self._recent = RecentPlacements()
        #: (namespace, sid) -> ids of the workers that had events of that socket
        self._routes: dict[tuple[str, str], set[str]] = {}
        #: /media sid -> (worker id, case id) while the socket is in a live room
        self._joined: dict[str, tuple[str, str]] = {}
        #: /recording sid -> (worker id, recording id) while it records a video message
        self._videos: dict[str, tuple[str, str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        services.spaces.listen(self._space_changed)

    def attach(self, namespace: EventNamespace) -> None:
        """``namespace`` stands for the workers' namespace of its name on this node."""
        self.namespaces[namespace.namespace] = namespace

    # --- placement ----------------------------------------------------------------------

    async def worker_for(self, case_id: str) -> WorkerInfo:
        """The worker hosting ``case_id``, placing it on the least-loaded one if needed."""
        for _attempt in range(5):
            workers = {w.id: w for w in await self.directory.workers()}
            current = await self.directory.placement(case_id)
            if current in workers:
                return workers[current]
            draining = await self.directory.draining_nodes()
            candidates = [w for w in workers.values() if w.node not in draining]
            for worker in candidates:  # fresh load, where the directory does not keep it
                if not self.directory.keeps_load:
                    with contextlib.suppress(Exception):
                        connection = await self.connection(worker)
                        worker.load = await connection.call("load", {}, within=5)
            chosen = least_loaded(candidates, self._recent.counts())
            if chosen is None:
                raise LookupError("no media worker is running")
            # counted before the claim is awaited: a placement meanwhile sees it
            self._recent.add(case_id, chosen.id)
            winner = await self.directory.claim(case_id, chosen.id, current)
            if winner in workers:
                if winner == chosen.id:
                    log.info("case placed", extra={"case": case_id, "worker": chosen.id})
                else:
                    self._recent.add(case_id, str(winner))
                return workers[winner]
            self._recent.discard(case_id)
        raise LookupError("could not place the case on a media worker")

    async def _reach(self, case_id: str) -> tuple[WorkerInfo, RpcConnection]:
        """The worker hosting ``case_id`` and the channel to it.  A registered worker that
        cannot be reached is taken out of the directory (a live one registers again with
        its next heartbeat) and the case placed on another."""
        for _attempt in range(3):
            worker = await self.worker_for(case_id)
            try:
                return worker, await self.connection(worker)
            except (OSError, TimeoutError, RpcError) as exc:
                log.warning(
                    "media worker unreachable", extra={"worker": worker.id, "error": str(exc)}
                )
                await self.directory.unregister(worker.id)
        raise LookupError("no reachable media worker")

    async def connection(self, worker: WorkerInfo) -> RpcConnection:
        connection = self._connections.get(worker.id)
        if connection is not None and not connection.closed.is_set():
            return connection
        pending = self._connecting.get(worker.id)
        if pending is None:
            pending = self._connecting[worker.id] = asyncio.ensure_future(self._connect(worker))
            pending.add_done_callback(lambda _: self._connecting.pop(worker.id, None))
        return await asyncio.shield(pending)

    async def _connect(self, worker: WorkerInfo) -> RpcConnection:
        connection = await RpcConnection.connect(
            worker.host, worker.port, self._secret, self._from_worker
        )
        connection.name = worker.id
        connection.on_close = lambda _c: self._worker_gone(worker.id)
        self._connections[worker.id] = connection
        return connection

    # --- forwarding ---------------------------------------------------------------------

    async def forward(
        self, namespace: str, event: str, caller: Caller, payload: BaseModel
    ) -> dict[str, Any]:
        # every forwarded event's model has a case_id (checked by the forwarding namespace)
        case_id: str = payload.case_id  # type: ignore[attr-defined]  # BaseModel subclasses
        try:
            worker, connection = await self._reach(case_id)
        except (LookupError, OSError, RpcError, TimeoutError) as exc:
            log.warning("no media worker for a case", extra={"case": case_id, "error": str(exc)})
            return unavailable("The media service is not available right now; try again.")
        self._routes.setdefault((namespace, caller.sid), set()).add(worker.id)
        params = {
            "namespace": namespace,
            "event": event,
            "caller": {
                "sid": caller.sid,
                "user_id": caller.user_id,
                "display_name": caller.display_name,
                "member": asdict(caller.member) if caller.member else None,
            },
            "payload": payload.model_dump(mode="json"),
        }
        try:
            reply = await connection.call("event", params, within=FORWARD_SECONDS)
        except ConnectionLost:
            return unavailable("The media server of this case restarted; join again.")
        except (RpcError, TimeoutError) as exc:
            log.warning("forwarded event failed", extra={"event": event, "error": str(exc)})
            return unavailable("The media server did not answer; try again.")
        if namespace == MEDIA_NAMESPACE and reply.get("ok"):
            if event == "media.join":
                self._joined[caller.sid] = (worker.id, case_id)
            elif event == "media.leave":
                self._joined.pop(caller.sid, None)
        elif event == "video.start" and reply.get("ok"):
            self._videos[caller.sid] = (worker.id, str(reply.get("recording_id")))
        return reply

    async def left(self, namespace: str, sid: str) -> None:
        """A socket disconnected: tell every worker that had its events."""
        if namespace == MEDIA_NAMESPACE:
            self._joined.pop(sid, None)
        else:
            self._videos.pop(sid, None)
        for worker_id in self._routes.pop((namespace, sid), set()):
            connection = self._connections.get(worker_id)
            if connection is not None:
                with contextlib.suppress(ConnectionLost):
                    await connection.notify("left", {"namespace": namespace, "sid": sid})

    async def _from_worker(self, method: str, params: dict[str, Any]) -> Any:
        """A worker speaks to one of this node's sockets, or announces a space change."""
        if method == "space_event":
            params["space_ids"] = tuple(params.get("space_ids") or ())
            await self.services.spaces.publish(SpaceEvent(**params))
            return None
        namespace = self.namespaces.get(str(params.get("namespace")))
        if namespace is None:
            raise ValueError("unknown namespace")
        sid = str(params["sid"])
        if method == "emit":
            if params["event"] == "media.ended":
                self._joined.pop(sid, None)
            elif params["event"] == "video.ended":
                self._videos.pop(sid, None)
            await namespace.emit(str(params["event"]), params.get("data"), to=sid)
            return None
        if method == "call":
            return await namespace.call(
                str(params["event"]),
                params.get("data"),
                to=sid,
                timeout=float(params.get("within", 60)),
            )
        raise ValueError(f"unknown method {method!r}")

    # --- workers going away -------------------------------------------------------------

    def _worker_gone(self, worker_id: str) -> None:
        self._connections.pop(worker_id, None)
        stranded = [(sid, case) for sid, (w, case) in self._joined.items() if w == worker_id]
        for sid, _case in stranded:
            del self._joined[sid]
        videos = [(sid, rec) for sid, (w, rec) in self._videos.items() if w == worker_id]
        for sid, _recording in videos:
            del self._videos[sid]
        for sids in self._routes.values():
            sids.discard(worker_id)
        log.warning("media worker lost", extra={"worker": worker_id, "live_sockets": len(stranded)})
        task = asyncio.ensure_future(self._tell_stranded(worker_id, stranded, videos))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tell_stranded(
        self, worker_id: str, stranded: list[tuple[str, str]], videos: list[tuple[str, str]]
    ) -> None:
        """Live sessions there end (their clients join again); video messages being
        recorded there are lost, and their recorders are told so."""
        with contextlib.suppress(Exception):
            await self.directory.unregister(worker_id)  # it re-registers if still alive
        media = self.namespaces.get(MEDIA_NAMESPACE)
        if media is not None:
            for sid, case_id in stranded:
                with contextlib.suppress(Exception):
                    await media.emit(
                        "media.ended", {"case_id": case_id, "reason": WORKER_LOST}, to=sid
                    )
        recording = self.namespaces.get(RECORDING_NAMESPACE)
        if recording is not None:
            for sid, recording_id in videos:
                outcome = {
                    "recording_id": recording_id,
                    "status": "failed",
                    "reason": WORKER_LOST,
                    "duration_s": 0.0,
                    "message": None,
                    "file": None,
                    "error": "The media server stopped during the recording; it was not saved.",
                }
                with contextlib.suppress(Exception):
                    await recording.emit("video.ended", outcome, to=sid)

    async def _space_changed(self, change: SpaceEvent) -> None:
        """A closed case's recordings in progress are discarded where they run."""
        if change.kind != "space.closed":
            return
        worker_id = await self.directory.placement(change.case_id)
        connection = self._connections.get(worker_id) if worker_id else None
        if connection is not None:
            with contextlib.suppress(RpcError):
                await connection.call("space_closed", {"case_id": change.case_id}, within=30)

    # --- introspection and shutdown -----------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        """Every worker's statistics, merged (as one worker's, plus ``workers``)."""
        merged: dict[str, Any] = {
            "routers": [],
            "transports": [],
            "subscriptions": [],
            "participants": [],
            "workers": [],
            "refused_closed": {},
            "native_paths": {},
        }
        for worker in await self.directory.workers():
            try:
                connection = await self.connection(worker)
                stats = await connection.call("stats", {}, within=10)
                load = await connection.call("load", {}, within=10)
            except (OSError, RpcError, TimeoutError):
                continue
            for key in ("routers", "transports", "subscriptions", "participants"):
                merged[key].extend(stats.get(key, []))
            for reason, count in stats.get("refused_closed", {}).items():
                merged["refused_closed"][reason] = merged["refused_closed"].get(reason, 0) + count
            merged["workers"].append(
                {"id": worker.id, "node": worker.node, "pid": worker.pid, **load}
            )
            merged["native_paths"][worker.id] = dict(worker.native)
        return merged

    async def close(self) -> None:
        for connection in list(self._connections.values()):
            connection.on_close = None
            await connection.close()
        self._connections.clear()
        for task in list(self._tasks):
            task.cancel()
