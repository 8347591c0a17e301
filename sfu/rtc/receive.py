"""The direct receive path: received SRTP media from the socket straight to the
receivers' hooks (:func:`receive_directly`), in C when the compiled module is in use.

See ``sfu/README.md`` ("Hot path") for why and what it replaces.  Per datagram it
reads the ICE connection's queue, the DTLS transport's state and aiortc's routing
tables inline (each listed in :data:`sfu.rtc.requirements.REQUIREMENTS`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import sys
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from aioice.ice import StunProtocol
from aiortc import RTCDtlsTransport, RTCPeerConnection
from aiortc.rtp import RtpPacket

from .demux import KIND_MALFORMED, KIND_RTP, classify
from .hooks import RtpHook, handler_failed
from .internals import (
    CONNECTED,
    IceRecv,
    connection_of,
    datagram_socket,
    header_extensions_map,
    ice_protocols,
    ice_queue,
    rtp_router,
    rx_session,
    srtp_context,
    wrap_ice_recv,
)
from .native import (
    FASTRECEIVE,
    NATIVE,
    SRTP_BUFFER,
    address_of,
    srtp_ffi,
    srtp_unprotect,
)

if FASTRECEIVE:
    from .native import FAST_UNPROTECT

    _fast_receive = NATIVE.lib.caucus_receive
    _fast_route_add = NATIVE.lib.caucus_route_add
    _fast_route_producer = NATIVE.lib.caucus_route_add_producer
    _unprotect_held = NATIVE.lib.caucus_unprotect_held
    _RX_RTP = NATIVE.lib.CAUCUS_RX_RTP
    _RX_OTHER = NATIVE.lib.CAUCUS_RX_OTHER
    _RX_UNKNOWN = NATIVE.lib.CAUCUS_RX_UNKNOWN

_SSRC_AT_8 = struct.Struct("!8xI").unpack_from
_now = time.time
_NULL = NATIVE.ffi.NULL if NATIVE is not None else None
#: aiortc's arrival times count milliseconds from the NTP epoch (1900), not from 1970.
NTP_EPOCH_MS = 2_208_988_800_000
#: Datagrams :func:`receive_directly` reads from a socket per readiness event, at most.
DRAIN_BATCH = 32
#: Where those reads land (one per process: everything runs on the event loop's thread,
#: and a datagram is copied out before the next read); the largest UDP datagram fits.
_DRAIN_VIEW = memoryview(bytearray(65536))
#: SSRCs the compiled receive path checks itself (``CAUCUS_ALLOWED_SSRCS``); a policy
#: allowing more has the rest checked in Python.
ALLOWED_SSRCS = 16

logger = logging.getLogger(__name__)


class SsrcPolicyHook(Protocol):
    """What :func:`set_ssrc_policy` needs of a transport's SSRC policy."""

    dropped: int

    def allowed(self) -> tuple[int, ...]: ...

    def admit(self, ssrc: int) -> bool: ...

    def learned(self, ssrc: int) -> None: ...


class ReceivePollerHook(Protocol):
    """What :func:`receive_directly` needs of a poller that reads the connection's
    sockets instead of asyncio (the load client's ``client.receive_poller.ReceivePoller``)."""

    def attach(
        self,
        transport: Any,
        sock: socket.socket,
        rx: Any,
        handler: Callable[[int], None],
        owner: Any = None,
    ) -> None: ...

    def detach_all(self, receivers: Iterable[Any]) -> None: ...


