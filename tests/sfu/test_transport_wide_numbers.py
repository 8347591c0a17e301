"""Transport-wide sequence numbers (draft-holmer-rmcat-transport-wide-cc-extensions-01)
on the subscribe side: every RTP packet one subscribe transport sends with the element
first in its extension block carries the transport's next number, audio, video and
retransmissions alike, and the transport's writer remembers when it left, its size on
the wire and its probe cluster.  The compiled path, the Python path next to it (sharing
the compiled sink's counter) and the Python path without the compiled module number the
same packets the same way."""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RTCP_RTPFB_NACK, RtcpRtpfbPacket

from sfu import producer as producer_module
from sfu.consumer import Consumer
from sfu.producer import Producer
from sfu.rtc import writer as writer_module
from sfu.rtc.native import NATIVE
from sfu.rtp_header import extension_block
from sfu.settings import MediaSettings

from .test_fastpath import Wire
from .test_native_producer import PUBLISHER_LEVEL_ID, SEND_TIME, packet

#: The transport-wide number's extension id the subscribers negotiated.
TCC = 2
#: SRTP's trailer (AES-GCM's tag, the profile of the test wires).
TAG = 16
ARRIVAL_BASE = 3_900_000_000_000
PATHS = ("compiled", "python", "no module")


def wire_on(path: str, monkeypatch: pytest.MonkeyPatch) -> Wire:
    """A wire whose writer sends through the compiled sink, through Python with the sink
    (holding the counter) beside it, or through Python without the compiled module."""
    if path != "no module":
        return Wire(path == "compiled")
    with monkeypatch.context() as patch:
        patch.setattr(writer_module, "FASTPATH", False)
        wire = Wire(False)
    assert wire.writer.sink is None
    return wire


@pytest.fixture(params=PATHS)
def wire(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Wire]:
    """:func:`wire_on` each path, closed after the test."""
    wire = wire_on(request.param, monkeypatch)
    try:
        yield wire
    finally:
        wire.close()


def number_of(tail: bytes) -> int | None:
    """The transport-wide number of a packet whose block begins with the element."""
    if tail[:2] != b"\xbe\xde" or tail[4] != TCC << 4 | 1:
        return None
    return tail[5] << 8 | tail[6]


def nack(consumer: Consumer, lost: list[int]) -> None:
    consumer.on_rtcp(
        RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=consumer._ssrc, lost=lost)
    )


class Session:
    """One subscribe transport carrying an audio and a video track, the video one twice
    (a second consumer whose subscriber did not negotiate the number), from producers
    compiled or not, fed as the direct receive path feeds them."""

    def __init__(self, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
        compiled = path == "compiled"
        self.compiled = compiled
        self.wire = wire_on(path, monkeypatch)
        self.wire.writer.transport_cc_id = TCC
        settings = MediaSettings()
        rtcp = SimpleNamespace(write_rtcp=lambda data: None)
        self.audio = Producer(
            participant_id="p",
            kind="audio",
            codec=RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, payloadType=111),
            rtx_payload_type=None,
            rtcp_ssrc=0x55,
            writer=rtcp,  # type: ignore[arg-type]
            settings=settings,
            audio_level_id=PUBLISHER_LEVEL_ID,
            compiled=compiled,
        )
        self.video = Producer(
            participant_id="p",
            kind="video",
            codec=RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96),
            rtx_payload_type=97,
            rtcp_ssrc=0x56,
            writer=rtcp,  # type: ignore[arg-type]
            settings=settings,
            compiled=compiled,
        )
        self.consumers = []
        for i, (producer, ids, rtx) in enumerate(
            [
                (self.audio, (0, 5, TCC), None),
                (self.video, (3, 0, TCC), 101),
                (self.video, (3, 0), None),
            ]
        ):
            random.seed(i)
            consumer = Consumer(
                producer=producer,
                transceiver=SimpleNamespace(mid=str(i)),  # type: ignore[arg-type]
                ssrc=0x1000 + i,
                rtx_ssrc=0x2000 + i,
                writer=self.wire.writer,
                settings=settings,
            )
            consumer.configure(100 + i, rtx, ids)
            consumer.start()
            self.consumers.append(consumer)
        self.forwarded = 0

    def feed(self, producer: Producer, data: bytes, arrival: int) -> None:
        before = sum(c.packets for c in self.consumers)
        if not (
            self.compiled
            and NATIVE.lib.caucus_producer_packet(
                producer.native, data, len(data), arrival, SEND_TIME
            )
        ):
            producer.on_rtp_data(data, arrival)
        self.forwarded += sum(c.packets for c in self.consumers) - before

    def run(self, rng: random.Random, frames: int) -> Iterator[None]:
        """Audio packets and three-packet video frames, interleaved; yields after each
        frame."""
        for n in range(frames):
            arrival = ARRIVAL_BASE + 20 * n
            audio = packet(n, n * 960, rng.randbytes(rng.randint(20, 120)), ssrc=0xA, pt=111)
            self.feed(self.audio, audio, arrival)
            for k in range(3):
                seq = 3 * n + k
                payload = b"\x10\x00" + rng.randbytes(rng.randint(100, 1100))
                video = packet(seq, n * 3000, payload, ssrc=0xB, marker=int(k == 2))
                self.feed(self.video, video, arrival + k)
            yield

    def close(self) -> None:
        self.wire.close()


