"""The only module that touches aiortc (and aioice) internals.

aiortc's public API decodes every received track; the SFU needs the decrypted RTP
packets instead, and needs to write packets to a sender without an encoder.  Every
private attribute or method the SFU relies on is reached through a function here, and
listed in :data:`PRIVATE_API` so that ``tests/sfu/test_aiortc_adapter.py`` fails loudly
when an aiortc upgrade changes them (aiortc is pinned to ``>=1.16,<1.17``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import os
import random
import socket
import struct
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import pylibsrtp
from aioice import stun, turn
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import CandidatePair, Connection, StunProtocol
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdtlstransport import (
    SRTP_PROFILES,
    RTCDtlsTransport,
    RtpRouter,
    SRTPProtectionProfile,
    State,
)
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.rtp import AnyRtcpPacket, RtcpPacket, RtpPacket
from pylibsrtp import _binding as _srtp_binding

from .errors import NoFreePort
from .repeated_log import RepeatedLog

try:
    from . import _fastpath as _fast
except ImportError:  # not compiled: the Python path does the same, slower
    _fast = None  # type: ignore[assignment]

_srtp_ffi = _srtp_binding.ffi
_srtp_protect = _srtp_binding.lib.srtp_protect
_srtp_unprotect = _srtp_binding.lib.srtp_unprotect
_SSRC_AT_8 = struct.Struct("!8xI").unpack_from
_SSRC_AT_4 = struct.Struct("!4xI").unpack_from
#: aiortc's arrival times count milliseconds from the NTP epoch (1900), not from 1970.
_NTP_EPOCH_MS = 2_208_988_800_000
_CONNECTED = State.CONNECTED
_pack_header = struct.Struct("!BBHII").pack_into
#: The writer's buffer; an RTP packet leaves room for the largest SRTP trailer.
_SRTP_BUFFER = 2048
_MAX_RTP = _SRTP_BUFFER - pylibsrtp.SRTP_MAX_TRAILER_LEN
#: Datagrams :func:`receive_directly` reads from a socket per readiness event, at most.
DRAIN_BATCH = 32
#: Where those reads land (one per process: everything runs on the event loop's thread,
#: and a datagram is copied out before the next read); the largest UDP datagram fits.
_DRAIN_VIEW = memoryview(bytearray(65536))

logger = logging.getLogger(__name__)


def _address_of(pointer: Any) -> int:
    """The address a pylibsrtp cdata pointer holds (to hand it to the compiled path)."""
    return int(_srtp_ffi.cast("uintptr_t", pointer))


#: The libsrtp 2 signature the compiled path calls ``srtp_protect`` with.
_SRTP_PROTECT_TYPE = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"
#: Whether the compiled forwarding path (``sfu._fastpath``) is in use: it is built when
#: Caucus is installed, and used only with pylibsrtp's libsrtp 2 ``srtp_protect``.
FASTPATH = (
    _fast is not None
    and _srtp_ffi.getctype(_srtp_ffi.typeof(_srtp_binding.lib.srtp_protect)) == _SRTP_PROTECT_TYPE
    and _fast.lib.CAUCUS_MAX_RTP == _SRTP_BUFFER - pylibsrtp.SRTP_MAX_TRAILER_LEN
)
#: Whether :func:`receive_directly` reads, unprotects and counts in C (``sfu._fastpath``'s
#: ``caucus_receive``): built, and pylibsrtp's ``srtp_unprotect`` has libsrtp 2's signature.
FASTRECEIVE = (
    FASTPATH
    and _srtp_ffi.getctype(_srtp_ffi.typeof(_srtp_binding.lib.srtp_unprotect)) == _SRTP_PROTECT_TYPE
)
if FASTRECEIVE:
    _FAST_UNPROTECT = _fast.ffi.cast(
        "caucus_protect_fn", _address_of(_srtp_ffi.addressof(_srtp_binding.lib, "srtp_unprotect"))
    )
    _fast_receive = _fast.lib.caucus_receive
    _poll = _fast.lib.caucus_poll
    _fast_route_add = _fast.lib.caucus_route_add
    _unprotect_held = _fast.lib.caucus_unprotect_held
    _RX_RTP = _fast.lib.CAUCUS_RX_RTP
    _RX_OTHER = _fast.lib.CAUCUS_RX_OTHER
    _RX_UNKNOWN = _fast.lib.CAUCUS_RX_UNKNOWN
if FASTPATH:
    _FAST_PROTECT = _fast.ffi.cast(
        "caucus_protect_fn", _address_of(_srtp_ffi.addressof(_srtp_binding.lib, "srtp_protect"))
    )
    _fast_send = _fast.lib.caucus_send
    _fast_send_frame = _fast.lib.caucus_send_frame
    _FAST_NOT_BOUND = _fast.lib.CAUCUS_NOT_BOUND

#: (class, attribute) pairs the adapter depends on; checked by the guard test.
PRIVATE_API: tuple[tuple[type, str], ...] = (
    (RTCRtpReceiver, "_handle_rtp_packet"),
    (RTCRtpReceiver, "_handle_rtcp_packet"),
    (RTCRtpSender, "_handle_rtcp_packet"),
    (RTCRtpSender, "_send_rtcp"),
    (RTCRtpSender, "_run_rtcp"),
    (RTCRtpReceiver, "_run_rtcp"),
    (RTCDtlsTransport, "_handle_rtp_data"),
    (RTCDtlsTransport, "_handle_rtcp_data"),
    (RtpRouter, "route_rtcp"),
    (RTCDtlsTransport, "_recv_next"),
    (RTCDtlsTransport, "_send_rtp"),
    (RtpRouter, "route_rtp"),
    (Connection, "get_component_candidates"),
    (Connection, "data_received"),
    (StunProtocol, "datagram_received"),
)
#: Instance attributes (created in ``__init__``/handshake) the adapter reads.
PRIVATE_INSTANCE_ATTRIBUTES: dict[type, tuple[str, ...]] = {
    RTCRtpSender: (
        "_ssrc",
        "_rtx_ssrc",
        "_RTCRtpSender__rtcp_task",
        "_RTCRtpSender__rtcp_started",
        "_RTCRtpSender__rtcp_exited",
    ),
    RTCRtpReceiver: (
        "_RTCRtpReceiver__rtcp_task",
        "_RTCRtpReceiver__rtcp_started",
        "_RTCRtpReceiver__rtcp_exited",
    ),
    RTCRtpTransceiver: ("_codecs", "_headerExtensions"),
    RTCDtlsTransport: (
        "_srtp_profiles",
        "_tx_srtp",
        "_rx_srtp",
        "_ssl",
        "_state",
        "_rtp_router",
        "_rtp_header_extensions_map",
    ),
    RtpRouter: ("ssrc_table", "payload_type_table"),
    Connection: ("_nominated", "_protocols", "_queue"),
}
#: Below aiortc, :class:`RtpWriter` also reads: aioice's ``Connection._nominated`` and
#: ``CandidatePair.protocol``/``remote_addr``; the asyncio datagram transport's ``_sock``;
#: pylibsrtp's ``Session._srtp`` and ``_binding.lib.srtp_protect`` (in-place protect).
#: :func:`keep_consent` replaces ``Connection.query_consent`` (per instance; ``connect()``
#: starts it) and uses ``Connection.build_request``/``remote_password``/``_nominated``/
#: ``close`` and ``StunProtocol.transactions``/``send_stun`` (responses are dispatched to
#: ``transactions[id].response_received(message, addr)``).
#: :func:`bind_ports_in_range` replaces ``Connection.get_component_candidates`` (per
#: instance; ``gather_candidates`` calls it once per component with the host addresses),
#: reads ``Connection.stun_server``/``turn_server``, appends to ``Connection._protocols``
#: and sets ``StunProtocol.local_candidate`` as aioice does.
#: :func:`receive_directly` replaces ``StunProtocol.datagram_received`` (per instance) on
#: the ``Connection._protocols`` of a connected DTLS transport, hands what it does not
#: take to aioice's method (which queues data in ``Connection._queue`` for
#: ``RTCDtlsTransport._recv_next``), unprotects with ``_rx_srtp._srtp`` and pylibsrtp's
#: ``srtp_unprotect``, routes with ``_rtp_router`` (``ssrc_table``, ``payload_type_table``,
#: ``route_rtp``) and parses with ``_rtp_header_extensions_map`` as
#: ``_handle_rtp_data`` does; after an RTP datagram it reads the asyncio datagram
#: transport's ``_sock`` until it is empty (``recvfrom_into``).
#: :class:`ReceivePoller` takes such a socket out of asyncio's selector and gives it back
#: with the selector event loop's ``_remove_reader``/``_add_reader`` and the datagram
#: transport's ``_loop`` and ``_read_ready``, and replaces the protocol's
#: ``connection_lost`` (per instance) to let the socket go before asyncio closes it.
#: :func:`guard_ingress` replaces ``RTCDtlsTransport._handle_rtcp_data``/``_handle_rtp_data``
#: (per instance; ``_recv_next`` awaits them with the unprotected datagram), wraps the
#: ICE transport's ``_recv`` and, once DTLS connects, the ``_rx_srtp`` session (aiortc
#: catches ``pylibsrtp.Error`` from its ``unprotect``/``unprotect_rtcp``), and routes
#: with ``_rtp_router.route_rtcp`` and the recipients' ``_handle_rtcp_packet``.
#: The guard test exercises each of them.

RtpHandler = Callable[[RtpPacket, int], None]
RtpDataHandler = Callable[[bytes, int], None]
RtcpHandler = Callable[[AnyRtcpPacket], None]

#: What a datagram is by its first two bytes (:func:`classify`; the compiled path's
#: ``caucus_classify`` returns the same numbers, and a test compares the two).
KIND_OTHER = 0  # neither RTP nor RTCP: STUN, DTLS, ... (aioice's and aiortc's)
KIND_RTP = 1
KIND_RTCP = 2  # packet types 192-208, those aiortc's SRTCP path takes
KIND_MALFORMED = 3  # RTCP packet types 209-223, or RTP too short for its header
#: SSRCs the compiled receive path checks itself (``CAUCUS_ALLOWED_SSRCS``); a policy
#: allowing more has the rest checked in Python.
ALLOWED_SSRCS = 16


def classify(data: Any, length: int) -> int:
    """The receive paths' one demultiplexing rule: RFC 7983 (a first byte of 128-191 is
    RTP or RTCP) and RFC 5761 §4 (RTCP when the second byte, the packet type, is 192-223;
    RTP otherwise).  aiortc's SRTCP path (``aiortc.rtp.is_rtcp``) takes packet types
    192-208 only and would unprotect 209-223 as RTP, which RFC 5761 forbids (they are RTP
    payload types 64-95 with the marker bit): :data:`KIND_MALFORMED`, dropped, as is RTP
    no longer than its 12-byte header (SRTP adds an authentication tag)."""
    if length < 2:
        return KIND_OTHER
    first = data[0]
    if first < 128 or first > 191:
        return KIND_OTHER
    second = data[1]
    if 191 < second < 224:
        return KIND_RTCP if second < 209 else KIND_MALFORMED
    return KIND_RTP if length > 12 else KIND_MALFORMED


class SsrcPolicyHook(Protocol):
    """What :func:`set_ssrc_policy` needs of a transport's SSRC policy."""

    dropped: int

    def allowed(self) -> tuple[int, ...]: ...

    def admit(self, ssrc: int) -> bool: ...

    def learned(self, ssrc: int) -> None: ...


