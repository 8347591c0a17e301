"""Recorder CPU per recorded stream: one VP8 + Opus publisher, muxed and encrypted.

Run from the repository root: ``.venv/bin/python bench/recorder.py --json``.

The RTP packets of ``--seconds`` of media are prepared first (a VP8 clip encoded once,
packetized per RFC 7741 into <= 1200-byte payloads, 30 fps; 20 ms Opus packets of
realistic size), then handed to a :class:`recorder.Recorder` through the same sink
interface a :class:`sfu.Producer` uses, as fast as it takes them, frame by frame with
the event loop running in between (so the drain and the vault pump run as in service).

* ``us_per_packet``: process CPU time (user + system) from the first packet to the end
  of ``stop()`` (finalizing included), divided by the packets recorded.
* ``core_percent_per_stream``: that cost at the stream's real packet rate
  (``packets_per_second``): the share of one core one live recording takes.
* ``finalize_ms``: ``stop()`` alone: trailer, then writing the final blob from the head
  and the encrypted spool.
* ``codec_contexts_created`` / ``codec_contexts_open`` / ``video_codec_contexts``: every
  ``av.CodecContext.create`` call during the run (0: nothing decodes or encodes), and
  the open / video codec contexts alive in the process while recording (0 and 0).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av
import av.codec
import av.codec.context
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from client.media import encode_vp8_clip
from recorder import Recorder
from rooms.vault.format import new_data_key
from rooms.vault.store import SpaceVault

MAX_PAYLOAD = 1200
FPS = 30


class FakeProducer:
    """The part of :class:`sfu.Producer` a recorder uses."""

    def __init__(self, kind: str, mime: str, clock: int) -> None:
        self.kind = kind
        self.codec = RTCRtpCodecParameters(mimeType=mime, clockRate=clock, payloadType=96)
        self.closed = False
        self.sinks: list = []

    def add_sink(self, sink) -> None:
        self.sinks.append(sink)

    def remove_sink(self, sink) -> None:
        if sink in self.sinks:
            self.sinks.remove(sink)

    def request_keyframe(self) -> None:
        pass


def vp8_packets(clip: list[bytes], frames: int) -> list[list[RtpPacket]]:
    out = []
    seq = 1000
    for n in range(frames):
        data = clip[n % len(clip)]
        chunks = [data[i : i + MAX_PAYLOAD - 1] for i in range(0, len(data), MAX_PAYLOAD - 1)]
        packets = []
        for i, chunk in enumerate(chunks):
            packet = RtpPacket(
                payload_type=96,
                marker=int(i == len(chunks) - 1),
                sequence_number=seq & 0xFFFF,
                timestamp=(n * 3000) & 0xFFFFFFFF,
                ssrc=1111,
            )
            packet.payload = (b"\x10" if i == 0 else b"\x00") + chunk
            packets.append(packet)
            seq += 1
        out.append(packets)
    return out


def opus_packets(count: int) -> list[RtpPacket]:
    out = []
    payload = b"\xfc" + os.urandom(79)  # CELT 20 ms, ~32 kbit/s
    for n in range(count):
        packet = RtpPacket(
            payload_type=111, sequence_number=n & 0xFFFF, timestamp=n * 960, ssrc=2222
        )
        packet.payload = payload
        out.append(packet)
    return out


async def run(seconds: int) -> dict[str, object]:
    clip = encode_vp8_clip(frames=FPS, bitrate=1_000_000)
    video_frames = vp8_packets(clip, seconds * FPS)
    audio = opus_packets(seconds * 50)
    creates: list[tuple] = []
    real = av.codec.context.CodecContext

    class CountingCodecContext:
        @staticmethod
        def create(*args, **kwargs):
            creates.append(args)
            return real.create(*args, **kwargs)

    av.CodecContext = CountingCodecContext  # type: ignore[misc]
    av.codec.CodecContext = CountingCodecContext  # type: ignore[misc]

    with tempfile.TemporaryDirectory() as tmp:
        vault = SpaceVault(Path(tmp))
        key = new_data_key()
        recorder = Recorder(vault, "bench", key, "rec", max_seconds=seconds + 60)
        await recorder.start()
        video = FakeProducer("video", "video/VP8", 90000)
        opus = FakeProducer("audio", "audio/opus", 48000)
        recorder.attach(video)
        recorder.attach(opus)
        packets = sum(len(f) for f in video_frames) + len(audio)
        audio_index = 0
        contexts_open = video_contexts = 0
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        for n, frame in enumerate(video_frames):
            for packet in frame:
                video.sinks[0].on_rtp(packet)
            # 50 audio packets per second against 30 video frames
            while audio_index < min(len(audio), (n + 1) * 50 // FPS):
                opus.sinks[0].on_rtp(audio[audio_index])
                audio_index += 1
            await asyncio.sleep(0)
            if n == len(video_frames) // 2:
                live = [o for o in gc.get_objects() if isinstance(o, real)]
                contexts_open = sum(1 for c in live if c.is_open)
                video_contexts = sum(1 for c in live if c.type == "video")
        for packet in audio[audio_index:]:
            opus.sinks[0].on_rtp(packet)
        stop0 = time.perf_counter()
        result = await recorder.stop()
        finalize = time.perf_counter() - stop0
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
    us_per_packet = cpu / packets * 1e6
    pps = packets / seconds
    return {
        "seconds_recorded": seconds,
        "status": result.status,
        "duration_s": result.duration_s,
        "size_bytes": result.size,
        "packets": packets,
        "packets_per_second": round(pps, 1),
        "us_per_packet": round(us_per_packet, 1),
        "core_percent_per_stream": round(us_per_packet * pps / 1e4, 3),
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "finalize_ms": round(finalize * 1000, 1),
        "codec_contexts_created": len(creates),
        "codec_contexts_open": contexts_open,
        "video_codec_contexts": video_contexts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=int, default=60, help="media seconds to record")
    args = parser.parse_args()
    result = asyncio.run(run(args.seconds))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>26}: {value}")


if __name__ == "__main__":
    main()
