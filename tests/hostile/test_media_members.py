"""Attacks by a signed-in participant over their own DTLS-SRTP session: the SFU decrypts
everything they send, so every packet is processed.  Victims in another room of the
same worker (another case) and in the attacker's own room keep their media; the
counters show the work that was skipped."""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import time

from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    pack_remb_fci,
)

from sfu import rtc
from sfu.rtp_header import ABS_SEND_TIME_URI

from .media_support import make_victims, raw_writer, rtp, transport_of

FIR_HEADER = struct.Struct("!BBHII")


async def _pace(send, count: int, per_tick: int = 100) -> None:
    """Call ``send(i)`` ``count`` times, yielding to the event loop between batches (the
    SFU runs on the same loop here)."""
    for start in range(0, count, per_tick):
        for i in range(start, min(count, start + per_tick)):
            send(i)
        await asyncio.sleep(0.005)


async def _room_with_attacker(worker, participants):
    """Victims in room-b; in room-a a victim publisher and the attacker (who publishes
    and subscribes to the victim)."""
    other_case = await make_victims(worker, "room-b", participants)
    alice = participants("alice", "room-a", audio=False)
    mallory = participants("mallory", "room-a", audio=False, decode=False)
    await alice.join()
    await mallory.join()
    async with asyncio.timeout(15):
        while not any(t.packets > 30 for t in mallory.tracks.values()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return other_case, alice, mallory


def _video_consumer(worker, subscriber: str):
    transport = transport_of(worker, subscriber, "subscribe")
    return next(c for c in transport.consumers.values() if c.kind == "video")


def _video_producer(worker, publisher: str):
    transport = transport_of(worker, publisher, "publish")
    return next(p for p in transport.producers.values() if p.kind == "video")


async def test_ssrc_churn_is_dropped_before_srtp_and_the_sender_disconnected(worker, participants):
    other_case, _, mallory = await _room_with_attacker(worker, participants)
    publish = transport_of(worker, "mallory", "publish")
    writer = raw_writer(mallory._publish_pc)
    watch = other_case.watch()
    await _pace(lambda i: writer.write_rtp(rtp(0x10000000 + i, i, 96, os.urandom(188))), 3000)
    async with asyncio.timeout(10):
        while not publish.closed:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await watch.until_more(30)  # and media keeps flowing after it
    await watch.stop()
    watch.report("SSRC churn")
    assert publish.close_reason == "unknown-ssrc"
    assert worker.stats()["refused_closed"]["unknown_ssrc"] >= 500
    # dropped on the clear-text header: at most the learning slots ever reached libsrtp
    assert publish.ingress.ssrc.dropped >= 500, publish.ingress.stats()
    assert len(publish.ingress.ssrc.allowed()) <= 2
    assert watch.longest_stall < 1.0
    assert not other_case.subscriber.endings


async def test_srtcp_sender_churn_is_dropped_before_srtp(worker, participants):
    other_case, _, mallory = await _room_with_attacker(worker, participants)
    subscribe = transport_of(worker, "mallory", "subscribe")
    writer = raw_writer(mallory._subscribe_pc)
    watch = other_case.watch()

    def report(i: int) -> None:
        writer.write_rtcp(bytes(RtcpRrPacket(ssrc=0x20000000 + i, reports=[])))

    await _pace(report, 3000)
    async with asyncio.timeout(10):
        while not subscribe.closed:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await watch.until_more(30)  # and media keeps flowing after it
    await watch.stop()
    watch.report("SRTCP sender churn")
    assert subscribe.ingress.ssrc.rtcp_dropped >= 500
    assert subscribe.close_reason == "unknown-ssrc"
    assert watch.longest_stall < 1.0


async def test_nack_floods_are_cut_before_they_are_expanded(worker, participants):
    other_case, _, mallory = await _room_with_attacker(worker, participants)
    consumer = _video_consumer(worker, "mallory")
    subscribe = transport_of(worker, "mallory", "subscribe")
    writer = raw_writer(mallory._subscribe_pc)
    nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=consumer._ssrc)
    nack.lost = list(range(10000, 14590))
    data = bytes(nack)
    assert len(data) == 1092  # 270 items naming 4,590 sequence numbers
    watch = other_case.watch()
    started = time.monotonic()
    await _pace(lambda i: writer.write_rtcp(data), 1000, per_tick=20)
    async with asyncio.timeout(10):
        while subscribe.ingress.rtcp.nack_items_ignored < 254 * 400:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await watch.until_more(30)  # and media keeps flowing after it
    await watch.stop()
    watch.report("NACK flood")
    assert subscribe.connection_state == "connected"
    # each NACK cut to 16 items before parsing; then at most 1,000 numbers a second, over
    # the whole time the flood could have been read (until the count is taken)
    requests, elapsed = consumer.nack_requests, time.monotonic() - started
    assert requests <= 1000 * (elapsed + 1) + 16 * 17
    assert consumer.nack_entries_ignored > 0
    assert watch.longest_stall < 1.0


