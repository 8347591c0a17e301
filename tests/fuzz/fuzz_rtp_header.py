"""Fuzz target: the forwarding path's reading of decrypted RTP packets.

Every input is one RTP packet as a publisher's SRTP session hands it over (any bytes:
authentication says who sent it, not that it is well formed).  It goes through

* ``sfu.rtp_header.payload_bounds`` and ``audio_level``, checked against aiortc's own
  parser (``RtpPacket.parse``, ``unpack_header_extensions``): the bounds lie inside the
  packet and cut out aiortc's payload, ``(0, 0)`` exactly when aiortc rejects it; the
  level is the first matching element's, ``None`` when there is none;
* the keyframe tests of ``sfu.keyframes`` (VP8, H.264) on its payload;
* the intake of real ``sfu.producer.Producer`` objects (VP8 with RTX, H.264, Opus with
  the audio-level extension) with started consumers writing to a recording writer: the
  packet, its successor, a gap (upstream NACK), its RTX form and a new SSRC (a restart),
  then the receiver and sender reports.

Rejections here are return values (``(0, 0)``, ``None``, ``False``, a dropped packet):
any exception is a crash, as is a forwarded payload other than the packet's own.
"""

from __future__ import annotations

import asyncio
import struct
import sys
import time
from types import SimpleNamespace

import atheris

with atheris.instrument_imports(include=["sfu", "aiortc.rtp"]):
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters
    from aiortc.rtp import RtpPacket, unpack_header_extensions

    from sfu.consumer import Consumer
    from sfu.keyframes import h264_keyframe_start, vp8_keyframe_start
    from sfu.producer import Producer
    from sfu.rtp_header import audio_level, payload_bounds
    from sfu.settings import MediaSettings

SETTINGS = MediaSettings(retransmission_buffer=64)
#: (kind, MIME type, clock rate, payload type, RTX payload type, audio-level id)
PRODUCERS = (
    ("video", "video/VP8", 90000, 96, 97, 0),
    ("video", "video/H264", 90000, 102, None, 0),
    ("audio", "audio/opus", 48000, 111, None, 1),
)
LOOP = asyncio.new_event_loop()


class RecordingWriter:
    """A transport's writer that keeps what a consumer or producer writes."""

    native = False

    def __init__(self) -> None:
        self.forwarded: list[tuple[int, int, int, int, bytes]] = []
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []

    def forward(self, first_byte, marker_pt, seq, timestamp, ssrc, tail) -> int:
        self.forwarded.append((first_byte, marker_pt, seq, timestamp, tail))
        return 12 + len(tail)

    def write_rtp(self, data: bytes) -> int:
        self.rtp.append(data)
        return len(data)

    def write_rtcp(self, data: bytes) -> None:
        self.rtcp.append(data)


class FramingOnly:
    """An extensions map that leaves the elements unread: aiortc's parser then judges the
    packet's framing only (CSRC list, extension block, padding), as ``payload_bounds``."""

    def get(self, profile: int, value: bytes) -> None:
        return None


def check_payload_bounds(data: bytes) -> None:
    start, end = payload_bounds(data, data[0])
    try:
        packet = RtpPacket.parse(data, FramingOnly())  # type: ignore[arg-type]
    except ValueError:
        packet = None
    if data[0] >> 6 != 2:
        # aiortc refuses other versions before looking further; the receive path never
        # hands them on, but the bounds must still lie inside the packet
        assert (start, end) == (0, 0) or 12 <= start <= end <= len(data), (start, end)
        return
    if packet is None:
        assert (start, end) == (0, 0), f"aiortc rejects it, bounds {(start, end)}"
    else:
        assert 12 <= start <= end <= len(data), (start, end)
        assert data[start:end] == packet.payload, "payload differs from aiortc's"