def receive_directly(
    pc: RTCPeerConnection, poller: ReceivePollerHook | None = None, rtcp: bool = True
) -> None:
    """Once ``pc`` is connected, hand its received SRTP media datagrams straight from the
    socket's ``datagram_received`` to the receivers' hooks.

    aiortc's own path per datagram: aioice tries to parse it as STUN, puts it in an
    asyncio queue and wakes the DTLS transport's receive task, which unprotects it,
    parses it into an ``RtpPacket`` (header extensions included), routes it and awaits
    the receiver's coroutine: a task switch, a second event-loop iteration and several
    awaits per packet.  Here the protocol of each of the connection's sockets recognises
    RTP by its first two bytes (:func:`classify`: RFC 7983 and RFC 5761), and, in
    the same call, libsrtp unprotects it in place in a buffer owned by the connection,
    the SSRC and payload type are looked up in aiortc's routing tables, and the hook of
    :func:`intercept_rtp_data` gets the ``bytes`` (that of :func:`intercept_rtp` a
    parsed packet).  Everything else takes aiortc's path unchanged: STUN (connectivity
    and consent checks, see :func:`keep_consent`), DTLS records, SRTCP; so does RTP while
    aioice's queue still holds datagrams, which keeps the order in which packets reach a
    hook.  A packet whose SSRC aiortc has not routed yet is parsed and routed by aiortc's
    router (which learns the SSRC from the payload type as before); a receiver without a
    hook gets aiortc's coroutine as a task.  A datagram that fails to unprotect is
    dropped, as aiortc does; so is one larger than the buffer (aiortc's SRTP session
    would raise and close the connection), and one :func:`classify` calls malformed
    (RTCP packet types 209-223, which aiortc would unprotect as RTP).  With an SSRC
    policy (:func:`set_ssrc_policy`) an RTP datagram's clear-text SSRC is checked before
    libsrtp sees it.  The inbound SRTP session is held by the path's state for as long as
    a compiled receiver points into it, and the pointers are cleared when the DTLS
    transport leaves the connected state.  An exception in a hook is logged, never
    propagated.  aiortc's transport-level received counters (``getStats()`` of the DTLS
    transport) do not count these packets.  Call before or after connecting; later
    calls do nothing.

    With a ``poller`` (the load client's ``ReceivePoller``, compiled module only) the connection's
    sockets are no longer read on each readiness event but by the poller's timer, every
    socket of every such connection in one C call, and the packets counted in C take
    the kernel's arrival time (``SO_TIMESTAMPNS``), so reading late does not move the
    figures; what is not media reaches aioice up to one interval later (STUN checks and
    consent answer well within their timeouts).  ``rtcp=False`` drops the peer's SRTCP
    unread, for a client that has no use for it (the load client: its publishers ignore
    feedback, its receivers have no decoder); only with a poller.
    """
    if pc in _DIRECT_PCS:
        return
    _DIRECT_PCS.add(pc)
    if poller is not None and not FASTRECEIVE:
        poller = None  # not compiled: the event-driven path in Python

    def connected() -> None:
        if pc.connectionState == "connected":
            for transceiver in pc.getTransceivers():
                _install_direct(transceiver.receiver.transport, poller, rtcp)

    pc.on("connectionstatechange", connected)
    connected()


