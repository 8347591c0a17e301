"""Sequence-number rewriting in a Consumer, fed by hand: reordered, late, duplicated and
wrapping input numbers, switches between sources, and NACKs against the newest number."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiortc.rtp import RTCP_RTPFB_NACK, RtcpRtpfbPacket

from sfu.consumer import Consumer
from sfu.settings import MediaSettings

SSRC = 0x1234


class Source:
    """What a Consumer reads of its Producer; remembers every packet for ``lookup``."""

    def __init__(self, kind: str = "audio") -> None:
        self.kind = kind
        self.codec = SimpleNamespace(clockRate=48000)
        self.consumers: list[Consumer] = []
        self.keyframe_waiters = 0
        self.packets: dict[int, tuple[int, int, int, bytes]] = {}

    def request_keyframe(self) -> None:
        pass

    def add_consumer(self, consumer: Consumer, waiting_for_keyframe: bool) -> None:
        self.consumers.append(consumer)
        self.keyframe_waiters += waiting_for_keyframe

    def remove_consumer(self, consumer: Consumer, waiting_for_keyframe: bool) -> None:
        self.keyframe_waiters -= waiting_for_keyframe
        if consumer in self.consumers:
            self.consumers.remove(consumer)

    def consumer_waits_for_keyframe(self, waiting: bool) -> None:
        self.keyframe_waiters += 1 if waiting else -1

    def consumers_changed(self) -> None:
        pass

    def lookup(self, seq: int) -> tuple[int, int, int, bytes] | None:
        return self.packets.get(seq)


class Writer:
    """Records the rewritten sequence number of every packet written."""

    def __init__(self) -> None:
        self.forwarded: list[int] = []
        self.resent: list[int] = []

    def forward(self, first_byte, marker_pt, seq, timestamp, ssrc, tail) -> int:
        self.forwarded.append(seq)
        return 12 + len(tail)

    def write_rtp(self, data: bytes) -> int:
        self.resent.append(int.from_bytes(data[2:4], "big"))
        return len(data)


def consumer_of(source: Source, writer: Writer) -> Consumer:
    consumer = Consumer(
        producer=source,  # type: ignore[arg-type]
        transceiver=SimpleNamespace(mid="0"),  # type: ignore[arg-type]
        ssrc=SSRC,
        rtx_ssrc=SSRC + 1,
        writer=writer,  # type: ignore[arg-type]
        settings=MediaSettings(),
    )
    consumer.configure(111, None, (0, 0))
    consumer.start()
    return consumer


def feed(consumer: Consumer, source: Source, seqs: list[int], arrival_ms: int = 1000) -> None:
    for seq in seqs:
        timestamp = seq * 960
        source.packets[seq] = (seq, timestamp, 0, b"payload")
        consumer.write(seq, timestamp, 0, 0x80, b"payload", True, arrival_ms)


def nack(consumer: Consumer, lost: list[int]) -> None:
    consumer.on_rtcp(RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=SSRC, lost=lost))


def test_reordered_and_wrapping_numbers_keep_their_places() -> None:
    source, writer = Source(), Writer()
    consumer = consumer_of(source, writer)
    # input wraps from 65535 to 0; 0 and 65534 arrive late, 1 twice
    feed(consumer, source, [65533, 65535, 1, 0, 2, 65534, 1, 3])
    first = writer.forwarded[0]
    expected = [(first + (seq - 65533)) & 0xFFFF for seq in (65533, 65535, 1, 0, 2, 65534, 1, 3)]
    assert writer.forwarded == expected
    assert consumer.next_sequence_number == (first + 7) & 0xFFFF


def test_late_packet_does_not_move_the_stream_back() -> None:
    source, writer = Source(), Writer()
    consumer = consumer_of(source, writer)
    feed(consumer, source, [100, 101, 102, 103])
    newest = writer.forwarded[-1]
    feed(consumer, source, [101])  # late: its own number again, not a new one
    assert writer.forwarded[-1] == (newest - 2) & 0xFFFF
    assert consumer.next_sequence_number == (newest + 1) & 0xFFFF

    # the next source continues after the newest number sent, never on top of it
    other = Source()
    consumer.switch_to(other)  # type: ignore[arg-type]
    feed(consumer, other, [40000, 40001], arrival_ms=1020)
    assert writer.forwarded[-2:] == [(newest + 1) & 0xFFFF, (newest + 2) & 0xFFFF]
    assert len(set(writer.forwarded)) == 6  # 101 twice; the rest each once


def test_packets_from_before_the_source_began_are_dropped() -> None:
    source, writer = Source(), Writer()
    consumer = consumer_of(source, writer)
    feed(consumer, source, [10, 11, 12])
    feed(consumer, source, [9, 65535])  # before the first packet this consumer forwarded
    assert len(writer.forwarded) == 3
    feed(consumer, source, [10])  # within the source: forwarded where it belongs
    assert writer.forwarded[-1] == writer.forwarded[0]
    nack(consumer, [(writer.forwarded[0] - 1) & 0xFFFF, writer.forwarded[0]])
    assert writer.resent == [writer.forwarded[0]]


@pytest.mark.parametrize("start", [0, 30000, 65000])
def test_a_long_stream_keeps_flowing_past_half_the_number_space(start: int) -> None:
    source, writer = Source(), Writer()
    consumer = consumer_of(source, writer)
    seqs = [(start + i) & 0xFFFF for i in range(70_000)]
    feed(consumer, source, seqs)
    assert len(writer.forwarded) == 70_000
    first = writer.forwarded[0]
    assert writer.forwarded[-1] == (first + 69_999) & 0xFFFF
    late = seqs[-5]
    feed(consumer, source, [late])
    assert writer.forwarded[-1] == (first + 69_995) & 0xFFFF
    assert consumer.next_sequence_number == (first + 70_000) & 0xFFFF


def test_nacks_are_answered_for_numbers_sent_by_the_current_source_only() -> None:
    source, writer = Source(), Writer()
    consumer = consumer_of(source, writer)
    feed(consumer, source, [(65000 + i) & 0xFFFF for i in range(40_000)])
    newest = writer.forwarded[-1]
    # recent numbers (across the output wrap), the newest, and a late one
    wanted = [(newest - 600) & 0xFFFF, (newest - 1) & 0xFFFF, newest]
    nack(consumer, wanted)
    assert writer.resent == wanted
    # never sent yet: nothing to resend
    nack(consumer, [(newest + 1) & 0xFFFF, (newest + 300) & 0xFFFF])
    assert writer.resent == wanted
