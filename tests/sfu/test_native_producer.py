"""The compiled producer (``caucus_producer_packet``) against the Python one: the same
packets received put the same datagrams on every subscriber's wire and leave the same
statistics, retransmission buffer and feedback, whichever path forwarded them.

The compiled run feeds each packet as the direct receive path does: to the compiled
producer first, to :meth:`Producer.on_rtp_data` when it declines.  The Python run feeds
every packet to ``on_rtp_data`` of a producer and consumers kept in Python."""

from __future__ import annotations

import random
import struct
from types import SimpleNamespace

import pytest
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu import producer as producer_module
from sfu import rtc
from sfu.consumer import Consumer
from sfu.producer import Producer
from sfu.rtc.native import NATIVE
from sfu.settings import MediaSettings

from .test_fastpath import Wire

SEND_TIME = 0x123456
ARRIVAL_BASE = 3_900_000_000_000
#: The publisher's ssrc-audio-level id, and what each consumer's subscriber negotiated
#: (abs-send-time id, audio-level id[, transport-wide sequence number id]): two share a
#: block, one has none, one has the transport-wide number alone.
PUBLISHER_LEVEL_ID = 1
CONSUMER_IDS = [(3, 5, 2), (0, 0), (3, 5, 2), (0, 5), (0, 0, 7), (4, 0)]
#: The transport-wide number's id each consumer's transport numbers packets with (a
#: transport whose consumer did not negotiate it numbers nothing: no element).
TRANSPORT_CC_IDS = [2, 2, 2, 3, 7, 0]


def packet(
    seq: int, timestamp: int, payload: bytes, *, ssrc: int = 0xABC, pt: int = 96, marker=0
) -> bytes:
    """An RTP packet with a one-byte extension block carrying the audio level."""
    extension = b"\xbe\xde\x00\x01" + bytes((PUBLISHER_LEVEL_ID << 4, 0x80 | 42, 0, 0))
    header = struct.pack("!BBHII", 0x90, (marker << 7) | pt, seq, timestamp, ssrc)
    return header + extension + payload


def stream(rng: random.Random) -> list[bytes]:
    """In order, a gap, late and duplicated packets, a wrap, RTX, padding, a new SSRC,
    a malformed one; every payload a VP8 keyframe start (consumers may begin anywhere)."""
    seqs = list(range(65500, 65536)) + list(range(0, 40))
    seqs += [43, 44, 41, 42, 45, 45, 30, 46, 47, *list(range(48, 200))]
    packets = []
    for seq in seqs:
        payload = b"\x10\x00" + rng.randbytes(rng.randint(10, 1300))
        packets.append(packet(seq, (seq * 3000) & 0xFFFFFFFF, payload, marker=seq % 3 == 0))
    # a retransmission (RTX, payload type 97, its own SSRC): the original number leads
    packets.append(packet(0xEEEE, 0, struct.pack("!H", 47) + b"\x10\x00rtx", ssrc=0xDEF, pt=97))
    # padding: three bytes, the last one saying so
    padded = bytearray(packet(200, 600000, b"\x10\x00padded" + b"\x00\x00\x03"))
    padded[0] |= 0x20
    packets.append(bytes(padded))
    # a payload larger than a retransmission slot holds
    packets.append(packet(201, 603000, b"\x10\x00" + rng.randbytes(1410)))
    packets.append(packet(202, 606000, b""))  # no payload: dropped
    packets.append(packet(203, 609000, b"\x10\x00" + b"x" * 50)[:20])  # truncated extension
    # the publisher restarts with a new SSRC
    for seq in range(7000, 7020):
        packets.append(packet(seq, seq * 3000, b"\x10\x00" + rng.randbytes(200), ssrc=0x777))
    return packets