def srtp_profiles(names: Iterable[str]) -> list[SRTPProtectionProfile]:
    """aiortc's profile objects for the given OpenSSL names, in the given order."""
    by_name = {p.openssl_profile.decode(): p for p in SRTP_PROFILES}
    profiles = [by_name[name] for name in names if name in by_name]
    if not profiles:
        raise ValueError(f"none of the SRTP profiles {list(names)} is available")
    return profiles


def restrict_srtp_profiles(pc: RTCPeerConnection, profiles: list[SRTPProtectionProfile]) -> None:
    """Limit every DTLS transport of ``pc`` to ``profiles``; call before DTLS starts."""
    for transceiver in pc.getTransceivers():
        for dtls in (transceiver.receiver.transport, transceiver.sender.transport):
            if dtls.state == "new":
                dtls._srtp_profiles = profiles


def negotiated_srtp_profile(dtls: RTCDtlsTransport | None) -> str | None:
    if dtls is None or dtls.state != "connected" or dtls._ssl is None:
        return None
    profile = dtls._ssl.get_selected_srtp_profile()
    return profile.decode() if profile else None


def intercept_rtp(receiver: RTCRtpReceiver, handler: RtpHandler) -> None:
    """Deliver the receiver's decrypted RTP packets to ``handler`` instead of its decoder.

    The jitter buffer, decoder, NACK generator and receiver reports of aiortc are skipped.
    ``handler`` runs synchronously; an exception is logged, never propagated, because an
    exception escaping this hook would close the whole peer connection.
    """
    receiver._handle_rtp_packet = _RtpHook(receiver, handler, None)  # type: ignore[method-assign]


def intercept_rtp_data(
    receiver: RTCRtpReceiver, handler: RtpDataHandler, track: Any = None
) -> None:
    """Like :func:`intercept_rtp`, but ``handler(data, arrival_time_ms)`` receives the
    decrypted RTP packet as ``bytes`` (header, extensions, payload, padding), so that it
    reads only the fields it needs; with :func:`receive_directly` nothing is parsed for
    it at all.  ``arrival_time_ms`` counts from 1900, as aiortc's does.

    ``track``, a compiled track counter (``caucus_track *`` of ``sfu._fastpath``) that
    ``handler`` feeds, lets :func:`receive_directly`'s compiled path count the receiver's
    packets itself once the first one went through ``handler``: the later ones of that
    SSRC and payload type never reach Python (``handler`` is not called for them)."""
    receiver._handle_rtp_packet = _RtpHook(receiver, None, handler, track)  # type: ignore[method-assign]


