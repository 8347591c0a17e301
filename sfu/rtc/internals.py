"""Accessors of aiortc's, aioice's, asyncio's and pylibsrtp's private names.

Code outside ``sfu.rtc`` reaches those libraries' internals only through these
functions; the names they spell are listed in :data:`sfu.rtc.requirements.REQUIREMENTS`,
which a test checks on the installed versions.  (The per-packet paths of ``sfu.rtc``
itself read a few of the same attributes inline, each listed there too.)
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pylibsrtp
from aioice.ice import CandidatePair, Connection, StunProtocol
from aiortc import RTCDtlsTransport, RTCIceTransport
from aiortc.rtcdtlstransport import RtpRouter, State

#: The DTLS transport's connected state (aiortc's ``State`` enum).
CONNECTED = State.CONNECTED


def ice_connection(ice: RTCIceTransport) -> Connection:
    """aioice's ``Connection`` under aiortc's ICE transport (``RTCIceTransport._connection``)."""
    return ice._connection


def connection_of(dtls: RTCDtlsTransport) -> Connection:
    """aioice's ``Connection`` under ``dtls``'s ICE transport."""
    return dtls.transport._connection


def nominated_pair(dtls: RTCDtlsTransport) -> CandidatePair | None:
    """The nominated candidate pair of ``dtls``'s RTP component, or ``None``."""
    return dtls.transport._connection._nominated.get(1)


def nominated_pairs(connection: Connection) -> list[CandidatePair]:
    """Every nominated pair of ``connection`` (one per component)."""
    return list(connection._nominated.values())


def ice_protocols(connection: Connection) -> list[StunProtocol]:
    """The protocols of the sockets ``connection`` bound (aioice's ``_protocols``)."""
    return connection._protocols


def add_ice_protocols(connection: Connection, protocols: list[StunProtocol]) -> None:
    """Register sockets bound for ``connection`` as aioice's gathering does."""
    connection._protocols += protocols


def ice_queue(connection: Connection) -> asyncio.Queue[Any]:
    """aioice's queue of received datagrams that are not STUN (read by aiortc's DTLS task)."""
    return connection._queue


def is_connected(dtls: RTCDtlsTransport) -> bool:
    """Whether ``dtls`` is in aiortc's connected state (its ``_state``)."""
    return dtls._state is CONNECTED


def rx_session(dtls: RTCDtlsTransport) -> Any:
    """The session unprotecting what ``dtls`` receives (``_rx_srtp``; ``None`` before DTLS
    connects): pylibsrtp's ``Session`` or the ingress guard's stand-in."""
    return dtls._rx_srtp


def set_rx_session(dtls: RTCDtlsTransport, session: Any) -> None:
    dtls._rx_srtp = session


def tx_session(dtls: RTCDtlsTransport) -> pylibsrtp.Session | None:
    """The session protecting what ``dtls`` sends (``_tx_srtp``), once connected."""
    return dtls._tx_srtp


def srtp_context(session: Any) -> Any:
    """The libsrtp ``srtp_t`` (a pylibsrtp cdata) of a session (``Session._srtp[0]``)."""
    return session._srtp[0]


def srtp_contexts(session: pylibsrtp.Session) -> Any:
    """pylibsrtp's ``srtp_t *`` holder of ``session`` (``Session._srtp``)."""
    return session._srtp


def rtp_router(dtls: RTCDtlsTransport) -> RtpRouter:
    """aiortc's router of ``dtls``'s received RTP/RTCP to receivers and senders."""
    return dtls._rtp_router


def header_extensions_map(dtls: RTCDtlsTransport) -> Any:
    """aiortc's ``HeaderExtensionsMap`` for RTP received on ``dtls``."""
    return dtls._rtp_header_extensions_map


def set_srtp_profiles(dtls: RTCDtlsTransport, profiles: list[Any]) -> None:
    dtls._srtp_profiles = profiles


def selected_srtp_profile(dtls: RTCDtlsTransport) -> bytes | None:
    """The DTLS-SRTP profile OpenSSL selected on ``dtls`` (``_ssl``), if any."""
    ssl = dtls._ssl
    return ssl.get_selected_srtp_profile() if ssl is not None else None


#: What aiortc's DTLS task awaits per datagram (``RTCIceTransport._recv``).
IceRecv = Callable[[], Coroutine[Any, Any, bytes]]


def wrap_ice_recv(ice: RTCIceTransport, wrap: Callable[[IceRecv], IceRecv]) -> None:
    """Replace ``ice._recv`` (what aiortc's DTLS task awaits per datagram) by
    ``wrap(current)``."""
    ice._recv = wrap(ice._recv)


def datagram_socket(transport: Any) -> socket.socket | None:
    """The socket of an asyncio datagram transport (``_sock``), or ``None``."""
    sock = getattr(transport, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def transport_loop(transport: Any) -> asyncio.AbstractEventLoop:
    """The event loop an asyncio selector transport reads on (``_loop``)."""
    return transport._loop


def stop_reading(transport: Any, fd: int) -> None:
    """Take ``fd`` (``transport``'s socket) out of its selector event loop."""
    transport._loop._remove_reader(fd)


def resume_reading(transport: Any, fd: int) -> None:
    """Give ``fd`` back to its selector event loop, read by ``transport`` as before."""
    transport._loop._add_reader(fd, transport._read_ready)
