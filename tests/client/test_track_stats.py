"""TrackStats reads the figures of the load test from received packets' bytes: loss from
sequence numbers (wrapping, reordered), payload bytes without extensions and padding,
frames by the marker bit (every audio packet), latency from the stamp ending a frame.
The compiled counters (the load client's) and the Python ones compute the same figures."""

import random
import time

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from client.stamped import STAMP_SIZE, stamp
from client.track_stats import LATENCY_BUFFER, TrackStats
from sfu.rtc import FASTRECEIVE

#: Both kinds of counters; the compiled one is part of every installed tree (CI builds it).
NATIVE = [pytest.param(True, id="compiled"), pytest.param(False, id="python")]

EXTENSIONS = HeaderExtensionsMap()
EXTENSIONS.configure(
    RTCRtpParameters(
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(
                id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
            )
        ]
    )
)


def packet(seq: int, marker: int = 0, payload: bytes = b"x" * 100, padding: int = 0) -> bytes:
    rtp = RtpPacket(
        payload_type=96,
        marker=marker,
        sequence_number=seq & 0xFFFF,
        timestamp=seq * 3000,
        ssrc=1234,
        payload=payload,
    )
    rtp.extensions.abs_send_time = 77
    rtp.padding_size = padding
    return rtp.serialize(EXTENSIONS)


@pytest.mark.parametrize("native", NATIVE)
def test_loss_bytes_and_frames_from_video_packets(native):
    stats = TrackStats("0", "video", appeared_at=time.monotonic(), native=native)
    sent_us = time.time_ns() // 1000 - 5000  # stamped 5 ms ago
    for seq in [65530, 65531, 65533, 65532, 65535, 0, 2]:  # 65534 and 1 lost, wraps
        last = seq in (65533, 2)
        payload = b"v" * 200 + (stamp(sent_us) if last else b"")
        stats.on_data(packet(seq, marker=int(last), payload=payload, padding=4), 0)
    figures = stats.figures()
    assert figures["packets"] == 7
    assert figures["packets_lost"] == 2
    assert figures["bytes"] == 7 * 200 + 2 * STAMP_SIZE
    assert figures["frames"] == 2
    assert figures["latency_samples"] == 2
    assert 4 <= figures["latency_p50_ms"] < 1000
    assert stats.first_frame_at is not None


@pytest.mark.parametrize("native", NATIVE)
def test_every_audio_packet_is_a_frame_and_other_ssrcs_are_ignored(native):
    stats = TrackStats("1", "audio", appeared_at=time.monotonic(), native=native)
    for seq in range(10):
        stats.on_data(packet(seq), 0)
    retransmission = bytearray(packet(10))
    retransmission[8:12] = (999).to_bytes(4, "big")
    stats.on_data(bytes(retransmission), 0)
    stats.on_data(b"\x80\x60", 0)  # too short to be RTP
    figures = stats.figures()
    assert (figures["packets"], figures["frames"], figures["packets_lost"]) == (10, 10, 0)
    assert figures["latency_samples"] == 0


def test_the_compiled_counters_are_built():
    assert FASTRECEIVE
    assert TrackStats("0", "video", time.monotonic()).native is not None


def test_compiled_and_python_counters_agree_on_a_disordered_stream():
    rng = random.Random(7)
    compiled = TrackStats("0", "video", appeared_at=time.monotonic(), native=True)
    python = TrackStats("0", "video", appeared_at=time.monotonic(), native=False)
    sent_us = time.time_ns() // 1000 - 3000
    seqs = [(65000 + n) & 0xFFFF for n in range(1500)]  # wraps at 536
    for _ in range(60):  # reordered neighbours
        i = rng.randrange(len(seqs) - 1)
        seqs[i], seqs[i + 1] = seqs[i + 1], seqs[i]
    seqs = [s for s in seqs if rng.random() > 0.03]  # about 3 % lost
    datagrams = []
    for seq in seqs:
        last = seq % 5 == 0
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        payload += stamp(sent_us + seq) if last else b""
        datagrams.append(packet(seq, marker=int(last), payload=payload, padding=seq % 3))
    other = bytearray(datagrams[10])
    other[8:12] = (4321).to_bytes(4, "big")
    datagrams.insert(20, bytes(other))
    datagrams.insert(30, datagrams[30][:11])  # too short
    bad_padding = bytearray(datagrams[40])
    bad_padding[0] |= 0x20
    bad_padding[-1] = 255  # more padding than payload: no payload bytes counted
    datagrams.insert(40, bytes(bad_padding))
    for data in datagrams:
        compiled.on_data(data, 0)
        python.on_data(data, 0)
    mine, theirs = compiled.figures(), python.figures()
    for key in ("packets", "bytes", "frames", "packets_lost", "loss_pct", "latency_samples"):
        assert mine[key] == theirs[key], key
    assert mine["packets_lost"] > 20
    assert compiled.expected == python.expected
    # clocks are read a few microseconds apart: figures built on them agree closely
    assert mine["jitter_ms"] == pytest.approx(theirs["jitter_ms"], abs=0.05)
    assert mine["latency_p50_ms"] == pytest.approx(theirs["latency_p50_ms"], abs=1)
    assert abs(compiled.last_packet_at - python.last_packet_at) < 0.5


def test_compiled_latency_samples_wait_until_collected_and_overflow_is_counted():
    stats = TrackStats("1", "audio", appeared_at=time.monotonic(), native=True)
    for seq in range(LATENCY_BUFFER + 10):
        stats.on_data(packet(seq, payload=b"a" * 50 + stamp()), 0)
    assert stats.native.latency_count == LATENCY_BUFFER
    figures = stats.figures()  # collects
    assert figures["latency_samples"] == LATENCY_BUFFER
    assert figures["latency_samples_dropped"] == 10
    assert stats.native.latency_count == 0
    stats.on_data(packet(LATENCY_BUFFER + 10, payload=b"a" * 50 + stamp()), 0)
    stats.collect()
    assert len(stats.latencies_ms) == LATENCY_BUFFER + 1
    stats.start_window()
    assert stats.latencies_ms == [] and stats.figures()["packets"] == 0