class _RtpHook:
    """``RTCRtpReceiver._handle_rtp_packet`` replacement set by :func:`intercept_rtp` and
    :func:`intercept_rtp_data`.  aiortc awaits it with a parsed packet; the direct
    receive path of :func:`receive_directly` calls ``on_data``/``on_packet`` itself."""

    __slots__ = ("_receiver", "on_data", "on_packet", "track")

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        on_packet: RtpHandler | None,
        on_data: RtpDataHandler | None,
        track: Any = None,
    ) -> None:
        self._receiver = receiver
        self.on_packet = on_packet
        self.on_data = on_data
        self.track = track

    async def __call__(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        try:
            if self.on_data is not None:
                extensions = self._receiver.transport._rtp_header_extensions_map
                self.on_data(packet.serialize(extensions), arrival_time_ms)
            else:
                self.on_packet(packet, arrival_time_ms)
        except Exception as exc:
            handler_failed("RTP handler failed", exc)


def receive_directly(
    pc: RTCPeerConnection, poller: ReceivePoller | None = None, rtcp: bool = True
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

    With a ``poller`` (:class:`ReceivePoller`, compiled module only) the connection's
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
    ``datagram_received`` and a :class:`ReceivePoller`'s entry) holds this state.
    :meth:`release` clears every receiver's pointer first and then lets go of it; it runs
    when the DTLS transport leaves the connected state."""

    __slots__ = (
        "allowed",
        "context",
        "failed",
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

    def hold(self, session: Any) -> None:
        """Keep ``session`` (``dtls._rx_srtp``) for the receivers that will point to it."""
        self.session = session
        self.context = session._srtp[0]

    def release(self) -> None:
        """No receiver uses the session from now on: their pointers are cleared, then the
        session is let go (libsrtp's context may be freed with it)."""
        null = _fast.ffi.NULL if _fast is not None else None
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
        array = _fast.ffi.new("uint32_t[]", list(table) or [0])
        for rx in self.receivers:
            _fast.lib.caucus_receiver_allow(rx, array, len(table))
            rx.filter = int(policy is not None)


_DIRECT_PCS: weakref.WeakSet[RTCPeerConnection] = weakref.WeakSet()
#: Keyed by DTLS transport; a state never refers to its transport (no leak).
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
    decision is made on the compiled path, in Python, and with a :class:`ReceivePoller`.
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
    dtls: RTCDtlsTransport, poller: ReceivePoller | None = None, rtcp: bool = True
) -> None:
    state = _direct_state(dtls)
    if state.installed or dtls._state is not _CONNECTED or dtls._rx_srtp is None:
        return
    state.installed = True
    state.hold(dtls._rx_srtp)
    for protocol in dtls.transport._connection._protocols:
        if not isinstance(protocol, StunProtocol):
            continue
        current = protocol.datagram_received
        if getattr(current, "_caucus_test_tool", False):
            continue  # delay_incoming: every datagram must stay late, media included
        transport = getattr(protocol, "transport", None)
        sock = getattr(transport, "_sock", None)
        if not isinstance(sock, socket.socket):
            sock = None
        received = _direct_datagram_received(dtls, state, current, sock)
        protocol.datagram_received = received  # type: ignore[method-assign]
        if poller is not None and sock is not None:
            rx = received.receiver  # type: ignore[attr-defined]
            rx.drop_rtcp = not rtcp
            poller.attach(transport, sock, rx, received.hand_on, state)  # type: ignore[attr-defined]
    detach = weakref.WeakMethod(poller.detach_all) if poller is not None else None
    receivers = list(state.receivers)

    def state_changed() -> None:
        if dtls._state is not _CONNECTED:
            method = detach() if detach is not None else None
            if method is not None:
                method(receivers)
            state.release()

    dtls.on("statechange", state_changed)


class _Attached:
    """One socket a :class:`ReceivePoller` reads: its receiver, the asyncio transport and
    socket it took from asyncio's selector, the handler of what the receiver leaves for
    Python, and the receiver's owner (its :class:`_DirectState`, which holds the SRTP
    session the receiver points into for as long as the poller may read for it)."""

    __slots__ = ("handler", "owner", "rx", "sock", "transport")

    def __init__(
        self,
        rx: Any,
        transport: Any,
        sock: socket.socket,
        handler: Callable[[int], None],
        owner: Any,
    ) -> None:
        self.rx = rx
        self.transport = transport
        self.sock = sock
        self.handler = handler
        self.owner = owner


class ReceivePoller:
    """Reads the sockets of the connections given to :func:`receive_directly` with
    ``poller=`` every ``interval`` seconds, all of them in one C call (``caucus_poll``:
    an epoll set of its own, drained without blocking).

    On each readiness event asyncio would wake the event loop, call the transport's read
    and the protocol: for a load client holding hundreds of sockets, each receiving a few
    hundred packets a second, those wake-ups and calls cost more than the packets
    themselves.  Here the sockets leave asyncio's selector; a timer drains them, the
    packets of routed tracks are counted in C with the kernel's arrival times, and what
    Python must see (a packet of a track not routed yet, STUN, DTLS) is handed to the
    connection's path one datagram at a time.  One poller per event loop.

    A registration belongs to the receiver, not to a descriptor number: the C side
    registers (and reads) a duplicate of the socket's descriptor that the receiver owns,
    with the receiver as epoll's ``data.ptr``, so removing it never touches another
    socket that was given the same number after aioice closed this one.  A socket leaves
    the set when its transport loses its connection (the protocol's ``connection_lost``,
    before asyncio closes it), and a sweep every :attr:`SWEEP_INTERVAL` seconds removes
    any whose socket was closed otherwise.
    """

    #: Seconds between two checks for sockets closed behind the poller's back.
    SWEEP_INTERVAL = 1.0

    def __init__(self, interval: float = 1 / 300) -> None:
        if not FASTRECEIVE:
            raise RuntimeError("the compiled module (sfu._fastpath) is not built")
        self.interval = interval
        self._poller = _fast.ffi.new("caucus_poller *")
        if _fast.lib.caucus_poller_open(self._poller) < 0:
            raise OSError("epoll_create1 failed")
        #: receiver address -> what the poller keeps for it
        self._attached: dict[int, _Attached] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._next = 0.0
        self._sweep_at = 0.0

    @property
    def polls(self) -> int:
        return int(self._poller.polls)

    @property
    def datagrams(self) -> int:
        return int(self._poller.datagrams)

    def attach(
        self,
        transport: Any,
        sock: socket.socket,
        rx: Any,
        handler: Callable[[int], None],
        owner: Any = None,
    ) -> None:
        """Read ``sock`` (the asyncio datagram ``transport``'s) here from now on; ``owner``
        is kept as long as the socket is read (see :class:`_Attached`)."""
        fd = sock.fileno()
        rx.fd = fd
        error = _fast.lib.caucus_poller_add(self._poller, rx)
        if error:
            logger.warning("socket left to asyncio", extra={"errno": -error})
            return
        self._attached[_address_of(rx)] = _Attached(rx, transport, sock, handler, owner)
        transport._loop._remove_reader(fd)
        protocol = transport.get_protocol()
        lost = protocol.connection_lost
        ref = weakref.ref(self)

        def connection_lost(exc: Exception | None) -> None:
            poller = ref()
            if poller is not None:
                poller.detach_all([rx])  # before asyncio closes the socket
            lost(exc)

        try:
            protocol.connection_lost = connection_lost
        except AttributeError:  # a protocol with __slots__: the sweep finds it closed
            pass
        if self._timer is None:
            loop = transport._loop
            self._next = loop.time() + self.interval
            self._sweep_at = self._next + self.SWEEP_INTERVAL
            self._timer = loop.call_at(self._next, self._tick, loop)

    def detach_all(self, receivers: Iterable[Any]) -> None:
        """Give the sockets of ``receivers`` back to asyncio (if they are still open)."""
        for rx in receivers:
            entry = self._attached.pop(_address_of(rx), None)
            _fast.lib.caucus_poller_remove(self._poller, rx)  # closes its duplicate
            if entry is None:
                continue
            fd = entry.sock.fileno()
            if fd != -1 and not entry.transport.is_closing():
                rx.fd = fd  # the event-driven path reads it again
                entry.transport._loop._add_reader(fd, entry.transport._read_ready)
            else:
                rx.fd = -1  # closed, or about to be: its number may soon be another's
        if not self._attached and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def poll(self) -> None:
        """Drain every socket that holds datagrams now."""
        poller = self._poller
        result = _poll(poller, 1)
        while result:
            entry = self._attached.get(_address_of(poller.current))
            if entry is not None:
                try:
                    entry.handler(result)
                except Exception:
                    logger.exception("receive handler failed")
            result = _poll(poller, 0)

    def sweep(self) -> None:
        """Remove the sockets closed without their transport losing its connection."""
        closed = [
            entry.rx
            for entry in self._attached.values()
            if entry.sock.fileno() == -1 or entry.transport.is_closing()
        ]
        if closed:
            self.detach_all(closed)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.poll()
        if self._timer is None:
            return  # the last socket was detached while polling
        now = loop.time()
        if now >= self._sweep_at:
            self._sweep_at = now + self.SWEEP_INTERVAL
            self.sweep()
            if self._timer is None:
                return
        self._next += self.interval
        if self._next < now:
            self._next = now + self.interval
        self._timer = loop.call_at(self._next, self._tick, loop)

    def close(self) -> None:
        """Give every socket back to asyncio and close the epoll set."""
        self.detach_all([entry.rx for entry in list(self._attached.values())])
        if self._poller.epfd >= 0:
            os.close(self._poller.epfd)
            self._poller.epfd = -1


def _direct_datagram_received(
    dtls: RTCDtlsTransport,
    state: _DirectState,
    original: Callable[[bytes, tuple], None],
    sock: socket.socket | None,
) -> Callable[[bytes, tuple], None]:
    """The ``StunProtocol.datagram_received`` of :func:`receive_directly`.

    After an RTP datagram, the socket (``sock``, when the protocol's transport exposes
    it) is read again until it is empty, :data:`DRAIN_BATCH` datagrams at most: asyncio's
    datagram transport reads one datagram per readiness event, so each queued datagram
    would otherwise cost a whole event-loop iteration (``epoll_wait`` and a callback);
    under load several are queued and this reads them in the same call.  What the drain
    reads that is not for the direct path goes to aioice's method, as before; a datagram
    :func:`classify` calls malformed is dropped (counted).

    With the compiled module (:data:`FASTRECEIVE`) one C call per event does the reading
    and unprotecting (``caucus_receive``) and counts the packets of the SSRCs routed to a
    compiled track counter (see :func:`intercept_rtp_data`); a packet it has no route for
    comes back here, unprotected, to be routed and delivered as below; a datagram of an
    SSRC the policy's table lacks (:func:`set_ssrc_policy`) comes back still protected,
    for the policy to decide; a datagram that is not RTP goes to aioice, and when aioice
    queued it the rest of the event is read in Python, so that RTP behind it queues
    behind it.
    Without it, or while a test drops packets (:func:`drop_incoming_rtp`), Python does the
    same, one datagram at a time.
    """
    queue = dtls.transport._connection._queue
    router = dtls._rtp_router
    ssrc_table = router.ssrc_table
    payload_type_table = router.payload_type_table
    route = router.route_rtp
    extensions = dtls._rtp_header_extensions_map
    if state.session is None:
        state.hold(dtls._rx_srtp)  # released when the transport leaves "connected"
    cdata = _srtp_ffi.new("char[]", _SRTP_BUFFER)
    view = memoryview(_srtp_ffi.buffer(cdata))
    buffer = _srtp_ffi.buffer(cdata)
    size = _srtp_ffi.new("int *")
    parse = RtpPacket.parse
    ssrc_of = _SSRC_AT_8
    now = time.time
    empty: tuple[()] = ()
    tasks: set[asyncio.Future[None]] = set()  # aiortc's own coroutines, unhooked receivers
    recvfrom_into = sock.recvfrom_into if sock is not None else None
    drain_view = _DRAIN_VIEW
    batch = range(DRAIN_BATCH - 1)
    rx = None
    if FASTRECEIVE:
        rx = _fast.ffi.new("caucus_receiver *")
        rx.unprotect = _FAST_UNPROTECT
        rx.srtp = _fast.ffi.cast("void *", _address_of(state.context))
        rx.fd = sock.fileno() if sock is not None else -1
        rx_buffer = _fast.ffi.buffer(rx.buf)
        state.receivers.append(rx)
        state.push_policy()
        receive = _fast_receive
        no_data = _fast.ffi.NULL

    def deliver(data: bytes, arrival_time_ms: int) -> None:
        """Route the unprotected RTP packet ``data`` to its receiver's hook."""
        packet = None
        ssrc = ssrc_of(data)[0]
        receiver = ssrc_table.get(ssrc)
        if receiver is None or receiver not in payload_type_table.get(data[1] & 0x7F, empty):
            try:
                packet = parse(data, extensions)
            except Exception as exc:  # a malformed extension raises struct.error
                ingress = _ingress_of(dtls)
                if ingress is not None:
                    ingress.malformed_rtp += 1
                    ingress.log.failure("rtp-parse", f"RTP dropped: {type(exc).__name__}: {exc}")
                return
            receiver = route(packet)
            if receiver is None:
                return
        hook = receiver._handle_rtp_packet
        if hook.__class__ is _RtpHook:
            if hook.on_data is not None:
                hook.on_data(data, arrival_time_ms)
                track = hook.track
                if (
                    rx is not None
                    and track is not None
                    and packet is None
                    and track.started
                    and track.ssrc == ssrc
                    and _fast_route_add(rx, ssrc, data[1] & 0x7F, track) == 0
                ):
                    state.tracks.append(track)
            else:
                if packet is None:
                    packet = parse(data, extensions)
                hook.on_packet(packet, arrival_time_ms)
        else:
            if packet is None:
                packet = parse(data, extensions)
            task = asyncio.ensure_future(hook(packet, arrival_time_ms=arrival_time_ms))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    def refused(ssrc: int) -> bool:
        """Whether the policy refuses a datagram of ``ssrc``, not among those allowed,
        before libsrtp sees it (counted in ``policy.dropped``)."""
        policy = state.ssrc_policy
        if policy is not None and policy.admit(ssrc):
            return False
        if policy is not None:
            policy.dropped += 1
        return True

    def learned(ssrc: int) -> None:
        """An admitted SSRC authenticated: the policy learns it, the table follows."""
        policy = state.ssrc_policy
        if policy is not None:
            policy.learned(ssrc)
            state.push_policy()

    def handle(length: int) -> None:
        """Unprotect and deliver the ``length`` bytes at the start of ``view``."""
        should_drop = state.should_drop
        if should_drop is not None and should_drop():
            return
        learning = -1  # or the admitted SSRC the policy learns once it authenticated
        if state.ssrc_policy is not None:
            ssrc = ssrc_of(view)[0]
            if ssrc not in state.allowed:
                if refused(ssrc):
                    return
                learning = ssrc
        context = state.context
        if context is None:  # released: the session may be gone
            state.failed += 1
            return
        arrival_time_ms = int(now() * 1000) + _NTP_EPOCH_MS
        size[0] = length
        if _srtp_unprotect(context, cdata, size):
            state.failed += 1
            return
        if learning >= 0:
            learned(learning)
        deliver(buffer[: size[0]], arrival_time_ms)

    def is_media(data: Any, length: int) -> bool:
        """RTP (:func:`classify`) that the direct path may take now: connected, nothing
        queued."""
        return classify(data, length) == KIND_RTP and dtls._state is _CONNECTED and queue.empty()

    def take(data: Any, length: int) -> None:
        """Copy the datagram into ``view`` and deliver it; too large: dropped."""
        if length > _SRTP_BUFFER:
            state.failed += 1
            return
        view[:length] = data[:length]
        try:
            handle(length)
        except Exception as exc:
            handler_failed("RTP handler failed", exc)

    def drain() -> None:
        for _ in batch:
            try:
                length, addr = recvfrom_into(drain_view)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # the transport's own read reports it on the next event
            if is_media(drain_view, length):
                take(drain_view, length)
            elif classify(drain_view, length) == KIND_MALFORMED:
                state.malformed += 1
            else:
                original(bytes(drain_view[:length]), addr)

    def datagram_received_in_python(data: bytes, addr: tuple) -> None:
        length = len(data)
        if is_media(data, length):
            take(data, length)
            if recvfrom_into is not None:
                drain()
        elif classify(data, length) == KIND_MALFORMED:
            state.malformed += 1
        else:
            original(data, addr)

    if rx is None:
        return datagram_received_in_python

    def admit_held() -> None:
        """The compiled call left a protected datagram of an SSRC outside its table."""
        ssrc = ssrc_of(rx_buffer)[0]
        learning = ssrc not in state.allowed
        if learning and refused(ssrc):
            return
        if _unprotect_held(rx) != _RX_RTP:
            return  # failed (counted in rx.failed)
        if learning:
            learned(ssrc)
        deliver(rx_buffer[: rx.length], int(now() * 1000) + _NTP_EPOCH_MS)

    def hand_on(result: int) -> None:
        """Pass on what the compiled call left in the receiver's buffer: an unprotected
        RTP packet to its hook (an exception there is logged), a datagram of an unknown
        SSRC to the policy, another datagram to aioice."""
        if result == _RX_RTP:
            try:
                deliver(rx_buffer[: rx.length], int(now() * 1000) + _NTP_EPOCH_MS)
            except Exception as exc:
                handler_failed("RTP handler failed", exc)
        elif result == _RX_UNKNOWN:
            try:
                admit_held()
            except Exception as exc:
                handler_failed("RTP handler failed", exc)
        else:
            original(rx_buffer[: rx.length], _address(rx.addr, rx.addrlen))

    def datagram_received(data: bytes, addr: tuple) -> None:
        length = len(data)
        if not is_media(data, length):
            if classify(data, length) == KIND_MALFORMED:
                state.malformed += 1
            else:
                original(data, addr)
            return
        if state.should_drop is not None:
            datagram_received_in_python(data, addr)
            return
        result = receive(rx, data, length)
        while result:
            hand_on(result)
            if result != _RX_OTHER:
                if dtls._state is not _CONNECTED:
                    return  # what is still in the socket takes the event's usual path
            elif not queue.empty():
                # aioice queued it: RTP behind it must queue too, to stay behind it
                drain()
                return
            result = receive(rx, no_data, 0)

    # for a ReceivePoller, which reads this receiver's socket instead; RTP never queues
    # behind a datagram handed to aioice there (it is never handed to aioice)
    datagram_received.receiver = rx  # type: ignore[attr-defined]
    datagram_received.hand_on = hand_on  # type: ignore[attr-defined]
    return datagram_received


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


def intercept_receiver_rtcp(receiver: RTCRtpReceiver, handler: RtcpHandler) -> None:
    """Also deliver RTCP addressed to the receiver (sender reports, BYE) to ``handler``."""
    original = receiver._handle_rtcp_packet

    async def handle_rtcp_packet(packet: AnyRtcpPacket) -> None:
        try:
            handler(packet)
        except Exception as exc:
            handler_failed("RTCP handler failed", exc)
        await original(packet)

    receiver._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]


def intercept_sender_rtcp(sender: RTCRtpSender, handler: RtcpHandler) -> None:
    """Route subscriber feedback (NACK, PLI, FIR, RR, REMB) for ``sender`` to ``handler``.

    aiortc's own handling (retransmission from its empty history, keyframe requests to an
    encoder that does not exist) is skipped, and its sender reports are silenced because
    its counters know nothing of forwarded packets: the SFU writes its own.
    """

    async def handle_rtcp_packet(packet: AnyRtcpPacket) -> None:
        try:
            handler(packet)
        except Exception as exc:
            handler_failed("RTCP handler failed", exc)

    async def send_rtcp(packets: list[AnyRtcpPacket]) -> None:
        return None

    sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]
    sender._send_rtcp = send_rtcp  # type: ignore[method-assign]
    _idle_rtcp_loop(sender, "_RTCRtpSender")


