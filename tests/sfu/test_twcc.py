"""Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-
extensions-01 §3.1): what a subscriber writes is read back as it was meant, known
packets (pion's test vectors, the draft's chunk examples) read as the draft says, and
every malformed shape is refused with ``FeedbackError`` and nothing else."""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.twcc import (
    MAX_STATUSES,
    REFERENCE_WRAP_US,
    TRANSPORT_CC_URI,
    FeedbackError,
    TransportFeedback,
    build_feedback,
    build_feedbacks,
    parse_feedback,
)

# --- helpers ---------------------------------------------------------------------------


def packet(
    body: bytes,
    *,
    base: int = 100,
    count: int = 1,
    reference: int = 0,
    fb_count: int = 0,
    first: int = 0x8F,
    packet_type: int = 205,
    words: int | None = None,
) -> bytes:
    """A transport feedback with ``body`` (chunks, deltas, padding) after its 20 bytes of
    header; its length field counts it unless ``words`` says otherwise."""
    size = 20 + len(body)
    if words is None:
        assert size % 4 == 0, "pad the body to 32 bits"
        words = size // 4 - 1
    header = struct.pack(
        "!BBHIIHHI",
        first,
        packet_type,
        words,
        0x11111111,
        0x22222222,
        base,
        count,
        (reference & 0xFFFFFF) << 8 | fb_count,
    )
    return header + body


def chunks_of(data: bytes) -> list[int]:
    """The status chunks of a feedback written by ``build_feedback``."""
    feedback = parse_feedback(data)
    remaining = len(feedback.packets)
    chunks = []
    pos = 20
    while remaining > 0:
        chunk = struct.unpack_from("!H", data, pos)[0]
        pos += 2
        chunks.append(chunk)
        if not chunk & 0x8000:
            remaining -= chunk & 0x1FFF
        else:
            remaining -= 7 if chunk & 0x4000 else 14
    return chunks


def assert_close(
    sent: list[tuple[int, int | None]],
    reported: Sequence[tuple[int, int | None]],
    tolerance: int = 125,
) -> None:
    """``reported`` says what ``sent`` says: same numbers, same losses, times within
    ``tolerance`` µs (modulo the reference time's wrap)."""
    assert [s for s, _ in reported] == [s for s, _ in sent]
    for (_, expected), (_, got) in zip(sent, reported, strict=True):
        assert (expected is None) == (got is None)
        if expected is not None and got is not None:
            difference = (got - expected) % REFERENCE_WRAP_US
            assert min(difference, REFERENCE_WRAP_US - difference) <= tolerance


def random_arrivals(rng: random.Random, count: int) -> list[tuple[int, int | None]]:
    """Consecutive numbers from anywhere (wrapping past 65535), runs of loss, small,
    large and negative (reordered) gaps between arrivals, the odd gap of many seconds."""
    seq = rng.randrange(1 << 16)
    now = rng.randrange(-(1 << 40), 1 << 44)
    arrivals: list[tuple[int, int | None]] = []
    while len(arrivals) < count:
        if arrivals and rng.random() < 0.1:
            for _ in range(rng.choice((1, 2, 20, 300))):
                arrivals.append((seq, None))
                seq = (seq + 1) & 0xFFFF
            continue
        shape = rng.random()
        if shape < 0.6:
            now += rng.randrange(0, 64_000)  # small delta
        elif shape < 0.8:
            now -= rng.randrange(0, 200_000)  # reordered: arrived before the previous one
        elif shape < 0.97:
            now += rng.randrange(64_000, 8_000_000)  # large delta
        else:
            now += rng.randrange(8_200_000, 30_000_000)  # beyond 16 bits: a new packet
        arrivals.append((seq, now))
        seq = (seq + 1) & 0xFFFF
    return arrivals[:count]


# --- known packets ---------------------------------------------------------------------

#: pion/rtcp's TestTransportLayerCC_Unmarshal "example4", written by libwebrtc's rules:
#: P bit, three bytes of padding (0x00 0x00 0x03).
PION_EXAMPLE_4 = bytes.fromhex("afcd0007fa17fa17193dd8bb0004000710636e0120074c2424100c0c10000003")
#: ... "example6": a two-bit vector, a run of 48 lost of which 2 are counted, a large
#: delta, one byte of padding.
PION_EXAMPLE_6 = bytes.fromhex("afcd00079b74f61f9371dcbc853c000963f916b3d55200309baa6aaa7b010901")