def exchange(path: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Forward 60 frames; after frame 30 the subscriber NACKs three video packets (RTX),
    and the packets of frames 40-44 belong to probe cluster 9."""
    session = Session(path, monkeypatch)
    writer = session.wire.writer
    try:
        got = []
        started = time.monotonic()
        video = session.consumers[1]
        for n, _ in enumerate(session.run(random.Random(4), 60)):
            if n == 30:
                newest = video.next_sequence_number - 1
                nack(video, [newest - 4, newest - 3, newest])
                assert video.retransmitted == 3
            writer.probe_cluster = 9 if 40 <= n < 45 else 0
            if n % 6 == 5:  # before the receiving socket's buffer fills up
                got.extend(session.wire.packets(session.forwarded + video.retransmitted))
                session.forwarded = video.retransmitted = 0
        ended = time.monotonic()
        count = writer.next_transport_seq
        sent = [writer.sent(seq) for seq in range(count)]
        assert all(entry is not None and started <= entry[0] <= ended for entry in sent)
        return {
            "wire": got,
            "next": count,
            "remembered": [entry[1:] for entry in sent if entry is not None],
            "times": [entry[0] for entry in sent if entry is not None],
        }
    finally:
        session.close()


async def test_one_transport_numbers_audio_video_and_retransmissions_in_one_sequence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(producer_module, "abs_send_time", lambda: SEND_TIME)
    runs = {path: exchange(path, monkeypatch) for path in PATHS}
    compiled = runs["compiled"]
    for path in PATHS[1:]:
        assert runs[path]["wire"] == compiled["wire"], path
        assert runs[path]["next"] == compiled["next"], path
        assert runs[path]["remembered"] == compiled["remembered"], path
    wire = compiled["wire"]
    numbered = [p for p in wire if number_of(p[5]) is not None]
    # every packet of the audio and the first video consumer, RTX included, and no other
    assert {p[4] for p in numbered} == {0x1000, 0x1001, 0x2001}
    assert all(number_of(p[5]) is None for p in wire if p[4] == 0x1002)
    assert [number_of(p[5]) for p in numbered] == list(range(len(numbered)))
    assert compiled["next"] == len(numbered) == 60 + 3 * 60 + 3
    # the retransmissions: the block, then the original sequence number (RFC 4588)
    rtx = [p for p in wire if p[4] == 0x2001]
    assert [p[1] & 0x7F for p in rtx] == [101] * 3 and all(p[0] == 0x90 for p in rtx)
    originals = {p[2]: p[5] for p in wire if p[4] == 0x1001}
    for p in rtx:
        osn = struct.unpack_from("!H", p[5], 8)[0]
        assert p[5][10:] == originals[osn][12:]  # the payload behind the video block
    # the writer remembers each one's size on the wire and probe cluster
    sizes = [12 + len(p[5]) + TAG for p in numbered]
    assert [size for size, _ in compiled["remembered"]] == sizes
    clusters = [cluster for _, cluster in compiled["remembered"]]
    assert clusters.count(9) == 5 * 4 and set(clusters) == {0, 9}
    assert compiled["times"] == sorted(compiled["times"])


@pytest.mark.parametrize("path", PATHS)
def test_each_transport_numbers_its_own_packets(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    wires = [wire_on(path, monkeypatch) for _ in range(2)]
    try:
        for wire in wires:
            wire.writer.transport_cc_id = TCC
        tail = extension_block(0, None, 0, None, TCC) + b"payload"
        for seq in range(5):
            wires[0].writer.forward(0x90, 96, seq, 0, 0x10, tail)
        wires[1].writer.forward(0x90, 96, 0, 0, 0x11, tail)
        assert [number_of(p[5]) for p in wires[0].packets(5)] == [0, 1, 2, 3, 4]
        assert [number_of(p[5]) for p in wires[1].packets(1)] == [0]
        assert (wires[0].writer.next_transport_seq, wires[1].writer.next_transport_seq) == (5, 1)
        assert wires[1].writer.sent(1) is None and wires[0].writer.sent(1) is not None
    finally:
        for wire in wires:
            wire.close()


def drain(wire: Wire) -> list[bytes]:
    """The packets waiting at the wire's receiving end (unprotected, in order: the
    receiving session follows the sender's rollover)."""
    wire.receiver.setblocking(False)
    got = []
    try:
        while True:
            got.append(wire._rx.unprotect(wire.receiver.recv(4096))[12:])
    except BlockingIOError:
        return got
    finally:
        wire.receiver.settimeout(2)


def test_numbers_wrap_after_65535_and_the_ring_forgets_old_packets(wire: Wire) -> None:
    writer = wire.writer
    writer.transport_cc_id = TCC
    block = extension_block(0, None, 0, None, TCC)
    numbers = []
    for seq in range(65534):
        assert writer.forward(0x90, 96, seq, 0, 0x10, block + b"x")
        if seq == 3:  # early on, the ring's first lap holds nothing after them
            assert writer.sent(0) is not None and writer.sent(4) is None
        if seq % 32 == 31:
            numbers.extend(number_of(tail) for tail in drain(wire))
    numbers.extend(number_of(tail) for tail in drain(wire))
    assert numbers == list(range(65534))
    assert writer.next_transport_seq == 65534
    for seq in range(65534, 65538):
        data = struct.pack("!BBHII", 0x90, 96, seq & 0xFFFF, 0, 0x10) + block + b"late"
        assert writer.write_rtp(data)
    assert [number_of(tail) for tail in drain(wire)] == [65534, 65535, 0, 1]
    assert writer.next_transport_seq == 2
    size = 12 + len(block) + 4 + TAG
    for number in (65534, 65535, 0, 1):
        entry = writer.sent(number)
        assert entry is not None and entry[1:] == (size, 0)
    # the ring holds the newest 4,096: 61442-65535, 0 and 1; slot 2 holds 61442
    assert writer.sent(61442) is not None
    for gone in (61441, 2, 3, 4):
        assert writer.sent(gone) is None


def rtp(first_byte: int, after_header: bytes, seq: int = 7) -> bytes:
    return struct.pack("!BBHII", first_byte, 96, seq, 9, 0x10) + after_header


#: Packets a numbering transport sends as they are: the element missing, not first, of
#: another id or length, a two-byte-header block, an empty block, a truncated one.
UNTOUCHED = [
    rtp(0x80, b"payload"),
    rtp(0x90, extension_block(3, 0x123456, 0, None) + b"payload"),
    rtp(0x90, b"\xbe\xde\x00\x02\x32\x12\x34\x56" + bytes((TCC << 4 | 1, 0, 0, 0))),
    rtp(0x90, extension_block(0, None, 0, None, TCC + 1) + b"payload"),
    rtp(0x90, b"\xbe\xde\x00\x01" + bytes((TCC << 4 | 2, 0, 0, 0)) + b"payload"),
    rtp(0x90, b"\x10\x00\x00\x01" + bytes((TCC, 2, 0, 0)) + b"payload"),
    rtp(0x90, b"\xbe\xde\x00\x00" + bytes((TCC << 4 | 1, 0, 0, 0))),
    rtp(0x80, b"\xbe\xde\x00\x01" + bytes((TCC << 4 | 1, 0, 0, 0))),  # no X bit
]


def test_packets_without_the_element_first_are_sent_as_they_are(wire: Wire) -> None:
    writer = wire.writer
    writer.transport_cc_id = TCC
    for i, data in enumerate(UNTOUCHED):
        assert writer.write_rtp(data[:2] + struct.pack("!H", 2 * i) + data[4:])
        assert writer.forward(data[0], data[1], 2 * i + 1, 9, 0x10, data[12:])
    got = wire.packets(2 * len(UNTOUCHED))
    assert [p[2] for p in got] == list(range(2 * len(UNTOUCHED)))
    assert [p[0] for p in got[::2]] == [data[0] for data in UNTOUCHED]
    assert [p[5] for p in got[::2]] == [data[12:] for data in UNTOUCHED]
    assert [p[5] for p in got[1::2]] == [data[12:] for data in UNTOUCHED]
    assert writer.next_transport_seq == 0 and writer.sent(0) is None
    # a block shorter than its element: not numbered (and libsrtp refuses it); one
    # longer than the packet is numbered, refused by libsrtp: its number is reused
    assert not writer.write_rtp(rtp(0x90, b"\xbe\xde\x00\x01" + bytes((TCC << 4 | 1, 0))))
    assert not writer.write_rtp(rtp(0x90, b"\xbe\xde\x00\x02" + bytes((TCC << 4 | 1, 0, 0, 0))))
    assert writer.next_transport_seq == 0 and writer.sent(0) is None
    # two CSRCs before the block: the number goes where the element's value is
    csrcs = b"\xff" * 8
    block = extension_block(0, None, 0, None, TCC)
    assert writer.write_rtp(rtp(0x90, block + b"first", 100))
    assert writer.write_rtp(rtp(0x92, csrcs + block + b"payload", 101))
    assert writer.forward(0x92, 96, 102, 9, 0x10, csrcs + block + b"payload")
    first, *numbered = wire.packets(3)
    assert first[5] == block + b"first"  # number 0
    for number, numbered_packet in enumerate(numbered, 1):
        assert numbered_packet[5] == csrcs + block[:5] + bytes((0, number)) + block[7:] + b"payload"
    assert writer.next_transport_seq == 3 and writer.sent(2) is not None
    # numbering stopped: the element stays 00 00, what was sent is still known
    writer.transport_cc_id = 0
    assert writer.write_rtp(rtp(0x90, block + b"payload", 103))
    assert wire.packets(1)[0][5] == block + b"payload"
    assert writer.next_transport_seq == 3 and writer.sent(2) is not None


def test_the_numbering_settings_are_checked(wire: Wire) -> None:
    writer = wire.writer
    assert writer.transport_cc_id == 0 and writer.sent(0) is None
    for wrong in (15, -1, 256):
        with pytest.raises(ValueError):
            writer.transport_cc_id = wrong
    for wrong in (2**31, -(2**31) - 1):
        with pytest.raises(ValueError):
            writer.probe_cluster = wrong
    writer.transport_cc_id = 14
    writer.probe_cluster = -(2**31)
    assert (writer.transport_cc_id, writer.probe_cluster) == (14, -(2**31))
    assert writer.write_rtp(rtp(0x90, extension_block(0, None, 0, None, 14)))
    entry = writer.sent(0x10000)  # numbers are taken modulo 2**16
    assert entry is not None and entry[1:] == (12 + 8 + TAG, -(2**31))
    assert wire.packets(1)[0][5][4] == 14 << 4 | 1


def test_consumers_take_two_or_three_ids() -> None:
    """The transport passes (abs-send-time, audio level) until it negotiates the number;
    an id the one-byte form cannot carry is not written."""
    wire = Wire(False)
    try:
        consumer = Consumer(
            producer=Producer(
                participant_id="p",
                kind="audio",
                codec=RTCRtpCodecParameters(
                    mimeType="audio/opus", clockRate=48000, payloadType=111
                ),
                rtx_payload_type=None,
                rtcp_ssrc=0x55,
                writer=SimpleNamespace(write_rtcp=lambda data: None),  # type: ignore[arg-type]
                settings=MediaSettings(),
            ),
            transceiver=SimpleNamespace(mid="0"),  # type: ignore[arg-type]
            ssrc=1,
            rtx_ssrc=2,
            writer=wire.writer,
            settings=MediaSettings(),
        )
        consumer.configure(111, None, (3, 5))
        assert consumer.extension_ids == (3, 5, 0)
        consumer.configure(111, None, (3, 5, 2))
        assert consumer.extension_ids == (3, 5, 2)
        consumer.configure(111, None, (16, 5, 15))
        assert consumer.extension_ids == (0, 5, 0)
        with pytest.raises(ValueError):
            consumer.configure(111, None, (1,))  # type: ignore[arg-type]
    finally:
        wire.close()
