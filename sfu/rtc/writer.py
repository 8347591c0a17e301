"""RtpWriter: RTP and RTCP out of one DTLS transport, SRTP-protected in place and sent
with one ``sendto`` (one compiled call on the compiled forwarding path)."""

from __future__ import annotations

import builtins
import socket
import struct
import weakref
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aiortc import RTCDtlsTransport

from .internals import (
    CONNECTED,
    datagram_socket,
    is_connected,
    nominated_pair,
    srtp_context,
    tx_session,
)
from .native import FASTPATH, MAX_RTP, NATIVE, SRTP_BUFFER, address_of, srtp_ffi, srtp_protect

if FASTPATH:
    from .native import FAST_PROTECT

    _fast_send = NATIVE.lib.caucus_send
    #: What a compiled send returns when its sink is not bound.
    FAST_NOT_BOUND = NATIVE.lib.CAUCUS_NOT_BOUND

_pack_header = struct.Struct("!BBHII").pack_into


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
        self._cdata = srtp_ffi.new("char[]", SRTP_BUFFER)
        self._view = memoryview(srtp_ffi.buffer(self._cdata))
        self._length = srtp_ffi.new("int *")
        self._packets = 0
        self._bytes = 0
        self._dropped = 0
        #: The compiled path's ``caucus_sink`` (``None`` without it); kept for the
        #: writer's lifetime, since consumers' structs point to it.
        self.sink: Any = NATIVE.ffi.new("caucus_sink *") if FASTPATH else None
        #: Whether the sink is used (it cannot be for an address it cannot write).
        self.native = self.sink is not None
        on = getattr(dtls, "on", None)
        if on is not None:
            ref = weakref.ref(self)

            def state_changed() -> None:
                writer = ref()
                if writer is not None and writer._dtls._state is not CONNECTED:
                    writer.unbind()

            on("statechange", state_changed)

    @property
    def dtls(self) -> RTCDtlsTransport:
        return self._dtls

    @property
    def ready(self) -> bool:
        return self._dtls.state == "connected" and tx_session(self._dtls) is not None

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
        return self._dtls._state is CONNECTED and self._bind()

    def unbind(self) -> None:
        self._sendto = None
        if self.sink is not None:
            self.sink.srtp = NATIVE.ffi.NULL

    def _bind(self) -> bool:
        """Look up the SRTP context and the socket once the transport is connected."""
        dtls = self._dtls
        session = tx_session(dtls)
        if session is None or not is_connected(dtls):
            return False
        pair = nominated_pair(dtls)
        # the SFU gathers host candidates only, so the pair's protocol writes plain UDP
        # (no TURN framing) and its socket can be written directly
        sock = datagram_socket(getattr(pair.protocol, "transport", None)) if pair else None
        if pair is None or sock is None:
            return False
        self._session = session  # keeps the srtp_t below alive
        self._context = srtp_context(session)
        self._sendto = sock.sendto
        self._addr = pair.remote_addr
        sink = self.sink
        if sink is not None:
            address = _sockaddr(sock.family, pair.remote_addr)
            if address is None:
                self.native = False  # an address the compiled path cannot write
            else:
                sink.protect = FAST_PROTECT
                sink.fd = sock.fileno()
                sink.addr[0 : len(address)] = address
                sink.addrlen = len(address)
                sink.srtp = NATIVE.ffi.cast("void *", address_of(self._context))
        return True

    def _send(self, length: int) -> int:
        """SRTP-protect the first ``length`` bytes of the buffer in place and send them."""
        size = self._length
        size[0] = length
        if srtp_protect(self._context, self._cdata, size):
            self._dropped += 1
            return 0
        try:
            self._sendto(self._view[: size[0]], self._addr)  # type: ignore[misc]  # bound: callers check
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
            if sent == FAST_NOT_BOUND and self.bind() and self.native:
                sent = _fast_send(
                    sink, first_byte, second_byte, seq, timestamp, ssrc, tail, len(tail)
                )
            if self.native:
                return sent if sent > 0 else 0
        if self._dtls._state is not CONNECTED:
            self._sendto = None
            return 0
        if self._sendto is None and not self._bind():
            return 0
        end = 12 + len(tail)
        if end > MAX_RTP:
            self._dropped += 1
            return 0
        view = self._view
        _pack_header(view, 0, first_byte, second_byte, seq, timestamp, ssrc)
        view[12:end] = tail
        return self._send(end)

    def write_rtp(self, data: builtins.bytes) -> bool:
        """Send one serialized RTP packet (retransmissions)."""
        if self._dtls._state is not CONNECTED:
            self._sendto = None
            return False
        if self._sendto is None and not self._bind():
            return False
        end = len(data)
        if end > MAX_RTP:
            self._dropped += 1
            return False
        self._view[:end] = data
        return self._send(end) > 0

    def write_rtcp(self, data: builtins.bytes) -> bool:
        if self._dtls._state is not CONNECTED:
            self._sendto = None
            return False
        if self._sendto is None and not self._bind():
            return False
        try:
            self._sendto(self._session.protect_rtcp(data), self._addr)  # type: ignore[misc]  # bound just above
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
    address: tuple[Any, ...] = info[0][4]
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
