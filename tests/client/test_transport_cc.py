"""A headless subscriber with ``feedback=True`` accepts the transport-wide sequence number
an offer proposes (aiortc alone would drop it from the answer) and sends transport
feedback for the packets carrying it, every 50 ms, instead of REMB; without feedback its
answer does not accept it.  The SFU does not offer it yet: the connection here is made
with a hand-made aiortc offer, its packets written the way the SFU writes them."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RTCP_PSFB_APP, RTCP_RTPFB_NACK

from client import Participant
from client.receiver_feedback import ReceiverFeedback
from client.signal import OfferHandler
from client.transport_cc import (
    MAX_WINDOW,
    TransportArrivals,
    keep_transport_cc,
    transport_cc_ids,
)
from sfu import rtc
from sfu.ingress import Ingress
from sfu.rtc.hooks import IdleTrack
from sfu.rtcp_guard import RtcpGuard
from sfu.settings import MediaSettings
from sfu.twcc import TRANSPORT_CC_URI, TransportFeedback, parse_feedback
from tests.support.eventually import eventually

TCC_ID = 5
EXTMAP = f"a=extmap:{TCC_ID} {TRANSPORT_CC_URI}"

# --- the answer ------------------------------------------------------------------------

OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 0.0.0.0",
        "s=-",
        f"a=extmap:7 {TRANSPORT_CC_URI}",  # session level: every section without its own
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        f"a=extmap:{TCC_ID}/sendonly {TRANSPORT_CC_URI}",
        "a=mid:0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=mid:1",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        f"a=extmap:300 {TRANSPORT_CC_URI}",  # not an id: the session's applies
        "a=extmap:6 http://example.com/other",
        "a=mid:2",
        "",
    ]
)


def test_the_offers_ids_are_read_by_mid():
    assert transport_cc_ids(OFFER) == {"0": TCC_ID, "1": 7, "2": 7}
    assert transport_cc_ids(OFFER.replace(TRANSPORT_CC_URI, "urn:x")) == {}
    media_only = OFFER.replace(f"a=extmap:7 {TRANSPORT_CC_URI}\r\n", "")
    assert transport_cc_ids(media_only) == {"0": TCC_ID}


def test_the_answer_gets_the_line_back_in_the_sections_named():
    answer = "\r\n".join(
        [
            "v=0",
            "s=-",
            "m=video 9 UDP/TLS/RTP/SAVPF 96",
            "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
            "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
            "a=mid:0",
            "a=recvonly",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=mid:1",
            "a=recvonly",
            "m=video 0 UDP/TLS/RTP/SAVPF 96",  # rejected
            "a=mid:2",
            "m=video 9 UDP/TLS/RTP/SAVPF 96",
            "a=extmap:7 urn:other",  # the id is taken
            "a=mid:3",
            "",
        ]
    )
    kept = keep_transport_cc(answer, {"0": TCC_ID, "1": 7, "2": 7, "3": 7, "9": 1})
    lines = kept.split("\r\n")
    assert "\n" not in kept.replace("\r\n", "")
    assert lines[5] == EXTMAP  # after the section's last extmap
    assert lines[9:11] == ["a=mid:1", f"a=extmap:7 {TRANSPORT_CC_URI}"]  # after its mid
    assert kept.count(TRANSPORT_CC_URI) == 2
    assert keep_transport_cc(kept, {"0": TCC_ID}) == kept  # already there
    assert keep_transport_cc(answer, {}) == answer


# --- the arrivals a feedback reports ---------------------------------------------------


def test_arrivals_are_reported_once_from_the_first_number_not_reported():
    arrivals = TransportArrivals()
    assert arrivals.take() == []
    for seq, at in [(65534, 10), (0, 30), (65535, 20), (2, 50)]:  # reordered, a gap
        assert arrivals.add(seq, at)
    assert not arrivals.add(0, 99)  # a duplicate: the first arrival counts
    assert arrivals.take() == [(65534, 10), (65535, 20), (0, 30), (1, None), (2, 50)]
    assert not arrivals.add(1, 60)  # reported as lost already: too late
    assert arrivals.add(4, 70)
    assert arrivals.take() == [(3, None), (4, 70)]
    assert (arrivals.duplicates, arrivals.late) == (1, 1)


def test_before_the_first_report_a_reordered_packet_opens_the_window_earlier():
    arrivals = TransportArrivals(max_window=100)
    assert arrivals.add(50, 1)
    assert arrivals.add(48, 2)
    assert not arrivals.add(50 - 100, 3)  # too far behind the highest
    assert arrivals.take() == [(48, 2), (49, None), (50, 1)]


def test_a_hostile_jump_keeps_the_window_bounded():
    arrivals = TransportArrivals()
    for seq in range(100):
        arrivals.add(seq, seq)
    arrivals.add(30_000, 1)  # far ahead: the oldest are given up, unreported
    assert len(arrivals) == 1
    window = arrivals.take()
    assert len(window) == MAX_WINDOW
    assert window[-1] == (30_000, 1) and window[0] == (30_000 - MAX_WINDOW + 1, None)
    for step in range(200):  # jumping around on every packet: never more than the window
        arrivals.add((step * 20_011) & 0xFFFF, step)
        assert len(arrivals) <= MAX_WINDOW
    assert 0 < len(arrivals.take()) <= MAX_WINDOW


# --- the feedback a subscriber writes --------------------------------------------------


class RecordingWriter:
    """Keeps the RTCP a :class:`ReceiverFeedback` writes."""

    def __init__(self) -> None:
        self.rtcp: list[bytes] = []

    def write_rtcp(self, data: bytes) -> bool:
        self.rtcp.append(data)
        return True

    def parts(self, packet_type: int, fmt: int) -> list[bytes]:
        return [d for d in self.rtcp if d[1] == packet_type and d[0] & 0x1F == fmt]

    def feedbacks(self) -> list[TransportFeedback]:
        return [parse_feedback(d) for d in self.parts(205, 15)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rtp(
    ssrc: int,
    seq: int,
    payload_type: int,
    *,
    transport_seq: int | None = None,
    abs_send_time: tuple[int, int] | None = None,
    two_byte: bool = False,
    tcc_value: bytes | None = None,
) -> bytes:
    """A packet with the transport-wide number (id ``TCC_ID``) and abs-send-time
    ``(id, value)`` in a one-byte (or two-byte) header extension."""
    elements: list[tuple[int, bytes]] = []
    if transport_seq is not None:
        elements.append((TCC_ID, tcc_value or struct.pack("!H", transport_seq & 0xFFFF)))
    if abs_send_time is not None:
        elements.append((abs_send_time[0], abs_send_time[1].to_bytes(3, "big")))
    header = struct.pack(
        "!BBHII", 0x90 if elements else 0x80, payload_type, seq & 0xFFFF, seq * 3000, ssrc
    )
    if not elements:
        return header + b"p" * 100
    if two_byte:
        block = b"".join(bytes((i, len(v))) + v for i, v in elements)
        profile = 0x1000
    else:
        block = b"".join(bytes((i << 4 | (len(v) - 1),)) + v for i, v in elements)
        profile = 0xBEDE
    block += bytes(-len(block) % 4)
    return header + struct.pack("!HH", profile, len(block) // 4) + block + b"p" * 100


async def offer_with_transport_cc() -> tuple[RTCPeerConnection, str]:
    """A sending aiortc connection (video and audio, both idle) and its offer with the
    transport-wide number added to both sections, as the SFU will offer it."""
    pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    pc.addTransceiver(IdleTrack("video"), direction="sendonly")
    pc.addTransceiver(IdleTrack("audio"), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = keep_transport_cc(pc.localDescription.sdp, {"0": TCC_ID, "1": TCC_ID})
    assert transport_cc_ids(offer) == {"0": TCC_ID, "1": TCC_ID}
    return pc, offer


class Negotiated:
    """A receiving connection that answered the hand-made offer, not connected: its
    transceivers have their codecs and a DTLS transport, which is what
    :class:`ReceiverFeedback` reads."""

    def __init__(self) -> None:
        self.sender: RTCPeerConnection | None = None
        self.receiver = RTCPeerConnection()
        self.answer = ""

    async def __aenter__(self) -> Negotiated:
        self.sender, offer = await offer_with_transport_cc()
        await self.receiver.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await self.receiver.setLocalDescription(await self.receiver.createAnswer())
        self.answer = keep_transport_cc(self.receiver.localDescription.sdp, transport_cc_ids(offer))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.receiver.close()
        if self.sender is not None:
            await self.sender.close()

    def transceiver(self, kind: str) -> Any:
        return next(t for t in self.receiver.getTransceivers() if t.kind == kind)

    def payload_type(self, kind: str) -> int:
        codecs = rtc.negotiated_codecs(self.transceiver(kind))
        return next(c.payloadType for c in codecs if c.name.lower() != "rtx")

    def abs_send_time_id(self) -> int:
        extensions = rtc.negotiated_header_extensions(self.transceiver("video"))
        return next(e.id for e in extensions if e.uri.endswith("abs-send-time"))


def feedback_on(
    negotiated: Negotiated, writer: RecordingWriter, clock: Clock, *, transport_cc: bool = True
) -> tuple[ReceiverFeedback, Callable[[bytes, int], None], Callable[[bytes, int], None]]:
    feedback = ReceiverFeedback(
        negotiated.transceiver("video").receiver.transport,
        clock=clock,
        writer=writer,
        transport_feedback_interval=3600,  # the tests send by hand
    )
    video = feedback.watch(negotiated.transceiver("video"))
    audio = feedback.watch(negotiated.transceiver("audio"))
    if transport_cc:
        feedback.use_transport_cc(transport_cc_ids(negotiated.answer))
    return feedback, video, audio


async def test_every_packet_with_the_number_is_reported_with_its_arrival():
    async with Negotiated() as negotiated:
        assert EXTMAP in negotiated.answer
        writer, clock = RecordingWriter(), Clock()
        feedback, video, audio = feedback_on(negotiated, writer, clock)
        vp8, opus = negotiated.payload_type("video"), negotiated.payload_type("audio")
        arrivals: dict[int, float] = {}
        # transport numbers across the wrap; 65535 and 2 lost; audio, video and a
        # two-byte extension alike; 1 arrives after 3 (reordered)
        sent = [
            (65533, video, rtp(0xA, 10, vp8, transport_seq=65533)),
            (65534, audio, rtp(0xB, 500, opus, transport_seq=65534)),
            (0, video, rtp(0xA, 11, vp8, transport_seq=0, two_byte=True)),
            (3, video, rtp(0xA, 13, vp8, transport_seq=3)),
            (1, audio, rtp(0xB, 501, opus, transport_seq=1)),
        ]
        for transport_seq, feed, data in sent:
            clock.now += 0.0013
            arrivals[transport_seq] = clock.now
            feed(data, 0)
        feed_count = feedback.transport_cc_packets
        assert feed_count == 5 and feedback.transport_cc_in_use
        feedback.send_transport_feedback()
        (first,) = writer.feedbacks()
        assert (first.sender_ssrc, first.media_ssrc) == (feedback.rtcp_ssrc, 0xB)
        assert first.feedback_count == 0 and first.base_seq == 65533
        assert [s for s, _ in first.packets] == [65533, 65534, 65535, 0, 1, 2, 3]
        for seq, at in first.packets:
            if seq in arrivals:
                assert at is not None and abs(at - arrivals[seq] * 1_000_000) <= 125
            else:
                assert at is None
        # the next covers what came since; a packet already reported (2, as lost) is late
        clock.now += 0.05
        video(rtp(0xA, 12, vp8, transport_seq=2), 0)
        video(rtp(0xA, 14, vp8, transport_seq=5), 0)
        feedback.send_transport_feedback()
        feedback.send_transport_feedback()  # nothing new: nothing sent
        second = writer.feedbacks()[1:]
        assert len(second) == 1
        assert second[0].feedback_count == 1
        assert [(s, t is not None) for s, t in second[0].packets] == [(4, False), (5, True)]
        assert feedback.stats()["transport_cc_late"] == 1
        assert feedback.stats()["transport_feedbacks_sent"] == 2
        # receiver reports and NACKs go on (video 12 was missing until now: NACKed)
        feedback.send_reports()
        assert writer.parts(201, 1) or writer.parts(201, 2)
        assert writer.parts(205, RTCP_RTPFB_NACK)
        feedback.close()


async def test_malformed_numbers_are_not_recorded():
    async with Negotiated() as negotiated:
        writer, clock = RecordingWriter(), Clock()
        feedback, video, _ = feedback_on(negotiated, writer, clock)
        vp8 = negotiated.payload_type("video")
        video(rtp(0xA, 1, vp8, transport_seq=1, tcc_value=b"\x01"), 0)  # one byte
        video(rtp(0xA, 2, vp8, transport_seq=2, tcc_value=b"\x00\x01\x02"), 0)  # three
        cut = rtp(0xA, 3, vp8, transport_seq=3)[:14]  # the extension block cut off
        video(cut, 0)
        video(rtp(0xA, 4, vp8), 0)  # no extension at all
        assert feedback.transport_cc_packets == 0
        feedback.send_transport_feedback()
        assert writer.feedbacks() == []
        feedback.close()


async def test_no_remb_once_packets_carry_the_number():
    """The same packets with abs-send-time: without transport-cc they make a REMB, with
    it they make transport feedback and no REMB."""
    async with Negotiated() as negotiated:
        vp8, abs_id = negotiated.payload_type("video"), negotiated.abs_send_time_id()
        results = {}
        for transport_cc in (False, True):
            writer, clock = RecordingWriter(), Clock()
            feedback, video, _ = feedback_on(negotiated, writer, clock, transport_cc=transport_cc)
            for i in range(400):  # 4 s of a packet every 10 ms: the estimator starts at 3 s
                clock.now += 0.01
                send_time = (i * 10 * (1 << 18) // 1000) & 0xFFFFFF  # 6.18 fixed point
                packet = rtp(0xA, i, vp8, transport_seq=i, abs_send_time=(abs_id, send_time))
                video(packet, 3_900_000_000_000 + i * 10)
                if i % 5 == 4:
                    feedback.send_transport_feedback()
            feedback.send_reports()
            results[transport_cc] = (
                len(writer.parts(206, RTCP_PSFB_APP)),
                len(writer.feedbacks()),
                len(writer.parts(201, 1)) + len(writer.parts(201, 2)),
            )
            feedback.close()
        rembs, feedbacks, reports = results[False]
        assert rembs > 0 and feedbacks == 0 and reports > 0
        rembs, feedbacks, reports = results[True]
        assert rembs == 0 and feedbacks == 80 and reports > 0
        # an answer without it (renegotiated): packets are estimated, REMB comes back
        writer, clock = RecordingWriter(), Clock()
        feedback, video, _ = feedback_on(negotiated, writer, clock)
        video(rtp(0xA, 0, vp8, transport_seq=0), 0)
        assert feedback.transport_cc_in_use
        feedback.use_transport_cc({})
        assert not feedback.transport_cc_in_use
        video(rtp(0xA, 1, vp8, transport_seq=1), 0)
        assert feedback.transport_cc_packets == 1  # no longer read
        feedback.close()


async def test_feedback_goes_out_50_ms_after_packets_arrive():
    async with Negotiated() as negotiated:
        writer = RecordingWriter()
        feedback = ReceiverFeedback(
            negotiated.transceiver("video").receiver.transport, writer=writer
        )
        video = feedback.watch(negotiated.transceiver("video"))
        feedback.use_transport_cc({"0": TCC_ID})
        vp8 = negotiated.payload_type("video")
        for seq in range(3):
            video(rtp(0xA, seq, vp8, transport_seq=seq), 0)
        await eventually(lambda: writer.feedbacks(), 2, what="the timer's feedback")
        assert [s for s, _ in writer.feedbacks()[0].packets] == [0, 1, 2]
        video(rtp(0xA, 3, vp8, transport_seq=3), 0)
        await eventually(lambda: len(writer.feedbacks()) == 2, 2, what="the next one")
        assert writer.feedbacks()[1].feedback_count == 1
        feedback.close()
        video(rtp(0xA, 4, vp8, transport_seq=4), 0)
        assert feedback.transport_cc_packets == 4  # closed: nothing more is recorded


# --- over a real connection ------------------------------------------------------------


class RecordingGuard(RtcpGuard):
    """The SFU's RTCP guard, keeping every decrypted compound it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.compounds: list[bytes] = []

    def check(self, data: bytes) -> bytes | None:
        self.compounds.append(bytes(data))
        return super().check(data)

    def parts(self) -> list[bytes]:
        out = []
        for data in self.compounds:
            pos = 0
            while pos + 4 <= len(data):
                length = (struct.unpack_from("!H", data, pos + 2)[0] + 1) * 4
                out.append(data[pos : pos + length])
                pos += length
        return out


