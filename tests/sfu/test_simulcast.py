"""Simulcast layers: a consumer of a SimulcastProducer forwards exactly one layer and
switches on the keyframe of the layer it goes to; what the subscriber receives is one
continuous stream (SSRC, sequence numbers, VP8 picture IDs, TL0PICIDX), and the compiled
path writes the same bytes as Python."""

from __future__ import annotations

import random
import struct
from types import SimpleNamespace

import pytest
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu import producer as producer_module
from sfu import rtc
from sfu.consumer import Consumer
from sfu.rtc.native import NATIVE
from sfu.settings import MediaSettings
from sfu.simulcast import SimulcastProducer
from sfu.simulcast_sdp import SimulcastSection

from .test_fastpath import Wire

SEND_TIME = 0x123456
ARRIVAL_BASE = 3_900_000_000_000
RID_ID = 10
REPAIRED_ID = 11
RIDS = ("q", "h", "f")
SSRCS = (0x1110, 0x2220, 0x3330)
RTX_SSRCS = (0x1111, 0x2221, 0x3331)
#: Frames between keyframes of each layer, and where each layer's first keyframe falls.
KEYFRAME_EVERY = 8
KEYFRAME_PHASE = (0, 3, 5)
PACKETS_PER_FRAME = 3


def rtp(
    ssrc: int, seq: int, timestamp: int, payload: bytes, *, rid: bytes, pt: int = 96, marker=0
) -> bytes:
    """A packet carrying its rid (one-byte header extension, as browsers send it)."""
    element = bytes(((RID_ID if pt == 96 else REPAIRED_ID) << 4 | (len(rid) - 1),)) + rid
    element += b"\x00" * (-len(element) % 4)
    extension = b"\xbe\xde" + struct.pack("!H", len(element) // 4) + element
    return (
        struct.pack("!BBHII", 0x90, (marker << 7) | pt, seq, timestamp, ssrc) + extension + payload
    )


def vp8_payload(layer: int, picture: int, tl0: int, first: bool, keyframe: bool, rng) -> bytes:
    """A VP8 payload descriptor with a 15-bit picture ID and TL0PICIDX, then (on a frame's
    first packet) the frame tag's P bit, then the layer's mark and noise."""
    descriptor = bytes(
        (0x80 | (0x10 if first else 0), 0xC0, 0x80 | picture >> 8, picture & 0xFF, tl0)
    )
    tag = bytes((0x00 if keyframe else 0x01,)) if first else b""
    return descriptor + tag + bytes((0xA0 + layer,)) + rng.randbytes(rng.randint(20, 200))


def frames(rng: random.Random, count: int):
    """(frame index, layer, [packets]) for ``count`` frames of each layer, interleaved
    as they arrive: every layer's frame of one instant, lowest layer first."""
    seqs = [rng.randrange(65536) for _ in RIDS]
    bases = [rng.getrandbits(32) for _ in RIDS]
    pictures = [rng.randrange(0x7FFF) for _ in RIDS]
    tl0s = [rng.randrange(256) for _ in RIDS]
    for n in range(count):
        for layer in range(len(RIDS)):
            keyframe = (n - KEYFRAME_PHASE[layer]) % KEYFRAME_EVERY == 0
            timestamp = (bases[layer] + 3000 * n) & 0xFFFFFFFF
            packets = []
            for k in range(PACKETS_PER_FRAME):
                payload = vp8_payload(layer, pictures[layer], tl0s[layer], k == 0, keyframe, rng)
                packets.append(
                    rtp(
                        SSRCS[layer],
                        seqs[layer],
                        timestamp,
                        payload,
                        rid=RIDS[layer].encode(),
                        marker=int(k == PACKETS_PER_FRAME - 1),
                    )
                )
                seqs[layer] = (seqs[layer] + 1) & 0xFFFF
            pictures[layer] = (pictures[layer] + 1) & 0x7FFF
            tl0s[layer] = (tl0s[layer] + 1) & 0xFF
            yield n, layer, packets


#: The transport-wide number's id every subscribe transport numbers packets with.
TRANSPORT_CC_ID = 2


def make(
    compiled: bool,
    extension_ids=((3, 0, TRANSPORT_CC_ID), (0, 0)),
    settings: MediaSettings | None = None,
):
    settings = settings or MediaSettings()
    rtcp: list[bytes] = []
    producer = SimulcastProducer(
        participant_id="p",
        codec=RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96),
        rtx_payload_type=97,
        rtcp_ssrc=0x55,
        writer=SimpleNamespace(write_rtcp=rtcp.append),  # type: ignore[arg-type]
        settings=settings,
        section=SimulcastSection("0", RIDS, frozenset(), RID_ID, REPAIRED_ID),
        compiled=compiled,
    )
    consumers, wires = [], []
    for i, ids in enumerate(extension_ids):
        wire = Wire(compiled)
        wire.writer.transport_cc_id = TRANSPORT_CC_ID
        random.seed(i)
        consumer = Consumer(
            producer=producer,  # type: ignore[arg-type]  # a simulcast track
            transceiver=SimpleNamespace(mid=str(i)),  # type: ignore[arg-type]
            ssrc=0x9000 + i,
            rtx_ssrc=0x9100 + i,
            writer=wire.writer,
            settings=settings,
        )
        consumer.configure(100 + i, None, ids)
        consumers.append(consumer)
        wires.append(wire)
    return producer, consumers, wires, rtcp