async def test_keyframe_requests_are_coalesced_to_one_a_second(worker, participants):
    _, _, mallory = await _room_with_attacker(worker, participants)
    consumer = _video_consumer(worker, "mallory")
    producer = _video_producer(worker, "alice")
    writer = raw_writer(mallory._subscribe_pc)
    pli = bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=consumer._ssrc))
    before = producer.keyframe_requests_sent
    started = time.monotonic()
    await _pace(lambda i: writer.write_rtcp(pli), 2000, per_tick=10)
    async with asyncio.timeout(10):
        while consumer.plis_received < 900:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    sent = producer.keyframe_requests_sent - before
    assert sent <= elapsed / 1.0 + 1, (sent, elapsed)
    assert producer.keyframe_requests_coalesced >= 800


async def test_fir_is_routed_by_its_fci(worker, participants):
    """A FIR's media SSRC is 0 (RFC 5104); routed by it, it never reached a consumer."""
    _, _, mallory = await _room_with_attacker(worker, participants)
    consumer = _video_consumer(worker, "mallory")
    writer = raw_writer(mallory._subscribe_pc)
    fir = FIR_HEADER.pack(0x84, 206, 4, 1, 0) + struct.pack("!IB3x", consumer._ssrc, 1)
    writer.write_rtcp(fir)
    async with asyncio.timeout(5):
        while consumer.firs_received < 1:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_one_subscribers_remb_neither_floors_a_publisher_nor_lasts(worker, participants):
    _, _, mallory = await _room_with_attacker(worker, participants)
    consumer = _video_consumer(worker, "mallory")
    producer = _video_producer(worker, "alice")
    writer = raw_writer(mallory._subscribe_pc)
    remb = RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=pack_remb_fci(1, [consumer._ssrc])
    )
    writer.write_rtcp(bytes(remb))
    async with asyncio.timeout(5):
        while consumer.remb != 1:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    settings = worker.settings
    assert producer.estimated_bitrate() == settings.remb_floor
    async with asyncio.timeout(10):  # expires after remb_expiry (1 s here)
        while producer.estimated_bitrate() != settings.max_video_bitrate:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_malformed_remb_is_dropped_and_the_connection_stays(worker, participants):
    _, _, mallory = await _room_with_attacker(worker, participants)
    subscribe = transport_of(worker, "mallory", "subscribe")
    writer = raw_writer(mallory._subscribe_pc)
    bad = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=b"REMB" + b"\xff\x00\x00\x01")
    good = RtcpRrPacket(ssrc=1, reports=[RtcpReceiverInfo(1, 0, 0, 0, 0, 0, 0)])
    for _ in range(20):
        writer.write_rtcp(bytes(good) + bytes(bad))
    async with asyncio.timeout(5):
        while subscribe.ingress.rtcp.dropped_malformed < 20:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    before = sum(t.packets for t in mallory.tracks.values())
    async with asyncio.timeout(5):
        while sum(t.packets for t in mallory.tracks.values()) < before + 20:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert subscribe.connection_state == "connected"
    assert not mallory.endings


