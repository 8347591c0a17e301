"""Negotiating with a real Caucus server over HTTPS and socket.io (namespace ``/media``).

    signal = SocketSignal("https://127.0.0.1:8443", "paula", "secret", case_id, insecure=True)
    participant = Participant("paula", signal)
    await participant.join()

The signal signs in (``GET /api/session`` for the CSRF token, ``POST /api/login``),
connects to ``/media`` with the session cookie, joins the case's live room and answers
the server's subscribe offers.  ``tracks`` follows ``media.tracks``: which mid carries whom;
``slots`` keeps from which RTP sequence number on (``first_seq``) it did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import socketio

from .signal import OfferHandler
from .slots import SlotHistory

SESSION_COOKIE = "__Host-caucus_session"
NAMESPACE = "/media"


class SignalError(Exception):
    """The server refused a step; ``code`` is its machine code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SocketSignal:
    """A :class:`client.Signal` over the server's socket.io ``/media`` namespace.

    Pass ``session_token`` (an existing signed-in session) instead of a password to skip
    signing in.  With ``insecure=True`` the server's certificate is not verified (a
    self-signed development certificate).
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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.case_id = case_id
        self.participant_id: str | None = None
        self.ice_servers: list[dict[str, Any]] = []
        #: mid -> {"mid", "kind", "participant_id", "display_name", "role"}
        self.tracks: dict[str, dict[str, Any]] = {}
        self.participants: list[dict[str, Any]] = []
        self.ended: str | None = None
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

    # --- Signal -------------------------------------------------------------------------

    async def connect(self, participant_id: str, on_subscribe_offer: OfferHandler) -> None:
        """Sign in if needed, connect and join; ``participant_id`` is chosen by the server
        (read it from :attr:`participant_id`)."""
        self._on_offer = on_subscribe_offer
        if self._token is None:
            self._token = await self.sign_in()
        sio = self._sio = socketio.AsyncClient(ssl_verify=not self._insecure, reconnection=False)
        sio.on("media.offer", self._offer, namespace=NAMESPACE)
        sio.on("media.tracks", self._tracks, namespace=NAMESPACE)
        sio.on("media.ended", self._ended, namespace=NAMESPACE)
        sio.on("live.state", self._live_state, namespace=NAMESPACE)
        for name in (
            "live.broadcast",
            "live.timer_warning",
            "live.asked",
            "live.board.stroke",
            "recording.state",  # this room is (no longer) being recorded
        ):
            sio.on(name, self._live_event(name), namespace=NAMESPACE)
        await sio.connect(
            self.base_url,
            headers={"Cookie": f"{SESSION_COOKIE}={self._token}"},
            namespaces=[NAMESPACE],
            transports=["websocket"],
            wait_timeout=self._timeout,
        )
        reply = await self.call("media.join", {"case_id": self.case_id})
        self.participant_id = reply["participant_id"]
        self.ice_servers = reply["ice_servers"]
        self.participants = reply["participants"]
        self._set_live(reply.get("live") or {})

    async def publish(self, offer_sdp: str) -> str:
        reply = await self.call("media.publish", {"case_id": self.case_id, "sdp": offer_sdp})
        return reply["sdp"]

    async def close(self) -> None:
        sio, self._sio = self._sio, None
        if sio is None:
            return
        if sio.connected and self.ended is None:
            try:
                await sio.call(
                    "media.leave", {"case_id": self.case_id}, namespace=NAMESPACE, timeout=5
                )
            except (socketio.exceptions.SocketIOError, TimeoutError):
                pass
        await sio.disconnect()

    # --- helpers ------------------------------------------------------------------------

    async def sign_in(self) -> str:
        """Signs in over HTTPS; returns the session token (the session cookie's value)."""
        connector = aiohttp.TCPConnector(ssl=False if self._insecure else True)
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for an IP address host
        async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as http:
            async with http.get(f"{self.base_url}/api/session") as response:
                response.raise_for_status()
                csrf = (await response.json())["csrf_token"]
            async with http.post(
                f"{self.base_url}/api/login",
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
        return {"sdp": await self._on_offer(payload["sdp"])}

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
        self.ended = payload.get("reason", "ended")
        self._changed.set()

    def _update(self, payload: dict[str, Any]) -> None:
        self.slots.record(payload)  # overtaken messages too: they describe earlier packets
        seq = payload.get("seq", 0)
        if seq <= self._seq:
            return
        self._seq = seq
        self.tracks = {track["mid"]: track for track in payload.get("tracks", [])}
        self.participants = payload.get("participants", self.participants)
        self._changed.set()
