"""The clock a Producer gives its consumers' sender reports: the publisher's own sender
report when it sent one, else the newest packet's RTP timestamp carried forward from its
arrival time (which counts from the NTP epoch, as aiortc's arrival times do)."""

from __future__ import annotations

from types import SimpleNamespace

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket

from sfu.producer import NTP_EPOCH_OFFSET, Producer
from sfu.settings import MediaSettings

NOW = 1_790_000_000.0  # a wall-clock time (seconds since 1970)


def producer(kind: str = "video", rate: int = 90000) -> Producer:
    codec = RTCRtpCodecParameters(
        mimeType="video/VP8" if kind == "video" else "audio/opus", clockRate=rate, payloadType=96
    )
    return Producer(
        participant_id="alice",
        kind=kind,
        codec=codec,
        rtx_payload_type=None,
        rtcp_ssrc=1,
        writer=SimpleNamespace(),  # type: ignore[arg-type]
        settings=MediaSettings(),
    )


def test_without_a_sender_report_the_last_packet_is_carried_forward() -> None:
    video = producer()
    video.last_timestamp = 1_000_000
    # the newest packet arrived 0.5 s before NOW (milliseconds since 1900)
    video.last_arrival_ms = int((NOW - 0.5 + NTP_EPOCH_OFFSET) * 1000)
    ntp, rtp = video.sender_clock(NOW)
    assert ntp == int((NOW + NTP_EPOCH_OFFSET) * (1 << 32))
    assert rtp == 1_000_000 + 45_000  # half a second at 90 kHz
    # wraps at 32 bits
    video.last_timestamp = 0xFFFFFFFF
    assert video.sender_clock(NOW)[1] == 45_000 - 1


def test_before_any_packet_the_clock_starts_at_zero() -> None:
    audio = producer("audio", 48000)
    ntp, rtp = audio.sender_clock(NOW)
    assert (ntp >> 32) == int(NOW + NTP_EPOCH_OFFSET) and rtp == 0


def test_a_sender_report_from_the_publisher_sets_the_clock() -> None:
    audio = producer("audio", 48000)
    audio.ssrc = 4242
    report_ntp = int((NOW + NTP_EPOCH_OFFSET) * (1 << 32))
    audio.on_rtcp(
        RtcpSrPacket(
            ssrc=4242,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=report_ntp, rtp_timestamp=5000, packet_count=1, octet_count=100
            ),
        )
    )
    received_at = audio._sr[2]
    ntp, rtp = audio.sender_clock(received_at + 0.25)
    assert rtp == 5000 + 12_000  # a quarter of a second at 48 kHz
    assert abs(ntp - report_ntp - (1 << 30)) <= 1  # a quarter of a second later
