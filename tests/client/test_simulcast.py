"""The simulcast publisher (``client.simulcast``) on the wire, to a real aiortc peer over
loopback answering as a simulcast-capable server would: three SSRCs on one m-line, each
packet with the mid and its layer's RID, each layer with its own sequence numbers,
picture IDs and sender reports, decoding at its size; a keyframe request for a layer's
SSRC is answered with a keyframe at once; a paused layer stops and comes back on a
keyframe.  And the clips themselves: one keyframe each, near their bitrates, cached on
disk (a damaged cache is ignored)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from itertools import pairwise

import pytest
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, AnyRtcpPacket, RtcpPsfbPacket, RtcpSrPacket

import client.simulcast_clips as clips_module
from client import Participant
from client.direct_publish import DirectPublisher
from client.loadtest import LoadParticipant
from client.rtp_packet import RtpPacketView, parse_rtp
from client.simulcast import SimulcastVideo
from client.simulcast_clips import (
    DEFAULT_LAYERS,
    LayerSpec,
    is_vp8_keyframe,
    simulcast_clips,
)
from client.simulcast_sdp import MID_URI, RID_URI
from client.vp8_check import Vp8Check, parse_descriptor
from sfu import rtc
from sfu.keyframes import vp8_keyframe_start
from tests.client.simulcast_peer import SimulcastAnsweringSignal, accept_simulcast
from tests.support.eventually import eventually

SIZES = {spec.rid: (spec.width, spec.height) for spec in DEFAULT_LAYERS}


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


@dataclass
class Receiver:
    """An aiortc peer that keeps every RTP packet it receives (raw, read by the client's
    reader: aiortc's own parser drops the RID) and the sender reports, by SSRC."""

    pc: RTCPeerConnection
    packets: dict[int, list[RtpPacketView]] = field(default_factory=dict)
    reports: dict[int, list[RtcpSrPacket]] = field(default_factory=dict)
    transceiver: RTCRtpTransceiver | None = None

    @classmethod
    def start(cls) -> Receiver:
        receiver = cls(_pc())
        rtc.receive_directly(receiver.pc)  # hooks get the packets as they came
        receiver.pc.on("track", receiver._on_track)
        return receiver

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
        self.transceiver = transceiver

        def on_data(data: bytes, _arrival: int) -> None:
            packet = parse_rtp(data)
            assert packet is not None
            self.packets.setdefault(packet.ssrc, []).append(packet)

        def on_rtcp(packet: AnyRtcpPacket) -> None:
            if isinstance(packet, RtcpSrPacket):
                self.reports.setdefault(packet.ssrc, []).append(packet)

        rtc.intercept_rtp_data(transceiver.receiver, on_data)
        rtc.intercept_receiver_rtcp(transceiver.receiver, on_rtcp)

    def frames(self, ssrc: int) -> list[list[RtpPacketView]]:
        """The complete frames of ``ssrc`` (from a packet starting partition 0 to the
        marker), in order."""
        frames: list[list[RtpPacketView]] = []
        current: list[RtpPacketView] | None = None
        for packet in self.packets.get(ssrc, []):
            descriptor = parse_descriptor(packet.payload)
            assert descriptor is not None
            if descriptor.start and descriptor.partition == 0:
                current = []
            if current is None:
                continue
            current.append(packet)
            if packet.marker:
                frames.append(current)
                current = None
        return frames

    def send_feedback(self, packet: RtcpPsfbPacket) -> None:
        assert self.transceiver is not None
        assert rtc.RtpWriter(self.transceiver.receiver.transport).write_rtcp(bytes(packet))


def check_of(packets: list[RtpPacketView]) -> Vp8Check:
    """A :class:`Vp8Check` fed ``packets`` from the first keyframe on (the receiver may
    have missed the first packets while connecting)."""
    first = next(i for i, p in enumerate(packets) if vp8_keyframe_start(p.payload))
    check = Vp8Check()
    for packet in packets[first:]:
        check.feed_packet(
            packet.ssrc, packet.sequence_number, packet.timestamp, packet.marker, packet.payload
        )
    return check


def picture_id(frame: list[RtpPacketView]) -> int:
    descriptor = parse_descriptor(frame[0].payload)
    assert descriptor is not None and descriptor.picture_id_bits == 15
    assert descriptor.picture_id is not None
    return descriptor.picture_id


@dataclass
class Loopback:
    participant: Participant
    video: SimulcastVideo
    receiver: Receiver
    signal: SimulcastAnsweringSignal


@pytest.fixture
async def loopback() -> AsyncIterator[Loopback]:
    """A participant publishing simulcast video (no audio) to an aiortc receiver."""
    receiver = Receiver.start()
    signal = SimulcastAnsweringSignal(receiver.pc)
    participant = Participant("pub", signal, audio=False, video="simulcast")
    try:
        async with asyncio.timeout(20):
            await participant.join()
        assert participant.simulcast is not None
        yield Loopback(participant, participant.simulcast, receiver, signal)
    finally:
        await participant.close()
        await receiver.pc.close()


async def test_three_streams_each_with_its_rid_ssrc_numbers_and_picture_ids(loopback) -> None:
    video, receiver = loopback.video, loopback.receiver
    layers = video.layers
    assert list(layers) == ["q", "h", "f"]
    ssrcs = {rid: layer.ssrc for rid, layer in layers.items()}
    assert len(set(ssrcs.values())) == 3
    await eventually(lambda: all(len(receiver.frames(s)) >= 20 for s in ssrcs.values()), 20)
    # the server saw a simulcast offer without SSRCs
    (offer,) = loopback.signal.offers
    video_section = offer[offer.index("m=video") :]
    assert "a=simulcast:send q;h;f" in video_section and "a=ssrc" not in video_section
    mid = video.transceiver.mid
    assert video.answer is not None
    mid_id, rid_id = video.answer.extension_ids[MID_URI], video.answer.extension_ids[RID_URI]
    assert receiver.transceiver is not None
    vp8 = rtc.negotiated_codecs(receiver.transceiver)[0]
    assert vp8.mimeType == "video/VP8"
    assert set(receiver.packets) == set(ssrcs.values())
    for rid, ssrc in ssrcs.items():
        packets = receiver.packets[ssrc]
        assert {p.extension_text(rid_id) for p in packets} == {rid}
        assert {p.extension_text(mid_id) for p in packets} == {mid}
        assert {p.payload_type for p in packets} == {vp8.payloadType}
        seqs = [p.sequence_number for p in packets]
        assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
        frames = receiver.frames(ssrc)
        ids = [picture_id(frame) for frame in frames]
        assert ids == [(ids[0] + i) & 0x7FFF for i in range(len(ids))]
        steps = {(b[0].timestamp - a[0].timestamp) % (1 << 32) for a, b in pairwise(frames)}
        assert 3000 in steps and all(step % 3000 == 0 for step in steps)
        report = check_of(packets).report()
        assert report.clean, report
        assert report.resolutions == {SIZES[rid]: report.frames_decoded}
        assert report.frames_decoded >= 15
    # each layer its own numbering
    assert len({receiver.packets[s][0].sequence_number for s in ssrcs.values()}) == 3
    # sender reports per layer, on the layer's RTP clock
    await eventually(lambda: all(receiver.reports.get(s) for s in ssrcs.values()), 10)
    for ssrc in ssrcs.values():
        report = receiver.reports[ssrc][-1]
        newest = receiver.packets[ssrc][-1].timestamp
        assert (
            abs((report.sender_info.rtp_timestamp - newest + (1 << 31)) % (1 << 32) - (1 << 31))
            < 90_000
        )
        assert report.sender_info.packet_count > 0 and report.sender_info.octet_count > 0


async def test_a_keyframe_request_for_a_layer_is_answered_at_once(loopback) -> None:
    video, receiver = loopback.video, loopback.receiver
    q, h, f = (video.layer(rid) for rid in ("q", "h", "f"))
    # mid-clip, so that the clip's own keyframe is far
    await eventually(lambda: 5 <= h.frames % 60 <= 30 and len(receiver.frames(h.ssrc)) > 3, 20)
    seen = len(receiver.frames(h.ssrc))
    receiver.send_feedback(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=h.ssrc))
    await eventually(lambda: h.keyframe_requests == 1, 5)
    assert h.restarts == 1 and q.restarts == f.restarts == 0

    def keyframe_after() -> int | None:
        frames = receiver.frames(h.ssrc)[seen:]
        return next((i for i, fr in enumerate(frames) if vp8_keyframe_start(fr[0].payload)), None)

    await eventually(lambda: keyframe_after() is not None, 5)
    assert keyframe_after() <= 3  # the next frame sent, give or take those in flight
    # numbers and picture IDs went on: the stream decodes through it
    await eventually(lambda: len(receiver.frames(h.ssrc)) >= seen + 10, 5)
    report = check_of(receiver.packets[h.ssrc]).report()
    assert report.clean and report.keyframes >= 2, report
    # a FIR naming f's SSRC, then the same FIR again (its number repeated): one restart
    fir = struct.pack("!IB3x", f.ssrc, 7)
    receiver.send_feedback(RtcpPsfbPacket(fmt=RTCP_PSFB_FIR, ssrc=1, media_ssrc=f.ssrc, fci=fir))
    await eventually(lambda: f.keyframe_requests == 1, 5)
    receiver.send_feedback(RtcpPsfbPacket(fmt=RTCP_PSFB_FIR, ssrc=1, media_ssrc=f.ssrc, fci=fir))
    receiver.send_feedback(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=q.ssrc))
    await eventually(lambda: q.keyframe_requests == 1, 5)
    assert f.keyframe_requests == 1 and h.keyframe_requests == 1


