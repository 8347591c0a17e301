"""Simulcast end to end: a headless publisher sends three real VP8 encodings (its
pre-encoded 320x180, 640x360 and 1280x720 clips, rids q/h/f on one m-line, as Chromium
sends them) through real aiortc connections into the SFU; subscribers decode every frame
they receive with PyAV (``client.vp8_check``).  A subscriber switched up and down fifty
times decodes every frame after each switch, its sequence numbers and picture IDs stay
continuous, and what it receives is only ever the layer chosen (told apart by the
decoded resolution)."""

from __future__ import annotations

import random

import pytest

from sfu import Worker
from sfu.simulcast import SimulcastProducer
from tests.support.eventually import eventually

SIZES = {0: (320, 180), 1: (640, 360), 2: (1280, 720)}

#: The layer selection of the worker stays out of the way: the test chooses layers.
pytestmark = pytest.mark.media_settings(layer_interval=3600.0)


def camera(worker: Worker) -> SimulcastProducer:
    (producer,) = [
        p
        for t in worker.transports
        for p in t.producers.values()
        if isinstance(p, SimulcastProducer)
    ]
    return producer


def consumer_of(worker: Worker, subscriber: str):
    (consumer,) = [
        c
        for t in worker.transports_of(subscriber, "subscribe")
        for c in t.consumers.values()
        if isinstance(c.producer, SimulcastProducer)
    ]
    return consumer


def report(participant):
    (track,) = [t for t in participant.tracks.values() if t.kind == "video"]
    return track.check.report()


async def test_a_subscriber_switched_fifty_times_decodes_every_frame(
    worker: Worker, participants
) -> None:
    publisher = participants("alice", audio=False, video="simulcast")
    viewer = participants("bob", audio=False, video=None, check_video=True)
    steady = participants("carol", audio=False, video=None, check_video=True)
    for p in (viewer, steady, publisher):
        await p.join()
    producer = camera(worker)
    await eventually(lambda: all(producer.active_layers()), 20)
    switched = consumer_of(worker, "bob")
    kept = consumer_of(worker, "carol")
    kept.select_layer(1)
    await eventually(lambda: report(viewer).last_resolution == SIZES[0], 20)
    await eventually(lambda: report(steady).last_resolution == SIZES[1], 20)

    rng = random.Random(22)
    layer = 0
    for _ in range(50):
        layer = rng.choice([x for x in SIZES if x != layer])
        switched.select_layer(layer)
        await eventually(lambda k=layer: report(viewer).last_resolution == SIZES[k], 10)
        await eventually(lambda k=layer: switched.layer == k and switched.switching_to is None, 10)
    frames = report(viewer).frames_decoded
    await eventually(lambda: report(viewer).frames_decoded > frames + 10, 10)

    got = report(viewer)
    assert switched.layer_switches == 50
    # one continuous stream: one SSRC, no sequence gap, no picture-ID or TL0PICIDX jump
    assert list(got.packets_per_ssrc) == [switched._ssrc] and got.ssrc_changes == 0
    assert got.sequence_gap_count == 0 and got.lost_packets == 0
    assert got.picture_id_jump_count == 0 and got.tl0picidx_jumps == 0
    # every frame decoded; the only loss a switch may cause is the tail of the old
    # layer's frame under way when the new layer's keyframe came (none here: the
    # publisher sends each layer's frame whole)
    assert got.frames_failed == 0 and got.frames_corrupt == 0 and got.malformed_packets == 0
    assert got.frames_incomplete <= 50
    # only the layers chosen were ever decoded, and each was
    assert set(got.resolutions) == set(SIZES.values())
    # the subscriber moved once (from the lowest layer it starts on) stayed there, cleanly
    alone = report(steady)
    assert alone.clean and set(alone.resolutions) == {SIZES[0], SIZES[1]}
    assert alone.last_resolution == SIZES[1]
    assert kept.layer_switches == 1 and kept.layer == 1


async def test_video_withheld_for_bandwidth_resumes_on_a_keyframe(
    worker: Worker, participants
) -> None:
    publisher = participants("alice", audio=False, video="simulcast")
    viewer = participants("bob", audio=False, video=None, check_video=True)
    await viewer.join()
    await publisher.join()
    producer = camera(worker)
    await eventually(lambda: all(producer.active_layers()), 20)
    consumer = consumer_of(worker, "bob")
    await eventually(lambda: report(viewer).frames_decoded > 10, 20)
    consumer.select_layer(None)
    assert consumer.paused_for_bandwidth and consumer.layer is None
    packets = consumer.packets
    await eventually(lambda: producer.layers[0].packets > 100 + packets, 10)  # time passes
    assert consumer.packets == packets  # nothing forwarded meanwhile
    consumer.select_layer(2)
    await eventually(lambda: report(viewer).last_resolution == SIZES[2], 10)
    got = report(viewer)
    assert got.sequence_gap_count == 0 and got.picture_id_jump_count == 0
    assert got.frames_failed == 0 and got.frames_corrupt == 0
    assert consumer.stats()["paused_for_bandwidth"] is False


@pytest.mark.media_settings(layer_interval=0.5)
async def test_each_subscriber_gets_the_layer_its_link_and_tile_allow(
    worker: Worker, participants
) -> None:
    """The worker's own layer selection, from the subscribers' receiver feedback (receiver
    reports, transport feedback, padding probes): a subscriber on a clean link climbs to
    the top layer, one showing the camera in a small tile stays on the layer that fills
    it, and the publisher is asked for what the top layer needs.  (A link that is too
    slow: tests/weaknet/.)"""
    publisher = participants("alice", audio=False, video="simulcast")
    clean = participants("bob", audio=False, video=None, feedback=True)
    small = participants("carol", audio=False, video=None, feedback=True)
    for p in (clean, small, publisher):
        await p.join()
    producer = camera(worker)
    await eventually(lambda: all(producer.active_layers()), 20)
    assert worker.set_tile_heights("carol", {producer.id: 170, "unknown": 90}) == 1
    good = consumer_of(worker, "bob")
    thumbnail = consumer_of(worker, "carol")
    await eventually(lambda: good.layer == 2 and good.switching_to is None, 30)
    assert thumbnail.layer == 0 and thumbnail.layer_switches == 0
    assert good.layer_switches == 2  # one layer at a time
    # the subscribers answered transport-cc: their downlink is read from transport
    # feedback (a browser's receiver then sends no REMB), and the climb was probed
    transport = next(worker.transports_of("bob", "subscribe"))
    reader = transport.transport_feedback
    assert reader is not None and reader.feedbacks > 0 and reader.malformed == 0
    assert good.rtt is not None and good.remb is None
    assert good.padding_bytes > 0 and worker.layers.prober(transport).succeeded > 0
    # the publisher is told what the top layer needs
    assert good.wanted_layer == 2 and thumbnail.wanted_layer == 0
    assert producer.estimated_bitrate() >= 1_200_000
    # the tile grows: the layer follows
    worker.set_tile_heights("carol", {producer.id: 720})
    await eventually(lambda: thumbnail.layer == 2, 30)