def _idle_rtcp_loop(owner: RTCRtpSender | RTCRtpReceiver, prefix: str) -> None:
    """Replace ``owner``'s RTCP loop, which wakes every 0.5-1.5 s to build reports, by
    one that waits to be cancelled (``stop()`` still finds its events set); a loop already
    running is cancelled.

    A silenced sender's reports are dropped when sent; a receiver whose packets never
    reach aiortc (:func:`receive_directly` counting them in C) has nothing to report.
    Each loop costs some 30-100 µs of the event loop per second: 768 senders of a worker
    forwarding 32 rooms of 4, as many receivers in the load client measuring them."""
    task = getattr(owner, f"{prefix}__rtcp_task")
    if task is not None:
        task.cancel()
        return
    started: asyncio.Event = getattr(owner, f"{prefix}__rtcp_started")
    exited: asyncio.Event = getattr(owner, f"{prefix}__rtcp_exited")

    async def run_rtcp() -> None:
        started.set()
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            pass
        exited.set()

    owner._run_rtcp = run_rtcp  # type: ignore[method-assign]


def stop_receiver_reports(receiver: RTCRtpReceiver) -> None:
    """No RTCP receiver reports from ``receiver`` (see :func:`_idle_rtcp_loop`): for
    receivers whose packets aiortc never sees."""
    _idle_rtcp_loop(receiver, "_RTCRtpReceiver")