async def test_a_paused_layer_stops_and_comes_back_on_a_keyframe(loopback) -> None:
    video, receiver = loopback.video, loopback.receiver
    q, f = video.layer("q"), video.layer("f")
    await eventually(lambda: len(receiver.frames(f.ssrc)) >= 5, 20)
    video.pause("f")
    sent = f.packets
    q_frames = q.frames
    await eventually(lambda: q.frames >= q_frames + 15, 5)
    assert f.packets == sent and f.paused
    frames_while_paused = len(receiver.frames(f.ssrc))
    await eventually(lambda: q.frames >= q_frames + 20, 5)
    assert len(receiver.frames(f.ssrc)) == frames_while_paused
    last_before = receiver.frames(f.ssrc)[-1]
    video.resume("f")
    await eventually(lambda: len(receiver.frames(f.ssrc)) > frames_while_paused, 5)
    first_after = receiver.frames(f.ssrc)[frames_while_paused]
    assert vp8_keyframe_start(first_after[0].payload)
    # sequence numbers and picture IDs go on where they stopped; the RTP clock ran on
    assert first_after[0].sequence_number == (last_before[-1].sequence_number + 1) & 0xFFFF
    assert picture_id(first_after) == (picture_id(last_before) + 1) & 0x7FFF
    assert (first_after[0].timestamp - last_before[0].timestamp) % (1 << 32) >= 20 * 3000


