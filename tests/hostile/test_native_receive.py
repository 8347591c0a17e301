"""The compiled receive path (``caucus_receive``, ``sfu/_fastpath_build.py``) against
hostile datagrams and misuse: negative and oversized lengths, a released SRTP context,
RTCP packet types aiortc would unprotect as RTP, and SSRCs outside the receiver's
allowlist, which must never reach libsrtp.  Calls that crashed the interpreter before
they were checked run in a child process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiortc.rtp import is_rtcp

from sfu import rtc

from .native_support import Receiver, fast, has_stream, protect, rtp, run_isolated

lib = fast.lib


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def drain(r: Receiver) -> int:
    """Continue an event: read the receiver's socket (as the poller does)."""
    r.rx.budget = lib.CAUCUS_DRAIN_BATCH
    return lib.caucus_receive(r.rx, fast.ffi.NULL, 0)


def test_a_negative_length_is_dropped_not_copied() -> None:
    """``memcpy`` took a negative length as a huge size: the interpreter died."""
    result = run_isolated(
        """
        from tests.hostile.native_support import Receiver, fast, rtp
        r = Receiver()
        data = r.outbound.protect(rtp(0x1234, 1))
        codes = [fast.lib.caucus_receive(r.rx, data, n) for n in (-1, -2**31, 1, 12)]
        print(codes, int(r.rx.malformed), int(r.rx.failed))
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["[0,", "0,", "0,", "0]", "4", "0"]


def test_a_released_context_never_reaches_libsrtp() -> None:
    """A receiver whose transport left the connected state has a NULL context: libsrtp
    would have dereferenced it, for the event's datagram and for those drained."""
    result = run_isolated(
        """
        from tests.hostile.native_support import Receiver, fast, rtp
        r = Receiver()
        first, second = (r.outbound.protect(rtp(0x1234, n)) for n in (1, 2))
        r.rx.srtp = fast.ffi.NULL
        r.send(second)
        print(fast.lib.caucus_receive(r.rx, first, len(first)), int(r.rx.failed))
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [str(lib.CAUCUS_RX_DONE), "2"]


def test_the_compiled_and_python_rules_agree_and_rtcp_is_what_aiortc_unprotects() -> None:
    """One demultiplexing rule (RFC 7983, RFC 5761), the same in C and Python; what it
    hands to aiortc as RTCP is exactly what aiortc's SRTCP path takes."""
    kinds = {rtc.KIND_OTHER, rtc.KIND_RTP, rtc.KIND_RTCP, rtc.KIND_MALFORMED}
    assert (lib.CAUCUS_KIND_RTP, lib.CAUCUS_KIND_RTCP) == (rtc.KIND_RTP, rtc.KIND_RTCP)
    seen = set()
    for first in range(256):
        for second in range(256):
            for length in (0, 1, 2, 12, 13, 100):
                data = bytes([first, second]) + bytes(98)
                kind = rtc.classify(data, length)
                assert kind == lib.caucus_classify(data, length), (first, second, length)
                seen.add(kind)
                media = 127 < first < 192 and length >= 2
                if kind == rtc.KIND_RTCP:
                    assert media and is_rtcp(data[:length])
                elif media and is_rtcp(data[:length]):
                    pytest.fail(f"aiortc takes {first}/{second} as RTCP, the SFU does not")
                if kind == rtc.KIND_RTP:
                    assert media and not 192 <= second <= 223 and length > 12
    assert seen == kinds


def test_rtcp_packet_types_209_to_223_are_dropped_before_libsrtp(receiver: Receiver) -> None:
    """RTP payload types 81-95 with the marker bit read as RTCP types 209-223: aiortc
    would unprotect them as RTP (it takes 192-208 as RTCP), RFC 5761 forbids them."""
    data = receiver.outbound.protect(rtp(0x4444, 1, second=0x80 | 85))
    receiver.send(data)
    assert drain(receiver) == lib.CAUCUS_RX_DONE
    assert lib.caucus_receive(receiver.rx, data, len(data)) == lib.CAUCUS_RX_DONE
    assert (receiver.rx.malformed, receiver.rx.failed) == (2, 0)
    assert not has_stream(receiver.inbound, 0x4444)


def test_lengths_around_the_buffer(receiver: Receiver) -> None:
    """Up to CAUCUS_BUFFER bytes are unprotected; one byte more is counted as too large
    and never reaches libsrtp, whether it came with the event or from the socket."""
    size = lib.CAUCUS_BUFFER
    fits = protect(receiver.outbound, rtp(0x5555, 1, payload=bytes(size - 12 - 16)))
    assert len(fits) == size
    assert lib.caucus_receive(receiver.rx, fits, size) == lib.CAUCUS_RX_RTP
    assert receiver.rx.length == size - 16
    large = protect(receiver.outbound, rtp(0x6666, 1, payload=bytes(size - 12 - 15)))
    assert len(large) == size + 1
    assert lib.caucus_receive(receiver.rx, large, len(large)) == lib.CAUCUS_RX_DONE
    huge = rtp(0x6666, 2, payload=bytes(60000))
    receiver.send(large, huge)
    assert drain(receiver) == lib.CAUCUS_RX_DONE
    assert (receiver.rx.too_large, receiver.rx.failed, receiver.rx.datagrams) == (3, 3, 2)
    assert not has_stream(receiver.inbound, 0x6666)


def test_an_unknown_ssrc_is_left_protected_for_python(receiver: Receiver) -> None:
    """With the filter on, a datagram of an SSRC outside the table comes back still
    protected (libsrtp never saw it); unprotecting it is Python's decision."""
    assert receiver.allow(0x1111, 0x3333) == 0
    known = receiver.outbound.protect(rtp(0x1111, 1))
    churn = [receiver.outbound.protect(rtp(0x70000000 + n, 1)) for n in range(20)]
    receiver.send(*churn)
    assert lib.caucus_receive(receiver.rx, known, len(known)) == lib.CAUCUS_RX_RTP
    assert bytes(fast.ffi.buffer(receiver.rx.buf, receiver.rx.length)) == rtp(0x1111, 1)
    for data in churn:
        assert lib.caucus_receive(receiver.rx, fast.ffi.NULL, 0) == lib.CAUCUS_RX_UNKNOWN
        assert receiver.held() == data
    assert lib.caucus_receive(receiver.rx, fast.ffi.NULL, 0) == lib.CAUCUS_RX_DONE
    assert receiver.rx.unknown_ssrc == 20 and receiver.rx.failed == 0
    assert has_stream(receiver.inbound, 0x1111)
    assert not [n for n in range(20) if has_stream(receiver.inbound, 0x70000000 + n)]
    # admitted: the held datagram is unprotected in place
    receiver.send(churn[0])
    assert drain(receiver) == lib.CAUCUS_RX_UNKNOWN
    assert lib.caucus_unprotect_held(receiver.rx) == lib.CAUCUS_RX_RTP
    assert receiver.held() == rtp(0x70000000, 1)
    # a forged one of an admitted SSRC fails, counted
    receiver.send(churn[1][:-1] + bytes([churn[1][-1] ^ 1]))
    assert drain(receiver) == lib.CAUCUS_RX_UNKNOWN
    assert lib.caucus_unprotect_held(receiver.rx) == lib.CAUCUS_RX_DONE
    assert receiver.rx.failed == 1
    # the filter off: every SSRC reaches libsrtp again
    receiver.rx.filter = 0
    assert lib.caucus_receive(receiver.rx, churn[2], len(churn[2])) == lib.CAUCUS_RX_RTP


def test_the_allowlist_holds_sixteen_and_a_refused_table_changes_nothing(
    receiver: Receiver,
) -> None:
    assert receiver.allow(*range(1, 17)) == 0
    assert receiver.rx.allowed_count == 16
    assert receiver.allow(*range(100, 117)) == -1
    assert lib.caucus_receiver_allow(receiver.rx, fast.ffi.NULL, -1) == -1
    assert lib.caucus_receiver_allow(receiver.rx, fast.ffi.NULL, 1) == -1
    assert list(receiver.rx.allowed) == list(range(1, 17))
    data = receiver.outbound.protect(rtp(16, 1))
    assert lib.caucus_receive(receiver.rx, data, len(data)) == lib.CAUCUS_RX_RTP
    assert receiver.allow() == 0  # an empty table: nothing passes
    data = receiver.outbound.protect(rtp(16, 2))
    assert lib.caucus_receive(receiver.rx, data, len(data)) == lib.CAUCUS_RX_UNKNOWN
