"""Negotiating with a Janus WebRTC server's VideoRoom plugin over Janus's HTTP transport.

    signal = JanusSignal("http://127.0.0.1:8088/janus", room=1234)
    participant = Participant("alice", signal, decode=False)
    await participant.join()

The same :class:`client.Signal` as the one that speaks to Caucus, so that the headless
participants and the load client measure Janus with the machinery that measures Caucus
(``bench/versus_janus.py``).  The Janus API (https://janus.conf.meetecho.com/docs/rest):

* ``connect``: ``create`` a session, ``attach`` a handle to ``janus.plugin.videoroom`` and
  ``join`` the room as a publisher (``display`` = the participant id), which lists the
  room's publishers; a long-poll ``GET`` on the session delivers every event after that,
  and a ``keepalive`` goes every :data:`KEEPALIVE_SECONDS`.
* ``publish``: the client's offer in a ``publish`` request on that handle; the event
  ``configured`` carries Janus's answer.
* receiving (Janus 1.x multistream): a second handle ``join``s as a subscriber with one
  ``streams`` item per publisher; Janus offers (event ``attached``), the participant
  answers through ``on_subscribe_offer`` and the answer goes back in a ``start``.
  Publishers who appear later (the event ``publishers`` on the first handle) are added
  with ``subscribe`` (event ``updated``, a new offer, answered the same way), one
  renegotiation at a time; an offer Janus makes by itself (a publisher left) is
  answered the same way too.
* ``close``: ``leave``, ``detach`` both handles and ``destroy`` the session, each bounded.

Which mid carries whom is in :attr:`JanusSignal.tracks` (``feed``, ``display_name``,
``kind``), as :class:`client.SocketSignal` keeps it.  Janus's refusals (a core ``error``
or a VideoRoom ``error_code``) raise :class:`JanusError`.  ICE is not trickled: aiortc's
descriptions hold every candidate (``"trickle": false``), and so do Janus's (half-trickle).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from .signal import OfferHandler

log = logging.getLogger(__name__)

VIDEOROOM = "janus.plugin.videoroom"
#: Seconds between keepalives; Janus drops a session after 60 s without a request.
KEEPALIVE_SECONDS = 25.0
#: Events one long poll may return at once.
MAX_EVENTS = 10

JSON = dict[str, Any]


class JanusError(Exception):
    """Janus refused a request: ``code`` is Janus's error code (core or VideoRoom)."""

    def __init__(self, code: int | None, reason: str, request: str = "") -> None:
        where = f"{request}: " if request else ""
        super().__init__(f"{where}Janus error {code}: {reason}")
        self.code = code
        self.reason = reason
        self.request = request


def _transaction() -> str:
    return secrets.token_hex(8)


