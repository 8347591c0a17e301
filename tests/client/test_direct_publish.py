"""The load client's direct publishing path (``client.direct_publish``): the clips are
packetized once as aiortc's packetizer would (the stamp never split), the packets on
the wire are what aiortc's parser expects (SSRC, payload type, ``mid`` extension, marker,
sequence numbers, timestamps, VP8 picture IDs), a late publisher skips slots instead of
bursting, and a subscriber behind a real SFU receives both streams without loss, with
their latency stamps, and decodes the video."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from itertools import pairwise

import av
import pytest
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
)
from aiortc.codecs.vpx import PACKET_MAX, Vp8Encoder, vp8_depayload
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket

from client.direct_publish import (
    PHASES,
    TICK,
    DirectPublisher,
    PacketizedClip,
    PublishedStream,
    SharedPacer,
    packetize_opus,
    packetize_vp8,
    vp8_payloads,
)
from client.loadtest import LoadParticipant
from client.media import VIDEO_TIME_BASE
from client.signal import LocalSignal
from client.stamped import (
    STAMP_SIZE,
    make_clips,
    opus_with_padding,
    read_stamp,
    stamp,
    stampable_vp8,
)
from sfu import Worker, rtc
from sfu.keyframes import vp8_keyframe_start
from sfu.rtp_header import payload_bounds, read_fixed_header
from tests.support.eventually import eventually

CHUNK = PACKET_MAX - 4  # VP8 bytes per packet behind aiortc's 4-byte descriptor


@pytest.fixture(scope="module")
def clips() -> tuple[list[bytes], list[bytes]]:
    opus, vp8 = make_clips(300_000, audio_only=False)
    assert vp8 is not None
    return opus, vp8


def awkward_frames() -> list[bytes]:
    """Frames whose lengths fall on and around the packetizer's chunk boundaries."""
    lengths = [*range(1, 40), *(k * CHUNK + d for k in (1, 2, 3) for d in range(-20, 21))]
    rng = random.Random(7)
    return [rng.randbytes(n) for n in lengths]


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


# --- packetizing ----------------------------------------------------------------------


def test_vp8_is_split_as_aiortcs_packetizer_splits_it(clips) -> None:
    _, vp8 = clips
    encoder = Vp8Encoder()
    for frame in [*vp8, *awkward_frames()]:
        data = stampable_vp8(frame) + stamp()
        picture_id = encoder.picture_id
        packet = av.Packet(data)
        packet.pts = 0
        packet.time_base = VIDEO_TIME_BASE
        theirs, _ = encoder.pack(packet)
        assert vp8_payloads(data, picture_id) == theirs


def test_packetized_vp8_reassembles_to_the_frames_and_their_stamp(clips) -> None:
    _, vp8 = clips
    frames = [*vp8, *awkward_frames()]
    clip = packetize_vp8(frames)
    assert clip.kind == "video" and clip.timestamp_step == 3000 and len(clip.frames) == len(frames)
    for number, (frame, payloads) in enumerate(zip(frames, clip.frames, strict=True)):
        sent_us = 1_700_000_000_000_000 + number
        on_wire = [*payloads[:-1], payloads[-1] + stamp(sent_us)]
        assert all(len(p) <= PACKET_MAX for p in on_wire)
        assert [p[0] & 0x10 for p in on_wire] == [0x10] + [0] * (len(on_wire) - 1)  # S bit
        assert b"".join(vp8_depayload(p) for p in on_wire) == stampable_vp8(frame) + stamp(sent_us)
        # the whole stamp is in the last packet (the one carrying the marker bit)
        last = vp8_depayload(on_wire[-1])
        assert len(last) >= STAMP_SIZE and read_stamp(last) == sent_us
        assert read_stamp(on_wire[-1]) == sent_us


def test_packetized_opus_is_one_padded_packet_per_frame(clips) -> None:
    opus, _ = clips
    clip = packetize_opus(opus)
    assert clip.kind == "audio" and clip.timestamp_step == 960 and clip.interval == 0.02
    assert clip.frames == tuple((opus_with_padding(p),) for p in opus)


# --- on the wire, to a plain aiortc peer ----------------------------------------------


