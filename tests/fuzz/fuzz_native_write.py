"""Fuzz target: the compiled send path (``caucus_write``, ``caucus_send`` and
``caucus_send_frame`` of ``sfu._fastpath``).

Each input drives a ``caucus_sink`` with a real libsrtp session (fresh per input) on a
real UDP socket, and a ``caucus_consumer`` whose rewrite state (offsets, newest number,
the current source's span) the input sets: arbitrary first bytes, payload types,
sequence numbers with jumps and wraps, timestamps, tails of any length and lengths that
do not match them (negative, past the tails, past the buffer, near the largest int),
frames of up to 40 packets with picture-ID offsets anywhere, the sink released, the
sink numbering packets (transport-wide sequence numbers) with any id from any number.
What leaves is read back and unprotected with the matching inbound session: each
datagram must carry the SSRC, sequence number and tail it was written with (but the
number, where the sink numbers it), the numbers in the order they were given, each
remembered in the sink's ring.  Run under ``make sanitize`` for the memory checks.
"""

from __future__ import annotations

import socket
import struct
import sys

import atheris

with atheris.instrument_imports(include=["sfu.rtc"]):
    import pylibsrtp

    from sfu.rtc import native, writer
    from sfu.rtc.internals import srtp_context

from srtp_pair import session  # beside this file

from sfu.consumer import rewrite_vp8  # the Python twin of the compiled rewrite

fast = native.NATIVE
ffi, lib = fast.ffi, fast.lib
MAX_TAIL = lib.CAUCUS_MAX_RTP - 12
LENGTHS = (-1, -(2**31), MAX_TAIL, MAX_TAIL + 1, 2**31 - 1, 2**31 - 12)
HEADER = struct.Struct("!BBHII")

TARGET = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
TARGET.bind(("127.0.0.1", 0))
TARGET.setblocking(False)
TARGET.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
SENDER = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
SENDER.setblocking(False)
ADDRESS = writer._sockaddr(socket.AF_INET, TARGET.getsockname())
SINK = ffi.new("caucus_sink *")
CONSUMER = ffi.new("caucus_consumer *")
BATCH = ffi.new("caucus_batch *")
SENT_BYTES = ffi.new("int *")
RING = ffi.new("caucus_sent[]", lib.CAUCUS_SENT_RING)


def number_at(numbering_id: int, packet: bytes) -> int:
    """Where the sink writes the transport-wide number in ``packet`` (the compiled
    ``number_packet``'s rule, as ``sfu.rtc.writer`` has it), or -1."""
    first = packet[0]
    at = 12 + ((first & 0x0F) << 2)
    if (
        not numbering_id
        or not first & 0x10
        or len(packet) < at + 8
        or packet[at : at + 2] != b"\xbe\xde"
        or not packet[at + 2] | packet[at + 3]
        or packet[at + 4] != (numbering_id << 4 | 1) & 0xFF
    ):
        return -1
    return at + 5


def element_first(
    fdp: atheris.FuzzedDataProvider, numbering_id: int, first: int, tail: bytes
) -> tuple[int, bytes]:
    """Now and then, (``first`` announcing an extension block, ``tail`` beginning with
    CSRCs and a block whose first element is the number's), as the SFU's packets are
    when the sink numbers them (random bytes seldom are)."""
    if not numbering_id or not fdp.ConsumeBool():
        return first, tail
    first |= 0x10
    csrcs = fdp.ConsumeBytes(4 * (first & 0x0F))
    words = fdp.PickValueInList([0, 1, 2, fdp.ConsumeUInt(2)])  # 0 or too many: none
    header = b"\xbe\xde" + words.to_bytes(2, "big") + bytes(((numbering_id << 4 | 1) & 0xFF,))
    return first, (csrcs + header + tail)[: lib.CAUCUS_MAX_RTP]