def test_a_run_of_small_deltas_read_by_hand():
    """Checked by hand: base 4, 7 statuses, reference 0x10636e = 1,074,030 x 64 ms,
    feedback count 1; chunk 0x2007 = run-length, "small delta" x 7; deltas 0x4c (76 x
    250 µs = 19 ms), 0x24 (9 ms), 0x24, 0x10 (4 ms), 0x0c (3 ms), 0x0c, 0x10."""
    feedback = parse_feedback(PION_EXAMPLE_4)
    reference = 1_074_030 * 64_000
    assert feedback == TransportFeedback(
        sender_ssrc=0xFA17FA17,
        media_ssrc=0x193DD8BB,
        base_seq=4,
        feedback_count=1,
        reference_time_us=reference,
        packets=(
            (4, reference + 19_000),
            (5, reference + 28_000),
            (6, reference + 37_000),
            (7, reference + 41_000),
            (8, reference + 44_000),
            (9, reference + 47_000),
            (10, reference + 51_000),
        ),
    )
    # written again: the same bytes, but zero padding without the P bit
    rebuilt = build_feedback(0xFA17FA17, 0x193DD8BB, 1, feedback.packets)
    assert rebuilt == bytes([0x8F]) + PION_EXAMPLE_4[1:-1] + b"\x00"


def test_a_two_bit_vector_and_a_run_cut_to_the_count_read_by_hand():
    """Checked by hand: base 34108, 9 statuses, reference 0x63f916 = 6,551,830 x 64 ms,
    feedback count 0xb3; chunk 0xd552 = two-bit vector 01 01 01 01 01 00 10 (five small,
    one lost, one large), chunk 0x0030 = run of 48 "not received" of which the last two
    statuses are counted; deltas 0x9b 0xaa 0x6a 0xaa 0x7b (38.75, 42.5, 26.5, 42.5,
    30.75 ms) and 0x0109 (265 x 250 µs = 66.25 ms)."""
    feedback = parse_feedback(PION_EXAMPLE_6)
    assert (feedback.sender_ssrc, feedback.media_ssrc) == (0x9B74F61F, 0x9371DCBC)
    assert (feedback.base_seq, feedback.feedback_count) == (34108, 0xB3)
    reference = 6_551_830 * 64_000
    assert feedback.reference_time_us == reference
    times = [reference + d for d in (38_750, 81_250, 107_750, 150_250, 181_000)]
    assert feedback.packets == (
        *((34108 + i, t) for i, t in enumerate(times)),
        (34113, None),
        (34114, times[-1] + 66_250),
        (34115, None),
        (34116, None),
    )
    # written again: the same vector, then a run of exactly two
    rebuilt = build_feedback(feedback.sender_ssrc, feedback.media_ssrc, 0xB3, feedback.packets)
    assert chunks_of(rebuilt) == [0xD552, 0x0002]
    assert parse_feedback(rebuilt) == feedback


def test_the_drafts_one_bit_vector_example():
    """§3.1.4 example 1: 0x9F1C = 1 0 | 0 1 1 1 1 1 0 0 0 1 1 1 0 0."""
    body = struct.pack("!H", 0x9F1C) + bytes(range(1, 9)) + b"\x00\x00"
    feedback = parse_feedback(packet(body, count=14))
    received = [t is not None for _, t in feedback.packets]
    assert received == [bool(int(b)) for b in "01111100011100"]
    arrivals = [t for _, t in feedback.packets if t is not None]
    assert arrivals == [250 * sum(range(1, k + 1)) for k in range(1, 9)]


def test_the_reserved_status_is_refused():
    """The draft reserves status 3 (its chunk example calls it "received without recv
    delta"); libwebrtc refuses such a packet, and so does the SFU.  pion's
    "example2" (0xf0ff: 11 00 00 11 11 11 11) is one."""
    pion_example_2 = bytes.fromhex("afcd0006fa17fa17193dd8bb0174000e45b15a40d800f0ffd0000003")
    with pytest.raises(FeedbackError, match="reserved"):
        parse_feedback(pion_example_2)
    with pytest.raises(FeedbackError, match="reserved"):  # the draft's 0xCD50
        parse_feedback(packet(b"\xcd\x50\x01\x02\x03\x00\x00\x00", count=7))
    with pytest.raises(FeedbackError, match="reserved"):  # a run of status 3
        parse_feedback(packet(b"\x60\x02\x00\x00", count=2))
    # a 3 the count does not reach describes no packet: ignored
    feedback = parse_feedback(packet(b"\xd7\xff\x05\x00", count=1))  # 01 01 11 11 ...
    assert feedback.packets == ((100, 1250),)