def feed(producer: SimulcastProducer, data: bytes, arrival: int, compiled: bool) -> bool:
    """As the direct receive path does: the compiled layer first, when routed there."""
    if compiled:
        route = producer.native_route(struct.unpack_from("!I", data, 8)[0], data[1] & 0x7F)
        if route is not None and NATIVE.lib.caucus_producer_packet(
            route[0], data, len(data), arrival, SEND_TIME
        ):
            return True
    producer.on_rtp_data(data, arrival)
    return False


def run(compiled: bool, seed: int, plan: dict[int, int | None], count: int) -> dict:
    """Feed ``count`` frames per layer; at frame n, ``plan[n]`` is selected on consumer 0
    (consumer 1 follows it one frame later).  Keyframe requests leave at once (no
    0.3 s spacing): what the two paths send must not depend on how fast the machine runs
    them."""
    producer, consumers, wires, rtcp = make(
        compiled, settings=MediaSettings(keyframe_request_interval=0.0)
    )
    try:
        for consumer in consumers:
            consumer.start()
        got: list[list] = [[] for _ in wires]
        sent = [0] * len(wires)
        in_c = 0
        for step, (n, layer, packets) in enumerate(frames(random.Random(seed), count)):
            if layer == 0:
                if n in plan:
                    consumers[0].select_layer(plan[n])
                if n - 1 in plan:
                    consumers[1].select_layer(plan[n - 1])
            for data in packets:
                before = [c.packets for c in consumers]
                in_c += feed(producer, data, ARRIVAL_BASE + 11 * step, compiled)
                for i, consumer in enumerate(consumers):
                    sent[i] += consumer.packets - before[i]
            if step % 48 == 47:
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
            "consumers": [
                (c.packets, c.bytes, c.next_sequence_number, c.layer, c.layer_switches)
                for c in consumers
            ],
            "layers": [(p.packets, p.bytes, p.ssrc) for p in producer.layers],
            "in_c": in_c,
            "rtcp": rtcp,
        }
    finally:
        for wire in wires:
            wire.close()


def descriptor_at(first_byte: int, body: bytes) -> int:
    if not first_byte & 0x10:
        return 0
    return 4 + ((body[2] << 8 | body[3]) << 2)


