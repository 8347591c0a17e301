"""TrackStats reads the figures of the load test from received packets' bytes: loss from
sequence numbers (wrapping, reordered), payload bytes without extensions and padding,
frames by the marker bit (every audio packet), latency from the stamp ending a frame."""

import time

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from client.stamped import STAMP_SIZE, stamp
from client.track_stats import TrackStats

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


def test_loss_bytes_and_frames_from_video_packets():
    stats = TrackStats("0", "video", appeared_at=time.monotonic())
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


def test_every_audio_packet_is_a_frame_and_other_ssrcs_are_ignored():
    stats = TrackStats("1", "audio", appeared_at=time.monotonic())
    for seq in range(10):
        stats.on_data(packet(seq), 0)
    retransmission = bytearray(packet(10))
    retransmission[8:12] = (999).to_bytes(4, "big")
    stats.on_data(bytes(retransmission), 0)
    stats.on_data(b"\x80\x60", 0)  # too short to be RTP
    figures = stats.figures()
    assert (figures["packets"], figures["frames"], figures["packets_lost"]) == (10, 10, 0)
    assert figures["latency_samples"] == 0
