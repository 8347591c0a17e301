"""The ingress guard: what a peer's datagrams may reach of aiortc (see ``sfu/ingress.py``
for the checks themselves, ``sfu/README.md`` "Ingress checks" for the whole)."""

from __future__ import annotations

import struct
import weakref
from typing import Any

import pylibsrtp
from aiortc import RTCDtlsTransport, RTCPeerConnection
from aiortc.rtp import RtcpPacket, RtpPacket

from .hooks import handler_failed
from .internals import (
    IceRecv,
    header_extensions_map,
    rtp_router,
    rx_session,
    set_rx_session,
    srtp_contexts,
    wrap_ice_recv,
)
from .receive import note_ingress, refresh_ssrc_policy, set_ssrc_policy

_SSRC_AT_8 = struct.Struct("!8xI").unpack_from
_SSRC_AT_4 = struct.Struct("!4xI").unpack_from

#: The ingress (weakly: an ingress reaches its transport) of every DTLS transport guarded.
_GUARDED: weakref.WeakKeyDictionary[RTCDtlsTransport, weakref.ref[Any]] = (
    weakref.WeakKeyDictionary()
)


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
        self._srtp = srtp_contexts(session)

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
            note_ingress(dtls, ingress)
            _guard_dtls(dtls, ingress)


def _guard_dtls(dtls: RTCDtlsTransport, ingress: Any) -> None:
    router = rtp_router(dtls)
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
            packet = parse_rtp(data, header_extensions_map(dtls))
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

    dtls._handle_rtcp_data = handle_rtcp_data  # type: ignore[method-assign]  # the guard replaces aiortc's handler
    dtls._handle_rtp_data = handle_rtp_data  # type: ignore[method-assign]  # the guard replaces aiortc's handler

    # aiortc reads the first byte of whatever aioice queued: an empty datagram (from
    # anyone) raised IndexError there and failed the connection
    def nonempty(receive: IceRecv) -> IceRecv:
        async def recv_nonempty() -> bytes:
            while True:
                data = await receive()
                if data:
                    return data
                ingress.empty += 1

        return recv_nonempty

    wrap_ice_recv(dtls.transport, nonempty)

    def wrap_session() -> None:
        session = rx_session(dtls)
        if session is not None and not isinstance(session, GuardedSrtpSession):
            set_rx_session(dtls, GuardedSrtpSession(session, ingress))
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
