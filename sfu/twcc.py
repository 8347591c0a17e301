"""Transport-wide congestion control feedback: the RTCP packet a receiver sends back
(draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1, RTPFB PT 205, FMT 15), read
and written.

The SFU stamps a 16-bit transport-wide sequence number (header extension
:data:`TRANSPORT_CC_URI`) on every packet it sends to a subscriber; the subscriber
answers with this feedback, saying which of those packets arrived and when, on its own
clock, and the SFU's send-side estimator learns the subscriber's downlink from it.

The packet::

    V=2 P FMT=15 | PT=205 | length
    SSRC of packet sender
    SSRC of media source
    base sequence number (16) | packet status count (16)
    reference time (24, signed, x 64 ms) | feedback packet count (8)
    packet status chunks (16 bits each) ... recv deltas (8 or 16 bits each) ... zero padding

A status is one of: not received (0), received with a small delta (1: one byte,
unsigned, 0-63.75 ms), received with a large or negative delta (2: two bytes, signed,
-8192-8191.75 ms); deltas count 250 µs ticks, the first from the reference time and each
next from the previous received packet.  A chunk is a run of one status (run-length:
``0 S S L*13``, up to 8191) or a vector of 14 one-bit statuses (``1 0``: not received or
small delta) or 7 two-bit statuses (``1 1``).

Decisions where the draft leaves room (see :func:`parse_feedback` and
:func:`build_feedbacks`):

* status 3 is reserved by the draft; a packet that gives it to a packet it reports is
  malformed (libwebrtc's parser refuses such a packet too);
* the reference time is a signed 24-bit count of 64 ms: arrival times come back as the
  sender wrote them modulo :data:`REFERENCE_WRAP_US` (2**24 x 64 ms, about 12.4 days),
  in the signed range; compare two feedbacks' times modulo it (libwebrtc writes its
  clock modulo the wrap, so a browser up for more than 6.2 days writes "negative" ones);
* the first packets a feedback reports may be lost: the reference time is taken from
  the first received one (libwebrtc's ``RemoteEstimatorProxy`` sets the base sequence
  number to the first number not reported yet, received or not);
* written packets end in zero padding without the P bit (the draft's figure); read ones
  may carry either.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from .rtp_header import TRANSPORT_CC_URI

__all__ = [
    "TRANSPORT_CC_URI",
    "FeedbackError",
    "TransportFeedback",
    "build_feedback",
    "build_feedbacks",
    "parse_feedback",
]

#: RTCP packet type (transport layer feedback, RFC 4585) and its feedback message type.
PT_RTPFB = 205
FMT_TRANSPORT_CC = 15

#: A recv delta counts these; the reference time counts 256 of them (64 ms).
DELTA_TICK_US = 250
REFERENCE_TICK_US = 64_000
#: Reference times (and so arrival times) are read and written modulo this.
REFERENCE_WRAP_US = REFERENCE_TICK_US << 24

#: Statuses one feedback may report when read (a parse argument) and when written (a
#: limit of :func:`build_feedbacks`): libwebrtc sends every 50-250 ms, which at the
#: highest packet rates a subscriber sees is a few hundred packets.
MAX_STATUSES = 4096

NOT_RECEIVED = 0
SMALL_DELTA = 1
LARGE_DELTA = 2
RESERVED = 3

#: Longest run one run-length chunk can say; statuses per one- and two-bit vector chunk.
MAX_RUN = 0x1FFF
ONE_BIT_SYMBOLS = 14
TWO_BIT_SYMBOLS = 7

#: RTCP header (4) + sender and media SSRC (8) + base, count, reference time, fb count (8).
HEADER_SIZE = 20
#: The RTCP header, both SSRCs, base sequence number, status count, reference time and
#: feedback count.
_FIXED = struct.Struct("!BBHIIHHI")
_LARGE = struct.Struct("!h")
_MAX_SMALL_TICKS = 0xFF
_MIN_LARGE_TICKS = -0x8000
_MAX_LARGE_TICKS = 0x7FFF


class FeedbackError(ValueError):
    """a malformed transport feedback packet"""


@dataclass(frozen=True, slots=True)
class TransportFeedback:
    """One transport feedback packet, read.

    ``packets`` holds one ``(sequence number, arrival µs)`` per status, in sequence
    order from ``base_seq`` (wrapping past 65535): the arrival time on the receiver's
    clock (``reference_time_us`` plus the deltas so far), or ``None`` for a packet
    reported as not received."""

    sender_ssrc: int
    media_ssrc: int
    base_seq: int
    feedback_count: int
    reference_time_us: int
    packets: tuple[tuple[int, int | None], ...]


def parse_feedback(part: bytes, *, max_statuses: int = MAX_STATUSES) -> TransportFeedback:
    """Read one transport feedback packet: ``part`` is the whole RTCP packet, header
    included, exactly as long as its length field says (one part of a compound).

    Raises :class:`FeedbackError` (and nothing else) for anything malformed: another
    version, packet type or FMT; a length field that disagrees with ``part``; padding
    (P bit) of zero bytes or longer than the packet's body; a status count of zero or
    above ``max_statuses`` (refused before anything is allocated for it); chunks
    running past the end before every status is said; a reserved status (3) given to
    a reported packet; fewer delta bytes than the statuses need; anything after the
    deltas but up to three zero bytes.  Statuses a last chunk says beyond the count
    (a run longer than needed, a vector's tail) describe no packet and are ignored.
    """
    size = len(part)
    if size < HEADER_SIZE + 2:
        raise FeedbackError("shorter than a transport feedback with one chunk")
    first, packet_type, words, sender, media, base, count, reference = _FIXED.unpack_from(part)
    if first >> 6 != 2:
        raise FeedbackError("RTCP version is not 2")
    if packet_type != PT_RTPFB or first & 0x1F != FMT_TRANSPORT_CC:
        raise FeedbackError("not a transport feedback (RTPFB, FMT 15)")
    if (words + 1) * 4 != size:
        raise FeedbackError("length field disagrees with the packet's size")
    end = size
    if first & 0x20:
        padding = part[size - 1]
        if not padding or padding > size - HEADER_SIZE:
            raise FeedbackError("padding length is invalid")
        end -= padding
    if not count:
        raise FeedbackError("packet status count is zero")
    if count > max_statuses:
        raise FeedbackError(f"packet status count {count} is above {max_statuses}")
    feedback_count = reference & 0xFF
    ticks = reference >> 8
    if ticks & 0x800000:
        ticks -= 1 << 24

    statuses = bytearray(count)
    filled = 0
    pos = HEADER_SIZE
    while filled < count:
        if pos + 2 > end:
            raise FeedbackError("status chunks end before every status is said")
        chunk = part[pos] << 8 | part[pos + 1]
        pos += 2
        if not chunk & 0x8000:  # run-length
            symbol = chunk >> 13
            run = min(chunk & MAX_RUN, count - filled)
            if symbol == RESERVED and run:
                raise FeedbackError("reserved status symbol 3 in a run")
            if symbol:
                statuses[filled : filled + run] = bytes((symbol,)) * run
            filled += run
        elif not chunk & 0x4000:  # one-bit vector: not received or small delta
            take = min(ONE_BIT_SYMBOLS, count - filled)
            for i in range(take):
                statuses[filled + i] = chunk >> (13 - i) & 1
            filled += take
        else:  # two-bit vector
            take = min(TWO_BIT_SYMBOLS, count - filled)
            for i in range(take):
                symbol = chunk >> (12 - 2 * i) & 3
                if symbol == RESERVED:
                    raise FeedbackError("reserved status symbol 3 in a vector")
                statuses[filled + i] = symbol
            filled += take

    arrival = ticks * REFERENCE_TICK_US
    packets: list[tuple[int, int | None]] = []
    for i, status in enumerate(statuses):
        seq = (base + i) & 0xFFFF
        if status == NOT_RECEIVED:
            packets.append((seq, None))
            continue
        if status == SMALL_DELTA:
            if pos >= end:
                raise FeedbackError("recv deltas end before the statuses that need them")
            arrival += part[pos] * DELTA_TICK_US
            pos += 1
        else:
            if pos + 2 > end:
                raise FeedbackError("recv deltas end before the statuses that need them")
            arrival += _LARGE.unpack_from(part, pos)[0] * DELTA_TICK_US
            pos += 2
        packets.append((seq, arrival))
    if end - pos > 3 or any(part[pos:end]):
        raise FeedbackError("bytes after the recv deltas that are not zero padding")
    return TransportFeedback(
        sender_ssrc=sender,
        media_ssrc=media,
        base_seq=base,
        feedback_count=feedback_count,
        reference_time_us=ticks * REFERENCE_TICK_US,
        packets=tuple(packets),
    )


def build_feedback(
    sender_ssrc: int,
    media_ssrc: int,
    feedback_count: int,
    arrivals: Sequence[tuple[int, int | None]],
) -> bytes:
    """One transport feedback packet reporting ``arrivals`` (see :func:`build_feedbacks`
    for what they are and how they are written).

    Raises ``ValueError`` where one packet cannot say them all: a delta between two
    received packets beyond what 16 bits signed hold (±8.19 s), or more than
    :data:`MAX_STATUSES` statuses; :func:`build_feedbacks` splits them instead."""
    packets = build_feedbacks(sender_ssrc, media_ssrc, feedback_count, arrivals)
    if len(packets) != 1:
        raise ValueError(
            f"these arrivals need {len(packets)} feedback packets (use build_feedbacks)"
        )
    return packets[0]


def build_feedbacks(
    sender_ssrc: int,
    media_ssrc: int,
    feedback_count: int,
    arrivals: Sequence[tuple[int, int | None]],
    *,
    max_statuses: int = MAX_STATUSES,
) -> list[bytes]:
    """Transport feedback packets reporting ``arrivals``, usually one.

    ``arrivals`` are ``(sequence number, arrival µs on the receiver's clock)`` pairs, or
    ``(sequence number, None)`` for a packet not received, for consecutive sequence
    numbers (16 bits, wrapping past 65535) in order; the caller fills the gaps with
    ``None``.  Any of them may be lost, the first ones included: a packet's reference
    time is the first received packet's arrival, rounded down to 64 ms (0 when it
    received none), and its base sequence number the first number it reports.

    Deltas are rounded to 250 µs from the previous packet's *rounded* time (libwebrtc's
    way), so the rounding error never exceeds 125 µs and does not build up over a long
    feedback.  A delta of 0-63.75 ms takes one byte, any other two.  The chunks are
    chosen greedily from each position: a run-length chunk where the run covers at
    least as many statuses as a vector would, otherwise a one-bit vector (14 statuses)
    when none of them has a large delta, otherwise a two-bit vector (7).

    A new packet starts (its feedback count one more, modulo 256) at a received packet
    whose delta from the previous received one does not fit in 16 bits signed (more than
    ~8.19 s apart, or back in time), and after ``max_statuses`` statuses; the packets
    not received between two received ones stay in the earlier packet.

    Raises ``ValueError`` for arguments out of range: no arrivals, sequence numbers that
    are not 16-bit or not consecutive, SSRCs beyond 32 bits, a feedback count beyond 8
    bits, ``max_statuses`` outside 1-65535."""
    if not arrivals:
        raise ValueError("no arrivals to report")
    if not 0 <= sender_ssrc <= 0xFFFFFFFF or not 0 <= media_ssrc <= 0xFFFFFFFF:
        raise ValueError("an SSRC is not a 32-bit number")
    if not 0 <= feedback_count <= 0xFF:
        raise ValueError("the feedback count is not an 8-bit number")
    if not 1 <= max_statuses <= 0xFFFF:
        raise ValueError("max_statuses must be 1-65535")
    expected = arrivals[0][0]
    for seq, _ in arrivals:
        if not 0 <= seq <= 0xFFFF:
            raise ValueError(f"sequence number {seq} is not a 16-bit number")
        if seq != expected:
            raise ValueError(f"sequence number {seq} follows {(expected - 1) & 0xFFFF}")
        expected = (seq + 1) & 0xFFFF

    out: list[bytes] = []
    writer = _PacketWriter(arrivals[0][0])
    for seq, arrival in arrivals:
        if writer.count == max_statuses:
            out.append(writer.finish(sender_ssrc, media_ssrc, (feedback_count + len(out)) & 0xFF))
            writer = _PacketWriter(seq)
        if arrival is None:
            writer.lost()
        elif not writer.received(arrival):
            out.append(writer.finish(sender_ssrc, media_ssrc, (feedback_count + len(out)) & 0xFF))
            writer = _PacketWriter(seq)
            writer.received(arrival)  # the first received packet of a packet always fits
    out.append(writer.finish(sender_ssrc, media_ssrc, (feedback_count + len(out)) & 0xFF))
    return out


def _delta_ticks(delta_us: int) -> int:
    """``delta_us`` in 250 µs ticks, rounded half away from zero (as libwebrtc does)."""
    half = DELTA_TICK_US // 2
    if delta_us >= 0:
        return (delta_us + half) // DELTA_TICK_US
    return -((half - delta_us) // DELTA_TICK_US)


class _PacketWriter:
    """The statuses and deltas of one feedback packet being written."""

    __slots__ = ("base_seq", "count", "deltas", "last_us", "reference_ticks", "statuses")

    def __init__(self, base_seq: int) -> None:
        self.base_seq = base_seq
        self.count = 0
        self.statuses = bytearray()
        self.deltas = bytearray()
        #: The reference time in 64 ms ticks (unwrapped) and the rounded time of the
        #: last received packet, once a packet was received.
        self.reference_ticks: int | None = None
        self.last_us = 0

    def lost(self) -> None:
        self.statuses.append(NOT_RECEIVED)
        self.count += 1

    def received(self, arrival_us: int) -> bool:
        """Add a received packet; ``False`` (nothing added) when its delta does not fit."""
        if self.reference_ticks is None:
            self.reference_ticks = arrival_us // REFERENCE_TICK_US
            self.last_us = self.reference_ticks * REFERENCE_TICK_US
        ticks = _delta_ticks(arrival_us - self.last_us)
        if 0 <= ticks <= _MAX_SMALL_TICKS:
            self.statuses.append(SMALL_DELTA)
            self.deltas.append(ticks)
        elif _MIN_LARGE_TICKS <= ticks <= _MAX_LARGE_TICKS:
            self.statuses.append(LARGE_DELTA)
            self.deltas += _LARGE.pack(ticks)
        else:
            return False
        self.last_us += ticks * DELTA_TICK_US
        self.count += 1
        return True

    def finish(self, sender_ssrc: int, media_ssrc: int, feedback_count: int) -> bytes:
        chunks = _encode_chunks(self.statuses)
        body_size = HEADER_SIZE + 2 * len(chunks) + len(self.deltas)
        padding = -body_size % 4
        reference = (self.reference_ticks or 0) & 0xFFFFFF
        return b"".join(
            (
                _FIXED.pack(
                    0x80 | FMT_TRANSPORT_CC,
                    PT_RTPFB,
                    (body_size + padding) // 4 - 1,
                    sender_ssrc,
                    media_ssrc,
                    self.base_seq,
                    self.count,
                    reference << 8 | feedback_count,
                ),
                struct.pack(f"!{len(chunks)}H", *chunks),
                self.deltas,
                bytes(padding),
            )
        )


def _encode_chunks(statuses: bytes | bytearray) -> list[int]:
    """The status chunks saying ``statuses`` (see :func:`build_feedbacks`)."""
    chunks: list[int] = []
    n = len(statuses)
    i = 0
    while i < n:
        symbol = statuses[i]
        limit = min(n - i, MAX_RUN)
        run = 1
        while run < limit and statuses[i + run] == symbol:
            run += 1
        window = statuses[i : i + ONE_BIT_SYMBOLS]
        one_bit = LARGE_DELTA not in window
        cover = min(ONE_BIT_SYMBOLS if one_bit else TWO_BIT_SYMBOLS, n - i)
        if run >= cover:
            chunks.append(symbol << 13 | run)
            i += run
            continue
        if one_bit:
            chunk = 0x8000
            for k, status in enumerate(window):
                chunk |= status << (13 - k)
        else:
            chunk = 0xC000
            for k, status in enumerate(window[:TWO_BIT_SYMBOLS]):
                chunk |= status << (12 - 2 * k)
        chunks.append(chunk)
        i += cover
    return chunks