class _DirectState:
    """What the direct receive path of one DTLS transport keeps besides its buffer: the
    compiled receivers, the inbound SRTP session their ``srtp`` points into, and the SSRC
    policy.

    The session is held here, explicitly, for as long as a receiver may use its
    ``srtp_t``: everything that can call into C with a receiver (the sockets'
    ``datagram_received`` and a poller's entry) holds this state.
    :meth:`release` clears every receiver's pointer first and then lets go of it; it runs
    when the DTLS transport leaves the connected state."""

    __slots__ = (
        "allowed",
        "context",
        "detach",
        "failed",
        "ingress",
        "installed",
        "malformed",
        "receivers",
        "session",
        "should_drop",
        "ssrc_policy",
        "tracks",
    )

    def __init__(self) -> None:
        self.should_drop: Callable[[], bool] | None = None
        #: The poller's ``detach_all`` (weakly), while a poller reads the sockets.
        self.detach: weakref.WeakMethod[Any] | None = None
        #: Datagrams the Python path dropped: failed to unprotect, or too large.
        self.failed = 0
        #: Datagrams dropped for their first bytes (:data:`KIND_MALFORMED`) in Python.
        self.malformed = 0
        self.installed = False
        #: The compiled path's receivers (``caucus_receiver *``), one per socket.
        self.receivers: list[Any] = []
        #: Track counters a receiver's routes point to, kept alive as long as they do.
        self.tracks: list[Any] = []
        #: Whatever object ``dtls._rx_srtp`` is (pylibsrtp's Session or a proxy of it),
        #: and its ``srtp_t`` (pylibsrtp's cdata): ``None`` once released.
        self.session: Any = None
        self.context: Any = None
        #: :func:`set_ssrc_policy`'s object (``None``: every SSRC goes to libsrtp) and
        #: the SSRCs it allowed when last pushed.
        self.ssrc_policy: SsrcPolicyHook | None = None
        self.allowed: frozenset[int] = frozenset()
        #: The transport's ``sfu.ingress.Ingress`` (weakly), which counts RTP that does
        #: not parse; set by the ingress guard.
        self.ingress: weakref.ref[Any] | None = None

    def hold(self, session: Any) -> None:
        """Keep ``session`` (``dtls._rx_srtp``) for the receivers that will point to it."""
        self.session = session
        self.context = srtp_context(session)

    def release(self) -> None:
        """No receiver uses the session from now on: their pointers are cleared, then the
        session is let go (libsrtp's context may be freed with it)."""
        null = NATIVE.ffi.NULL if NATIVE is not None else None
        for rx in self.receivers:
            rx.srtp = null
        self.context = None
        self.session = None

    def failures(self) -> int:
        return self.failed + sum(int(r.failed) for r in self.receivers)

    def push_policy(self) -> None:
        """Give every compiled receiver the policy's allowed SSRCs (filter on), or turn
        their filter off when there is no policy."""
        policy = self.ssrc_policy
        allowed = tuple(policy.allowed()) if policy is not None else ()
        self.allowed = frozenset(allowed)
        if not self.receivers:
            return
        table = allowed[:ALLOWED_SSRCS]
        if len(allowed) > ALLOWED_SSRCS:
            logger.warning(
                "SSRC table full: the rest is checked in Python",
                extra={"ssrcs": len(allowed), "table": ALLOWED_SSRCS},
            )
        array = NATIVE.ffi.new("uint32_t[]", list(table) or [0])
        for rx in self.receivers:
            NATIVE.lib.caucus_receiver_allow(rx, array, len(table))
            rx.filter = int(policy is not None)

    def refused(self, ssrc: int) -> bool:
        """Whether the policy refuses a datagram of ``ssrc``, not among those allowed,
        before libsrtp sees it (counted in ``policy.dropped``)."""
        policy = self.ssrc_policy
        if policy is not None and policy.admit(ssrc):
            return False
        if policy is not None:
            policy.dropped += 1
        return True

    def learned(self, ssrc: int) -> None:
        """An admitted SSRC authenticated: the policy learns it, the table follows."""
        policy = self.ssrc_policy
        if policy is not None:
            policy.learned(ssrc)
            self.push_policy()

    def malformed_rtp(self, exc: Exception) -> None:
        """RTP that unprotected but does not parse: dropped, counted by the ingress."""
        ingress = self.ingress() if self.ingress is not None else None
        if ingress is not None:
            ingress.malformed_rtp += 1
            ingress.log.failure("rtp-parse", f"RTP dropped: {type(exc).__name__}: {exc}")


_DIRECT_PCS: weakref.WeakSet[RTCPeerConnection] = weakref.WeakSet()


_DIRECT: weakref.WeakKeyDictionary[RTCDtlsTransport, _DirectState] = weakref.WeakKeyDictionary()


def _direct_state(dtls: RTCDtlsTransport) -> _DirectState:
    state = _DIRECT.get(dtls)
    if state is None:
        state = _DIRECT[dtls] = _DirectState()
    return state


def direct_receive_failures(pc: RTCPeerConnection) -> int:
    """Datagrams the direct receive path of ``pc`` dropped (unprotect failed, too large)."""
    return sum(
        _DIRECT[t.receiver.transport].failures()
        for t in {t.receiver.transport: t for t in pc.getTransceivers()}.values()
        if t.receiver.transport in _DIRECT
    )