def check_continuous(packets: list, plan_layers: list[int]) -> list[int]:
    """Asserts one continuous stream; returns the layer of each frame received."""
    assert packets
    ssrcs = {p[4] for p in packets}
    assert len(ssrcs) == 1
    previous_seq = previous_ts = previous_picture = previous_tl0 = None
    layers = []
    for first, _second, seq, timestamp, _ssrc, body in packets:
        if previous_seq is not None:
            assert seq == (previous_seq + 1) & 0xFFFF
            assert (timestamp - previous_ts) & 0xFFFFFFFF < 0x80000000  # never backwards
        previous_seq, previous_ts = seq, timestamp
        start = descriptor_at(first, body)
        d = body[start:]
        picture = (d[2] & 0x7F) << 8 | d[3]
        tl0 = d[4]
        if d[0] & 0x10:  # a frame's first packet
            layer = d[6] - 0xA0
            if previous_picture is not None:
                assert picture == (previous_picture + 1) & 0x7FFF
                assert tl0 == (previous_tl0 + 1) & 0xFF
            if layers and layer != layers[-1]:
                assert d[5] & 0x01 == 0, "a layer switch begins on a keyframe"
            layers.append(layer)
        else:
            assert picture == previous_picture and tl0 == previous_tl0
            assert d[5] - 0xA0 == layers[-1], "every packet of a frame from one layer"
        previous_picture, previous_tl0 = picture, tl0
    return layers


def expected_layers(plan: dict[int, int | None], count: int) -> list[int]:
    """The layer of each frame consumer 0 should forward: it starts waiting for layer 0's
    keyframe, and a selection moves it at the target layer's next keyframe (the current
    layer flowing until then; withheld video: nothing until then)."""
    current: int | None = None
    target: int | None = 0
    received = []
    for n in range(count):
        for layer in range(len(RIDS)):
            if layer == 0 and n in plan:
                if plan[n] is None:
                    current = target = None
                elif plan[n] != current:
                    target = plan[n]
            keyframe = (n - KEYFRAME_PHASE[layer]) % KEYFRAME_EVERY == 0
            if target == layer and keyframe:
                current, target = layer, None
            if current == layer:
                received.append(layer)
    return received


def switching_plan(switches: int, rng: random.Random) -> dict[int, int]:
    plan, n, layer = {}, 2, 0
    for _ in range(switches):
        layer = rng.choice([x for x in range(len(RIDS)) if x != layer])
        plan[n] = layer
        n += KEYFRAME_EVERY + rng.randrange(3)
    return plan


async def test_fifty_switches_keep_one_continuous_stream_of_the_chosen_layer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(producer_module, "abs_send_time", lambda: SEND_TIME)
    plan = switching_plan(50, random.Random(7))
    count = max(plan) + 2 * KEYFRAME_EVERY
    result = run(False, 3, plan, count)
    layers = check_continuous(result["wires"][0], [])
    check_continuous(result["wires"][1], [])
    assert result["consumers"][0][4] == 50  # every switch happened
    # each switch took effect at the target layer's next keyframe, not before
    assert layers == expected_layers(plan, count)