def unnumbered(numbering_id: int, packet: bytes) -> tuple[bytes, int]:
    """``packet``'s tail with the number's bytes zeroed, and the number (-1: none)."""
    at = number_at(numbering_id, packet)
    if at < 0:
        return packet[12:], -1
    return packet[12:at] + b"\x00\x00" + packet[at + 2 :], packet[at] << 8 | packet[at + 1]


def received(inbound: pylibsrtp.Session) -> list[bytes]:
    """What reached the target, unprotected (a repeated index is refused: skipped)."""
    got = []
    while True:
        try:
            datagram = TARGET.recv(4096)
        except BlockingIOError:
            return got
        try:
            got.append(inbound.unprotect(datagram))
        except pylibsrtp.Error:
            pass
        except ValueError:
            # pylibsrtp reads at most 1,500 bytes; the writer may send up to its buffer
            # (what it forwards is what a publisher sent, and the SFU takes at most 1,500)
            assert len(datagram) <= lib.CAUCUS_BUFFER, len(datagram)


def tail_length(fdp: atheris.FuzzedDataProvider, tail: bytes) -> int:
    """The tail's length, or one the call must refuse without reading (never one that
    runs past the bytes yet fits the buffer: the caller vouches for that much)."""
    length = fdp.PickValueInList([len(tail), *LENGTHS])
    return len(tail) if 0 <= length <= MAX_TAIL and length > len(tail) else length