def test_written_chunks_follow_the_draft():
    # ten received with small deltas: one run-length chunk, one byte per delta
    data = build_feedback(1, 2, 7, [((65530 + i) & 0xFFFF, 1_000_000 + 250 * i) for i in range(10)])
    assert chunks_of(data) == [0x2000 | 10]
    assert len(data) == 20 + 2 + 10
    assert data[0] == 0x8F and data[1] == 205 and struct.unpack_from("!H", data, 2)[0] == 7
    # 1 byte delta 0..255 ticks, 2 bytes otherwise, mixed with loss: a one-bit vector
    # when no large delta is among the next 14, a two-bit vector when one is
    mixed = [(0, 0), (1, None), (2, 250), (3, None), (4, 500)] + [(5 + i, None) for i in range(9)]
    assert chunks_of(build_feedback(1, 2, 0, mixed)) == [0x8000 | 0b10101 << 9]
    large = [(0, 0), (1, None), (2, 100_000), (3, 100_250)]
    assert chunks_of(build_feedback(1, 2, 0, large)) == [0xC000 | 0b01_00_10_01 << 6]
    # a long loss run is one chunk, not 300 symbols (its first 13 share the vector of
    # the packet before it), and the large delta after it a run of one
    lossy = [(0, 0)] + [(i, None) for i in range(1, 301)] + [(301, 400_000)]
    assert chunks_of(build_feedback(1, 2, 0, lossy)) == [0x8000 | 1 << 13, 287, 0x4001]
    # statuses are the caller's order: the header says the first sequence number
    feedback = parse_feedback(build_feedback(9, 8, 255, [(65535, None), (0, 64_000)]))
    assert (feedback.base_seq, feedback.feedback_count) == (65535, 255)
    assert feedback.packets == ((65535, None), (0, 64_000))
    assert feedback.reference_time_us == 64_000  # from the first packet received


def test_every_packet_lost_is_reported_with_reference_time_zero():
    feedback = parse_feedback(build_feedback(1, 2, 3, [(10, None), (11, None)]))
    assert feedback.packets == ((10, None), (11, None))
    assert feedback.reference_time_us == 0


# --- round trips -----------------------------------------------------------------------


def test_random_arrivals_round_trip():
    rng = random.Random(20_250)
    for _ in range(300):
        arrivals = random_arrivals(rng, rng.randrange(1, 400))
        count = rng.randrange(256)
        packets = build_feedbacks(0xABCDEF01, 0x12345678, count, arrivals)
        decoded: list[tuple[int, int | None]] = []
        for i, data in enumerate(packets):
            assert len(data) % 4 == 0
            feedback = parse_feedback(data)
            assert feedback.feedback_count == (count + i) & 0xFF
            assert (feedback.sender_ssrc, feedback.media_ssrc) == (0xABCDEF01, 0x12345678)
            assert feedback.base_seq == feedback.packets[0][0]
            decoded.extend(feedback.packets)
        assert_close(arrivals, decoded)


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(0, 0xFFFF),
    first=st.integers(-(1 << 45), 1 << 45),
    steps=st.lists(
        st.one_of(st.none(), st.integers(-8_000_000, 8_000_000)), min_size=1, max_size=200
    ),
)
def test_any_arrivals_within_eight_seconds_fit_one_packet(start, first, steps):
    """Between consecutive received packets under 8.19 s either way: one packet, every
    time within 125 µs of the truth (modulo the reference time's wrap)."""
    now = first
    arrivals: list[tuple[int, int | None]] = []
    for i, step in enumerate(steps):
        if step is None:
            arrivals.append(((start + i) & 0xFFFF, None))
        else:
            now += step
            arrivals.append(((start + i) & 0xFFFF, now))
    feedback = parse_feedback(build_feedback(1, 2, 3, arrivals))
    assert_close(arrivals, feedback.packets)


def test_reference_time_wraps_into_the_negative_half():
    """A clock past 2**23 x 64 ms (6.2 days) writes a reference time whose top bit is
    set: read as negative, the same instant modulo the wrap, and deltas go on from it."""
    at = (1 << 23) * 64_000 + 5_000  # just past the sign change
    arrivals = [(7, at), (8, at + 1_000), (9, None), (10, at - 2_000)]
    data = build_feedback(1, 2, 0, arrivals)
    assert data[16] & 0x80  # the reference time's sign bit
    feedback = parse_feedback(data)
    assert feedback.reference_time_us == -(1 << 23) * 64_000
    assert [t for _, t in feedback.packets] == [
        at - REFERENCE_WRAP_US,
        at + 1_000 - REFERENCE_WRAP_US,
        None,
        at - 2_000 - REFERENCE_WRAP_US,
    ]
    # and a clock that counts from before zero (negative arrival times)
    feedback = parse_feedback(build_feedback(1, 2, 0, [(0, -64_001), (1, -1)]))
    assert feedback.reference_time_us == -128_000
    assert [t for _, t in feedback.packets] == [-64_000, 0]


