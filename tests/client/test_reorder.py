"""``client.reorder.PacketReorder``: a received stream put back in order before its check,
retransmissions (RTX) unwrapped into the packets they repair, a gap given up after its
delay (by a later arrival, or by its timer when nothing arrives), hostile packets dropped."""

from __future__ import annotations

import struct
import time

import pytest

from client.reorder import MAX_GAP, PacketReorder
from tests.support.eventually import eventually

MEDIA, RTX = 96, 97
SSRC, RTX_SSRC = 0x1111, 0x2222


def rtp(
    seq: int,
    *,
    pt: int = MEDIA,
    ssrc: int = SSRC,
    ts: int = 0,
    marker: bool = False,
    payload: bytes = b"x",
) -> bytes:
    return struct.pack("!BBHII", 0x80, pt | (marker << 7), seq & 0xFFFF, ts, ssrc) + payload


def rtx(
    original: int, *, seq: int = 500, ts: int = 0, marker: bool = False, payload: bytes = b"x"
) -> bytes:
    return rtp(
        seq,
        pt=RTX,
        ssrc=RTX_SSRC,
        ts=ts,
        marker=marker,
        payload=struct.pack("!H", original & 0xFFFF) + payload,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reorder(clock: Clock | None = None, **options) -> tuple[PacketReorder, list[tuple]]:
    out: list[tuple] = []

    def deliver(*fields) -> None:
        out.append(fields)

    return (
        PacketReorder(
            deliver,
            media_payload_type=MEDIA,
            rtx_payload_type=RTX,
            clock=clock or Clock(),
            **options,
        ),
        out,
    )


def seqs(out: list[tuple]) -> list[int]:
    return [fields[1] for fields in out]


def test_in_order_packets_pass_straight_through() -> None:
    stage, out = reorder()
    for seq in (10, 11, 12):
        stage.feed(rtp(seq, ts=seq * 3000, marker=seq == 12, payload=bytes([seq])))
    assert out == [
        (SSRC, 10, 30000, False, b"\x0a"),
        (SSRC, 11, 33000, False, b"\x0b"),
        (SSRC, 12, 36000, True, b"\x0c"),
    ]


def test_a_retransmission_fills_the_gap_and_what_waited_follows_in_order() -> None:
    stage, out = reorder()
    stage.feed(rtp(65534))
    stage.feed(rtp(1))  # 65535 and 0 missing (across the wrap): held
    stage.feed(rtp(2, marker=True))
    assert seqs(out) == [65534]
    stage.feed(rtp(0))  # the gap is still open at 65535
    assert seqs(out) == [65534]
    stage.feed(rtx(65535, ts=7, marker=True, payload=b"repaired"))
    assert seqs(out) == [65534, 65535, 0, 1, 2]
    assert out[1] == (
        SSRC,
        65535,
        7,
        True,
        b"repaired",
    )  # the media SSRC, the payload after the OSN
    assert stage.unwrapped == 1 and stage.reordered == 3 and stage.gaps_given_up == 0


def test_a_gap_is_given_up_after_its_delay_by_the_next_arrival() -> None:
    clock = Clock()
    stage, out = reorder(clock, max_delay=0.35)
    stage.feed(rtp(1))
    stage.feed(rtp(3))
    clock.now = 0.34
    stage.feed(rtp(4))
    assert seqs(out) == [1]
    clock.now = 0.35
    stage.feed(rtp(5))
    assert seqs(out) == [1, 3, 4, 5] and stage.gaps_given_up == 1
    stage.feed(rtx(2))  # too late: passed on for the check to count as late
    assert seqs(out) == [1, 3, 4, 5, 2]


async def test_a_gap_is_given_up_by_its_timer_when_nothing_arrives() -> None:
    stage, out = reorder(max_delay=0.05, clock=time.monotonic)
    stage.feed(rtp(1))
    stage.feed(rtp(3))
    assert seqs(out) == [1]
    await eventually(lambda: seqs(out) == [1, 3], 2, interval=0.01)
    assert stage.gaps_given_up == 1
    stage.close()


def test_too_many_held_packets_give_the_oldest_gap_up_at_once() -> None:
    stage, out = reorder(max_held=4)
    stage.feed(rtp(1))
    for seq in range(3, 8):
        stage.feed(rtp(seq))
    assert seqs(out) == [1, 3, 4, 5, 6, 7]


def test_duplicates_a_new_ssrc_and_a_jump_are_passed_on() -> None:
    stage, out = reorder()
    stage.feed(rtp(1))
    stage.feed(rtp(1))  # a duplicate: the check counts it
    stage.feed(rtp(3))  # held behind 2
    stage.feed(rtp(40, ssrc=0x3333))  # a new stream: the old one's held packets go first
    stage.feed(rtp(41, ssrc=0x3333))
    stage.feed(rtp(41 + MAX_GAP + 10, ssrc=0x3333))  # numbers afresh: no gap to wait for
    assert seqs(out) == [1, 1, 3, 40, 41, 41 + MAX_GAP + 10]
    assert [fields[0] for fields in out] == [SSRC, SSRC, SSRC, 0x3333, 0x3333, 0x3333]


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80", bytes(11), b"\x40" + bytes(11), rtp(5, pt=100), rtx(1, payload=b"")[:13]],
    ids=["empty", "one byte", "short", "version 1", "other payload type", "rtx without osn"],
)
def test_hostile_packets_are_dropped_and_counted(data: bytes) -> None:
    stage, out = reorder()
    stage.feed(rtp(1))
    stage.feed(data)
    assert seqs(out) == [1] and stage.dropped == 1


def test_a_retransmission_before_any_media_is_dropped() -> None:
    stage, out = reorder()
    stage.feed(rtx(1))
    assert out == [] and stage.dropped == 1
