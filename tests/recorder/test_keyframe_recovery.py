"""A video packet that never arrives: frames are dropped up to the next keyframe, a
keyframe is requested upstream, and the file still decodes without an error."""

import asyncio

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from client.media import encode_vp8_clip
from recorder import COMPLETED, Recorder

from .conftest import CASE, decode


class FakeProducer:
    def __init__(self) -> None:
        self.kind = "video"
        self.codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
        self.closed = False
        self.sinks: list = []
        self.keyframe_requests = 0

    def add_sink(self, sink) -> None:
        self.sinks.append(sink)

    def remove_sink(self, sink) -> None:
        self.sinks.remove(sink)

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1


def packetize(frames: list[bytes], size: int = 300) -> list[list[RtpPacket]]:
    out, seq = [], 65000  # crosses the sequence number wrap
    for n, data in enumerate(frames):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        packets = []
        for i, chunk in enumerate(chunks):
            packet = RtpPacket(
                payload_type=96,
                marker=int(i == len(chunks) - 1),
                sequence_number=seq & 0xFFFF,
                timestamp=(4_294_000_000 + n * 3000) & 0xFFFFFFFF,  # and the timestamp wrap
                ssrc=5,
            )
            packet.payload = (b"\x10" if i == 0 else b"\x00") + chunk
            packets.append(packet)
            seq += 1
        out.append(packets)
    return out


async def test_loss_without_retransmission_waits_for_the_next_keyframe(vault, case_key):
    clip = encode_vp8_clip(frames=30)  # one keyframe, then 29 frames depending on it
    frames = packetize(clip * 3)  # keyframes at 0, 30, 60
    assert len(frames[10]) > 1
    producer = FakeProducer()
    recorder = Recorder(vault, CASE, case_key, "gap")
    await recorder.start()
    recorder.attach(producer)
    sink = producer.sinks[0]
    requests_before = producer.keyframe_requests
    for n, packets in enumerate(frames):
        for i, packet in enumerate(packets):
            if n == 10 and i == 1:
                continue  # lost for good
            sink.on_rtp(packet)
        await asyncio.sleep(0.01 if n == 11 else 0)  # let the loss outlive the wait
    result = await recorder.stop()

    assert result.status == COMPLETED, result
    assert producer.keyframe_requests > requests_before
    assert result.packets_lost == 1
    # frame 10 is lost and 11..29 cannot be decoded without it
    assert result.video_frames == 90 - 20, result
    decoded = decode(await vault.read_bytes(CASE, case_key, "gap"))
    assert decoded.errors == []
    assert decoded.video_streams == 1 and decoded.audio_streams == 0
    assert abs(decoded.duration - 3.0) < 0.1