async def test_a_publisher_over_its_budget_is_dropped_then_disconnected(worker, participants):
    other_case, _, mallory = await _room_with_attacker(worker, participants)
    publish = transport_of(worker, "mallory", "publish")
    producer = _video_producer(worker, "mallory")
    ssrc = producer.ssrc
    pt = producer.codec.payloadType
    writer = raw_writer(mallory._publish_pc)
    payload = b"\x10\x00\x00" + os.urandom(1100)
    watch = other_case.watch()
    seq = producer._max_seq + 1000  # ahead of the real stream: SRTP's replay check

    def flood(i: int) -> None:
        writer.write_rtp(rtp(ssrc, seq + i, pt, payload))

    async with asyncio.timeout(20):
        sent = 0
        while not publish.closed:
            await _pace(flood, 200, per_tick=100)  # ~20 Mbit/s and more
            sent += 200
            seq += 200
    await watch.stop()
    watch.report("publisher over budget")
    assert publish.close_reason == "over-budget"
    assert producer.dropped_over_budget > 0
    assert watch.longest_stall < 1.0


async def test_malformed_header_extensions_are_dropped_with_bounded_logging(
    worker, participants, caplog
):
    _, _, mallory = await _room_with_attacker(worker, participants)
    publish = transport_of(worker, "mallory", "publish")
    producer = _video_producer(worker, "mallory")
    transceiver = next(t for t in publish._pc.getTransceivers() if t.mid == producer.mid)
    ids = {e.uri: e.id for e in rtc.negotiated_header_extensions(transceiver)}
    ext_id = ids[ABS_SEND_TIME_URI]
    # abs-send-time with a 4-byte value: aiortc's parser raises struct.error on it
    extension = b"\xbe\xde\x00\x02" + bytes([ext_id << 4 | 3]) + b"\x01\x02\x03\x04\x00\x00\x00"
    writer = raw_writer(mallory._publish_pc)
    first = producer._max_seq + 1000  # ahead of the real stream: SRTP's replay check

    def send(i: int) -> None:
        header = struct.pack("!BBHII", 0x90, 3, (first + i) & 0xFFFF, i * 90, producer.ssrc)
        writer.write_rtp(header + extension + b"\x00" * 100)

    caplog.set_level(logging.WARNING)
    await _pace(send, 2000)
    async with asyncio.timeout(10):
        while publish.ingress.malformed_rtp < 1500:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    media_lines = [r for r in caplog.records if r.name.startswith("sfu")]
    assert len(media_lines) <= 3, [r.getMessage() for r in media_lines]
    assert not any(r.exc_info for r in media_lines)
    assert publish.connection_state == "connected"


async def test_an_operator_sees_who_is_refused_and_why(worker, participants):
    """``/metrics`` (and ``GET /api/admin/media``, which returns these statistics) name
    the participant whose packets the SFU refuses, and the reason."""
    from prometheus_client import CollectorRegistry, generate_latest

    from signaling.http.metrics import MediaCollector

    _, _, mallory = await _room_with_attacker(worker, participants)
    subscribe = transport_of(worker, "mallory", "subscribe")
    writer = raw_writer(mallory._subscribe_pc)
    bad = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=b"REMB" + b"\xff\x00\x00\x01")
    for _ in range(5):
        writer.write_rtcp(bytes(bad))
    async with asyncio.timeout(5):
        while subscribe.ingress.rtcp.dropped_malformed < 5:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    stats = worker.stats()
    assert any(
        t["participant_id"] == "mallory" and t["ingress"]["rtcp_dropped_malformed"] == 5
        for t in stats["transports"]
    )
    collector = MediaCollector()
    collector.snapshot = {**stats, "participants": []}
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    assert (
        'caucus_media_participant_refused{participant="mallory",reason="malformed_rtcp"} 5.0'
        in text
    )
    assert 'caucus_media_ingress_refused_total{reason="malformed_rtcp"} 5.0' in text