@atheris.instrument_func
def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    outbound, inbound = session(False, window_size=1024), session(True, window_size=1024)
    ffi.memmove(SINK, bytes(ffi.sizeof("caucus_sink")), ffi.sizeof("caucus_sink"))
    SINK.protect = native.FAST_PROTECT
    SINK.srtp = ffi.cast("void *", native.address_of(srtp_context(outbound)))
    SINK.fd = SENDER.fileno()
    SINK.addr[0 : len(ADDRESS)] = ADDRESS
    SINK.addrlen = len(ADDRESS)
    CONSUMER.sink = SINK
    CONSUMER.ssrc = fdp.ConsumeUInt(4)
    CONSUMER.payload_type = fdp.ConsumeIntInRange(0, 127)
    CONSUMER.seq_offset = fdp.ConsumeUInt(2)
    CONSUMER.ts_offset = fdp.ConsumeUInt(4)
    CONSUMER.last_seq = fdp.ConsumeUInt(2)
    CONSUMER.source_span = fdp.ConsumeIntInRange(-(2**31), 2**31 - 1)
    CONSUMER.vp8 = fdp.ConsumeBool()  # rewrite picture IDs in hostile VP8 descriptors
    CONSUMER.pic_offset = pic_offset = fdp.ConsumeUInt(2)
    CONSUMER.tl0_offset = tl0_offset = fdp.ConsumeUInt(1)
    CONSUMER.last_pic = CONSUMER.last_tl0 = -1
    CONSUMER.packets = 0
    numbering_id = fdp.ConsumeIntInRange(0, 15)
    first_number = fdp.ConsumeUInt(2)
    if numbering_id:
        ffi.memmove(RING, bytes(ffi.sizeof(RING)), ffi.sizeof(RING))
        SINK.sent = RING
        SINK.transport_cc_id = numbering_id
        SINK.transport_seq = first_number
        SINK.probe_cluster = fdp.ConsumeIntInRange(-(2**31), 2**31 - 1)
    #: (SSRC, sequence number) -> the tails that may leave under it (None: a frame's
    #: packet, whose tail the picture ID and the stamp change)
    expected: dict[tuple[int, int], set[bytes | None]] = {}
    for _ in range(fdp.ConsumeIntInRange(1, 16)):
        op = fdp.ConsumeIntInRange(0, 3)
        first = fdp.ConsumeIntInRange(0, 255)
        seq = fdp.ConsumeUInt(2)
        timestamp = fdp.ConsumeUInt(4)
        if op == 0:  # a consumer's rewrite and send
            tail = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, lib.CAUCUS_MAX_RTP))
            first, tail = element_first(fdp, numbering_id, first, tail)
            length = tail_length(fdp, tail)
            before = CONSUMER.last_seq
            sent = lib.caucus_write(
                CONSUMER, first, fdp.ConsumeBool(), seq, timestamp, 0, tail, length
            )
            assert sent <= 12 + max(length, 0)
            if sent > 0:
                out = (seq + CONSUMER.seq_offset) & 0xFFFF
                written = tail[:length]
                if CONSUMER.vp8:  # what sfu.consumer writes in Python
                    written = rewrite_vp8(first, written, pic_offset, tl0_offset)[0]
                written = unnumbered(numbering_id, bytes((first, 0)) + bytes(10) + written)[0]
                expected.setdefault((CONSUMER.ssrc, out), set()).add(written)
            else:
                assert CONSUMER.last_seq == before
        elif op == 1:  # one packet
            tail = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, lib.CAUCUS_MAX_RTP))
            first, tail = element_first(fdp, numbering_id, first, tail)
            length = tail_length(fdp, tail)
            ssrc = fdp.ConsumeUInt(4)
            sent = lib.caucus_send(SINK, first, 96, seq, timestamp, ssrc, tail, length)
            if sent > 0:
                written = unnumbered(numbering_id, bytes((first, 0)) + bytes(10) + tail[:length])
                expected.setdefault((ssrc, seq), set()).add(written[0])
        elif op == 2:  # a frame: tails one after the other, lengths that may not match
            tails = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 6000))
            count = fdp.ConsumeIntInRange(0, 40)
            lengths = [
                fdp.PickValueInList([fdp.ConsumeIntInRange(0, 1500), *LENGTHS])
                for _ in range(count)
            ]
            ssrc = fdp.ConsumeUInt(4)
            offset = fdp.PickValueInList(
                [-1, 0, fdp.ConsumeIntInRange(0, 2000), 2**31 - 1, -(2**31)]
            )
            sent = lib.caucus_send_frame(
                SINK,
                BATCH,
                first,
                fdp.ConsumeIntInRange(0, 127),
                seq,
                timestamp,
                ssrc,
                tails,
                len(tails),
                ffi.new("int[]", lengths or [0]),
                count,
                offset,
                fdp.ConsumeUInt(2),
                fdp.ConsumeBool(),
                SENT_BYTES,
            )
            assert sent == lib.CAUCUS_NOT_BOUND or 0 <= sent <= count
            if sent > 0:
                assert SENT_BYTES[0] >= 12 * sent
                for i in range(count):
                    expected.setdefault((ssrc, (seq + i) & 0xFFFF), set()).add(None)
        else:  # the transport left "connected"
            SINK.srtp = ffi.NULL
    # nothing leaves that was not sent, and a packet carries its own tail; the numbered
    # ones their numbers in order, each remembered
    given = (SINK.transport_seq - first_number) & 0xFFFF
    previous = -1
    for packet in received(inbound):
        _, _, number, _, ssrc = HEADER.unpack_from(packet)
        tails = expected.get((ssrc, number))
        assert tails is not None, (ssrc, number)
        tail, transport_number = unnumbered(numbering_id, packet)
        if None in tails:  # a frame's packet: never numbered
            continue
        assert tail in tails, (ssrc, number)
        if transport_number >= 0:
            order = (transport_number - first_number) & 0xFFFF
            assert previous < order < given, (transport_number, first_number, given)
            previous = order
            slot = RING[transport_number & (lib.CAUCUS_SENT_RING - 1)]
            assert slot.seq == transport_number and slot.sent_us > 0
            assert slot.probe_cluster == SINK.probe_cluster
            assert slot.size == len(packet) + 16  # AES-GCM's tag
    SINK.srtp = ffi.NULL  # before the session goes
    SINK.sent = ffi.NULL


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