def make(compiled: bool) -> tuple[Producer, list[Consumer], list[Wire], list[bytes]]:
    settings = MediaSettings()
    rtcp: list[bytes] = []
    producer = Producer(
        participant_id="p",
        kind="video",
        codec=RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96),
        rtx_payload_type=97,
        rtcp_ssrc=0x55,
        writer=SimpleNamespace(write_rtcp=rtcp.append),  # type: ignore[arg-type]
        settings=settings,
        audio_level_id=PUBLISHER_LEVEL_ID,
        compiled=compiled,
    )
    consumers, wires = [], []
    for i, ids in enumerate(CONSUMER_IDS):
        wire = Wire(compiled)
        wire.writer.transport_cc_id = TRANSPORT_CC_IDS[i]
        random.seed(i)
        consumer = Consumer(
            producer=producer,
            transceiver=SimpleNamespace(mid=str(i)),  # type: ignore[arg-type]
            ssrc=0x1000 + i,
            rtx_ssrc=0x2000 + i,
            writer=wire.writer,
            settings=settings,
        )
        consumer.configure(100 + i, None, ids)
        consumers.append(consumer)
        wires.append(wire)
    return producer, consumers, wires, rtcp


def run(compiled: bool, seed: int) -> dict:
    producer, consumers, wires, rtcp = make(compiled)
    assert (producer.native is not None) is compiled
    try:
        handled_in_c = 0
        sent = [0] * len(wires)
        got: list[list] = [[] for _ in wires]
        held_before_restart = None
        for n, data in enumerate(stream(random.Random(seed))):
            if held_before_restart is None and data[8:12] == b"\x00\x00\x07\x77":
                held_before_restart = [producer.lookup(seq & 0xFFFF) for seq in range(-40, 210)]
            if n == 0:
                for consumer in consumers[:-1]:
                    consumer.start()
            if n == 100:
                consumers[-1].start()  # a subscriber that joins mid-stream
            before = [c.packets for c in consumers]
            arrival = ARRIVAL_BASE + 33 * n
            if compiled and NATIVE.lib.caucus_producer_packet(
                producer.native, data, len(data), arrival, SEND_TIME
            ):
                handled_in_c += 1
            else:
                producer.on_rtp_data(data, arrival)
            for i, consumer in enumerate(consumers):
                sent[i] += consumer.packets - before[i]
            if n % 40 == 39:  # read before the receiving sockets' buffers fill up
                for i, wire in enumerate(wires):
                    got[i].extend(wire.packets(sent[i]))
                    sent[i] = 0
        for i, wire in enumerate(wires):
            got[i].extend(wire.packets(sent[i]))
        return {
            "wires": got,
            "numbered": [
                [w.writer.sent(n)[1:] for n in range(w.writer.next_transport_seq)]  # type: ignore[index]
                for w in wires
            ],
            "consumers": [(c.packets, c.bytes, c.next_sequence_number) for c in consumers],
            "producer": (
                producer.packets,
                producer.bytes,
                producer._max_seq,
                producer._cycles,
                producer.last_timestamp,
                producer.last_arrival_ms,
                producer.ssrc,
                producer.retransmissions_received,
                producer.nacks_sent,
                round(producer._budget_tokens, 6),
                producer._budget_at,
            ),
            "levels": producer.take_audio_level(),
            "held_before_restart": held_before_restart,
            "buffer": [producer.lookup(seq) for seq in range(6990, 7030)],
            "rtcp": rtcp,
            "handled_in_c": handled_in_c,
        }
    finally:
        for wire in wires:
            wire.close()