@dataclass
class Peer:
    """A publisher with a :class:`DirectPublisher` and an aiortc peer that answers it and
    keeps every RTP packet it receives, parsed by aiortc, by mid."""

    publisher_pc: RTCPeerConnection
    publisher: DirectPublisher
    audio: RTCRtpTransceiver
    video: RTCRtpTransceiver
    receiver_pc: RTCPeerConnection
    received: dict[str, list[RtpPacket]] = field(default_factory=dict)


@pytest.fixture
async def peer(clips) -> AsyncIterator[Peer]:
    opus, vp8 = clips
    publisher_pc, receiver_pc = _pc(), _pc()
    publisher = DirectPublisher(publisher_pc)
    audio = publisher.add(packetize_opus(opus))
    video = publisher.add(packetize_vp8(vp8))
    peer = Peer(publisher_pc, publisher, audio, video, receiver_pc)

    def on_track(track: MediaStreamTrack) -> None:
        transceiver = next(t for t in receiver_pc.getTransceivers() if t.receiver.track is track)
        kept = peer.received.setdefault(transceiver.mid, [])
        rtc.intercept_rtp(transceiver.receiver, lambda packet, _at: kept.append(packet))

    receiver_pc.on("track", on_track)
    try:
        await publisher_pc.setLocalDescription(await publisher_pc.createOffer())
        await receiver_pc.setRemoteDescription(publisher_pc.localDescription)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await publisher_pc.setRemoteDescription(receiver_pc.localDescription)
        yield peer
    finally:
        await publisher.close()
        await publisher_pc.close()
        await receiver_pc.close()


def frames_of(packets: list[RtpPacket]) -> list[list[RtpPacket]]:
    """Complete VP8 frames (from a packet with the S bit to one with the marker bit), in
    sequence order; the receiver may have missed the first packets."""
    frames: list[list[RtpPacket]] = []
    current: list[RtpPacket] | None = None
    for packet in packets:
        if current is None and not packet.payload[0] & 0x10:
            continue
        current = [*(current or []), packet]
        if packet.marker:
            frames.append(current)
            current = []
    return frames


async def test_packets_carry_what_aiortc_negotiated(peer: Peer) -> None:
    peer.publisher.start()
    audio_mid, video_mid = peer.audio.mid, peer.video.mid
    await eventually(
        lambda: (
            len(frames_of(peer.received.get(video_mid, []))) >= 6
            and len(peer.received.get(audio_mid, [])) >= 10
        ),
        20,
    )
    audio, video = peer.publisher.streams
    for stream, transceiver in ((audio, peer.audio), (video, peer.video)):
        packets = peer.received[transceiver.mid]
        codec = rtc.negotiated_codecs(transceiver)[0]
        assert stream.ssrc == rtc.sender_ssrcs(transceiver.sender)[0]
        assert stream.payload_type == codec.payloadType
        assert {p.ssrc for p in packets} == {stream.ssrc}
        assert {p.payload_type for p in packets} == {codec.payloadType}
        assert {p.extensions.mid for p in packets} == {transceiver.mid}
        assert all(p.extensions.abs_send_time is None for p in packets)
        seqs = [p.sequence_number for p in packets]
        assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
        # aiortc's own sender never sent a packet
        report = await transceiver.sender.getStats()
        outbound = [s for s in report.values() if s.type == "outbound-rtp"]
        assert outbound and outbound[0].packetsSent == 0
    audio_packets = peer.received[peer.audio.mid]
    assert all(p.marker for p in audio_packets)  # as aiortc marks every Opus packet
    assert all(read_stamp(p.payload) is not None for p in audio_packets)
    steps = {(b.timestamp - a.timestamp) % (1 << 32) for a, b in pairwise(audio_packets)}
    # one 20 ms frame apart, or more where a busy machine made the publisher skip slots
    assert 960 in steps and all(step % 960 == 0 and step < 48000 for step in steps)
    frames = frames_of(peer.received[peer.video.mid])
    for frame in frames:
        assert len({p.timestamp for p in frame}) == 1
        assert [p.marker for p in frame] == [0] * (len(frame) - 1) + [1]
        picture_ids = {p.payload[2:4] for p in frame}
        assert len(picture_ids) == 1 and frame[0].payload[2] & 0x80  # 15-bit picture ID
        assert read_stamp(frame[-1].payload) is not None
    picture_ids = [int.from_bytes(f[0].payload[2:4]) & 0x7FFF for f in frames]
    assert picture_ids == [(picture_ids[0] + i) & 0x7FFF for i in range(len(frames))]
    steps = {(b[0].timestamp - a[0].timestamp) % (1 << 32) for a, b in pairwise(frames)}
    assert 3000 in steps and all(step % 3000 == 0 and step < 90000 for step in steps)
    assert video.frames >= len(frames) and audio.frames == audio.packets >= len(audio_packets)
    assert video.packets >= sum(len(f) for f in frames) and video.bytes > 0 and audio.bytes > 0