class HandMadeOffer:
    """A signal whose one subscribe offer comes from a local aiortc connection."""

    on_ended = None

    def __init__(self, pc: RTCPeerConnection, offer: str) -> None:
        self.pc = pc
        self.offer = offer
        self.answer: str | None = None

    async def connect(self, participant_id: str, on_subscribe_offer: OfferHandler) -> None:
        self.answer = await on_subscribe_offer(self.offer)
        await self.pc.setRemoteDescription(RTCSessionDescription(self.answer, "answer"))

    async def publish(self, offer_sdp: str) -> str:
        raise AssertionError("this participant does not publish")

    async def close(self) -> None:
        await self.pc.close()


async def test_a_participant_with_feedback_sends_transport_feedback_over_the_connection():
    sender, offer = await offer_with_transport_cc()
    ingress = Ingress(MediaSettings())
    guard = ingress.rtcp = RecordingGuard()
    rtc.guard_ingress(sender, ingress)  # the SFU's own path reads what comes back
    signal = HandMadeOffer(sender, offer)
    subscriber = Participant(
        "subscriber", signal, audio=False, video=None, decode=False, feedback=True
    )
    try:
        await subscriber.join()
        assert signal.answer is not None and EXTMAP in signal.answer
        await eventually(lambda: sender.connectionState == "connected", 15, what="connected")
        video = next(t for t in sender.getTransceivers() if t.kind == "video")
        ssrc = rtc.sender_ssrcs(video.sender)[0]
        vp8 = next(c.payloadType for c in rtc.negotiated_codecs(video) if c.name == "VP8")
        writer = rtc.RtpWriter(video.sender.transport)
        sent = 0

        async def send_some() -> bool:
            nonlocal sent
            for _ in range(5):
                writer.write_rtp(rtp(ssrc, sent, vp8, transport_seq=40_000 + sent))
                sent += 1
            return any(p[1] == 205 and p[0] & 0x1F == 15 for p in guard.parts())

        await eventually(send_some, 15, what="transport feedback reaches the sender")
        feedbacks = [parse_feedback(p) for p in guard.parts() if p[1] == 205 and p[0] & 0x1F == 15]
        feedback = subscriber.feedback
        assert feedback is not None
        assert all(f.sender_ssrc == feedback.rtcp_ssrc and f.media_ssrc == ssrc for f in feedbacks)
        assert [f.feedback_count for f in feedbacks] == list(range(len(feedbacks)))
        reported = [s for f in feedbacks for s, t in f.packets if t is not None]
        assert reported and all(40_000 <= s < 40_000 + sent for s in reported)
        assert len(reported) == len(set(reported))  # each number once
        assert not any(p[1] == 206 and p[0] & 0x1F == RTCP_PSFB_APP for p in guard.parts())
        assert guard.dropped_malformed == 0
    finally:
        await subscriber.close()
        await signal.close()


@pytest.mark.parametrize("feedback", [False, True])
async def test_the_answer_accepts_transport_cc_only_with_feedback(feedback: bool):
    sender, offer = await offer_with_transport_cc()
    signal = HandMadeOffer(sender, offer)
    subscriber = Participant("s", signal, audio=False, video=None, decode=False, feedback=feedback)
    try:
        await subscriber.join()
        assert signal.answer is not None
        assert (TRANSPORT_CC_URI in signal.answer) is feedback
        assert transport_cc_ids(signal.answer) == ({"0": TCC_ID, "1": TCC_ID} if feedback else {})
    finally:
        await subscriber.close()
        await signal.close()