@pytest.mark.parametrize("seed", [1, 2])
async def test_the_compiled_producer_forwards_exactly_what_python_does(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert rtc.FASTRECEIVE, "CI builds the compiled module"
    monkeypatch.setattr(producer_module, "abs_send_time", lambda: SEND_TIME)
    compiled = run(True, seed)
    python = run(False, seed)
    keys = ("consumers", "numbered", "producer", "levels", "held_before_restart", "buffer")
    for key in (*keys, "rtcp"):
        assert compiled[key] == python[key], key
    for i, (a, b) in enumerate(zip(compiled["wires"], python["wires"], strict=True)):
        assert a == b, f"consumer {i}"
    # most packets never reached Python; the gap was NACKed from Python
    assert compiled["handled_in_c"] > 250
    assert python["producer"][8] == 1
    # every packet that passed carried level 42 with voice activity (RFC 6464), read in C
    packets, mean, voiced = compiled["levels"]
    assert packets > 250 and mean == 42.0 and voiced == packets
    # the ring held the first stream (but the payload too large for a slot)
    assert sum(entry is not None for entry in compiled["held_before_restart"]) > 200
    # the consumers sharing ids got the same extension block; the one without none
    first = compiled["wires"]
    assert first[0][5][5][:12] == first[2][5][5][:12]
    assert first[1][5][0] == 0x80 and first[0][5][0] == 0x90
    # the late joiner began mid-stream, on the same sequence it continues
    assert 0 < len(first[-1]) < len(first[0])
    # the consumers with the transport-wide number: every packet numbered, in order, the
    # element first (a duplicate, refused as a replay, is read in the clear: not checked);
    # none on the transports of the others
    for i, (wire, numbered) in enumerate(zip(first, compiled["numbered"], strict=True)):
        tcc_id = CONSUMER_IDS[i][2] if len(CONSUMER_IDS[i]) > 2 else 0
        assert len(numbered) == (len(wire) if tcc_id else 0)
        for number, (first_byte, *_, tail) in enumerate(wire if tcc_id else []):
            if tail != b"(replay)":
                element = bytes((tcc_id << 4 | 1,)) + number.to_bytes(2, "big")
                assert first_byte == 0x90 and tail[4:7] == element
                assert numbered[number] == (12 + len(tail) + 16, 0)


async def test_a_payload_too_large_for_a_slot_is_forwarded_but_not_held() -> None:
    producer, _consumers, wires, _ = make(True)
    try:
        big = packet(10, 30000, b"\x10\x00" + bytes(1410))
        small = packet(11, 33000, b"\x10\x00" + bytes(100))
        producer.on_rtp_data(big, ARRIVAL_BASE)  # the first packet: Python learns the SSRC
        assert NATIVE.lib.caucus_producer_packet(
            producer.native, small, len(small), ARRIVAL_BASE + 1, SEND_TIME
        )
        assert producer.lookup(10) is None
        held = producer.lookup(11)
        assert held is not None and held[3] == b"\x10\x00" + bytes(100)
    finally:
        for wire in wires:
            wire.close()


async def test_python_keeps_what_the_compiled_path_cannot_do() -> None:
    """Waiting for a keyframe, a recorder, a consumer not bound, more consumers than the
    compiled table, one kept in Python: each sends the packet back to Python."""
    producer, consumers, wires, _ = make(True)
    try:
        first = packet(1, 3000, b"\x10\x00first")
        producer.on_rtp_data(first, ARRIVAL_BASE)

        def compiled_takes(seq: int) -> bool:
            data = packet(seq, seq * 3000, b"\x10\x00" + bytes(20))
            taken = NATIVE.lib.caucus_producer_packet(
                producer.native, data, len(data), ARRIVAL_BASE + seq, SEND_TIME
            )
            if not taken:
                producer.on_rtp_data(data, ARRIVAL_BASE + seq)
            return bool(taken)

        assert compiled_takes(2)  # nobody started: nothing to write, but in C
        consumers[0].start()  # started, waiting for a keyframe
        assert not compiled_takes(3)  # the keyframe: Python rebases the consumer
        assert compiled_takes(4)
        sink = SimpleNamespace(on_rtp=lambda packet: None, on_producer_closed=lambda p: None)
        producer.add_sink(sink)  # type: ignore[arg-type]
        assert not compiled_takes(5)
        producer.remove_sink(sink)  # type: ignore[arg-type]
        assert compiled_takes(6)
        consumers[1]._leave_native()
        assert not compiled_takes(7)
        assert producer.native.outputs_complete == 0
        assert not compiled_takes(9)  # and a gap, NACKed by Python
        assert producer.nacks_sent == 1
        producer.remove_consumer(consumers[1], False)
        assert compiled_takes(10)
        producer.close()
        assert not compiled_takes(11)
    finally:
        for wire in wires:
            wire.close()
