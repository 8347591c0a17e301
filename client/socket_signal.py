"""Negotiating with a real Caucus server over HTTPS and socket.io (namespace ``/media``).

    signal = SocketSignal("https://127.0.0.1:8443", "paula", "secret", case_id, insecure=True)
    participant = Participant("paula", signal)
    await participant.join()

The signal signs in (``GET /api/session`` for the CSRF token, ``POST /api/login``),
connects to ``/media`` with the session cookie, joins the case's live room and answers
the server's subscribe offers.  ``tracks`` follows ``media.tracks``: which mid carries whom;
``slots`` keeps from which RTP sequence number on (``first_seq``) it did.

When the server ends the live session (``media.ended``) or the socket drops (reported as
the reason ``"disconnected"``), :attr:`SocketSignal.on_ended` is called with the reason;
:meth:`SocketSignal.connect` may then be called again: it joins again on the same socket
while that is connected, otherwise it opens a new one with the same session (trying the
alternative ``urls`` in turn) and signs in again only if the server refused the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import socketio

from .signal import OfferHandler
from .slots import SlotHistory

SESSION_COOKIE = "__Host-caucus_session"
NAMESPACE = "/media"
#: The ending reported when the socket.io connection drops without ``close()``.
DISCONNECTED = "disconnected"

log = logging.getLogger(__name__)

#: Failures that make another server address worth trying.
_UNREACHABLE = (
    socketio.exceptions.ConnectionError,
    aiohttp.ClientError,
    OSError,
    TimeoutError,
)


class SignalError(Exception):
    """The server refused a step; ``code`` is its machine code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SessionRefused(SignalError):
    """The server refused the socket's session (``unauthenticated``): sign in again."""


def _is_unauthenticated(data: Any) -> bool:
    """Whether a ``connect_error`` refuses the session: its data carries the code
    ``unauthenticated`` (``{"code"}``, ``{"message", "data": {"code"}}``, or, as
    python-socketio sends a single refusal argument, inside the message text)."""
    if not isinstance(data, dict):
        return False
    detail = data.get("data")
    if isinstance(detail, dict) and detail.get("code") == "unauthenticated":
        return True
    return data.get("code") == "unauthenticated" or "'unauthenticated'" in str(
        data.get("message", "")
    )