class FakeWriter:
    """Stands for :class:`sfu.rtc.writer.RtpWriter`: keeps what it is given."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, int, int, int, bytes]] = []

    def forward(self, first: int, second: int, seq: int, ts: int, ssrc: int, tail) -> int:
        self.sent.append((first, second, seq, ts, ssrc, bytes(tail)))
        return 12 + len(tail)


async def test_a_late_stream_skips_slots_instead_of_bursting(peer: Peer) -> None:
    clip: PacketizedClip = packetize_opus([b"\x78" + bytes(40)] * 5)
    stream = PublishedStream(peer.audio, clip)
    writer = FakeWriter()
    stream.begin(writer, start=100.0)  # type: ignore[arg-type]
    assert stream.due == 100.0
    stream.send_due(100.0)
    assert stream.due == pytest.approx(100.02) and stream.skipped == 0
    stream.send_due(100.021)  # a little late: the next slot, on time
    assert stream.due == pytest.approx(100.04) and stream.skipped == 0
    stream.send_due(100.135)  # slots 2 to 6 are due: only 6 is sent
    assert stream.due == pytest.approx(100.14) and stream.skipped == 4
    assert stream.frames == stream.packets == len(writer.sent) == 3
    timestamps = [(ts - writer.sent[0][3]) % (1 << 32) for *_, ts, _, _ in writer.sent]
    assert timestamps == [0, 960, 6 * 960]
    assert [seq - writer.sent[0][2] for _, _, seq, *_ in writer.sent] == [0, 1, 2]
    assert all(second & 0x80 for _, second, *_ in writer.sent)


# --- through the SFU --------------------------------------------------------------------


@dataclass
class RecordingParticipant(LoadParticipant):
    """A load-test subscriber that also keeps every packet it receives, by mid."""

    packets: dict[str, list[bytes]] = field(default_factory=dict)

    def _on_track(self, track: MediaStreamTrack) -> None:
        super()._on_track(track)
        assert self._subscribe_pc is not None
        transceiver = next(
            t for t in self._subscribe_pc.getTransceivers() if t.receiver.track is track
        )
        stats = self.tracks[transceiver.mid]
        kept = self.packets.setdefault(transceiver.mid, [])

        def on_data(data: bytes, arrival_time_ms: int) -> None:
            stats.on_data(data, arrival_time_ms)
            kept.append(bytes(data))

        rtc.intercept_rtp_data(transceiver.receiver, on_data)


def account(name: str) -> dict[str, str]:
    return {"username": name, "display_name": name}


def video_frames(packets: list[bytes]) -> list[bytes]:
    """The VP8 frames (depayloaded, reassembled) from the first keyframe on."""
    frames: list[bytes] = []
    current: list[bytes] | None = None
    for data in packets:
        first, second, *_ = read_fixed_header(data)
        start, end = payload_bounds(data, first)
        payload = data[start:end]
        if current is None and not vp8_keyframe_start(payload):
            continue
        if current is None:
            current = []
        current.append(vp8_depayload(payload))
        if second & 0x80:
            frames.append(b"".join(current))
            current = []
    return frames


async def test_a_subscriber_receives_and_decodes_a_direct_publisher_through_the_sfu(
    clips,
) -> None:
    opus, vp8 = clips
    audio, video = packetize_opus(opus), packetize_vp8(vp8)
    worker = Worker()
    publisher = LoadParticipant(1, "", account("pub"), True, LocalSignal(worker, "room"))  # type: ignore[arg-type]
    subscriber = RecordingParticipant(
        1,
        "",
        account("sub"),
        False,
        LocalSignal(worker, "room"),  # type: ignore[arg-type]
    )
    try:
        async with asyncio.timeout(20):
            await subscriber.join(audio, video)
            await publisher.join(audio, video)

        def received() -> bool:
            kinds = {s.kind: s for s in subscriber.tracks.values()}
            return (
                len(kinds) == 2
                and kinds["audio"].frames >= 25
                and kinds["video"].frames >= 15
                and all(s.latencies_ms for s in kinds.values())
            )

        await eventually(received, 30)
        direct = publisher.publisher
        assert direct is not None
        streams = {s.kind: s for s in direct.streams}
        producers = {
            p.kind: p for t in worker.transports_of("pub", "publish") for p in t.producers.values()
        }
        for kind in ("audio", "video"):
            assert producers[kind].ssrc == streams[kind].ssrc
            assert producers[kind].packets > 0
        for stats in subscriber.tracks.values():
            figures = stats.figures()
            assert figures["packets_lost"] == 0 and stats.expected == stats.packets
            assert 0 <= figures["latency_p50_ms"] < 1000
            assert stats.frames <= streams[stats.kind].frames
        # the video is valid VP8: every frame from the first keyframe on decodes, and is
        # a frame of the clip followed by its stamp
        mid = next(m for m, s in subscriber.tracks.items() if s.kind == "video")
        frames = video_frames(subscriber.packets[mid])
        assert len(frames) >= 10
        clip = [stampable_vp8(f) for f in vp8]
        first = clip.index(frames[0][:-STAMP_SIZE])
        decoder = av.CodecContext.create("libvpx", "r")
        decoded = []
        for number, frame in enumerate(frames):
            assert frame[:-STAMP_SIZE] == clip[(first + number) % len(clip)]
            assert read_stamp(frame) is not None
            decoded += decoder.decode(av.Packet(frame))
        decoded += decoder.decode(None)
        assert len(decoded) == len(frames)
        assert {(f.width, f.height) for f in decoded} == {(640, 360)}
    finally:
        await publisher.close()
        await subscriber.close()
        await worker.close()
    assert not [
        t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "DirectPublisher._run"
    ]


class _GridStream:
    """Stands in for a PublishedStream: sends nothing, records when it was asked to."""

    def __init__(self, interval: float) -> None:
        self.dtls = "transport"
        self.interval = interval
        self.sent: list[float] = []
        self.start = 0.0
        self.due = 0.0

    def begin(self, writer, start: float, batch=None) -> None:
        self.start = start
        self.due = start

    def send_due(self, now: float) -> None:
        self.sent.append(now)
        slot = int((now - self.start) / self.interval + 1e-6) + 1
        self.due = self.start + slot * self.interval


async def test_the_shared_pacer_wakes_once_per_tick_for_all_publishers() -> None:
    """Publishers share one timer: each starts on its own tick of the cycle, its audio
    and video frames are sent on the grid, and the pacer never wakes more than once per
    tick however many streams it paces."""
    pacer = SharedPacer()
    publishers = [[_GridStream(0.02), _GridStream(1 / 30)] for _ in range(12)]
    starts = [pacer.add(streams, {"transport": None}) for streams in publishers]
    # each publisher on its own tick of the cycle, within one cycle from now
    assert len({round((start - pacer._origin) / TICK) % PHASES for start in starts}) == 12
    assert max(starts) - min(starts) <= PHASES * TICK
    await eventually(lambda: all(len(s.sent) >= 10 for p in publishers for s in p), 5)
    for streams, start in zip(publishers, starts, strict=True):
        audio, video = streams
        assert audio.sent[0] == video.sent[0] >= start  # one publisher, one phase
        for stream in streams:
            # one frame per slot of the stream's grid, none twice (slots may be skipped
            # when the loop is late, never repeated)
            slots = [int((t - start) / stream.interval + 1e-6) for t in stream.sent]
            assert all(b > a for a, b in pairwise(slots))
    wakes = {t for p in publishers for s in p for t in s.sent}
    elapsed = max(wakes) - min(wakes)
    assert len(wakes) <= elapsed / TICK + 2
    # a publisher that leaves is no longer paced; the others go on
    pacer.remove(publishers[0])
    left = [len(s.sent) for s in publishers[0]]
    others = len(publishers[1][0].sent)
    await eventually(lambda: len(publishers[1][0].sent) >= others + 5, 5)
    assert [len(s.sent) for s in publishers[0]] == left
    for streams in publishers[1:]:
        pacer.remove(streams)
    await eventually(lambda: pacer._task is None, 5)
