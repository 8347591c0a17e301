"""A headless subscriber with ``feedback=True`` sends the SFU what a browser's receiver
sends: receiver reports (the SFU's consumers learn its loss and round trip), REMB from
aiortc's delay-based estimator, NACKs answered by retransmissions (counted recovered)
and a PLI for what is given up.  Packets are read as hostile: malformed ones are ignored.
The reception statistics follow RFC 3550 A.1, A.3 and A.8."""

from __future__ import annotations

import asyncio
import random
import struct
import time
from typing import Any

import pytest
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtp import RtcpPacket, RtcpRtpfbPacket

from client import LocalSignal, Participant
from client.participant import receiving_transceiver
from client.receiver_feedback import (
    LATE,
    MAX_MISSING,
    MAX_NACK_ITEMS,
    NEWEST,
    REJECTED,
    RESTARTED,
    NackList,
    ReceiverFeedback,
    ReceptionStats,
    nack_packet,
)
from client.track_stats import TrackStats, watch_receiver
from sfu import MediaSettings, Worker, rtc
from sfu.consumer import Consumer
from sfu.rtc import receive
from sfu.rtc.internals import nominated_pair
from tests.support.eventually import eventually
from tests.support.media import participant


@pytest.fixture
async def worker(request):
    """The SFU; ``@pytest.mark.media_settings(...)`` sets its settings."""
    fields = request.node.get_closest_marker("media_settings")
    w = Worker(MediaSettings(**fields.kwargs) if fields else None)
    yield w
    await w.close()


@pytest.fixture
async def participants(worker):
    created: list[Participant] = []

    def make(name: str, **options) -> Participant:
        p = participant(name, LocalSignal(worker, "room"), **options)
        created.append(p)
        return p

    yield make
    for p in created:
        await p.close()


def consumers_of(worker: Worker, subscriber: str, kind: str | None = None) -> list[Consumer]:
    return [
        c
        for t in worker.transports_of(subscriber)
        for c in t.consumers.values()
        if kind is None or c.kind == kind
    ]


async def joined(*people: Participant) -> None:
    for p in people:
        await p.join()


# --- against the SFU ------------------------------------------------------------------


async def test_reports_give_the_sfu_round_trip_and_loss_only_when_on(worker, participants):
    publisher = participants("publisher")
    listening = participants("listening", video=None, audio=False, feedback=True)
    silent = participants("silent", video=None, audio=False)
    await joined(publisher, listening, silent)

    await eventually(
        lambda: (
            len(consumers_of(worker, "listening")) == 2
            and all(c.rtt is not None for c in consumers_of(worker, "listening"))
        ),
        15,
        what="both consumers of the subscriber with feedback know its round trip",
    )
    feedback = listening.feedback
    assert feedback is not None
    for consumer in consumers_of(worker, "listening"):
        stats = consumer.stats()
        assert 0 <= stats["rtt_ms"] < 1000
        assert stats["fraction_lost"] <= 13  # loopback: at most the odd dropped datagram
    assert feedback.reports_sent > 0
    assert feedback.sender_reports > 0
    assert feedback.ignored == 0
    # the subscriber without feedback: the SFU learns nothing of it (unchanged)
    assert silent.feedback is None
    quiet = consumers_of(worker, "silent")
    assert len(quiet) == 2
    assert all(c.rtt is None and c.remb is None and c.nacks_received == 0 for c in quiet)


@pytest.mark.media_settings(transport_cc=False)
async def test_remb_from_abs_send_time_reaches_every_video_consumer(worker, participants):
    """Without transport-cc offered, a subscriber estimates its downlink itself, from
    abs-send-time, and sends REMB (with it, it sends transport feedback instead:
    tests/client/test_transport_cc.py)."""
    first, second = participants("first"), participants("second")
    subscriber = participants("subscriber", video=None, audio=False, feedback=True)
    await joined(first, second, subscriber)

    def rembs() -> list[int | None]:
        return [c.remb for c in consumers_of(worker, "subscriber", "video")]

    await eventually(
        lambda: len(rembs()) == 2 and all(rembs()), 20, what="a REMB for both video tracks"
    )
    feedback = subscriber.feedback
    assert feedback is not None and feedback.remb is not None
    assert feedback.rembs_sent > 0
    assert 10_000 < feedback.remb < 100_000_000
    assert all(c.remb_at > 0 for c in consumers_of(worker, "subscriber", "video"))
    assert not [c for c in consumers_of(worker, "subscriber", "audio") if c.remb]