class SocketSignal:
    """A :class:`client.Signal` over the server's socket.io ``/media`` namespace.

    Owns the session token, the current socket.io client and what the server said of the
    current live session (``tracks``, ``participants``, ``live``, ``slots``).

    Pass ``session_token`` (an existing signed-in session) instead of a password to skip
    signing in.  With ``insecure=True`` the server's certificate is not verified (a
    self-signed development certificate).  ``urls`` are other base URLs of the same
    deployment (other signaling nodes), tried in turn when ``base_url`` does not answer;
    :attr:`base_url` is the one last connected to.
    """

    def __init__(
        self,
        base_url: str,
        username: str | None,
        password: str | None,
        case_id: str,
        *,
        insecure: bool = False,
        session_token: str | None = None,
        timeout: float = 15.0,
        urls: Sequence[str] = (),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        #: Every base URL of the deployment, ``base_url`` first.
        self.urls = list(dict.fromkeys([self.base_url, *(u.rstrip("/") for u in urls)]))
        self.case_id = case_id
        self.participant_id: str | None = None
        self.ice_servers: list[dict[str, Any]] = []
        #: mid -> {"mid", "kind", "participant_id", "display_name", "role"}
        self.tracks: dict[str, dict[str, Any]] = {}
        self.participants: list[dict[str, Any]] = []
        #: Why the current live session ended (the first reason since the last join).
        self.ended: str | None = None
        #: Every ending reported, in order (``media.ended`` reasons and ``"disconnected"``).
        self.endings: list[str] = []
        #: Called with the reason whenever the server ends the live session or the socket
        #: drops; the session is gone, :meth:`connect` joins again.
        self.on_ended: Callable[[str], None] | None = None
        #: Sockets opened so far (the first connection included).
        self.sockets_opened = 0
        #: The latest ``live.state`` (this person's view of the live rooms).
        self.live: dict[str, Any] = {}
        #: Other ``live.*`` pushes and ``recording.state`` received, in order: (event, payload).
        self.live_events: list[tuple[str, dict[str, Any]]] = []
        #: Called with each newer ``live.state`` as it is received.
        self.on_live_state: Callable[[dict[str, Any]], None] | None = None
        #: Every assignment of the subscribe m-lines announced so far, by sequence number.
        self.slots = SlotHistory()
        self._username = username
        self._password = password
        self._insecure = insecure
        self._token = session_token
        self._timeout = timeout
        self._sio: socketio.AsyncClient | None = None
        self._on_offer: OfferHandler | None = None
        self._changed = asyncio.Event()
        self._seq = 0
        self._joined = False  # a media.join may have placed this socket in a live session

    # --- Signal -------------------------------------------------------------------------

    async def connect(self, participant_id: str, on_subscribe_offer: OfferHandler) -> None:
        """Sign in if needed, connect and join; ``participant_id`` is chosen by the server
        (read it from :attr:`participant_id`).

        Called again (after an ending, or after a failed attempt) it joins again: on the
        same socket while that is connected, otherwise on a new one."""
        self._on_offer = on_subscribe_offer
        sio = self._sio
        if sio is not None and sio.connected:
            if self._joined:  # an earlier attempt may have joined: leave what is left of it
                with contextlib.suppress(SignalError, socketio.exceptions.SocketIOError):
                    await self.call("media.leave", {"case_id": self.case_id})
        else:
            await self._open_socket()
        self._forget_session()
        self._joined = True
        try:
            reply = await self.call("media.join", {"case_id": self.case_id})
        except SignalError as refusal:
            if refusal.code != "already_joined":
                raise
            # the server still holds a session this socket was told had ended: leave it
            await self.call("media.leave", {"case_id": self.case_id})
            reply = await self.call("media.join", {"case_id": self.case_id})
        self.participant_id = reply["participant_id"]
        self.ice_servers = reply["ice_servers"]
        self.participants = reply["participants"]
        self._set_live(reply.get("live") or {})

    async def reconnect(self) -> None:
        """Join again with the offer handler of the last :meth:`connect`."""
        if self._on_offer is None:
            raise SignalError("not_connected", "connect first")
        await self.connect(self.participant_id or "", self._on_offer)

    def _forget_session(self) -> None:
        """Drop what the server said of the previous live session: a new one has new
        m-lines, and another server node numbers its views afresh."""
        self.tracks = {}
        self.slots = SlotHistory()
        self.live = {}
        self._seq = 0
        self.ended = None

    async def _open_socket(self) -> None:
        """A new socket.io client connected to ``/media``: at the current base URL, else
        at the others in turn.  Signs in first when there is no session, and again when
        the server refuses the session."""
        old, self._sio = self._sio, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.disconnect()
        self._joined = False
        start = self.urls.index(self.base_url) if self.base_url in self.urls else 0
        failures: list[str] = []
        for base in self.urls[start:] + self.urls[:start]:
            try:
                if self._token is None:
                    self._token = await self.sign_in(base)
                try:
                    sio = await self._socket(base)
                except SessionRefused:
                    if self._password is None:
                        raise
                    self._token = await self.sign_in(base)
                    sio = await self._socket(base)
            except _UNREACHABLE as error:
                failures.append(f"{base}: {type(error).__name__}: {error}")
                continue
            self.base_url = base
            self._sio = sio
            self.sockets_opened += 1
            return
        raise SignalError("unreachable", "no server answered: " + "; ".join(failures))

    async def _socket(self, base: str) -> socketio.AsyncClient:
        sio = socketio.AsyncClient(ssl_verify=not self._insecure, reconnection=False)
        refusal: list[Any] = []

        def refused(data: Any = None) -> None:
            refusal.append(data)

        sio.on("connect_error", refused, namespace=NAMESPACE)
        sio.on("disconnect", self._disconnect_handler(sio), namespace=NAMESPACE)
        sio.on("media.offer", self._offer, namespace=NAMESPACE)
        sio.on("media.tracks", self._tracks, namespace=NAMESPACE)
        sio.on("media.ended", self._ended, namespace=NAMESPACE)
        sio.on("live.state", self._live_state, namespace=NAMESPACE)
        for name in (
            "live.broadcast",
            "live.timer_warning",
            "live.asked",
            "live.person",
            "live.board.stroke",
            "recording.state",  # this room is (no longer) being recorded
            "media.speaker",  # the room's active speaker changed
            "media.quality",  # how well everyone's connection carries the call
        ):
            sio.on(name, self._live_event(name), namespace=NAMESPACE)
        try:
            await sio.connect(
                base,
                headers={"Cookie": f"{SESSION_COOKIE}={self._token}"},
                namespaces=[NAMESPACE],
                transports=["websocket"],
                wait_timeout=self._timeout,
            )
        except BaseException as error:
            with contextlib.suppress(Exception):
                await sio.disconnect()
            if isinstance(error, Exception) and any(_is_unauthenticated(d) for d in refusal):
                raise SessionRefused("unauthenticated", "the server refused the session") from None
            raise
        return sio

    async def publish(self, offer_sdp: str) -> str:
        reply = await self.call("media.publish", {"case_id": self.case_id, "sdp": offer_sdp})
        return reply["sdp"]

    async def close(self) -> None:
        sio, self._sio = self._sio, None
        if sio is None:
            return
        if sio.connected and self._joined and self.ended is None:
            try:
                await sio.call(
                    "media.leave", {"case_id": self.case_id}, namespace=NAMESPACE, timeout=5
                )
            except (socketio.exceptions.SocketIOError, TimeoutError):
                pass
        await sio.disconnect()

    # --- helpers ------------------------------------------------------------------------

    async def sign_in(self, base_url: str | None = None) -> str:
        """Signs in over HTTPS (at ``base_url``, by default :attr:`base_url`); returns the
        session token (the session cookie's value)."""
        base = base_url or self.base_url
        if self._username is None:
            raise SignalError("unauthenticated", "no credentials to sign in with")
        connector = aiohttp.TCPConnector(ssl=False if self._insecure else True)
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for an IP address host
        async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as http:
            async with http.get(f"{base}/api/session") as response:
                response.raise_for_status()
                csrf = (await response.json())["csrf_token"]
            async with http.post(
                f"{base}/api/login",
                json={"username": self._username, "password": self._password},
                headers={"X-CSRF-Token": csrf},
            ) as response:
                body = await response.json(content_type=None)
                if response.status != 200:
                    error = body.get("error", {}) if isinstance(body, dict) else {}
                    raise SignalError(
                        error.get("code", f"http_{response.status}"),
                        error.get("message", "sign-in failed"),
                    )
            if body.get("stage") != "active":
                raise SignalError("stage_incomplete", f"sign-in stopped at {body.get('stage')}")
            for cookie in jar:
                if cookie.key == SESSION_COOKIE:
                    return cookie.value
        raise SignalError("no_session", "the server set no session cookie")

    async def call(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send ``event`` and return its reply; raises :class:`SignalError` on a refusal."""
        if self._sio is None:
            raise SignalError("not_connected", "connect first")
        reply = await self._sio.call(event, payload, namespace=NAMESPACE, timeout=self._timeout)
        if not reply.get("ok"):
            error = reply.get("error", {})
            raise SignalError(error.get("code", "error"), error.get("message", ""))
        return reply

    async def wait_until(self, condition: Callable[[SocketSignal], bool]) -> None:
        """Wait until ``condition(self)`` holds after a server push (wrap in
        ``asyncio.timeout``)."""
        while not condition(self):
            self._changed.clear()
            await self._changed.wait()

    async def _offer(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._update(payload)
        assert self._on_offer is not None
        try:
            return {"sdp": await self._on_offer(payload["sdp"])}
        except Exception as error:  # answered at once: the server ends the session
            log.warning("could not answer a subscribe offer: %s: %s", type(error).__name__, error)
            return {"error": type(error).__name__}

    async def _tracks(self, payload: dict[str, Any]) -> None:
        self._update(payload)

    async def _live_state(self, payload: dict[str, Any]) -> None:
        self._set_live(payload)

    def _set_live(self, view: dict[str, Any]) -> None:
        if view.get("seq", 0) <= self.live.get("seq", 0):
            return
        self.live = view
        if self.on_live_state is not None:
            self.on_live_state(view)
        self._changed.set()

    def _live_event(self, name: str) -> Callable[[dict[str, Any]], Any]:
        async def received(payload: dict[str, Any]) -> None:
            self.live_events.append((name, payload))
            self._changed.set()

        return received

    def my_room(self) -> dict[str, Any] | None:
        """The live room this person is in (from the latest ``live.state``), if any."""
        mine = self.live.get("you", {}).get("room_id")
        return next((r for r in self.live.get("rooms", []) if r["id"] == mine), None)

    async def _ended(self, payload: dict[str, Any]) -> None:
        self._end(str(payload.get("reason", "ended")))

    def _disconnect_handler(self, sio: socketio.AsyncClient) -> Callable[..., Any]:
        async def disconnected(reason: Any = None) -> None:
            if sio is self._sio:  # not close(), nor a socket already replaced
                log.info("socket disconnected: %s", reason)
                self._sio = None  # socket.io closes it; the next connect opens another
                self._end(DISCONNECTED)

        return disconnected

    def _end(self, reason: str) -> None:
        self._joined = False
        self.endings.append(reason)
        if self.ended is None:
            self.ended = reason
        self._changed.set()
        if self.on_ended is not None:
            self.on_ended(reason)

    def _update(self, payload: dict[str, Any]) -> None:
        self.slots.record(payload)  # overtaken messages too: they describe earlier packets
        seq = payload.get("seq", 0)
        if seq <= self._seq:
            return
        self._seq = seq
        self.tracks = {track["mid"]: track for track in payload.get("tracks", [])}
        self.participants = payload.get("participants", self.participants)
        self._changed.set()