@pytest.mark.parametrize("seed", [1, 2])
async def test_the_compiled_path_writes_what_python_writes(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert rtc.FASTRECEIVE, "CI builds the compiled module"
    monkeypatch.setattr(producer_module, "abs_send_time", lambda: SEND_TIME)
    plan = switching_plan(12, random.Random(seed))
    count = max(plan) + 2 * KEYFRAME_EVERY
    compiled = run(True, seed, plan, count)
    python = run(False, seed, plan, count)
    for key in ("consumers", "numbered", "layers", "rtcp"):
        assert compiled[key] == python[key], key
    for a, b in zip(compiled["wires"], python["wires"], strict=True):
        assert a == b
    # consumer 0's subscriber negotiated the transport-wide number: each packet has the
    # next one; consumer 1's did not: its transport numbers nothing
    wire = compiled["wires"][0]
    numbers = [p[5][5] << 8 | p[5][6] for p in wire]
    assert numbers == list(range(len(wire))) and len(compiled["numbered"][0]) == len(wire)
    assert compiled["numbered"][1] == []
    assert compiled["in_c"] > count  # the layers nobody waits on went through C


async def test_no_packet_of_a_layer_not_chosen_reaches_the_subscriber(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(producer_module, "abs_send_time", lambda: SEND_TIME)
    result = run(True, 5, {2: 2}, 40)
    layers = check_continuous(result["wires"][0], [])
    # layer 0 (frames 0-5) until layer 2's first keyframe (frame 5), then layer 2 only
    assert layers == expected_layers({2: 2}, 40)
    assert layers == [0] * 6 + [2] * 35
    assert result["consumers"][0][3] == 2


async def test_withheld_video_resumes_on_a_keyframe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(producer_module, "abs_send_time", lambda: SEND_TIME)
    result = run(True, 9, {4: None, 12: 1}, 30)
    layers = check_continuous(result["wires"][0], [])
    # layer 0 for frames 0-3, nothing from 4 until layer 1's keyframe at 19, then layer 1
    assert layers == expected_layers({4: None, 12: 1}, 30)
    assert layers == [0] * 4 + [1] * 11


async def test_packets_without_a_known_rid_are_dropped_and_counted() -> None:
    producer, _consumers, wires, _ = make(False)
    try:
        payload = vp8_payload(0, 1, 1, True, True, random.Random(1))
        producer.on_rtp_data(rtp(0x4444, 1, 1, payload, rid=b"zz"), ARRIVAL_BASE)
        no_rid = struct.pack("!BBHII", 0x80, 96, 2, 2, 0x4445) + payload
        producer.on_rtp_data(no_rid, ARRIVAL_BASE)
        producer.on_rtp_data(b"\x90\x60" + b"\x00" * 14, ARRIVAL_BASE)  # truncated extension
        producer.on_rtp_data(b"\x80", ARRIVAL_BASE)
        assert producer.unplaced == 3
        assert all(layer.packets == 0 for layer in producer.layers)
    finally:
        for wire in wires:
            wire.close()


async def test_a_retransmission_is_placed_by_its_repaired_rid() -> None:
    producer, _consumers, wires, _ = make(False)
    try:
        rng = random.Random(2)
        first = vp8_payload(1, 5, 5, True, True, rng)
        producer.on_rtp_data(rtp(SSRCS[1], 100, 9000, first, rid=b"h"), ARRIVAL_BASE)
        rtx = rtp(RTX_SSRCS[1], 7, 9000, struct.pack("!H", 99) + first, rid=b"h", pt=97)
        producer.on_rtp_data(rtx, ARRIVAL_BASE + 1)
        assert producer.layers[1].retransmissions_received == 1
        assert producer.layers[0].packets == producer.layers[2].packets == 0
        # the layer restarts with a new SSRC: still layer 1
        producer.on_rtp_data(rtp(0x7777, 1, 1, first, rid=b"h"), ARRIVAL_BASE + 2)
        assert producer.layers[1].ssrc == 0x7777
        assert producer.native_route(SSRCS[1], 96) is None
    finally:
        for wire in wires:
            wire.close()


async def test_a_consumer_started_while_its_video_is_withheld_resumes_on_a_keyframe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(producer_module, "abs_send_time", lambda: SEND_TIME)
    producer, consumers, wires, _ = make(False)
    try:
        consumer = consumers[0]
        consumer.select_layer(None)  # withheld before the subscriber could even receive
        consumer.start()
        consumer.select_layer(1)
        assert producer.layers[1].keyframe_waiters == 1
        for step, (_n, _layer, packets) in enumerate(frames(random.Random(4), 12)):
            for data in packets:
                producer.on_rtp_data(data, ARRIVAL_BASE + 11 * step)
        assert consumer.layer == 1 and consumer.packets > 0
        assert producer.layers[1].keyframe_waiters == 0
        layers = check_continuous(wires[0].packets(consumer.packets), [])
        assert set(layers) == {1}
    finally:
        for wire in wires:
            wire.close()


async def test_a_retransmission_after_a_switch_carries_the_rewritten_picture_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(producer_module, "abs_send_time", lambda: SEND_TIME)
    producer, consumers, wires, _ = make(False, extension_ids=((0, 0),))
    try:
        consumer = consumers[0]
        consumer.configure(100, 101, (0, 0))  # retransmissions as RTX (RFC 4588)
        consumer.start()
        for step, (n, layer, packets) in enumerate(frames(random.Random(6), 20)):
            if layer == 0 and n == 2:
                consumer.select_layer(2)  # picture IDs of layer 2 moved onto layer 0's
            for data in packets:
                producer.on_rtp_data(data, ARRIVAL_BASE + 11 * step)
        assert consumer.layer == 2 and consumer._pic_offset != 0
        forwarded = wires[0].packets(consumer.packets)
        last = forwarded[-1]
        consumer._retransmit([last[2]])  # the subscriber NACKs the newest packet
        (again,) = wires[0].packets(1)
        # RTX: the original sequence number, then the same payload bytes as forwarded
        assert again[1] & 0x7F == 101
        assert again[5][:2] == last[2].to_bytes(2, "big") and again[5][2:] == last[5]
    finally:
        for wire in wires:
            wire.close()


class RecordingSink:
    """Stands for a recorder: what reaches it, by SSRC."""

    def __init__(self) -> None:
        self.ssrcs: list[int] = []
        self.closed_by: list[object] = []

    def on_rtp(self, packet) -> None:
        self.ssrcs.append(packet.ssrc)

    def on_producer_closed(self, producer) -> None:
        self.closed_by.append(producer)


async def test_a_recorder_follows_the_highest_layer_arriving() -> None:
    """A publisher whose uplink stops carrying its top layer: the recording goes on from
    the layer below (from a keyframe it asks that layer for), and returns to the top
    layer when it arrives again.  Never two layers at once."""
    producer, _consumers, wires, rtcp = make(False)
    sink = RecordingSink()
    try:
        producer.add_sink(sink)  # before any layer is known: the top one
        stream = list(frames(random.Random(9), 40))
        arrival = ARRIVAL_BASE

        def send(first: int, last: int, layers: set[int]) -> None:
            nonlocal arrival
            for n, layer, packets in stream:
                if first <= n < last and layer in layers:
                    for data in packets:
                        producer.on_rtp_data(data, arrival)
                arrival += 11  # ms: the three layers of an instant, ~33 ms per frame

        send(0, 10, {0, 1, 2})
        assert producer.follow_sinks(arrival) == 2
        assert set(sink.ssrcs) == {SSRCS[2]}
        # the top layer stops; 2 s later only layers 0 and 1 have arrived lately
        send(10, 20, {0, 1})
        arrival += 2000
        send(20, 22, {0, 1})
        rtcp.clear()
        sink.ssrcs.clear()
        assert producer.follow_sinks(arrival) == 1
        assert any(bytes_[1] == 206 and SSRCS[1].to_bytes(4, "big") in bytes_ for bytes_ in rtcp)
        send(22, 30, {0, 1})
        assert set(sink.ssrcs) == {SSRCS[1]}
        # the top layer is back
        send(30, 32, {0, 1, 2})
        assert producer.follow_sinks(arrival) == 2
        sink.ssrcs.clear()
        send(32, 40, {0, 1, 2})
        assert set(sink.ssrcs) == {SSRCS[2]}
        # nothing arrives at all: the recorder stays where it is
        assert producer.follow_sinks(arrival + 60_000) == 2
        producer.remove_sink(sink)
        assert producer.follow_sinks(arrival) is None
        assert all(sink not in layer.sinks for layer in producer.layers)
        producer.add_sink(sink)
        producer.close()
        assert sink.closed_by == [producer.layers[2]]  # told once, by the layer it had
    finally:
        for wire in wires:
            wire.close()