class JanusSession:
    """One Janus session over HTTP: requests, the long poll, keepalives and handles.

    Owns the aiohttp session unless one is given, the poll and keepalive tasks and the
    futures of requests waiting for their asynchronous answer."""

    def __init__(
        self, url: str, http: aiohttp.ClientSession | None = None, timeout: float = 15.0
    ) -> None:
        self.url = url.rstrip("/")
        self.session_id: int | None = None
        #: Called with the reason when the session is lost (poll refused or unreachable).
        self.on_lost: Callable[[str], None] | None = None
        self._http = http
        self._own_http = http is None
        self._timeout = timeout
        self._waiting: dict[str, asyncio.Future[JSON]] = {}
        self._handles: dict[int, JanusHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    @property
    def session_url(self) -> str:
        assert self.session_id is not None, "create the session first"
        return f"{self.url}/{self.session_id}"

    async def _post(self, url: str, message: JSON) -> JSON:
        assert self._http is not None
        async with asyncio.timeout(self._timeout):
            async with self._http.post(url, json=message) as response:
                text = await response.text()
                try:
                    data: JSON = json.loads(text)
                except ValueError:
                    data = {}
                if not isinstance(data, dict) or "janus" not in data:
                    raise JanusError(response.status, text[:200], message["janus"])
        if data.get("janus") == "error":
            error = data.get("error", {})
            raise JanusError(error.get("code"), error.get("reason", ""), message["janus"])
        return data

    async def create(self) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout)
            )
        data = await self._post(self.url, {"janus": "create", "transaction": _transaction()})
        self.session_id = int(data["data"]["id"])
        self._tasks = [
            asyncio.ensure_future(self._poll()),
            asyncio.ensure_future(self._keepalive()),
        ]

    async def attach(self, plugin: str = VIDEOROOM) -> JanusHandle:
        data = await self._post(
            self.session_url,
            {"janus": "attach", "plugin": plugin, "transaction": _transaction()},
        )
        handle = JanusHandle(self, int(data["data"]["id"]))
        self._handles[handle.id] = handle
        return handle

    async def send(self, handle: JanusHandle, body: JSON, jsep: JSON | None = None) -> JSON:
        """A plugin message; returns the plugin's answer (``plugindata`` and ``jsep``
        when present), synchronous (``success``) or asynchronous (an ``event`` with the
        same transaction, delivered by the long poll)."""
        transaction = _transaction()
        message: JSON = {"janus": "message", "transaction": transaction, "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        future = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = future  # the event may come before the ack
        request = str(body.get("request", ""))
        try:
            data = await self._post(f"{self.session_url}/{handle.id}", message)
            if data.get("janus") == "success":
                answer = data
            else:
                async with asyncio.timeout(self._timeout):
                    answer = await future
        finally:
            self._waiting.pop(transaction, None)
        _raise_plugin_error(answer, request)
        return answer

    async def detach(self, handle: JanusHandle) -> None:
        self._handles.pop(handle.id, None)
        with contextlib.suppress(JanusError):
            await self._post(
                f"{self.session_url}/{handle.id}",
                {"janus": "detach", "transaction": _transaction()},
            )

    async def destroy(self) -> None:
        """Destroy the session (bounded) and release the tasks and the HTTP session."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        try:
            if self.session_id is not None and self._http is not None:
                with contextlib.suppress(JanusError, aiohttp.ClientError, TimeoutError, OSError):
                    await self._post(
                        self.session_url, {"janus": "destroy", "transaction": _transaction()}
                    )
        finally:
            self.session_id = None
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(JanusError(None, "session destroyed"))
            if self._own_http and self._http is not None:
                await self._http.close()
            self._http = None

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            try:
                await self._post(
                    self.session_url, {"janus": "keepalive", "transaction": _transaction()}
                )
            except (JanusError, aiohttp.ClientError, TimeoutError, OSError) as error:
                log.warning("janus keepalive failed", extra={"error": str(error)})

    async def _poll(self) -> None:
        assert self._http is not None
        failures = 0
        while True:
            params = {"maxev": str(MAX_EVENTS), "rid": str(int(time.time() * 1000))}
            try:
                # Janus answers a long poll within 30 s (a keepalive when nothing happened)
                async with asyncio.timeout(45):
                    async with self._http.get(self.session_url, params=params) as response:
                        data = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
                failures += 1
                if failures >= 3:
                    self._lost(f"long poll failed: {error}")
                    return
                await asyncio.sleep(0.5)
                continue
            failures = 0
            for event in data if isinstance(data, list) else [data]:
                if event.get("janus") == "error":
                    reason = event.get("error", {}).get("reason", "")
                    self._lost(f"long poll refused: {reason}")
                    return
                self._dispatch(event)

    def _lost(self, reason: str) -> None:
        if self._closing:
            return
        log.warning("janus session lost", extra={"session": self.session_id, "reason": reason})
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(JanusError(None, reason))
        if self.on_lost is not None:
            self.on_lost(reason)

    def _dispatch(self, event: JSON) -> None:
        kind = event.get("janus")
        if kind in ("keepalive", "ack"):
            return
        future = self._waiting.get(event.get("transaction") or "")
        if future is not None and kind in ("event", "success", "error"):
            if not future.done():
                if kind == "error":
                    error = event.get("error", {})
                    future.set_exception(JanusError(error.get("code"), error.get("reason", "")))
                else:
                    future.set_result(event)
            return
        handle = self._handles.get(int(event.get("sender") or 0))
        if handle is not None and handle.on_event is not None:
            handle.on_event(event)


def _raise_plugin_error(answer: JSON, request: str) -> None:
    data = answer.get("plugindata", {}).get("data", {})
    if "error_code" in data or "error" in data:
        raise JanusError(data.get("error_code"), str(data.get("error", "")), request)


class JanusHandle:
    """One handle attached to a plugin; ``on_event`` gets the events no request awaits."""

    def __init__(self, session: JanusSession, handle_id: int) -> None:
        self.session = session
        self.id = handle_id
        self.on_event: Callable[[JSON], None] | None = None

    async def send(self, body: JSON, jsep: JSON | None = None) -> tuple[JSON, JSON | None]:
        """The plugin's answer to ``body``: its ``data`` and its ``jsep`` (or ``None``)."""
        answer = await self.session.send(self, body, jsep)
        return answer.get("plugindata", {}).get("data", {}), answer.get("jsep")

    async def detach(self) -> None:
        await self.session.detach(self)


async def create_room(
    url: str,
    room: int,
    *,
    publishers: int = 100,
    http: aiohttp.ClientSession | None = None,
) -> None:
    """Create VideoRoom ``room`` (VP8 and Opus, up to ``publishers`` publishing at once,
    no bitrate cap, no joining notifications, no recording, not saved to the plugin's
    configuration) through a short-lived session of its own."""
    session = JanusSession(url, http)
    await session.create()
    try:
        handle = await session.attach()
        await handle.send(
            {
                "request": "create",
                "room": room,
                "description": f"bench {room}",
                "publishers": publishers,
                "bitrate": 0,
                "fir_freq": 0,
                "audiocodec": "opus",
                "videocodec": "vp8",
                "notify_joining": False,
                "record": False,
                "permanent": False,
            }
        )
        await handle.detach()
    finally:
        await session.destroy()


class JanusSignal:
    """A :class:`client.Signal` over Janus's VideoRoom plugin (module docstring).

    Owns a Janus session with two handles: the participant's (joined as a publisher;
    it publishes when :meth:`publish` is called and hears of other publishers) and the
    subscriber's (created once there is someone to receive).  Pass ``http`` to share
    one aiohttp session between many signals (a load test); otherwise it has its own.
    """

    def __init__(
        self,
        url: str,
        room: int,
        *,
        http: aiohttp.ClientSession | None = None,
        timeout: float = 15.0,
    ) -> None:
        self.url = url
        self.room = room
        self.on_ended: Callable[[str], None] | None = None
        #: mid -> {"mid", "kind", "feed", "display_name"} of the subscribe connection.
        self.tracks: dict[str, JSON] = {}
        #: The other publishers of the room: feed id -> display.
        self.publishers: dict[int, str] = {}
        self.participant_id: str | None = None
        #: This participant's own feed id in the room.
        self.feed_id: int | None = None
        self._http = http
        self._timeout = timeout
        self._session: JanusSession | None = None
        self._handle: JanusHandle | None = None
        self._subscriber: JanusHandle | None = None
        self._private_id: int | None = None
        self._on_offer: OfferHandler | None = None
        self._subscribed: set[int] = set()
        self._renegotiating = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    async def connect(self, participant_id: str, on_subscribe_offer: OfferHandler) -> None:
        await self._release()
        self._closing = False
        self.participant_id = participant_id
        self._on_offer = on_subscribe_offer
        session = self._session = JanusSession(self.url, self._http, self._timeout)
        session.on_lost = self._lost
        try:
            await session.create()
            handle = self._handle = await session.attach()
            handle.on_event = self._participant_event
            data, _ = await handle.send(
                {
                    "request": "join",
                    "ptype": "publisher",
                    "room": self.room,
                    "display": participant_id,
                }
            )
        except BaseException:
            await self._release()  # nothing left behind, on either side
            raise
        self.feed_id = data.get("id")
        self._private_id = data.get("private_id")
        self._publishers_appeared(data.get("publishers", []))

    async def publish(self, offer_sdp: str) -> str:
        assert self._handle is not None, "connect first"
        _, jsep = await self._handle.send(
            {"request": "publish", "audio": True, "video": True},
            {"type": "offer", "sdp": offer_sdp, "trickle": False},
        )
        if not jsep or jsep.get("type") != "answer":
            raise JanusError(None, "no answer to the publish offer", "publish")
        return str(jsep["sdp"])

    async def close(self) -> None:
        await self._release()

    # --- receiving ----------------------------------------------------------------------

    def _participant_event(self, event: JSON) -> None:
        data = event.get("plugindata", {}).get("data", {})
        kind = event.get("janus")
        if kind == "hangup":
            self._ended("connection_failed")
            return
        if "publishers" in data:
            self._publishers_appeared(data["publishers"])
        for key in ("unpublished", "leaving"):
            feed = data.get(key)
            if isinstance(feed, int):
                self.publishers.pop(feed, None)
                self._subscribed.discard(feed)

    def _publishers_appeared(self, publishers: list[JSON]) -> None:
        fresh = []
        for publisher in publishers:
            feed = int(publisher["id"])
            self.publishers[feed] = str(publisher.get("display", ""))
            if feed not in self._subscribed:
                fresh.append(feed)
        if fresh:
            self._own(self._subscribe(fresh))

    def _own(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and not self._closing:
            error = task.exception()
            log.warning(
                "janus subscription failed",
                extra={"participant": self.participant_id, "error": repr(error)},
            )
            self._ended("connection_failed")

    async def _subscribe(self, feeds: list[int]) -> None:
        """Receive ``feeds`` too: join as a subscriber the first time, then
        ``subscribe``; answer Janus's offer and ``start``."""
        async with self._renegotiating:
            feeds = [f for f in feeds if f not in self._subscribed and f in self.publishers]
            if not feeds or self._session is None or self._closing:
                return
            self._subscribed.update(feeds)
            streams = [{"feed": feed} for feed in feeds]
            if self._subscriber is None:
                handle = self._subscriber = await self._session.attach()
                handle.on_event = self._subscriber_event
                body: JSON = {
                    "request": "join",
                    "ptype": "subscriber",
                    "room": self.room,
                    "streams": streams,
                }
                if self._private_id is not None:
                    body["private_id"] = self._private_id
                data, jsep = await handle.send(body)
            else:
                data, jsep = await self._subscriber.send(
                    {"request": "subscribe", "streams": streams}
                )
            await self._answer(data, jsep)

    async def _answer(self, data: JSON, jsep: JSON | None) -> None:
        """Take the streams Janus lists, answer its offer, ``start``."""
        streams = data.get("streams")
        if isinstance(streams, list):
            self.tracks = {
                str(s["mid"]): {
                    "mid": str(s["mid"]),
                    "kind": s.get("type"),
                    "feed": s.get("feed_id"),
                    "display_name": s.get("feed_display"),
                }
                for s in streams
                if s.get("active", True) and s.get("feed_id") is not None
            }
        if jsep is None or jsep.get("type") != "offer":
            return
        assert self._on_offer is not None and self._subscriber is not None
        answer = await self._on_offer(str(jsep["sdp"]))
        await self._subscriber.send(
            {"request": "start"}, {"type": "answer", "sdp": answer, "trickle": False}
        )

    def _subscriber_event(self, event: JSON) -> None:
        if event.get("janus") == "hangup":
            self._ended("connection_failed")
            return
        jsep = event.get("jsep")
        if jsep and jsep.get("type") == "offer":  # an offer Janus made by itself
            data = event.get("plugindata", {}).get("data", {})
            self._own(self._renegotiate(data, jsep))

    async def _renegotiate(self, data: JSON, jsep: JSON) -> None:
        async with self._renegotiating:
            if not self._closing:
                await self._answer(data, jsep)

    # --- the end ------------------------------------------------------------------------

    def _lost(self, reason: str) -> None:
        self._ended("disconnected")

    def _ended(self, reason: str) -> None:
        if self._closing:
            return
        self._closing = True  # one ending per live session
        if self.on_ended is not None:
            self.on_ended(reason)

    async def _release(self) -> None:
        self._closing = True
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        session, self._session = self._session, None
        handles = [h for h in (self._subscriber, self._handle) if h is not None]
        self._handle = self._subscriber = None
        self._subscribed = set()
        self.publishers = {}
        self.tracks = {}
        if session is None:
            return
        try:
            for handle in handles:
                with contextlib.suppress(JanusError, aiohttp.ClientError, TimeoutError, OSError):
                    if handle.on_event == self._participant_event:
                        await handle.send({"request": "leave"})
                    await handle.detach()
        finally:
            await session.destroy()