def sender_ssrcs(sender: RTCRtpSender) -> tuple[int, int]:
    """The (media, RTX) SSRCs aiortc announces for ``sender``."""
    return sender._ssrc, sender._rtx_ssrc


def receiver_rtcp_ssrc(transceiver: RTCRtpTransceiver) -> int:
    """The SSRC used as packet sender in RTCP about received media (aiortc sets it so)."""
    return transceiver.sender._ssrc


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    return list(transceiver._codecs)


def limit_codecs(transceiver: RTCRtpTransceiver, codecs: list[RTCRtpCodecParameters]) -> None:
    """Make the next answer carry only ``codecs`` for ``transceiver``."""
    transceiver._codecs = list(codecs)


def negotiated_header_extensions(
    transceiver: RTCRtpTransceiver,
) -> list[RTCRtpHeaderExtensionParameters]:
    return list(transceiver._headerExtensions)


def new_int() -> Any:
    """A C ``int *`` (compiled calls' out-parameters); ``None`` without the compiled path."""
    return _fast.ffi.new("int *") if FASTPATH else None


def new_frame_batch() -> Any:
    """Scratch buffers for :meth:`RtpWriter.send_frame` (``caucus_batch``, 32 KiB): one
    per event loop is enough, a frame is sent in one call; not shared between threads
    (the compiled call runs without the GIL).  ``None`` without the compiled path."""
    return _fast.ffi.new("caucus_batch *") if FASTPATH else None


class FrameTemplate:
    """One frame of a publisher's clip for :meth:`RtpWriter.send_frame`: the packets'
    tails (extension block and payload, without the stamp) one after the other in C
    memory, their lengths, and what every frame of the stream shares."""

    __slots__ = (
        "batch",
        "count",
        "first_byte",
        "lengths",
        "payload_type",
        "picture_id_offset",
        "sent_bytes",
        "size",
        "ssrc",
        "stamped",
        "tails",
    )

    def __init__(
        self,
        tails: Sequence[bytes],
        *,
        batch: Any,
        first_byte: int,
        payload_type: int,
        ssrc: int,
        picture_id_offset: int | None,
        stamped: bool = True,
        sent_bytes: Any = None,
    ) -> None:
        if not FASTPATH:
            raise RuntimeError("frames are sent whole on the compiled path only")
        ffi = _fast.ffi
        joined = b"".join(tails)
        self.tails = ffi.new("unsigned char[]", joined or b"\0")
        #: the bytes in :attr:`tails`: the compiled call sends no tail that runs past them
        self.size = len(joined)
        self.lengths = ffi.new("int[]", [len(t) for t in tails] or [0])
        self.count = len(tails)
        self.batch = batch
        self.first_byte = first_byte
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.picture_id_offset = -1 if picture_id_offset is None else picture_id_offset
        self.stamped = int(stamped)
        #: where the compiled call leaves the sent packets' RTP bytes (may be shared)
        self.sent_bytes = ffi.new("int *") if sent_bytes is None else sent_bytes