async def test_loss_raises_fraction_lost_and_nacks_are_recovered(worker, participants):
    """20 % of what reaches the subscriber is dropped; two video tracks share one RTX
    payload type, so the retransmissions are routed by the offer's FID groups."""
    first, second = participants("first"), participants("second")
    subscriber = participants("subscriber", video=None, audio=False, feedback=True, loss=0.2)
    await joined(first, second, subscriber)

    await eventually(
        lambda: (
            len(consumers_of(worker, "subscriber")) == 4
            and all(c.fraction_lost >= 13 for c in consumers_of(worker, "subscriber"))
        ),
        20,
        what="every consumer hears of the loss (>= 5 %)",
        details=lambda: str([c.stats() for c in consumers_of(worker, "subscriber")]),
    )
    feedback = subscriber.feedback
    assert feedback is not None
    await eventually(
        lambda: (
            feedback.recovered >= 20
            and all(c.retransmitted > 0 for c in consumers_of(worker, "subscriber", "video"))
        ),
        20,
        what="NACKed packets of both video tracks retransmitted and recovered",
        details=lambda: str(feedback.stats()),
    )
    assert feedback.nacked >= feedback.recovered
    assert feedback.nacks_sent > 0
    for consumer in consumers_of(worker, "subscriber", "video"):
        assert consumer.nacks_received > 0
        assert consumer.retransmitted <= consumer.nack_requests
    assert all(c.nacks_received == 0 for c in consumers_of(worker, "subscriber", "audio"))


async def test_a_gap_given_up_asks_for_a_keyframe(worker, participants):
    publisher = participants("publisher", audio=False)
    subscriber = participants("subscriber", video=None, audio=False, feedback=True)
    await joined(publisher, subscriber)
    await eventually(lambda: subscriber.feedback and _video_ssrcs(subscriber.feedback), 10)
    feedback = subscriber.feedback
    assert feedback is not None
    ssrc = next(iter(_video_ssrcs(feedback)))
    feed = _feed_of(subscriber, feedback, "video")
    stream = feedback.streams[ssrc]
    # a jump of more than MAX_MISSING numbers cannot be NACKed: a PLI at once
    data = _rtp(ssrc, stream.max_seq + MAX_MISSING + 2, payload_type=_video_pt(feed))
    plis = feedback.plis_sent
    feed(data, _now_ms())
    assert feedback.plis_sent == plis + 1
    assert feedback.abandoned >= MAX_MISSING + 1
    await eventually(
        lambda: consumers_of(worker, "subscriber", "video")[0].plis_received > 0,
        5,
        what="the SFU got the PLI",
    )


async def test_load_client_receivers_feed_stats_and_feedback(worker, participants):
    """``watch_receiver(..., feedback=)``: the load client's counters and the feedback
    both see every packet (nothing is counted in C only)."""
    publisher = participants("publisher")
    await publisher.join()
    signal = LocalSignal(worker, "room")
    pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    rtc.receive_directly(pc)
    tracks: dict[str, TrackStats] = {}
    holder: dict[str, ReceiverFeedback] = {}

    def on_track(track) -> None:
        transceiver, mid = receiving_transceiver(pc, track)
        if "feedback" not in holder:
            holder["feedback"] = ReceiverFeedback(transceiver.receiver.transport)
        stats = tracks[mid] = TrackStats(mid, track.kind, time.monotonic())
        watch_receiver(transceiver.receiver, stats, holder["feedback"].watch(transceiver))

    pc.on("track", on_track)

    async def answer(offer: str) -> str:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        if "feedback" in holder:
            holder["feedback"].declare(offer)
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription.sdp

    try:
        await signal.connect("loadclient", answer)
        await eventually(
            lambda: (
                all(c.rtt is not None for c in consumers_of(worker, "loadclient"))
                and len(consumers_of(worker, "loadclient")) == 2
            ),
            15,
            what="the load client's receivers report",
        )
        feedback = holder["feedback"]
        # both are fed in the same call: the same count (retransmission streams aside,
        # which TrackStats does not follow)
        received = sum(s.received for s in feedback.streams.values() if not s.rtx)
        assert received > 0 and received == sum(s.packets for s in tracks.values())
    finally:
        if "feedback" in holder:
            holder["feedback"].close()
        await signal.close()
        await pc.close()


