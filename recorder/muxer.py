"""Mux encoded frames into WebM (VP8 + Opus) or Matroska (H.264 + Opus) with PyAV,
without any encoder or decoder.

The video stream is created with ``add_mux_stream`` (codec parameters only: no codec
context at all).  PyAV 18 gives no other way to set an audio stream's channel layout and
CodecPrivate (the OpusHead browsers require), so the Opus stream is created from a
template: its codec context is a parameter carrier that is never opened (PyAV skips
opening template-initialised contexts), and no audio encoder exists either.
H.264 needs its avcC record as CodecPrivate, so it is carried the same way.

Timestamps are RTP timestamps in 1/90000 (video) and 1/48000 (audio); PyAV rescales them
to the container's 1/1000.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import av

from .depacketizer import opus_head

VIDEO_TIME_BASE = Fraction(1, 90000)
AUDIO_TIME_BASE = Fraction(1, 48000)

#: Container options: interleave across streams, but never hold more than 1 s.
CONTAINER_OPTIONS = {"max_interleave_delta": "1000000"}


class Muxer:
    """One output file: at most one video and one audio stream."""

    def __init__(
        self,
        sink: Any,
        *,
        video_codec: str | None,
        width: int = 0,
        height: int = 0,
        video_extradata: bytes | None = None,
        audio: bool,
    ) -> None:
        self.format = "matroska" if video_codec == "h264" else "webm"
        self._container = av.open(
            sink, mode="w", format=self.format, container_options=CONTAINER_OPTIONS
        )
        self._video = None
        self._audio = None
        self.packets = 0
        try:
            templates = av.open(io.BytesIO(), mode="w", format="matroska")
            try:
                if video_codec == "vp8":
                    self._video = self._container.add_mux_stream("vp8", width=width, height=height)
                elif video_codec == "h264":
                    template = templates.add_stream("libx264")
                    self._video = self._container.add_stream_from_template(template, opaque=True)
                    video_ctx = self._video.codec_context
                    video_ctx.width, video_ctx.height = width, height
                    video_ctx.pix_fmt = "yuv420p"
                    video_ctx.extradata = video_extradata
                if self._video is not None:
                    self._video.time_base = VIDEO_TIME_BASE
                if audio:
                    opus = templates.add_stream("libopus", rate=48000)
                    self._audio = self._container.add_stream_from_template(opus, opaque=True)
                    audio_ctx = self._audio.codec_context
                    audio_ctx.sample_rate = 48000
                    audio_ctx.layout = "stereo"
                    audio_ctx.extradata = opus_head()
                    self._audio.time_base = AUDIO_TIME_BASE
            finally:
                templates.close()
            self._container.start_encoding()
        except BaseException:
            self._container.close()
            raise

    @property
    def streams(self) -> list[Any]:
        return [s for s in (self._video, self._audio) if s is not None]

    def write_video(self, data: bytes, pts: int, duration: int, keyframe: bool) -> None:
        assert self._video is not None
        packet = av.Packet(data)
        packet.stream = self._video
        packet.time_base = VIDEO_TIME_BASE
        packet.pts = packet.dts = pts
        packet.duration = duration
        packet.is_keyframe = keyframe
        self._container.mux(packet)
        self.packets += 1

    def write_audio(self, data: bytes, pts: int, duration: int) -> None:
        assert self._audio is not None
        packet = av.Packet(data)
        packet.stream = self._audio
        packet.time_base = AUDIO_TIME_BASE
        packet.pts = packet.dts = pts
        packet.duration = duration
        packet.is_keyframe = True
        self._container.mux(packet)
        self.packets += 1

    def close(self) -> None:
        """Flush the interleaving queue and write the cues and the final header."""
        self._container.close()
