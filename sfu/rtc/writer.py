"""RtpWriter: RTP and RTCP out of one DTLS transport, SRTP-protected in place and sent
with one ``sendto`` (one compiled call on the compiled forwarding path)."""

from __future__ import annotations

import builtins
import socket
import struct
import time
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

#: Packets whose send time and size a writer remembers (``caucus_sent`` slots).
SENT_RING = NATIVE.lib.CAUCUS_SENT_RING if FASTPATH else 4096
_RING_MASK = SENT_RING - 1


class SentSlot:
    """One remembered packet when the compiled path is not used: the fields of a
    ``caucus_sent``."""

    __slots__ = ("probe_cluster", "sent_us", "seq", "size")

    def __init__(self) -> None:
        self.seq = 0
        self.size = 0
        self.sent_us = 0  # 0: no packet left with this slot's number
        self.probe_cluster = 0


class Numbering:
    """A writer's transport-wide numbering when the compiled path is not used: the
    fields of its ``caucus_sink`` that number packets (the sink itself otherwise)."""

    __slots__ = ("probe_cluster", "transport_cc_id", "transport_seq")

    def __init__(self) -> None:
        self.transport_cc_id = 0
        self.transport_seq = 0
        self.probe_cluster = 0


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

    Transport-wide congestion control (draft-holmer-rmcat-transport-wide-cc-extensions-01):
    once :attr:`transport_cc_id` is set, every RTP packet this transport sends whose
    one-byte extension block begins with that element (two bytes; the consumers of a
    subscriber that negotiated it put it first, see
    :func:`sfu.rtp_header.extension_block`) gets the transport's next 16-bit number
    written there as it is protected, forwarded, retransmitted or probing alike, and
    its send time, wire size and :attr:`probe_cluster` are remembered
    (:meth:`sent`) for the subscriber's feedback to be matched against.  Packets
    without the element are sent as they are.  The compiled path and this one share one
    counter and one ring: the sink's.
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
        "_numbering",
        "_packets",
        "_sendto",
        "_sent",
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
        #: Where the transport-wide counter lives: the sink, whose compiled sends number
        #: packets too, or a :class:`Numbering`.
        self._numbering: Any = self.sink if self.sink is not None else Numbering()
        #: The ``caucus_sent`` ring (or list of :class:`SentSlot`), once numbering began.
        self._sent: Any = None
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

    @property
    def transport_cc_id(self) -> int:
        """The transport-wide sequence number's extension id negotiated with the
        subscriber (1-14), 0 while packets are not numbered."""
        return int(self._numbering.transport_cc_id)

    @transport_cc_id.setter
    def transport_cc_id(self, extension_id: int) -> None:
        if not 0 <= extension_id <= 14:
            raise ValueError(f"a one-byte header extension id is 1-14, not {extension_id}")
        if extension_id and self._sent is None:
            if self.sink is not None:
                self._sent = NATIVE.ffi.new("caucus_sent[]", SENT_RING)
                self.sink.sent = self._sent
            else:
                self._sent = [SentSlot() for _ in range(SENT_RING)]
        self._numbering.transport_cc_id = extension_id

    @property
    def next_transport_seq(self) -> int:
        """The transport-wide number the next numbered packet gets."""
        return int(self._numbering.transport_seq)

    @property
    def probe_cluster(self) -> int:
        """Remembered with every numbered packet sent from now on (0: not a probe)."""
        return int(self._numbering.probe_cluster)

    @probe_cluster.setter
    def probe_cluster(self, cluster: int) -> None:
        if not -(2**31) <= cluster < 2**31:
            raise ValueError(f"a probe cluster is a 32-bit int, not {cluster}")
        self._numbering.probe_cluster = cluster

    def sent(self, seq: int) -> tuple[float, int, int] | None:
        """(send time on ``time.monotonic()``'s clock, its size in bytes on the wire:
        the SRTP packet, its probe cluster) of the packet numbered ``seq`` (modulo
        2**16); ``None`` when no packet with that number left, or the ring has
        remembered :data:`SENT_RING` newer ones since."""
        ring = self._sent
        if ring is None:
            return None
        seq &= 0xFFFF
        slot = ring[seq & _RING_MASK]
        if slot.seq != seq or not slot.sent_us:
            return None
        return slot.sent_us / 1e6, int(slot.size), int(slot.probe_cluster)

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
        """Number (:meth:`_number`), SRTP-protect the first ``length`` bytes of the
        buffer in place and send them.  A numbered packet that does not leave keeps its
        number (the subscriber sees it as lost) but :meth:`sent` does not know it; one
        that SRTP refused gives its number to the next packet."""
        numbering = self._numbering
        number = self._number(length) if numbering.transport_cc_id else -1
        size = self._length
        size[0] = length
        if srtp_protect(self._context, self._cdata, size):
            if number >= 0:
                numbering.transport_seq = number
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
        if number >= 0:
            slot = self._sent[number & _RING_MASK]
            slot.seq = number
            slot.size = size[0]
            slot.sent_us = time.monotonic_ns() // 1000 or 1
            slot.probe_cluster = numbering.probe_cluster
        self._packets += 1
        self._bytes += length
        return length

    def _number(self, length: int) -> int:
        """The compiled ``number_packet``: when the packet in the buffer has a one-byte
        extension block (after its CSRC list) beginning with the transport-wide
        number's element (the negotiated id, two bytes), the next number is written
        there and returned; otherwise -1."""
        view = self._view
        first = view[0]
        if not first & 0x10:
            return -1
        at = 12 + ((first & 0x0F) << 2)
        numbering = self._numbering
        if (
            length < at + 8
            or view[at] != 0xBE
            or view[at + 1] != 0xDE
            or not view[at + 2] | view[at + 3]
            or view[at + 4] != numbering.transport_cc_id << 4 | 1
        ):
            return -1
        number = numbering.transport_seq
        numbering.transport_seq = (number + 1) & 0xFFFF
        view[at + 5] = number >> 8
        view[at + 6] = number & 0xFF
        return int(number)

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
        """Send one serialized RTP packet (retransmissions, probes): numbered like every
        packet when its extension block begins with the transport-wide number's element
        (its two bytes are overwritten)."""
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