def set_ssrc_policy(dtls: RTCDtlsTransport, policy: SsrcPolicyHook | None) -> None:
    """Decide on the clear-text SSRC, before libsrtp sees a packet, which RTP datagrams
    received on ``dtls`` are unprotected (``None``: all, as without a policy).

    libsrtp creates a stream for every SSRC that authenticates and finds a packet's
    stream by a linear search: a peer holding the keys and sending a new SSRC per packet
    would grow that list without bound.  With a policy, a datagram whose SSRC is in
    ``policy.allowed()`` is unprotected as before (the compiled path checks the first
    :data:`ALLOWED_SSRCS` of them in C); for another one ``policy.admit(ssrc)`` decides:
    false drops it (``policy.dropped`` is incremented), true unprotects it and, when that
    succeeds, calls ``policy.learned(ssrc)`` and pushes the allowed SSRCs again.  Call
    :func:`refresh_ssrc_policy` when the policy's set changed otherwise.  The same
    decision is made on the compiled path, in Python, and with a poller.
    """
    state = _direct_state(dtls)
    state.ssrc_policy = policy
    state.push_policy()


def refresh_ssrc_policy(dtls: RTCDtlsTransport) -> None:
    """Push the allowed SSRCs of ``dtls``'s policy to its receivers again."""
    state = _DIRECT.get(dtls)
    if state is not None:
        state.push_policy()


def _install_direct(
    dtls: RTCDtlsTransport, poller: ReceivePollerHook | None = None, rtcp: bool = True
) -> None:
    state = _direct_state(dtls)
    session = rx_session(dtls)
    if state.installed or dtls._state is not CONNECTED or session is None:
        return
    state.installed = True
    state.hold(session)
    for protocol in ice_protocols(connection_of(dtls)):
        if not isinstance(protocol, StunProtocol):
            continue
        transport = getattr(protocol, "transport", None)
        if transport is not None and transport.get_protocol() is not protocol:
            # something stands between the socket and aioice (a delay, a filter): reading
            # the socket here would go around it, so its datagrams keep that path
            continue
        sock = datagram_socket(transport)
        receiver = DirectReceiver(dtls, state, protocol.datagram_received, sock)
        handler: Callable[[Any, tuple], None] = (
            receiver.datagram_received
            if receiver.rx is not None
            else receiver.datagram_received_in_python
        )
        protocol.datagram_received = handler  # type: ignore[method-assign,assignment]  # the hook, bytes only
        if (
            poller is not None
            and sock is not None
            and receiver.rx is not None
            and state.should_drop is None  # loss on purpose is decided per datagram here
        ):
            receiver.rx.drop_rtcp = not rtcp
            poller.attach(transport, sock, receiver.rx, receiver.hand_on, state)
    detach = weakref.WeakMethod(poller.detach_all) if poller is not None else None
    state.detach = detach
    receivers = list(state.receivers)

    def state_changed() -> None:
        if dtls._state is not CONNECTED:
            method = detach() if detach is not None else None
            if method is not None:
                method(receivers)
            state.release()

    dtls.on("statechange", state_changed)


