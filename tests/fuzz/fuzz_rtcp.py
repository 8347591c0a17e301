"""Fuzz target: decrypted RTCP from a peer, along the SFU's path.

Every input is one SRTCP compound packet after decryption.  It goes where the SFU sends
it (``sfu.rtc.guard.guard_ingress``): through the transport's ``RtcpGuard``, then
aiortc's ``RtcpPacket.parse``, aiortc's RTCP routing (a real ``RtpRouter`` knowing one
publisher's SSRC and two subscribers' SSRCs), then the SFU's handlers:
``Producer.on_rtcp`` (sender reports, BYE) and ``Consumer.on_rtcp`` (NACK answered from
the retransmission buffer, PLI/FIR forwarded upstream, REMB, receiver reports).  The
reports the SFU sends next (receiver report + REMB to the publisher, sender reports to
the subscribers, a second later) are built too: they carry what the peer just sent.

Documented rejections: the guard returning ``None``, and ``ValueError`` from aiortc's
parser (which the SFU counts and drops).  A crash is any other exception anywhere, a
NACK expanding to more numbers than the guard's item limit allows, or a guarded
compound that aiortc's routing cannot handle.
"""

from __future__ import annotations

import asyncio
import random
import struct
import sys
import time
from types import SimpleNamespace

import atheris

with atheris.instrument_imports(include=["sfu", "aiortc.rtp"]):
    from aiortc.rtcdtlstransport import RtpRouter
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters
    from aiortc.rtp import RtcpPacket, RtcpRtpfbPacket

    from sfu.consumer import Consumer
    from sfu.producer import Producer
    from sfu.rtcp_guard import RtcpGuard
    from sfu.settings import MediaSettings

SETTINGS = MediaSettings(retransmission_buffer=64)
#: The publisher's media SSRC and the SSRCs of the two subscribers' senders.
PUBLISHER_SSRC = 0x1111
SUBSCRIBER_SSRCS = (0x5000, 0x5001)
LOOP = asyncio.new_event_loop()


class RecordingWriter:
    """A transport's writer that keeps what a consumer or producer writes."""

    native = False

    def __init__(self) -> None:
        self.forwarded = 0
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []

    def forward(self, first_byte, marker_pt, seq, timestamp, ssrc, tail) -> int:
        self.forwarded += 1
        return 12 + len(tail)

    def write_rtp(self, data: bytes) -> int:
        self.rtp.append(data)
        return len(data)

    def write_rtcp(self, data: bytes) -> None:
        self.rtcp.append(data)


class Recipient:
    """What aiortc's router hands a packet to: an RTP sender or receiver whose RTCP
    handling the SFU replaced by its own handler (``intercept_sender_rtcp``)."""

    def __init__(self, handler) -> None:
        self.handler = handler

    async def _handle_rtcp_packet(self, packet) -> None:
        self.handler(packet)


def media(seq: int, keyframe: bool) -> bytes:
    payload = (b"\x10\x00" if keyframe else b"\x10\x01") + seq.to_bytes(2, "big") * 20
    return struct.pack("!BBHII", 0x80, 96, seq, seq * 3000, PUBLISHER_SSRC) + payload


async def handle(data: bytes) -> None:
    guard = RtcpGuard(
        rate=SETTINGS.rtcp_rate, max_nack_items=SETTINGS.max_nack_items, clock=lambda: 0.0
    )
    checked = guard.check(data)
    if checked is None:
        return
    assert isinstance(checked, bytes)
    try:
        packets = RtcpPacket.parse(checked)
    except ValueError:
        return

    writer = RecordingWriter()
    producer = Producer(
        participant_id="publisher",
        kind="video",
        codec=RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96),
        rtx_payload_type=97,
        rtcp_ssrc=1,
        writer=writer,  # type: ignore[arg-type]
        settings=SETTINGS,
    )
    random.seed(1)  # the consumers' first sequence numbers: the seeds' NACKs name them
    router = RtpRouter()
    router.register_receiver(Recipient(producer.on_rtcp), {PUBLISHER_SSRC}, {96, 97})
    consumers = []
    for ssrc, rtx in zip(SUBSCRIBER_SSRCS, (97, None), strict=True):
        consumer = Consumer(
            producer=producer,
            transceiver=SimpleNamespace(mid=str(ssrc)),  # type: ignore[arg-type]
            ssrc=ssrc,
            rtx_ssrc=ssrc + 0x100,
            writer=RecordingWriter(),  # type: ignore[arg-type]
            settings=SETTINGS,
        )
        consumer.configure(96, rtx, (0, 0))
        consumer.start()
        router.register_sender(Recipient(consumer.on_rtcp), ssrc)
        consumers.append(consumer)
    for seq in range(40):
        producer.on_rtp_data(media(seq, keyframe=seq == 0), 3_900_000_000_000 + 20 * seq)

    for packet in packets:
        if isinstance(packet, RtcpRtpfbPacket):
            assert len(packet.lost) <= 17 * SETTINGS.max_nack_items, len(packet.lost)
        for recipient in router.route_rtcp(packet):
            await recipient._handle_rtcp_packet(packet)

    producer.send_reports()
    later = time.time() + 1.0
    for consumer in consumers:
        consumer.send_report(later)
        consumer.close()
    producer.close()


def TestOneInput(data: bytes) -> None:
    LOOP.run_until_complete(handle(data))


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