class RtpWriter:
    """Writes RTP/RTCP to one DTLS transport: SRTP-protect, then one UDP ``sendto``.

    Everything is synchronous (no coroutine chain, no task switch per packet) and, on
    the forwarding path, allocation-free up to the send: the 12-byte RTP header is
    written straight into a buffer owned by the writer, the shared extensions+payload
    copied behind it, libsrtp protects that buffer in place and the socket of the
    nominated ICE pair sends it.  The SRTP context, the socket and the remote address
    are looked up once, when the transport is connected, instead of through aiortc's and
    aioice's objects for every packet.  A datagram the kernel cannot take (full send
    buffer) is dropped, as the network would.

    With the compiled forwarding path (``sfu._fastpath``, see :data:`FASTPATH`) those
    steps are one C call on :attr:`sink`, which holds the same context, socket and
    address; :class:`sfu.consumer.Consumer` writes through it directly.  The sink is
    unbound as soon as the DTLS transport leaves the connected state (its
    ``statechange``), and when a send fails for another reason than a full buffer.
    """

    __slots__ = (
        "__weakref__",
        "_addr",
        "_bytes",
        "_cdata",
        "_context",
        "_dropped",
        "_dtls",
        "_length",
        "_packets",
        "_sendto",
        "_session",
        "_view",
        "native",
        "sink",
    )

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self._dtls = dtls
        self._session: Any = None
        self._context: Any = None
        self._sendto: Callable[[Any, Any], int] | None = None
        self._addr: Any = None
        self._cdata = _srtp_ffi.new("char[]", _SRTP_BUFFER)
        self._view = memoryview(_srtp_ffi.buffer(self._cdata))
        self._length = _srtp_ffi.new("int *")
        self._packets = 0
        self._bytes = 0
        self._dropped = 0
        #: The compiled path's ``caucus_sink`` (``None`` without it); kept for the
        #: writer's lifetime, since consumers' structs point to it.
        self.sink: Any = _fast.ffi.new("caucus_sink *") if FASTPATH else None
        #: Whether the sink is used (it cannot be for an address it cannot write).
        self.native = self.sink is not None
        on = getattr(dtls, "on", None)
        if on is not None:
            ref = weakref.ref(self)

            def state_changed() -> None:
                writer = ref()
                if writer is not None and writer._dtls._state is not _CONNECTED:
                    writer.unbind()

            on("statechange", state_changed)

    @property
    def dtls(self) -> RTCDtlsTransport:
        return self._dtls

    @property
    def ready(self) -> bool:
        return self._dtls.state == "connected" and self._dtls._tx_srtp is not None

    @property
    def packets(self) -> int:
        """RTP packets sent."""
        return self._packets + (self.sink.packets if self.sink is not None else 0)

    @property
    def bytes(self) -> int:
        """RTP bytes sent (before SRTP)."""
        return self._bytes + (self.sink.bytes if self.sink is not None else 0)

    @property
    def dropped(self) -> int:
        """Datagrams given up on: SRTP failure, or the socket's send buffer was full."""
        return self._dropped + (self.sink.dropped if self.sink is not None else 0)

    def bind(self) -> bool:
        """Look up the SRTP context and the socket if the transport is connected (the
        compiled path calls this when its sink is not bound)."""
        return self._dtls._state is _CONNECTED and self._bind()

    def unbind(self) -> None:
        self._sendto = None
        if self.sink is not None:
            self.sink.srtp = _fast.ffi.NULL

    def _bind(self) -> bool:
        """Look up the SRTP context and the socket once the transport is connected."""
        dtls = self._dtls
        session = dtls._tx_srtp
        if session is None or dtls._state is not _CONNECTED:
            return False
        pair = dtls.transport._connection._nominated.get(1)
        # the SFU gathers host candidates only, so the pair's protocol writes plain UDP
        # (no TURN framing) and its socket can be written directly
        if pair is None or getattr(pair.protocol, "transport", None) is None:
            return False
        sock = pair.protocol.transport._sock
        self._session = session  # keeps the srtp_t below alive
        self._context = session._srtp[0]
        self._sendto = sock.sendto
        self._addr = pair.remote_addr
        sink = self.sink
        if sink is not None:
            address = _sockaddr(sock.family, pair.remote_addr)
            if address is None:
                self.native = False  # an address the compiled path cannot write
            else:
                sink.protect = _FAST_PROTECT
                sink.fd = sock.fileno()
                sink.addr[0 : len(address)] = address
                sink.addrlen = len(address)
                sink.srtp = _fast.ffi.cast("void *", _address_of(self._context))
        return True

    def _send(self, length: int) -> int:
        """SRTP-protect the first ``length`` bytes of the buffer in place and send them."""
        size = self._length
        size[0] = length
        if _srtp_protect(self._context, self._cdata, size):
            self._dropped += 1
            return 0
        try:
            self._sendto(self._view[: size[0]], self._addr)
        except BlockingIOError:
            self._dropped += 1
            return 0
        except OSError:
            self.unbind()  # socket gone: look it up again (or stop) next time
            self._dropped += 1
            return 0
        self._packets += 1
        self._bytes += length
        return length

    def forward(
        self, first_byte: int, second_byte: int, seq: int, timestamp: int, ssrc: int, tail
    ) -> int:
        """Send a 12-byte RTP header followed by ``tail`` (extension block + payload).

        Returns the RTP packet's length, or 0 when nothing was sent.
        """
        if self.native:
            sink = self.sink
            if tail.__class__ is not bytes:
                tail = bytes(tail)  # the compiled call takes bytes, not a mutable buffer
            sent = _fast_send(sink, first_byte, second_byte, seq, timestamp, ssrc, tail, len(tail))
            if sent == _FAST_NOT_BOUND and self.bind() and self.native:
                sent = _fast_send(
                    sink, first_byte, second_byte, seq, timestamp, ssrc, tail, len(tail)
                )
            if self.native:
                return sent if sent > 0 else 0
        if self._dtls._state is not _CONNECTED:
            self._sendto = None
            return 0
        if self._sendto is None and not self._bind():
            return 0
        end = 12 + len(tail)
        if end > _MAX_RTP:
            self._dropped += 1
            return 0
        view = self._view
        _pack_header(view, 0, first_byte, second_byte, seq, timestamp, ssrc)
        view[12:end] = tail
        return self._send(end)

    def send_frame(self, frame: FrameTemplate, seq: int, timestamp: int, picture_id: int) -> int:
        """Send one frame of a publisher in one compiled call (``caucus_send_frame``, see
        :class:`FrameTemplate`): its packets numbered from ``seq``, the marker bit and the
        stamp on the last, ``picture_id`` written where the template says.  Returns the
        packets sent (their RTP bytes in ``frame.sent_bytes[0]``).  Only on the compiled
        path (:attr:`native`); :meth:`forward` sends packet by packet otherwise."""
        sink = self.sink
        for _attempt in range(2):  # once more after binding a sink that was not bound
            sent = _fast_send_frame(
                sink,
                frame.batch,
                frame.first_byte,
                frame.payload_type,
                seq,
                timestamp,
                frame.ssrc,
                frame.tails,
                frame.size,
                frame.lengths,
                frame.count,
                frame.picture_id_offset,
                picture_id,
                frame.stamped,
                frame.sent_bytes,
            )
            if sent != _FAST_NOT_BOUND or not (self.bind() and self.native):
                break
        return sent if sent > 0 else 0

    def write_rtp(self, data: bytes) -> bool:
        """Send one serialized RTP packet (retransmissions)."""
        if self._dtls._state is not _CONNECTED:
            self._sendto = None
            return False
        if self._sendto is None and not self._bind():
            return False
        end = len(data)
        if end > _MAX_RTP:
            self._dropped += 1
            return False
        self._view[:end] = data
        return self._send(end) > 0

    def write_rtcp(self, data: bytes) -> bool:
        if self._dtls._state is not _CONNECTED:
            self._sendto = None
            return False
        if self._sendto is None and not self._bind():
            return False
        try:
            self._sendto(self._session.protect_rtcp(data), self._addr)
        except (OSError, pylibsrtp.Error):
            return False
        return True


def _sockaddr(family: int, remote: tuple) -> bytes | None:
    """``remote`` as the ``struct sockaddr_in``/``sockaddr_in6`` bytes ``sendto`` takes."""
    try:
        info = socket.getaddrinfo(
            remote[0], remote[1], family, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST
        )
    except (OSError, UnicodeError):
        return None
    address = info[0][4]
    if family == socket.AF_INET:
        return (
            struct.pack("=H", socket.AF_INET)
            + struct.pack("!H", address[1])
            + socket.inet_pton(socket.AF_INET, address[0])
            + bytes(8)
        )
    if family == socket.AF_INET6:
        host = address[0].split("%", 1)[0]
        return (
            struct.pack("=H", socket.AF_INET6)
            + struct.pack("!HI", address[1], address[2])
            + socket.inet_pton(socket.AF_INET6, host)
            + struct.pack("=I", address[3])
        )
    return None


def keep_consent(pc: RTCPeerConnection, interval: float, expiry: float) -> None:
    """Check consent to send (RFC 7675) on ``pc``'s ICE connections without losing late answers.

    aioice's own check is one request with a 0.5 s timeout and no retransmission; six
    unanswered checks in a row close the connection.  Its answer, though, waits in the
    pair's socket behind every datagram received before it: on a publish connection under
    CPU load the SFU can be seconds behind on incoming media, every answer then arrives
    after its request has been forgotten, and a connection carrying media is closed ~30 s
    after it was established.  RFC 7675 counts an answer to any request of the last
    ``expiry`` seconds: here a request is sent every ``interval`` seconds (randomised by
    ±20 %), its answer is accepted for ``expiry`` seconds, and consent expires (the
    connection closes) only when no authenticated answer from the pair's remote address
    arrived for ``expiry`` seconds.  Call before ICE completes; later calls do nothing.
    """
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport._connection
        if not isinstance(connection.__dict__.get("query_consent"), _ConsentCheck):
            connection.query_consent = _ConsentCheck(connection, interval, expiry)