class DirectReceiver:
    """The ``StunProtocol.datagram_received`` of one socket of a connection given to
    :func:`receive_directly` (:meth:`datagram_received`, or
    :meth:`datagram_received_in_python` without the compiled module).

    After an RTP datagram, the socket (``sock``, when the protocol's transport exposes
    it) is read again until it is empty, :data:`DRAIN_BATCH` datagrams at most: asyncio's
    datagram transport reads one datagram per readiness event, so each queued datagram
    would otherwise cost a whole event-loop iteration (``epoll_wait`` and a callback);
    under load several are queued and this reads them in the same call.  What the drain
    reads that is not for the direct path goes to aioice's method, as before; a datagram
    :func:`classify` calls malformed is dropped (counted).

    With the compiled module (:data:`FASTRECEIVE`) one C call per event does the reading
    and unprotecting (``caucus_receive``, on :attr:`rx`) and counts the packets of the
    SSRCs routed to a compiled track counter (see ``intercept_rtp_data``); a packet it
    has no route for comes back here, unprotected, to be routed and delivered as below; a
    datagram of an SSRC the policy's table lacks (:func:`set_ssrc_policy`) comes back
    still protected, for the policy to decide; a datagram that is not RTP goes to aioice,
    and when aioice queued it the rest of the event is read in Python, so that RTP behind
    it queues behind it.  Without it, or while packets are dropped on purpose
    (:func:`drop_incoming_rtp`), Python does the same, one datagram at a time.
    """

    __slots__ = (
        "_buffer",
        "_cdata",
        "_dtls",
        "_extensions",
        "_original",
        "_payload_type_table",
        "_queue",
        "_recvfrom_into",
        "_route",
        "_rx_buffer",
        "_size",
        "_ssrc_table",
        "_state",
        "_tasks",
        "_view",
        "rx",
    )

    def __init__(
        self,
        dtls: RTCDtlsTransport,
        state: _DirectState,
        original: Callable[[bytes, tuple], None],
        sock: socket.socket | None,
    ) -> None:
        self._dtls = dtls
        self._state = state
        #: aioice's ``datagram_received`` of the socket: what is not taken here goes there.
        self._original = original
        self._queue = ice_queue(connection_of(dtls))
        router = rtp_router(dtls)
        self._ssrc_table = router.ssrc_table
        self._payload_type_table = router.payload_type_table
        self._route = router.route_rtp
        self._extensions = header_extensions_map(dtls)
        if state.session is None:
            state.hold(rx_session(dtls))  # released when the transport leaves "connected"
        cdata = srtp_ffi.new("char[]", SRTP_BUFFER)
        self._cdata = cdata
        self._view = memoryview(srtp_ffi.buffer(cdata))
        self._buffer = srtp_ffi.buffer(cdata)
        self._size = srtp_ffi.new("int *")
        #: aiortc's own coroutines, for receivers without a hook
        self._tasks: set[asyncio.Future[None]] = set()
        self._recvfrom_into = sock.recvfrom_into if sock is not None else None
        #: The compiled path's receiver (``caucus_receiver *``), or ``None``.
        self.rx: Any = None
        self._rx_buffer: Any = None
        if FASTRECEIVE:
            rx = self.rx = NATIVE.ffi.new("caucus_receiver *")
            rx.unprotect = FAST_UNPROTECT
            rx.srtp = NATIVE.ffi.cast("void *", address_of(state.context))
            rx.fd = sock.fileno() if sock is not None else -1
            self._rx_buffer = NATIVE.ffi.buffer(rx.buf)
            state.receivers.append(rx)
            state.push_policy()

    def deliver(self, data: bytes, arrival_time_ms: int) -> None:
        """Route the unprotected RTP packet ``data`` to its receiver's hook."""
        packet = None
        ssrc = _SSRC_AT_8(data)[0]
        receiver = self._ssrc_table.get(ssrc)
        if receiver is None or receiver not in self._payload_type_table.get(data[1] & 0x7F, ()):
            try:
                packet = RtpPacket.parse(data, self._extensions)
            except Exception as exc:  # a malformed extension raises struct.error
                self._state.malformed_rtp(exc)
                return
            receiver = self._route(packet)
            if receiver is None:
                return
        hook = receiver._handle_rtp_packet
        if hook.__class__ is RtpHook:
            if hook.on_data is not None:
                hook.on_data(data, arrival_time_ms)
                track = hook.track
                rx = self.rx
                if (
                    rx is not None
                    and track is not None
                    and packet is None
                    and track.started
                    and track.ssrc == ssrc
                    and _fast_route_add(rx, ssrc, data[1] & 0x7F, track) == 0
                ):
                    self._state.tracks.append(track)
                route = hook.route
                if rx is not None and route is not None and packet is None:
                    found = route(ssrc, data[1] & 0x7F)
                    if (
                        found is not None
                        and _fast_route_producer(rx, ssrc, data[1] & 0x7F, found[0]) == 0
                    ):
                        self._state.tracks.append(found[1])
            else:
                if packet is None:
                    packet = RtpPacket.parse(data, self._extensions)
                hook.on_packet(packet, arrival_time_ms)  # type: ignore[misc]  # set: on_data is not
        else:
            if packet is None:
                packet = RtpPacket.parse(data, self._extensions)
            task = asyncio.ensure_future(hook(packet, arrival_time_ms=arrival_time_ms))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _handle(self, length: int) -> None:
        """Unprotect and deliver the ``length`` bytes at the start of the buffer."""
        state = self._state
        should_drop = state.should_drop
        if should_drop is not None and should_drop():
            return
        learning = -1  # or the admitted SSRC the policy learns once it authenticated
        if state.ssrc_policy is not None:
            ssrc = _SSRC_AT_8(self._view)[0]
            if ssrc not in state.allowed:
                if state.refused(ssrc):
                    return
                learning = ssrc
        context = state.context
        if context is None:  # released: the session may be gone
            state.failed += 1
            return
        arrival_time_ms = int(time.time() * 1000) + NTP_EPOCH_MS
        size = self._size
        size[0] = length
        if srtp_unprotect(context, self._cdata, size):
            state.failed += 1
            return
        if learning >= 0:
            state.learned(learning)
        self.deliver(self._buffer[: size[0]], arrival_time_ms)

    def _is_media(self, data: Any, length: int) -> bool:
        """RTP (:func:`classify`) that the direct path may take now: connected, nothing
        queued."""
        return (
            classify(data, length) == KIND_RTP
            and self._dtls._state is CONNECTED
            and self._queue.empty()
        )

    def _take(self, data: Any, length: int) -> None:
        """Copy the datagram into the buffer and deliver it; too large: dropped."""
        if length > SRTP_BUFFER:
            self._state.failed += 1
            return
        self._view[:length] = data[:length]
        try:
            self._handle(length)
        except Exception as exc:
            handler_failed("RTP handler failed", exc)

    def _drain(self) -> None:
        recvfrom_into = self._recvfrom_into
        drain_view = _DRAIN_VIEW
        for _ in range(DRAIN_BATCH - 1):
            try:
                length, addr = recvfrom_into(drain_view)  # type: ignore[misc]  # drains only with a socket
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # the transport's own read reports it on the next event
            if self._is_media(drain_view, length):
                self._take(drain_view, length)
            elif classify(drain_view, length) == KIND_MALFORMED:
                self._state.malformed += 1
            else:
                self._original(bytes(drain_view[:length]), addr)

    def datagram_received_in_python(self, data: bytes, addr: tuple) -> None:
        length = len(data)
        if self._is_media(data, length):
            self._take(data, length)
            if self._recvfrom_into is not None:
                self._drain()
        elif classify(data, length) == KIND_MALFORMED:
            self._state.malformed += 1
        else:
            self._original(data, addr)

    def _admit_held(self) -> None:
        """The compiled call left a protected datagram of an SSRC outside its table."""
        rx = self.rx
        state = self._state
        ssrc = _SSRC_AT_8(self._rx_buffer)[0]
        learning = ssrc not in state.allowed
        if learning and state.refused(ssrc):
            return
        if _unprotect_held(rx) != _RX_RTP:
            return  # failed (counted in rx.failed)
        if learning:
            state.learned(ssrc)
        self.deliver(self._rx_buffer[: rx.length], int(time.time() * 1000) + NTP_EPOCH_MS)

    def hand_on(self, result: int) -> None:
        """Pass on what the compiled call left in the receiver's buffer: an unprotected
        RTP packet to its hook (an exception there is logged), a datagram of an unknown
        SSRC to the policy, another datagram to aioice.  (A ``ReceivePoller`` calls it
        for the receiver's socket too: RTP never queues behind a datagram handed to
        aioice there, since it never is.)"""
        if result == _RX_RTP:
            try:
                self.deliver(
                    self._rx_buffer[: self.rx.length], int(time.time() * 1000) + NTP_EPOCH_MS
                )
            except Exception as exc:
                handler_failed("RTP handler failed", exc)
        elif result == _RX_UNKNOWN:
            try:
                self._admit_held()
            except Exception as exc:
                handler_failed("RTP handler failed", exc)
        else:
            rx = self.rx
            self._original(self._rx_buffer[: rx.length], _address(rx.addr, rx.addrlen))

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        # the per-packet path: what _is_media and hand_on do, inline
        length = len(data)
        dtls = self._dtls
        queue = self._queue
        kind = classify(data, length)
        if kind != KIND_RTP or dtls._state is not CONNECTED or not queue.empty():
            if kind == KIND_MALFORMED:
                self._state.malformed += 1
            else:
                self._original(data, addr)
            return
        if self._state.should_drop is not None:
            self.datagram_received_in_python(data, addr)
            return
        rx = self.rx
        rx_buffer = self._rx_buffer
        result = _fast_receive(rx, data, length)
        while result:
            if result == _RX_RTP:
                try:
                    self.deliver(rx_buffer[: rx.length], int(_now() * 1000) + NTP_EPOCH_MS)
                except Exception as exc:
                    handler_failed("RTP handler failed", exc)
                if dtls._state is not CONNECTED:
                    return  # what is still in the socket takes the event's usual path
            else:
                self.hand_on(result)
                if result != _RX_OTHER:
                    if dtls._state is not CONNECTED:
                        return
                elif not queue.empty():
                    # aioice queued it: RTP behind it must queue too, to stay behind it
                    self._drain()
                    return
            result = _fast_receive(rx, _NULL, 0)


