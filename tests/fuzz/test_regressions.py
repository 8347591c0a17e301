"""Failures the fuzz targets found in code outside this folder, reduced to one case each.

Each failed before its fix and stays as a regression test.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from types import SimpleNamespace

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RTCP_RTPFB_NACK, RtcpPacket, RtcpRtpfbPacket, RtcpSenderInfo, RtcpSrPacket

from sfu import Worker
from sfu.consumer import Consumer
from sfu.errors import MediaError
from sfu.producer import Producer
from sfu.settings import MediaSettings
from sfu.transport import Transport, _declared_ssrcs

SEEDS = Path(__file__).parent / "corpus"


class Writer:
    """A transport's writer that keeps what is written."""

    native = False

    def __init__(self) -> None:
        self.forwarded: list[int] = []
        self.rtcp: list[bytes] = []

    def forward(self, first_byte, marker_pt, seq, timestamp, ssrc, tail) -> int:
        self.forwarded.append(seq)
        return 12 + len(tail)

    def write_rtp(self, data: bytes) -> int:
        return len(data)

    def write_rtcp(self, data: bytes) -> None:
        self.rtcp.append(data)


def video_producer(writer: Writer) -> Producer:
    return Producer(
        participant_id="alice",
        kind="video",
        codec=RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96),
        rtx_payload_type=None,
        rtcp_ssrc=1,
        writer=writer,  # type: ignore[arg-type]
        settings=MediaSettings(),
    )


def started_consumer(producer: Producer, writer: Writer) -> Consumer:
    consumer = Consumer(
        producer=producer,
        transceiver=SimpleNamespace(mid="0"),  # type: ignore[arg-type]
        ssrc=0x5000,
        rtx_ssrc=0x5001,
        writer=writer,  # type: ignore[arg-type]
        settings=MediaSettings(),
    )
    consumer.configure(96, None, (0, 0))
    consumer.start()
    return consumer


def vp8(seq: int, keyframe: bool = False) -> bytes:
    payload = b"\x10\x00" if keyframe else b"\x10\x01"
    return struct.pack("!BBHII", 0x80, 96, seq, seq * 3000, 0x1111) + payload + bytes(20)


async def test_a_gap_across_the_sequence_wrap_is_nacked() -> None:
    upstream, downstream = Writer(), Writer()
    producer = video_producer(upstream)
    started_consumer(producer, downstream)
    producer.on_rtp_data(vp8(65532, keyframe=True), 1000)
    producer.on_rtp_data(vp8(65533), 1020)
    producer.on_rtp_data(vp8(2), 1040)  # 65534, 65535, 0 and 1 lost
    assert len(downstream.forwarded) == 3
    nacks = [p for d in upstream.rtcp for p in RtcpPacket.parse(d) if p.fmt == RTCP_RTPFB_NACK]
    assert isinstance(nacks[-1], RtcpRtpfbPacket)
    # aiortc's parser does not wrap the run it expands; the numbers are modulo 2**16
    assert [n & 0xFFFF for n in nacks[-1].lost] == [65534, 65535, 0, 1]
    producer.close()


async def test_a_sender_report_near_the_end_of_ntp_time_keeps_reports_flowing() -> None:
    upstream, downstream = Writer(), Writer()
    producer = video_producer(upstream)
    consumer = started_consumer(producer, downstream)
    producer.on_rtp_data(vp8(100, keyframe=True), 1000)
    assert downstream.forwarded
    producer.on_rtcp(
        RtcpSrPacket(
            ssrc=0x1111,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=0xFFFF_FFFF_0000_0000,  # seconds field at its last value
                rtp_timestamp=300_000,
                packet_count=1,
                octet_count=22,
            ),
        )
    )
    consumer.send_report(time.time() + 2.0)
    (report,) = RtcpPacket.parse(downstream.rtcp[-1])
    assert isinstance(report, RtcpSrPacket) and report.ssrc == 0x5000
    producer.close()


async def test_an_accepted_offer_declares_only_32_bit_ssrcs() -> None:
    offer = (SEEDS / "sdp" / "chrome_audio_video").read_text()
    offer = offer.replace("a=ssrc:1111 ", "a=ssrc:37359208559 ")
    transport = Transport(Worker(), "mallory", "publish")
    try:
        description = transport._check_offer(offer)
    except MediaError:
        return  # refused: fine
    finally:
        await transport.close()
    for _active, ssrcs, _streams in _declared_ssrcs(description):
        assert all(0 <= ssrc < 1 << 32 for ssrc in ssrcs), ssrcs