class _ConsentCheck:
    """``Connection.query_consent`` replacement; see :func:`keep_consent`."""

    def __init__(self, connection: Connection, interval: float, expiry: float) -> None:
        self._connection = connection
        self._interval = interval
        self._expiry = expiry
        #: Outstanding requests: transaction id -> (sent at, protocol, pair).
        self._sent: dict[bytes, tuple[float, StunProtocol, CandidatePair]] = {}
        self._closing: asyncio.Future[None] | None = None
        self.last_answer = 0.0
        self.requests = 0
        self.answers = 0

    async def __call__(self) -> None:
        connection = self._connection
        self.last_answer = time.monotonic()
        try:
            while True:
                await asyncio.sleep(self._interval * (0.8 + 0.4 * random.random()))
                now = time.monotonic()
                self._forget(now - self._expiry)
                if now - self.last_answer >= self._expiry:
                    logger.info(
                        "consent to send expired: %d requests, last answer %.1f s ago",
                        self.requests,
                        now - self.last_answer,
                    )
                    break
                key = connection.remote_password.encode("utf8")
                for pair in list(connection._nominated.values()):
                    request = connection.build_request(pair, nominate=False)
                    request.add_message_integrity(key)
                    protocol = pair.protocol
                    protocol.transactions[request.transaction_id] = _ConsentAnswer(self)
                    self._sent[request.transaction_id] = (now, protocol, pair)
                    self.requests += 1
                    try:
                        protocol.send_stun(request, pair.remote_addr)
                    except (AttributeError, OSError):
                        pass  # socket closing; the next round (or close()) settles it
        finally:
            self._forget(float("inf"))
        # as aioice does on expiry; close() cancels this task, which has finished by then
        self._closing = asyncio.ensure_future(connection.close())

    def answered(self, transaction_id: bytes, message: stun.Message, addr: tuple) -> None:
        sent = self._sent.get(transaction_id)
        if sent is None or message.message_class != stun.Class.RESPONSE:
            return
        pair = sent[2]
        if tuple(addr[:2]) != tuple(pair.remote_addr):
            return
        if not message.check_message_integrity(self._connection.remote_password.encode("utf8")):
            return
        self.answers += 1
        self.last_answer = time.monotonic()
        self._sent.pop(transaction_id, None)
        sent[1].transactions.pop(transaction_id, None)

    def _forget(self, before: float) -> None:
        for transaction_id, (sent_at, protocol, _pair) in list(self._sent.items()):
            if sent_at <= before:
                del self._sent[transaction_id]
                protocol.transactions.pop(transaction_id, None)


class _ConsentAnswer:
    """Stands in ``StunProtocol.transactions`` for one consent request."""

    __slots__ = ("_check",)

    def __init__(self, check: _ConsentCheck) -> None:
        self._check = check

    def response_received(self, message: stun.Message, addr: tuple) -> None:
        self._check.answered(message.transaction_id, message, addr)


def consent_stats(pc: RTCPeerConnection) -> tuple[int, int] | None:
    """(requests sent, answers accepted) by :func:`keep_consent` on ``pc``'s first ICE
    connection, or ``None`` when it is not installed."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        return None
    connection = transceivers[0].receiver.transport.transport._connection
    check = connection.__dict__.get("query_consent")
    return (check.requests, check.answers) if isinstance(check, _ConsentCheck) else None


def bind_ports_in_range(pc: RTCPeerConnection, port_min: int, port_max: int) -> None:
    """Make ``pc``'s ICE connections bind their host candidates to UDP ports within
    ``port_min``..``port_max`` (inclusive) instead of ports the system chooses.

    aioice binds one socket per host address and component to port 0.  The replacement
    gathering step binds each address to a free port of the range, trying the ports in a
    random order and skipping those in use, and raises :class:`~sfu.errors.NoFreePort`
    when every port of the range is taken on an address (the sockets it bound so far are
    closed).  Candidates are otherwise aioice's: host type, same priority and foundation,
    same receive buffer size; an address that cannot be bound for another reason is
    skipped, as aioice does.  Only host candidates are gathered (the SFU has no STUN or
    TURN server).  Call before the local description is set (gathering starts then);
    later calls do nothing.
    """
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport._connection
        if isinstance(connection.__dict__.get("get_component_candidates"), _PortRangeGathering):
            continue
        if connection.stun_server is not None or connection.turn_server is not None:
            raise ValueError("a UDP port range applies to host candidates only")
        connection.get_component_candidates = _PortRangeGathering(connection, port_min, port_max)


class _PortRangeGathering:
    """``Connection.get_component_candidates`` replacement; see :func:`bind_ports_in_range`."""

    def __init__(self, connection: Connection, port_min: int, port_max: int) -> None:
        if not 0 < port_min <= port_max <= 65535:
            raise ValueError(f"invalid UDP port range {port_min}-{port_max}")
        self._connection = connection
        self._min = port_min
        self._max = port_max

    async def __call__(
        self,
        component: int,
        addresses: list[str],
        timeout: int = 5,  # noqa: ASYNC109  # aioice's signature; bounds STUN/TURN, unused
    ) -> list[Candidate]:
        candidates: list[Candidate] = []
        bound: list[StunProtocol] = []
        try:
            for address in addresses:
                protocol = await self._bind(address)
                if protocol is None:
                    continue
                bound.append(protocol)
                host, port = protocol.transport.get_extra_info("sockname")[:2]
                protocol.local_candidate = Candidate(
                    foundation=candidate_foundation("host", "udp", host),
                    component=component,
                    transport="udp",
                    priority=candidate_priority(component, "host"),
                    host=host,
                    port=port,
                    type="host",
                )
                candidates.append(protocol.local_candidate)
        except BaseException:
            for protocol in bound:
                await protocol.close()
            raise
        self._connection._protocols += bound
        return candidates

    def _ports(self) -> Iterator[int]:
        """Every port of the range once, in a random order: a random start and a random
        step coprime with the range's size (no list of the whole range is built)."""
        size = self._max - self._min + 1
        start = random.randrange(size)
        step = 1
        if size > 2:
            step = random.randrange(1, size)
            while math.gcd(step, size) != 1:
                step = random.randrange(1, size)
        for i in range(size):
            yield self._min + (start + i * step) % size

    async def _bind(self, address: str) -> StunProtocol | None:
        loop = asyncio.get_running_loop()
        connection = self._connection
        for port in self._ports():
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: StunProtocol(connection), local_addr=(address, port)
                )
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    continue
                logger.info("could not bind to %s - %s", address, exc)
                return None
            sock = transport.get_extra_info("socket")
            try:
                if sock is not None:
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_RCVBUF, turn.UDP_SOCKET_BUFFER_SIZE
                    )
            except OSError as exc:
                await protocol.close()
                logger.info("could not bind to %s - %s", address, exc)
                return None
            return protocol
        raise NoFreePort(self._min, self._max)


def local_addresses(pc: RTCPeerConnection) -> list[tuple[str, int]]:
    """The (address, port) of every socket ``pc``'s ICE connections have bound."""
    seen: set[int] = set()
    addresses = []
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport._connection
        if id(connection) in seen:
            continue
        seen.add(id(connection))
        for protocol in connection._protocols:
            addresses.append(tuple(protocol.transport.get_extra_info("sockname")[:2]))
    return addresses


def delay_incoming(dtls: RTCDtlsTransport, seconds: float | None) -> None:
    """Test tool: deliver every datagram arriving on the nominated pair's socket (STUN
    included) ``seconds`` late, in order, as a receiver that is behind on its socket's
    queue would; ``None`` drops them all (a peer that went away)."""
    protocol = dtls.transport._connection._nominated[1].protocol
    receive = protocol.datagram_received
    loop = asyncio.get_running_loop()

    def late(data: bytes, addr: tuple) -> None:
        if seconds is not None:
            loop.call_later(seconds, receive, data, addr)

    late._caucus_test_tool = True  # type: ignore[attr-defined]  # see _install_direct
    protocol.datagram_received = late  # type: ignore[method-assign]