def test_rounding_error_does_not_build_up_over_a_thousand_packets():
    """Arrivals 1,337 µs apart (5.348 ticks): rounding each gap on its own would lose
    0.348 tick a packet, 87 ms after 1000; carried over, every time stays within 125 µs."""
    start = 123_456_789
    arrivals = [(i, start + 1_337 * i + (i % 3) * 40) for i in range(1000)]
    feedback = parse_feedback(build_feedback(1, 2, 0, arrivals))
    errors = [
        abs(got - sent)
        for (_, sent), (_, got) in zip(arrivals, feedback.packets, strict=True)
        if sent is not None and got is not None
    ]
    assert max(errors) <= 125
    assert abs(feedback.packets[-1][1] - arrivals[-1][1]) <= 125  # type: ignore[operator]


# --- deltas beyond 16 bits: a new packet -----------------------------------------------


def test_a_delta_beyond_sixteen_bits_starts_a_new_packet():
    arrivals = [(65534, 1_000_000), (65535, None), (0, None), (1, 1_000_000 + 9_000_000)]
    packets = build_feedbacks(5, 6, 255, arrivals)
    assert len(packets) == 2
    first, second = (parse_feedback(p) for p in packets)
    # the packets lost before the far arrival stay in the first packet
    assert first.packets == ((65534, 1_000_000), (65535, None), (0, None))
    assert second.packets == ((1, 10_000_000),)
    assert (first.feedback_count, second.feedback_count) == (255, 0)
    with pytest.raises(ValueError, match="2 feedback packets"):
        build_feedback(5, 6, 255, arrivals)
    # back in time by more than 8.19 s, too
    backwards = [(0, 20_000_000), (1, 20_000_000 - 8_200_000)]
    assert len(build_feedbacks(5, 6, 0, backwards)) == 2
    # at the limit (32767 ticks) it still fits: the first delta is from the reference
    edge = [(0, 64_000), (1, 64_000 + 32_767 * 250)]
    assert len(build_feedbacks(5, 6, 0, edge)) == 1


def test_more_statuses_than_allowed_start_a_new_packet():
    arrivals = [(i, 1_000 * i if i % 5 else None) for i in range(MAX_STATUSES + 10)]
    packets = build_feedbacks(1, 2, 0, arrivals)
    assert [len(parse_feedback(p).packets) for p in packets] == [MAX_STATUSES, 10]
    small = build_feedbacks(1, 2, 0, arrivals[:25], max_statuses=10)
    assert [len(parse_feedback(p).packets) for p in small] == [10, 10, 5]
    assert parse_feedback(small[1]).base_seq == 10


def test_build_refuses_arguments_out_of_range():
    good = [(1, 0)]
    for call in (
        lambda: build_feedback(1, 2, 0, []),
        lambda: build_feedback(1, 2, 0, [(1, 0), (3, 0)]),
        lambda: build_feedback(1, 2, 0, [(65536, 0)]),
        lambda: build_feedback(1, 2, 0, [(-1, 0)]),
        lambda: build_feedback(1 << 32, 2, 0, good),
        lambda: build_feedback(1, -1, 0, good),
        lambda: build_feedback(1, 2, 256, good),
        lambda: build_feedbacks(1, 2, 0, good, max_statuses=0),
        lambda: build_feedbacks(1, 2, 0, good, max_statuses=1 << 16),
    ):
        with pytest.raises(ValueError):
            call()


# --- malformed packets -----------------------------------------------------------------

#: one status, received, small delta: the smallest valid packet
VALID_BODY = b"\x20\x01\x04\x00"


def test_the_smallest_valid_packet():
    feedback = parse_feedback(packet(VALID_BODY, reference=3))
    assert feedback.packets == ((100, 3 * 64_000 + 1_000),)