def _address(sockaddr: Any, length: int) -> tuple:
    """The ``(host, port)`` (IPv6: ``(host, port, flowinfo, scope_id)``) a ``sockaddr``
    of ``length`` bytes names, as asyncio gives a datagram's source address."""
    raw = bytes(sockaddr[0:length])
    family = int.from_bytes(raw[0:2], sys.byteorder)
    port = int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET6:
        return (
            socket.inet_ntop(socket.AF_INET6, raw[8:24]),
            port,
            int.from_bytes(raw[4:8], "big"),
            int.from_bytes(raw[24:28], sys.byteorder),
        )
    return socket.inet_ntop(socket.AF_INET, raw[4:8]), port


def stop_polling(dtls: RTCDtlsTransport) -> None:
    """Give the sockets of ``dtls``'s direct receive path back to asyncio's own readiness
    events if a poller reads them (for a test that puts something between a socket and
    aioice: the poller would read around it)."""
    state = _DIRECT.get(dtls)
    method = state.detach() if state is not None and state.detach is not None else None
    if method is not None:
        method(list(state.receivers))  # type: ignore[union-attr]  # method is only set with a state
        state.detach = None  # type: ignore[union-attr]


def drop_incoming_rtp(dtls: RTCDtlsTransport, should_drop: Callable[[], bool]) -> None:
    """Loss on purpose (the test participant's ``loss=``): discard received SRTP media
    datagrams for which ``should_drop()`` is true, as a lossy network would (DTLS, STUN
    and RTCP pass), on aiortc's path and on that of :func:`receive_directly`.  A later
    call replaces ``should_drop``."""
    state = _direct_state(dtls)
    installed = state.should_drop is not None
    state.should_drop = should_drop
    if installed:
        return
    stop_polling(dtls)  # a poller reads in C, without asking should_drop

    def lossy(receive: IceRecv) -> IceRecv:
        async def lossy_recv() -> bytes:
            while True:
                data = await receive()
                drop = state.should_drop
                is_media = classify(data, len(data)) == KIND_RTP
                if not (is_media and drop is not None and drop()):
                    return data

        return lossy_recv

    wrap_ice_recv(dtls.transport, lossy)


def note_ingress(dtls: RTCDtlsTransport, ingress: Any) -> None:
    """Count RTP received on ``dtls`` that does not parse in ``ingress`` (held weakly)."""
    _direct_state(dtls).ingress = weakref.ref(ingress)