class IdleTrack(MediaStreamTrack):
    """A track that never yields a frame: it gives a forwarding sender the track aiortc
    requires, while the sender's own RTP loop waits forever."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.__never: asyncio.Future[Any] | None = None

    async def recv(self) -> Any:
        if self.__never is None:
            self.__never = asyncio.get_running_loop().create_future()
        return await self.__never

    def stop(self) -> None:
        super().stop()
        if self.__never is not None and not self.__never.done():
            self.__never.cancel()


def drop_incoming_rtp(dtls: RTCDtlsTransport, should_drop: Callable[[], bool]) -> None:
    """Test tool: discard received SRTP media datagrams for which ``should_drop()`` is
    true, as a lossy network would (DTLS, STUN and RTCP pass), on aiortc's path and on
    that of :func:`receive_directly`."""
    _direct_state(dtls).should_drop = should_drop
    ice = dtls.transport
    receive = ice._recv

    async def lossy_recv() -> bytes:
        while True:
            data = await receive()
            is_media = classify(data, len(data)) == KIND_RTP
            if not (is_media and should_drop()):
                return data

    ice._recv = lossy_recv


def outgoing_srtp(dtls: RTCDtlsTransport) -> pylibsrtp.Session:
    """Benchmark tool: the session protecting what ``dtls`` sends (once connected)."""
    return dtls._tx_srtp


def nominated_local_address(dtls: RTCDtlsTransport) -> tuple[str, int]:
    """Benchmark tool: the (address, port) of the socket of ``dtls``'s nominated pair."""
    pair = dtls.transport._connection._nominated[1]
    return tuple(pair.protocol.transport.get_extra_info("sockname")[:2])


# --- ingress guards: what a peer's datagrams may reach (see sfu/ingress.py) --------------

#: Failures of the SFU's own handlers, which a peer may be able to repeat per packet.
_handler_failures = RepeatedLog(logger)
#: ``Ingress`` objects (weakly: an ingress reaches its transport, and a value that
#: reaches its key keeps both alive for ever) per DTLS transport guarded by
#: :func:`guard_ingress`.
_GUARDED: weakref.WeakKeyDictionary[RTCDtlsTransport, weakref.ref[Any]] = (
    weakref.WeakKeyDictionary()
)


def _ingress_of(dtls: RTCDtlsTransport) -> Any:
    ref = _GUARDED.get(dtls)
    return ref() if ref is not None else None


def handler_failed(kind: str, exc: BaseException) -> None:
    """Log a failure of a per-packet handler: one line per interval, with a count."""
    _handler_failures.failure(kind, f"{kind}: {type(exc).__name__}: {exc}")


class GuardedSrtpSession:
    """Stands in for a DTLS transport's receiving ``pylibsrtp.Session`` (``_rx_srtp``)
    so that aiortc's own receive path applies the transport's ingress checks before
    libsrtp sees a datagram: its length, and its SSRC (RTP: bytes 8-11; RTCP: the
    sender's, bytes 4-7, both in clear text).  A refused datagram raises
    ``pylibsrtp.Error``, which aiortc drops quietly; so is one libsrtp calls too long
    (pylibsrtp raises ``ValueError`` for it, which aiortc does not catch: the
    connection would fail).  ``_srtp`` is the real session's (the direct receive path
    unprotects with it)."""

    __slots__ = ("_ingress", "_session", "_srtp")

    def __init__(self, session: pylibsrtp.Session, ingress: Any) -> None:
        self._session = session
        self._ingress = ingress
        self._srtp = session._srtp

    def _check_length(self, data: bytes, header: int) -> None:
        ingress = self._ingress
        if len(data) > ingress.max_datagram or len(data) < header:
            ingress.oversize += len(data) >= header
            raise pylibsrtp.Error("datagram dropped: length")

    def unprotect(self, data: bytes) -> bytes:
        self._check_length(data, 12)
        policy = self._ingress.ssrc
        ssrc = _SSRC_AT_8(data)[0]
        known = policy.is_allowed(ssrc)
        if not known and not policy.admit(ssrc):
            policy.dropped += 1
            raise pylibsrtp.Error("datagram dropped: unknown SSRC")
        try:
            plain = self._session.unprotect(data)
        except ValueError as exc:
            raise pylibsrtp.Error(str(exc)) from exc
        if not known:
            policy.learned(ssrc)
        return plain

    def unprotect_rtcp(self, data: bytes) -> bytes:
        self._check_length(data, 8)
        policy = self._ingress.ssrc
        ssrc = _SSRC_AT_4(data)[0]
        if not policy.admit_rtcp(ssrc):
            raise pylibsrtp.Error("datagram dropped: unknown RTCP sender")
        try:
            plain = self._session.unprotect_rtcp(data)
        except ValueError as exc:
            raise pylibsrtp.Error(str(exc)) from exc
        policy.learned_rtcp(ssrc)
        return plain

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def guard_ingress(pc: RTCPeerConnection, ingress: Any) -> None:
    """Apply ``ingress`` (an :class:`sfu.ingress.Ingress`) to every DTLS transport of
    ``pc`` (call again after transceivers were added; a transport is guarded once):

    * its receiving SRTP session is wrapped in a :class:`GuardedSrtpSession` as soon as
      DTLS connects (before any datagram can reach it), and the direct receive path gets
      the same SSRC policy (:func:`set_ssrc_policy`);
    * decrypted RTCP goes through ``ingress.rtcp.check`` before aiortc parses it; what
      does not parse or route is dropped and counted, never raised (aiortc would close
      the connection);
    * RTP that aiortc parses and fails (a malformed header extension raises
      ``struct.error``, which aiortc does not catch) is dropped and counted.
    """
    for transceiver in pc.getTransceivers():
        for dtls in {transceiver.receiver.transport, transceiver.sender.transport}:
            if dtls is None or dtls in _GUARDED:
                continue
            _GUARDED[dtls] = weakref.ref(ingress)
            _guard_dtls(dtls, ingress)


def _guard_dtls(dtls: RTCDtlsTransport, ingress: Any) -> None:
    router = dtls._rtp_router
    parse_rtcp = RtcpPacket.parse
    parse_rtp = RtpPacket.parse
    log = ingress.log

    async def handle_rtcp_data(data: bytes) -> None:
        checked = ingress.rtcp.check(data)
        if checked is None:
            return
        try:
            packets = parse_rtcp(checked)
        except Exception as exc:
            ingress.malformed_rtcp += 1
            log.failure("rtcp-parse", f"RTCP dropped: {type(exc).__name__}: {exc}")
            return
        for packet in packets:
            try:
                recipients = router.route_rtcp(packet)
            except Exception as exc:
                ingress.malformed_rtcp += 1
                log.failure("rtcp-route", f"RTCP dropped: {type(exc).__name__}: {exc}")
                continue
            for recipient in recipients:
                try:
                    await recipient._handle_rtcp_packet(packet)
                except Exception as exc:
                    handler_failed("RTCP handler failed", exc)

    async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        try:
            packet = parse_rtp(data, dtls._rtp_header_extensions_map)
        except Exception as exc:
            ingress.malformed_rtp += 1
            log.failure("rtp-parse", f"RTP dropped: {type(exc).__name__}: {exc}")
            return
        receiver = router.route_rtp(packet)
        if receiver is not None:
            try:
                await receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)
            except Exception as exc:
                handler_failed("RTP handler failed", exc)

    dtls._handle_rtcp_data = handle_rtcp_data  # type: ignore[method-assign]
    dtls._handle_rtp_data = handle_rtp_data  # type: ignore[method-assign]

    # aiortc reads the first byte of whatever aioice queued: an empty datagram (from
    # anyone) raised IndexError there and failed the connection
    ice = dtls.transport
    receive = ice._recv

    async def recv_nonempty() -> bytes:
        while True:
            data = await receive()
            if data:
                return data
            ingress.empty += 1

    ice._recv = recv_nonempty

    def wrap_session() -> None:
        session = dtls._rx_srtp
        if session is not None and not isinstance(session, GuardedSrtpSession):
            dtls._rx_srtp = GuardedSrtpSession(session, ingress)
            set_ssrc_policy(dtls, ingress.ssrc)

    dtls.on("statechange", wrap_session)
    wrap_session()
    # weakly: the policy is held by the transport's direct receive state, keyed weakly
    # by this DTLS transport, which a strong reference here would keep alive for ever
    dtls_ref = weakref.ref(dtls)

    def policy_changed() -> None:
        target = dtls_ref()
        if target is not None:
            refresh_ssrc_policy(target)

    ingress.ssrc.on_change = policy_changed
