"""Connection quality from what the SFU already sees (``sfu.quality``): the thresholds of
the levels, the SFU's own count of gaps on the way in, then a room of real peers where one
subscriber's link drops a share of what it receives."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.producer import Producer
from sfu.quality import (
    FAIR,
    GOOD,
    POOR,
    QualityMeter,
    QualityRule,
    ReceptionWindow,
    participant_quality,
    quality_level,
)
from sfu.settings import MediaSettings
from tests.support.eventually import eventually


@pytest.mark.parametrize(
    ("loss", "rtt_ms", "paused", "level"),
    [
        (None, None, False, None),  # nothing measured yet
        (0.0, None, False, GOOD),
        (None, 40.0, False, GOOD),
        (0.0199, 249.0, False, GOOD),
        (0.02, 10.0, False, FAIR),  # from 2 % loss
        (0.0, 250.0, False, FAIR),  # from 250 ms round trip
        (0.0799, 499.0, False, FAIR),
        (0.08, 10.0, False, POOR),  # from 8 % loss
        (0.0, 500.0, False, POOR),  # from 500 ms round trip
        (0.5, None, False, POOR),
        (0.0, 10.0, True, POOR),  # video withheld for bandwidth
        (None, None, True, POOR),
    ],
)
def test_levels_follow_the_documented_thresholds(loss, rtt_ms, paused, level) -> None:
    assert quality_level(loss, rtt_ms, paused) == level


def test_thresholds_are_the_rules() -> None:
    strict = QualityRule(fair_loss=0.01, poor_loss=0.02, fair_rtt_ms=50, poor_rtt_ms=100)
    assert quality_level(0.015, None, rule=strict) == FAIR
    assert quality_level(0.0, 100.0, rule=strict) == POOR
    assert quality_level(0.015, None) == GOOD


def video_producer() -> tuple[Producer, list[bytes]]:
    """A real producer whose upstream feedback (NACKs) is kept in a list."""
    rtcp: list[bytes] = []
    producer = Producer(
        participant_id="publisher",
        kind="video",
        codec=RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96),
        rtx_payload_type=97,
        rtcp_ssrc=0x55,
        writer=SimpleNamespace(write_rtcp=rtcp.append),  # type: ignore[arg-type]
        settings=MediaSettings(),
    )
    return producer, rtcp


def feed(producer: Producer, seqs: list[int]) -> None:
    for n, seq in enumerate(seqs):
        header = struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, seq * 3000, 0xABC)
        producer.on_rtp_data(header + b"\x10\x00" + bytes(100), 3_900_000_000_000 + 33 * n)


def test_the_sfu_counts_gaps_on_the_way_in_per_packet_received() -> None:
    producer, nacks = video_producer()
    window = ReceptionWindow()
    feed(producer, [seq for seq in range(1000, 1200) if seq % 20 != 7])  # 10 of 200 missing
    assert producer.nacks_sent == 10 and len(nacks) == 10
    assert window.loss(producer) == pytest.approx(10 / 190)
    # too few packets since: no new figure, and the window stays open
    feed(producer, list(range(1200, 1210)))
    assert window.loss(producer) is None
    feed(producer, [seq for seq in range(1210, 1300) if seq != 1250])
    assert window.loss(producer) == pytest.approx(1 / 99)
    # retransmissions arriving late close no gap twice: no new NACK, no loss
    feed(producer, [*range(1300, 1340), 1250])
    assert window.loss(producer) == 0.0


def test_audio_has_no_gap_count() -> None:
    window = ReceptionWindow()
    audio = Producer(
        participant_id="publisher",
        kind="audio",
        codec=RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, payloadType=111),
        rtx_payload_type=None,
        rtcp_ssrc=0x55,
        writer=SimpleNamespace(write_rtcp=lambda data: None),  # type: ignore[arg-type]
        settings=MediaSettings(),
    )
    assert window.loss(audio) is None


async def test_a_lossy_downlink_is_poor_and_placed_at_its_subscriber(worker, participants):
    """A publisher and two subscribers receiving it decoded (aiortc answers the SFU's
    sender reports); one drops 30 % of the media it receives.  Both report their loss:
    the clean one's near zero shows that the publisher's link is fine, so the lossy one's
    is its own downlink."""
    publisher = participants("publisher")  # audio and video
    clean = participants("clean", audio=False, video=None, decode=True)
    lossy = participants("lossy", audio=False, video=None, decode=True, loss=0.3)
    for person in (publisher, clean, lossy):
        await person.join()
    meter = QualityMeter(worker)

    def measured() -> dict[str, dict] | None:
        found = meter.sample(("publisher", "clean", "lossy"))
        ready = (
            found["clean"]["rtt_ms"] is not None
            and found["lossy"]["rtt_ms"] is not None
            and found["lossy"]["level"] == POOR
        )
        return found if ready else None

    found = await eventually(measured, 30, interval=0.5)
    assert isinstance(found, dict)
    lossy_q, clean_q, publisher_q = found["lossy"], found["clean"], found["publisher"]
    assert lossy_q["downstream_loss"] >= 0.08, lossy_q
    assert lossy_q["loss"] == lossy_q["downstream_loss"]
    assert lossy_q["paused_for_bandwidth"] is False and lossy_q["paused_producers"] == []
    # the clean subscriber's reports say the publisher's link is not where loss happens
    assert clean_q["level"] == GOOD, clean_q
    assert clean_q["downstream_loss"] < 0.02
    assert 0 <= clean_q["rtt_ms"] < 250
    assert publisher_q["upstream_loss"] is not None and publisher_q["upstream_loss"] < 0.02
    assert publisher_q["level"] == GOOD, publisher_q
    assert publisher_q["rtt_ms"] is None  # it receives nothing: no round trip measured
    # single-layer video: no layer to tell
    assert clean_q["lowest_layer"] is None and clean_q["highest_layer"] is None


async def test_layers_and_video_withheld_for_bandwidth(worker, participants):
    """What the SFU decides per consumer (the simulcast layer it forwards, video withheld
    because the subscriber's link cannot carry the lowest layer) is what is reported."""
    first = participants("first", audio=False)
    second = participants("second", audio=False)
    viewer = participants("viewer", audio=False, video=None)
    for person in (first, second, viewer):
        await person.join()

    def viewer_consumers() -> list:
        return [
            c
            for t in worker.transports_of("viewer")
            for c in t.consumers.values()
            if c.kind == "video"
            and c.started
            and c.producer is not None
            and c.producer.participant_id
        ]

    await eventually(lambda: len(viewer_consumers()) == 2, 15)
    one, other = viewer_consumers()
    one.layer, other.layer = 0, 2
    quality = participant_quality(worker, "viewer")
    assert (quality["lowest_layer"], quality["highest_layer"]) == (0, 2)
    assert quality["paused_for_bandwidth"] is False
    other.paused_for_bandwidth = True
    quality = participant_quality(worker, "viewer")
    assert quality["paused_for_bandwidth"] is True
    assert quality["paused_producers"] == [other.producer_id]
    assert quality["level"] == POOR
    assert participant_quality(worker, "nobody")["level"] is None
