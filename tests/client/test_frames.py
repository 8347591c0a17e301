"""Whole frames in one compiled call (``client.frames.send_frame``, the load client's
publishers) against the writer's packet-by-packet path: the same datagrams on the wire."""

from __future__ import annotations

import random
import struct
import time

import pytest
from aiortc.rtcdtlstransport import State

from client import stamped
from client.frames import FrameTemplate, new_frame_batch, send_frame
from tests.sfu.test_fastpath import EXTENSION_BLOCK, Wire


def frame_tails(count: int, seed: int) -> list[bytes]:
    """A frame's tails: the extension block, a VP8-like descriptor with room for the
    picture ID at offset 8 + 2, a payload of varying size."""
    rng = random.Random(seed)
    return [
        EXTENSION_BLOCK + bytes([0x90 if i == 0 else 0x80, 0x80, 0, 0]) + rng.randbytes(900 + i)
        for i in range(count)
    ]


def frame_template(tails: list[bytes], **options) -> FrameTemplate:
    """A frame of SSRC 0x4321, payload type 100, the extension bit set."""
    batch = new_frame_batch()
    return FrameTemplate(
        tails, batch=batch, first_byte=0x90, payload_type=100, ssrc=0x4321, **options
    )


def send_packet_by_packet(wire: Wire, tails: list[bytes], seq: int, picture_id: int, stamp_us: int):
    for i, tail in enumerate(tails):
        tail = bytearray(tail)
        struct.pack_into("!H", tail, len(EXTENSION_BLOCK) + 2, picture_id)
        last = i == len(tails) - 1
        if last:
            tail += stamped.stamp(stamp_us)
        second = 100 | (0x80 if last else 0)
        wire.writer.forward(0x90, second, (seq + i) & 0xFFFF, 3000, 0x4321, tail)


@pytest.mark.parametrize("count", [1, 3, 16, 21])
def test_a_frame_sent_whole_is_the_frame_sent_packet_by_packet(count: int) -> None:
    """``caucus_send_frame`` (one call, ``sendmmsg`` 16 packets at a time) against
    ``forward`` per packet: the same datagrams but the stamp's time, which is the send
    time of the frame; the sequence numbers wrap inside the frame."""
    tails = frame_tails(count, count)
    seq = (0x10000 - count // 2) & 0xFFFF
    whole, single = Wire(True), Wire(True)
    try:
        frame = frame_template(tails, picture_id_offset=len(EXTENSION_BLOCK) + 2)
        before_us = time.time_ns() // 1000
        assert send_frame(whole.writer, frame, seq, 3000, 0x8000 | 0x1234) == count
        after_us = time.time_ns() // 1000
        got = whole.packets(count)
        sizes = [12 + len(t) for t in tails]
        sizes[-1] += stamped.STAMP_SIZE
        assert frame.sent_bytes[0] == sum(sizes) == whole.writer.bytes
        assert whole.writer.packets == count and whole.writer.dropped == 0
        sent_us = stamped.read_stamp(got[-1][5])
        assert sent_us is not None and before_us <= sent_us <= after_us
        send_packet_by_packet(single, tails, seq, 0x8000 | 0x1234, sent_us)
        assert got == single.packets(count)
        assert [p[2] for p in got] == [(seq + i) & 0xFFFF for i in range(count)]
        assert [p[1] >> 7 for p in got] == [0] * (count - 1) + [1]
    finally:
        whole.close()
        single.close()


def test_a_frame_drops_a_packet_too_large_and_binds_again_after_a_failed_send() -> None:
    wire = Wire(True)
    try:
        tails = frame_tails(3, 5)
        tails[1] = tails[1] + bytes(2000)  # beyond what the writer's buffer holds
        frame = frame_template(tails, picture_id_offset=None, stamped=False)
        assert send_frame(wire.writer, frame, 7, 3000, 0) == 2
        got = wire.packets(2)
        assert [p[2] for p in got] == [7, 9]  # 8 was dropped, its number kept
        assert got[1][5] == tails[2]  # no stamp, no picture ID written
        assert wire.writer.dropped == 1
        # the socket is replaced: the failed send unbinds, the frame is sent on the new one
        replacement = wire.replace_socket()
        assert send_frame(wire.writer, frame, 10, 6000, 0) == 2
        assert wire.writer.sink.fd == replacement.fileno()
        assert [p[2] for p in wire.packets(2)] == [10, 12]
        # a closed transport sends nothing
        wire.dtls._state = State.CLOSED
        wire.dtls.emit("statechange")
        assert send_frame(wire.writer, frame, 13, 9000, 0) == 0
    finally:
        wire.close()
