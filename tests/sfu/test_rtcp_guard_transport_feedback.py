"""Transport feedback (RTPFB format 15) through the RTCP guard: it reaches the transport's
reader as it came and never aiortc's parser, which would read it as a NACK list."""

from __future__ import annotations

import os
import struct

from aiortc.rtp import RtcpPacket, RtcpRtpfbPacket

from sfu.rtcp_guard import RtcpGuard


def receiver_report(ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


def pli(sender: int = 0x1234, media: int = 0x5678) -> bytes:
    return struct.pack("!BBHII", 0x81, 206, 2, sender, media)


def transport_feedback(words: int = 20) -> bytes:
    """A format-15 feedback whose FCI, read as a NACK list, names thousands of packets."""
    body = struct.pack("!II", 0x1234, 0x5678) + b"\x00\x01\xff\xff" * (words - 2)
    return struct.pack("!BBH", 0x8F, 205, words) + body


def test_transport_feedback_goes_to_its_reader_and_not_to_the_parser():
    guard = RtcpGuard()
    seen: list[bytes] = []
    guard.on_transport_feedback = seen.append
    feedback = transport_feedback()
    compound = receiver_report() + feedback + pli()
    checked = guard.check(compound)
    assert seen == [feedback]
    assert checked == receiver_report() + pli()
    assert not [p for p in RtcpPacket.parse(checked) if isinstance(p, RtcpRtpfbPacket)]
    assert guard.stats()["transport_feedback"] == 1
    assert guard.dropped_malformed == 0


def test_without_a_reader_transport_feedback_is_dropped():
    guard = RtcpGuard()
    assert guard.check(transport_feedback()) is None
    assert guard.check(receiver_report() + transport_feedback()) == receiver_report()
    assert guard.stats()["transport_feedback"] == 2


def test_a_malformed_feedback_is_the_readers_to_judge_and_framing_still_holds():
    guard = RtcpGuard()
    seen: list[bytes] = []
    guard.on_transport_feedback = seen.append
    garbage = struct.pack("!BBH", 0x8F, 205, 3) + os.urandom(12)
    assert guard.check(garbage + pli()) == pli()
    assert seen == [garbage]
    # too short for an RTPFB header: malformed, never handed on
    short = struct.pack("!BBHI", 0x8F, 205, 1, 0x1234)
    assert guard.check(short) is None
    assert seen == [garbage]
    assert guard.dropped_malformed == 1
