"""The compiled send path (``caucus_send``, ``caucus_write``, ``caucus_send_frame``) given
lengths that do not match its buffers: it must drop what does not fit, never read
outside the caller's memory nor write outside its own.  The calls that crashed the
interpreter before they were checked run in a child process; reading past a buffer is
made to crash by a guard page (the sanitizer job, ``make sanitize``, sees the rest)."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest

from client.frames import FrameTemplate, new_frame_batch

from .native_support import Sink, fast, run_isolated

lib = fast.lib

#: A child process's guard page right behind the frame's tails, and the call with or
#: without the tails' total size (the module before it was checked took no size).
GUARDED_FRAME = """
    import ctypes, mmap
    from tests.hostile.native_support import Sink, fast
    page = mmap.PAGESIZE
    memory = mmap.mmap(-1, 2 * page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    base = ctypes.addressof((ctypes.c_char * (2 * page)).from_buffer(memory))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.mprotect(base + page, page, 0) == 0  # no access behind the tails
    tails = b"\\xaa" * 100 + b"\\xbb" * 200
    start = base + page - len(tails)
    ctypes.memmove(start, tails, len(tails))
    s = Sink()
    batch = fast.ffi.new("caucus_batch *")
    lengths = fast.ffi.new("int[]", LENGTHS)
    sent = fast.ffi.new("int *")
    size = [len(tails)] if len(fast.ffi.typeof(fast.lib.caucus_send_frame).args) == 15 else []
    count = fast.lib.caucus_send_frame(
        s.sink, batch, 0x80, 96, 1, 3000, 0x4321, fast.ffi.cast("unsigned char *", start),
        *size, lengths, len(LENGTHS), -1, 0, 0, sent,
    )
    print(count, sent[0], int(s.sink.dropped), [len(p) for p in s.received()])
"""


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


def test_frame_tails_past_their_buffer_are_dropped_not_read() -> None:
    """The third tail's length runs past the 300 bytes of tails into the guard page."""
    result = run_isolated(GUARDED_FRAME.replace("LENGTHS", "[100, 200, 1000]"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["2", "324", "1", "[112,", "212]"]


def test_a_negative_tail_length_does_not_walk_back() -> None:
    """A negative length moved the walk before the tails' start; now it and every tail
    after it (whose start is not known) are dropped."""
    result = run_isolated(GUARDED_FRAME.replace("LENGTHS", "[100, -4096, 200]"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["1", "112", "2", "[112]"]


def test_a_frame_template_with_lengths_beyond_its_tails(sink: Sink) -> None:
    """Through the writer's API: a template whose lengths were changed after it was
    built sends the tails that lie inside and counts the others as dropped."""
    tails = [b"\x01" * 50, b"\x02" * 60, b"\x03" * 70]
    frame = FrameTemplate(
        tails,
        batch=new_frame_batch(),
        first_byte=0x80,
        payload_type=96,
        ssrc=0x4321,
        picture_id_offset=None,
        stamped=False,
    )
    assert frame.size == 180
    frame.lengths[1] = 10**6
    sent = lib.caucus_send_frame(
        sink.sink,
        frame.batch,
        0x80,
        96,
        1,
        3000,
        0x4321,
        frame.tails,
        frame.size,
        frame.lengths,
        frame.count,
        -1,
        0,
        0,
        frame.sent_bytes,
    )
    assert sent == 1 and sink.sink.dropped == 2
    assert [p[12:] for p in sink.received()] == [tails[0]]


def test_huge_lengths_and_offsets_are_dropped_not_wrapped() -> None:
    """``12 + tail_len`` and ``picture_id_offset + 2`` wrapped around to negative numbers
    (CPython builds with -fwrapv) and passed the size checks: a copy of 2 GB, a write
    2 GB past the buffer."""
    result = run_isolated(
        """
        from tests.hostile.native_support import Sink, fast
        lib = fast.lib
        s = Sink()
        tail = b"x" * 16
        big = 2**31 - 5
        a = lib.caucus_send(s.sink, 0x80, 96, 1, 3000, 0x4321, tail, big)
        c = fast.ffi.new("caucus_consumer *")
        c.sink = s.sink
        c.source_span = 1
        b = lib.caucus_write(c, 0x80, 0, 5, 3000, 1000, tail, big)
        batch = fast.ffi.new("caucus_batch *")
        lengths = fast.ffi.new("int[]", [16])
        sent = fast.ffi.new("int *")
        size = [16] if len(fast.ffi.typeof(lib.caucus_send_frame).args) == 15 else []
        n = lib.caucus_send_frame(
            s.sink, batch, 0x80, 96, 1, 3000, 0x4321, tail, *size, lengths, 1,
            2**31 - 1, 0x1234, 0, sent,
        )
        print(a, b, n, int(s.sink.dropped), [p[12:] for p in s.received()] == [tail])
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dropped = str(lib.CAUCUS_DROPPED)
    assert result.stdout.split() == [dropped, dropped, "1", "2", "True"]


def test_a_released_sink_sends_nothing(sink: Sink) -> None:
    sink.sink.srtp = fast.ffi.NULL
    assert lib.caucus_send(sink.sink, 0x80, 96, 1, 3000, 1, b"x", 1) == lib.CAUCUS_NOT_BOUND
    assert lib.caucus_send(fast.ffi.NULL, 0x80, 96, 1, 3000, 1, b"x", 1) == lib.CAUCUS_NOT_BOUND
    assert sink.received() == []


def test_sequence_jumps_and_wraps_keep_the_rewrite_in_range(sink: Sink) -> None:
    """Arbitrary jumps of the source's numbers: every packet that leaves carries the
    consumer's SSRC and a number shifted by its offset."""
    c = fast.ffi.new("caucus_consumer *")
    c.sink = sink.sink
    c.ssrc = 0xABCD
    c.seq_offset = 0xFFF0
    c.ts_offset = 0xFFFFFF00
    c.source_span = 1
    c.last_seq = 0xFFEF
    sent = []
    for seq in (0, 1, 0x7FFF, 2, 0x8000, 0xFFFF, 3, 0x8001, 0x8002):
        if lib.caucus_write(c, 0x80, seq & 1, seq, seq * 90, seq, b"p%d" % seq, 3) > 0:
            sent.append(seq)
    got = sink.received()
    assert len(got) == len(sent) == c.packets
    for seq, packet in zip(sent, got, strict=True):
        _, second, number, _, ssrc = struct.unpack_from("!BBHII", packet)
        assert ssrc == 0xABCD and number == (seq + 0xFFF0) & 0xFFFF
        assert second & 0x7F == 0