class Bottleneck(asyncio.DatagramProtocol):
    """Stands between a socket's asyncio transport and its protocol as a slow link with a
    tail-drop queue (what ``tc tbf`` does): each datagram waits for the link to be free,
    takes ``(size + 42) * 8 / rate`` seconds, and is dropped when it would wait longer
    than ``queue`` seconds."""

    def __init__(self, protocol: Any, rate: int, queue: float) -> None:
        self._protocol = protocol
        self._rate = rate
        self._queue = queue
        self._loop = asyncio.get_running_loop()
        self._free_at = 0.0
        self.dropped = 0

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        now = self._loop.time()
        start = max(now, self._free_at)
        if start - now > self._queue:
            self.dropped += 1
            return
        self._free_at = start + (len(data) + 42) * 8 / self._rate
        self._loop.call_at(self._free_at, self._deliver, data, addr)

    def _deliver(self, data: bytes, addr: tuple) -> None:
        self._protocol.datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        self._protocol.error_received(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._protocol.connection_lost(exc)


async def test_behind_a_slow_link_the_sfu_sees_loss_and_the_queue(worker, participants):
    """The publisher's clip (~1.2 Mbit/s of video) toward a subscriber behind 300 kbit/s
    with a 0.5 s queue: the reports carry heavy loss and a round trip, and gaps that
    retransmission cannot fill are given up with a keyframe request."""
    publisher = participants("publisher")
    subscriber = participants("subscriber", video=None, audio=False, feedback=True)
    await joined(publisher, subscriber)
    await eventually(
        lambda: (
            len(consumers_of(worker, "subscriber")) == 2
            and all(c.rtt is not None for c in consumers_of(worker, "subscriber"))
        ),
        15,
    )
    feedback = subscriber.feedback
    assert feedback is not None
    pair = nominated_pair(feedback.dtls)
    assert pair is not None
    receive.stop_polling(feedback.dtls)
    transport = pair.protocol.transport
    link = Bottleneck(transport.get_protocol(), 300_000, 0.5)
    transport.set_protocol(link)
    video = consumers_of(worker, "subscriber", "video")[0]
    await eventually(
        lambda: video.fraction_lost > 100 and video.rtt is not None,
        15,
        # (the round trip is not asserted over the queue: the SFU's sender reports leave
        # by a path this in-process link does not always hold back)
        what="the video consumer hears of > 40 % loss and a round trip",
        details=lambda: f"{video.stats()} {feedback.stats()} dropped {link.dropped}",
    )
    # a gap is given up only after its NACKs went unanswered for a while: wait for one
    await eventually(
        lambda: feedback.abandoned > 0 and feedback.plis_sent > 0 and video.plis_received > 0,
        20,
        what="a gap given up and its keyframe request heard by the SFU",
        details=lambda: f"{video.stats()} {feedback.stats()} dropped {link.dropped}",
    )


def test_feedback_needs_packets_not_decoded_frames(worker):
    with pytest.raises(ValueError, match="decode=False"):
        Participant("p", LocalSignal(worker, "room"), decode=True, feedback=True)


# --- hostile packets ------------------------------------------------------------------


async def test_malformed_packets_are_ignored(worker, participants):
    publisher = participants("publisher", audio=False)
    subscriber = participants("subscriber", video=None, audio=False, feedback=True)
    await joined(publisher, subscriber)
    await eventually(lambda: subscriber.feedback and _video_ssrcs(subscriber.feedback), 10)
    feedback = subscriber.feedback
    assert feedback is not None
    feed = _feed_of(subscriber, feedback, "video")
    pt = _video_pt(feed)
    ssrc = 0x5EED5EED  # a stream of the test's own, beside the real one
    good = _rtp(ssrc, 100, payload_type=pt)
    unknown_pt = next(n for n in range(96, 128) if n not in feed.clock_rates)
    feed(good, _now_ms())
    stream = feedback.streams[ssrc]
    malformed = [
        b"",
        good[:11],  # shorter than the fixed header
        bytes([0x40]) + good[1:],  # version 1
        bytes([0x00]) + good[1:],  # version 0
        bytes([0x8F]) + good[1:20],  # 15 CSRCs announced, not there
        bytes([0x90]) + good[1:12] + b"\xbe\xde\x00\x09" + b"\x00" * 8,  # extension too long
        bytes([0xA0]) + good[1:-1] + b"\xff",  # padding longer than the packet
        bytes([0xA0]) + good[1:-1] + b"\x00",  # padding of zero bytes
        good[:1] + bytes([unknown_pt]) + good[2:],  # a payload type never negotiated
        _rtp(ssrc, 100 + 30000, payload_type=pt),  # an absurd jump, not confirmed
    ]
    ignored = feedback.ignored
    for data in malformed:
        feed(data, _now_ms())
    assert feedback.ignored == ignored + len(malformed)
    assert (stream.received, stream.expected, stream.lost) == (1, 1, 0)
    feed(_rtp(ssrc, 101, payload_type=pt), _now_ms())
    assert (stream.received, stream.expected) == (2, 2)

    # mutations of a real packet and random bytes: never an exception
    rng = random.Random(7)
    for _ in range(3000):
        data = bytearray(_rtp(ssrc, rng.randrange(65536), payload_type=pt, extension=True))
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cut = rng.randrange(len(data) + 1)
        arrival = rng.randrange(1 << 42) if rng.random() < 0.05 else _now_ms()
        feed(bytes(data[:cut]) if rng.random() < 0.3 else bytes(data), arrival)
    for _ in range(500):
        feed(rng.randbytes(rng.randrange(40)), _now_ms())
    assert feedback.ignored > ignored + len(malformed)
    feedback.send_reports()  # what was learnt still makes a report


def test_offer_lines_that_are_not_fid_pairs_are_skipped():
    from client.receiver_feedback import _fid_groups

    sdp = "\r\n".join(
        [
            "m=video 9 UDP/TLS/RTP/SAVPF 97",
            "a=mid:0",
            "a=ssrc-group:FID 1 2",
            "a=ssrc-group:FID 3",
            "a=ssrc-group:FID 4 99999999999",
            "a=ssrc-group:FID -5 6",
            "a=ssrc-group:FID 7 8 9",
            "a=ssrc-group:FID 4294967296 1",
            "m=video 9 UDP/TLS/RTP/SAVPF 97",
            "a=ssrc-group:FID 10 11",  # a section without a mid
            "m=video 9 UDP/TLS/RTP/SAVPF 97",
            "a=ssrc-group:FID 12 13",
            "a=mid:2",
        ]
    )
    assert _fid_groups(sdp) == {"0": [(1, 2)], "2": [(12, 13)]}


# --- RFC 3550 statistics, NACK lists ---------------------------------------------------


def test_reception_statistics_follow_rfc_3550():
    stats = ReceptionStats(1, 90000)
    for seq in [65530, 65531, 65533, 65532, 65535, 0, 2]:  # 65534 and 1 lost; wraps
        stats.update(seq, seq * 3000, 0)
    assert stats.cycles == 1 << 16
    assert stats.extended_max == (1 << 16) + 2
    assert (stats.expected, stats.received, stats.lost) == (9, 7, 2)
    block = stats.report()
    assert block.fraction_lost == (2 << 8) // 9
    assert block.packets_lost == 2
    assert block.highest_sequence == (1 << 16) + 2
    for seq in range(3, 13):  # ten more, none lost: the next interval's fraction is 0
        stats.update(seq, seq * 3000, 0)
    block = stats.report()
    assert (block.fraction_lost, block.packets_lost) == (0, 2)
    assert stats.update(12, 0, 0) == LATE  # a duplicate counts as received (A.3)
    assert stats.report().packets_lost == 1


def test_a_jump_is_believed_only_when_a_second_packet_follows_it():
    stats = ReceptionStats(1, 90000)
    for seq in range(10):
        assert stats.update(seq, seq, 0) == NEWEST
    assert stats.update(40000, 0, 0) == REJECTED
    assert stats.update(10, 10, 0) == NEWEST
    assert stats.update(20000, 0, 0) == REJECTED
    assert stats.expected == 11 and stats.received == 11
    assert stats.update(20001, 0, 0) == RESTARTED
    assert (stats.expected, stats.received, stats.lost) == (1, 1, 0)
    assert stats.update(10, 10, 0) == REJECTED  # far behind now
    assert stats.update(22001, 0, 0) == NEWEST  # a gap within MAX_DROPOUT is loss
    assert (stats.gap, stats.expected, stats.lost) == (1999, 2001, 1999)


def test_jitter_is_zero_for_a_steady_stream_and_grows_with_variation():
    steady = ReceptionStats(1, 90000)
    for i in range(50):
        steady.update(i, i * 3000, 1000 + i * 33 + (i // 3))  # 33.33 ms: ms-resolution
    assert steady.report().jitter <= 90  # under 1 ms
    shaky = ReceptionStats(1, 90000)
    for i in range(50):
        shaky.update(i, (i * 3000) & 0xFFFFFFFF, 1000 + i * 33 + (20 if i % 2 else 0))
    assert shaky.report().jitter > 900  # over 10 ms
    wrapping = ReceptionStats(1, 90000)
    for i in range(50):  # timestamps wrap past 2**32: no jump in jitter
        wrapping.update(i, (0xFFFF0000 + i * 3000) & 0xFFFFFFFF, 1000 + i * 100 // 3)
    assert wrapping.report().jitter <= 90
    late = ReceptionStats(1, 90000)
    for i in range(20):
        late.update(i, i * 3000, 1000 + i * 100 // 3)
    late.update(5, 5 * 3000, 100_000)  # a retransmission seconds later: not jitter
    assert late.report().jitter <= 90


def test_nacks_are_asked_again_then_given_up():
    nacks = NackList()
    assert nacks.gap(100, 2, now=0.0) == 0
    ask, abandoned = nacks.due(0.0, retry=0.1, asks=3, give_up=0.3)
    assert (ask, abandoned) == ([100, 101], 0)
    assert nacks.asked(ask, 0.0) == 2
    assert nacks.due(0.05, 0.1, 3, 0.3) == ([], 0)
    ask, _ = nacks.due(0.1, 0.1, 3, 0.3)
    assert nacks.asked(ask, 0.1) == 0  # asked again: not newly NACKed
    assert nacks.arrived(101)  # recovered
    assert not nacks.arrived(101)
    ask, _ = nacks.due(0.2, 0.1, 3, 0.3)
    assert ask == [100]
    nacks.asked(ask, 0.2)
    assert nacks.due(0.3, 0.1, 3, 0.3) == ([], 1)
    assert not nacks.missing
    # a gap larger than can be waited for is given up whole; the oldest make room
    assert nacks.gap(0, MAX_MISSING + 1, 1.0) == MAX_MISSING + 1
    nacks.gap(65530, MAX_MISSING, 1.0)
    assert nacks.gap(200, 3, 1.0) == 3
    assert next(iter(nacks.missing)) == (65530 + 3) & 0xFFFF


def test_a_nack_wraps_past_65535_and_is_cut_to_sixteen_items():
    data, named = nack_packet(1, 2, [65534, 65535, 0, 1, 20])
    assert named == 5
    (packet,) = RtcpPacket.parse(data)
    assert isinstance(packet, RtcpRtpfbPacket) and (packet.ssrc, packet.media_ssrc) == (1, 2)
    assert [n & 0xFFFF for n in packet.lost] == [65534, 65535, 0, 1, 20]
    spread = [i * 20 for i in range(40)]
    data, named = nack_packet(1, 2, spread)
    (packet,) = RtcpPacket.parse(data)
    assert named == MAX_NACK_ITEMS and packet.lost == spread[:MAX_NACK_ITEMS]


# --- helpers --------------------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000) + 2_208_988_800_000


def _video_ssrcs(feedback: ReceiverFeedback) -> list[int]:
    return [s.ssrc for s in feedback.streams.values() if s.kind == "video" and not s.rtx]


def _feed_of(p: Participant, feedback: ReceiverFeedback, kind: str):
    pc = p._subscribe_pc
    assert pc is not None
    transceiver = next(t for t in pc.getTransceivers() if t.kind == kind)
    return feedback.watch(transceiver)  # the feed it already has


def _video_pt(feed) -> int:
    return next(pt for pt in feed.clock_rates if pt not in feed.rtx)


def _rtp(
    ssrc: int, seq: int, *, payload_type: int, extension: bool = False, payload: bytes = b"p" * 50
) -> bytes:
    first = 0x90 if extension else 0x80
    header = struct.pack("!BBHII", first, payload_type, seq & 0xFFFF, seq * 3000, ssrc)
    if extension:
        header += b"\xbe\xde\x00\x01" + bytes([0x32, 1, 2, 3])  # abs-send-time, id 3
    return header + payload