async def test_an_explicit_publisher_sends_the_layers_the_answer_accepted() -> None:
    """DirectPublisher + SimulcastVideo by hand: the answer accepts q and h (h paused)
    but not f; a keyframe request restarts every layer sent (``keyframes_on_all_layers``)."""
    layers = simulcast_clips()
    pc = _pc()
    receiver = Receiver.start()
    publisher = DirectPublisher(pc)
    video = SimulcastVideo(publisher, layers, keyframes_on_all_layers=True, cname="publisher")
    try:
        await pc.setLocalDescription(await pc.createOffer())
        offer = video.rewrite_offer(pc.localDescription.sdp)
        await receiver.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await receiver.pc.setLocalDescription(await receiver.pc.createAnswer())
        assert video.offer is not None
        answer = accept_simulcast(
            receiver.pc.localDescription.sdp, video.offer, rids=("q", "h"), paused=("h",)
        )
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        accepted = video.accept_answer(answer)
        assert accepted.rids == ("q", "h") and accepted.paused == ("h",)
        publisher.start()
        assert list(video.layers) == ["q", "h"]
        with pytest.raises(KeyError, match="no layer 'f' is sent"):
            video.layer("f")
        q, h = video.layer("q"), video.layer("h")
        assert h.paused and not q.paused
        await eventually(lambda: len(receiver.frames(q.ssrc)) >= 40, 20)
        assert h.packets == 0 and set(receiver.packets) == {q.ssrc}
        video.resume("h")
        await eventually(lambda: len(receiver.frames(h.ssrc)) >= 5, 5)
        assert vp8_keyframe_start(receiver.frames(h.ssrc)[0][0].payload)
        await eventually(lambda: h.frames % 60 >= 5 and q.frames % 60 >= 5, 5)
        receiver.send_feedback(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=h.ssrc))
        await eventually(lambda: h.keyframe_requests == 1, 5)
        assert q.keyframe_requests == 0 and q.restarts == h.restarts == 1
        await eventually(lambda: receiver.reports.get(q.ssrc), 5)
        report = check_of(receiver.packets[q.ssrc]).report()
        assert report.clean and report.resolutions == {(320, 180): report.frames_decoded}
    finally:
        await publisher.close()
        await pc.close()
        await receiver.pc.close()