MALFORMED = {
    "empty": b"",
    "header only": packet(b"", words=4),
    "version 1": packet(VALID_BODY, first=0x4F),
    "version 3": packet(VALID_BODY, first=0xCF),
    "packet type 206": packet(VALID_BODY, packet_type=206),
    "FMT 1 (a NACK)": packet(VALID_BODY, first=0x81),
    "length field one word short": packet(VALID_BODY, words=4),
    "length field one word long": packet(VALID_BODY, words=6),
    "length field beyond the data": packet(VALID_BODY, words=0xFFFF),
    "not a whole number of words": packet(VALID_BODY + b"\x00", words=5),
    "padding of zero bytes": packet(b"\x20\x01\x04\x00", first=0xAF),
    "padding into the header": packet(b"\x20\x01\x04\x15", first=0xAF),
    "padding eating the delta": packet(b"\x20\x01\x04\x02", first=0xAF),
    "status count zero": packet(VALID_BODY, count=0),
    "status count above the limit": packet(VALID_BODY, count=MAX_STATUSES + 1),
    "chunks end before the count": packet(b"\x20\x01\x00\x00", count=2),
    "run of 8191 with count 65535": packet(b"\x1f\xff\x1f\xff", count=65535),
    "small delta missing": packet(b"\x20\x03\x04\x00", count=3),
    "large delta missing": packet(b"\x40\x02\x00\x00", count=2),
    "large delta cut in half": packet(b"\x20\x01\x40\x01\x04\x01\x00\x02", count=2, first=0xAF),
    "non-zero byte after the deltas": packet(b"\x20\x01\x04\x01"),
    "four zero bytes after the deltas": packet(b"\x20\x01\x04\x00\x00\x00\x00\x00"),
    "padding that hides non-zero bytes": packet(b"\x20\x01\x04\x07\x00\x00\x00\x02", first=0xAF),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_packet_is_refused(data: bytes):
    with pytest.raises(FeedbackError):
        parse_feedback(data)


def test_the_large_delta_cases_are_what_they_claim():
    """The malformed cases above fail for the stated reason, not an earlier one."""
    for name in ("small delta missing", "large delta missing", "large delta cut in half"):
        with pytest.raises(FeedbackError, match="recv deltas end"):
            parse_feedback(MALFORMED[name])
    with pytest.raises(FeedbackError, match="chunks end"):
        parse_feedback(MALFORMED["chunks end before the count"])
    with pytest.raises(FeedbackError, match="above 4096"):
        parse_feedback(packet(VALID_BODY, count=MAX_STATUSES + 1))
    with pytest.raises(FeedbackError, match="zero padding"):
        parse_feedback(packet(b"\x20\x01\x04\x00\x00\x00\x00\x00"))
    # what is right about them: the valid neighbours parse
    assert parse_feedback(packet(b"\x40\x01\xff\xfe", count=1)).packets == ((100, -500),)
    padded = packet(b"\x20\x01\x04\x00\x00\x00\x00\x03", first=0xAF)
    assert parse_feedback(padded).packets == ((100, 1_000),)


def test_a_hostile_status_count_allocates_nothing_it_asked_for():
    """65,535 statuses claimed with two chunks: refused by the limit before anything is
    made for them; with the limit raised, read from the chunks (no deltas needed for
    lost packets) in bounded time."""
    claim = packet(b"\x1f\xff\x1f\xff", count=65535)
    with pytest.raises(FeedbackError, match="above"):
        parse_feedback(claim)
    with pytest.raises(FeedbackError, match="chunks end"):
        parse_feedback(claim, max_statuses=65535)
    lost = packet(b"\x1f\xff\x00\x01", count=8192, words=None)
    started = time.perf_counter()
    feedback = parse_feedback(lost, max_statuses=8192)
    assert time.perf_counter() - started < 1.0
    assert len(feedback.packets) == 8192 and all(t is None for _, t in feedback.packets)


def test_mutations_and_noise_raise_only_feedback_errors():
    rng = random.Random(4)
    valid = [
        build_feedbacks(1, 2, rng.randrange(256), random_arrivals(rng, rng.randrange(1, 60)))[0]
        for _ in range(50)
    ] + [PION_EXAMPLE_4, PION_EXAMPLE_6]
    parsed = 0
    for _ in range(20_000):
        data = bytearray(rng.choice(valid))
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.2:
            data = data[: rng.randrange(len(data) + 1)]
        try:
            feedback = parse_feedback(bytes(data))
        except FeedbackError:
            continue
        parsed += 1
        assert 0 < len(feedback.packets) <= MAX_STATUSES
    for _ in range(2000):
        with pytest.raises(FeedbackError):
            parse_feedback(rng.randbytes(rng.randrange(64)))
    assert parsed > 100  # the mutations reached past the header


def test_the_uri_is_the_drafts():
    assert TRANSPORT_CC_URI.endswith("/draft-holmer-rmcat-transport-wide-cc-extensions-01")