def expected_level(data: bytes, extension_id: int) -> tuple[bool, int] | str | None:
    """The level aiortc's element parser finds (first non-empty element with the id), or
    ``"unknown"`` when that parser rejects the block (the lean reader may stop earlier)."""
    first = data[0]
    if not first & 0x10:
        return None
    pos = 12 + ((first & 0x0F) << 2)
    if len(data) < pos + 4:
        return None
    profile, words = struct.unpack_from("!HH", data, pos)
    value = data[pos + 4 : pos + 4 + 4 * words]
    if len(value) < 4 * words:
        return None
    try:
        elements = unpack_header_extensions(profile, value)
    except ValueError:
        return "unknown"
    for element_id, element in elements:
        if element_id == extension_id and element:
            return element[0] & 0x80 == 0x80, element[0] & 0x7F
    return None


def check_audio_level(data: bytes) -> None:
    for extension_id in (*range(1, 16), data[-1] or 1):
        level = audio_level(data, data[0], extension_id)
        expected = expected_level(data, extension_id)
        if expected == "unknown":
            assert level is None or (isinstance(level[0], bool) and 0 <= level[1] <= 127)
        else:
            assert level == expected, (extension_id, level, expected)


def with_header(data: bytes, payload_type: int, seq_step: int = 0, ssrc: int | None = None):
    """``data`` with its payload type (marker kept), sequence number and SSRC changed."""
    out = bytearray(data)
    out[1] = (data[1] & 0x80) | payload_type
    seq = (int.from_bytes(data[2:4], "big") + seq_step) & 0xFFFF
    out[2:4] = seq.to_bytes(2, "big")
    if ssrc is not None:
        out[8:12] = ssrc.to_bytes(4, "big")
    return bytes(out)


def intake(producer: Producer, packet: bytes, arrival_ms: int) -> None:
    producer.on_rtp_data(packet, arrival_ms)


async def feed_producers(data: bytes) -> None:
    now_ms = 3_900_000_000_000
    for kind, mime, rate, payload_type, rtx, level_id in PRODUCERS:
        writer = RecordingWriter()
        producer = Producer(
            participant_id="fuzz",
            kind=kind,
            codec=RTCRtpCodecParameters(mimeType=mime, clockRate=rate, payloadType=payload_type),
            rtx_payload_type=rtx,
            rtcp_ssrc=1,
            writer=writer,  # type: ignore[arg-type]
            settings=SETTINGS,
            audio_level_id=level_id,
        )
        writers = (RecordingWriter(), RecordingWriter())
        consumers = []
        for consumer_writer, ids in zip(writers, ((0, 0), (3, 1)), strict=True):
            consumer = Consumer(
                producer=producer,
                transceiver=SimpleNamespace(mid="0"),  # type: ignore[arg-type]
                ssrc=0x5000 + len(consumers),
                rtx_ssrc=0x6000 + len(consumers),
                writer=consumer_writer,  # type: ignore[arg-type]
                settings=SETTINGS,
            )
            consumer.configure(payload_type, rtx, ids)
            consumer.start()
            consumers.append(consumer)

        first = with_header(data, payload_type)
        intake(producer, first, now_ms)
        start, end = payload_bounds(first, first[0])
        for _, _, _, _, tail in writers[0].forwarded:
            assert tail == first[start:end], "forwarded a payload other than the packet's"
        for _, _, _, _, tail in writers[1].forwarded:
            assert tail.endswith(first[start:end])
        intake(producer, with_header(data, payload_type, 1), now_ms + 20)
        intake(producer, with_header(data, payload_type, 7), now_ms + 40)
        if rtx is not None:
            intake(producer, with_header(data, rtx, 2), now_ms + 60)
        intake(producer, with_header(data, payload_type, 9, ssrc=0xC0FFEE), now_ms + 80)
        intake(producer, with_header(data, payload_type, 10, ssrc=0xC0FFEE), now_ms + 100)
        producer.send_reports()
        for consumer in consumers:
            consumer.send_report(time.time())
        producer.lookup(int.from_bytes(data[2:4], "big"))
        producer.close()


def TestOneInput(data: bytes) -> None:
    if len(data) < 12:
        return
    check_payload_bounds(data)
    check_audio_level(data)
    for test in (vp8_keyframe_start, h264_keyframe_start):
        assert test(data[12:]) in (True, False)
        assert test(data) in (True, False)
    LOOP.run_until_complete(feed_producers(data))


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