async def test_an_answer_without_simulcast_stops_the_publish() -> None:
    """A server that ignores simulcast (aiortc's plain answer) is an error, not one
    stream sent silently."""
    receiver = Receiver.start()

    class PlainSignal(SimulcastAnsweringSignal):
        async def publish(self, offer_sdp: str) -> str:
            await self.receiver.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            await self.receiver.setLocalDescription(await self.receiver.createAnswer())
            return self.receiver.localDescription.sdp

    participant = Participant("pub", PlainSignal(receiver.pc), audio=False, video="simulcast")
    try:
        with pytest.raises(ValueError, match="a=simulcast"):
            await participant.join()
    finally:
        await participant.close()
        await receiver.pc.close()


# --- the clips ------------------------------------------------------------------------


def test_the_default_clips_are_one_keyframe_each_near_their_bitrates() -> None:
    layers = simulcast_clips()
    assert [layer.spec for layer in layers] == list(DEFAULT_LAYERS)
    for layer in layers:
        assert len(layer.frames) == 60 and layer.fps == 30
        assert [is_vp8_keyframe(frame) for frame in layer.frames] == [True] + [False] * 59
        bitrate = sum(map(len, layer.frames)) * 8 / 2
        assert 0.7 * layer.spec.bitrate <= bitrate <= 1.3 * layer.spec.bitrate
    assert simulcast_clips() is layers  # encoded once per process


def test_clips_are_cached_on_disk_and_a_damaged_cache_is_replaced(tmp_path, monkeypatch) -> None:
    small = (LayerSpec("a", 64, 36, 60_000), LayerSpec("b", 128, 72, 120_000))
    monkeypatch.setattr(clips_module, "_encoded", {})
    made = simulcast_clips(small, seconds=0.3, cache_dir=tmp_path)
    (cached,) = tmp_path.iterdir()
    monkeypatch.setattr(clips_module, "_encoded", {})
    again = simulcast_clips(small, seconds=0.3, cache_dir=tmp_path)
    assert again == made and again is not made
    original = cached.read_bytes()
    damaged = [
        b"",
        original[:-1],  # cut
        original + b"x",  # trailing bytes
        b"junk" + original[4:],  # not the magic
        original.replace(made[0].frames[0][3:6], b"\x00\x00\x00", 1),  # keyframe spoiled
    ]
    for data in damaged:
        cached.write_bytes(data)
        monkeypatch.setattr(clips_module, "_encoded", {})
        assert simulcast_clips(small, seconds=0.3, cache_dir=tmp_path)[0].spec == small[0]
        assert cached.read_bytes() != data  # encoded again and written
    monkeypatch.setenv(clips_module.CACHE_ENVIRONMENT, str(tmp_path / "from-environment"))
    monkeypatch.setattr(clips_module, "_encoded", {})
    simulcast_clips(small, seconds=0.3)
    assert len(list((tmp_path / "from-environment").iterdir())) == 1


async def test_a_load_participant_publishes_simulcast_on_its_direct_publisher() -> None:
    receiver = Receiver.start()
    account = {"username": "pub", "display_name": "pub"}
    signal = SimulcastAnsweringSignal(receiver.pc)
    participant = LoadParticipant(1, "case", account, True, signal)  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(20):
            await participant.enter([], simulcast=simulcast_clips())
        video = participant.simulcast
        assert video is not None and participant.publisher is not None
        assert participant.publisher.streams == list(video.layers.values())
        await eventually(
            lambda: all(len(receiver.frames(x.ssrc)) >= 5 for x in video.layers.values()), 20
        )
    finally:
        await participant.close()
        await receiver.pc.close()
