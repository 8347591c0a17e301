"""A Recorder writes one publisher's audio and video producers into one encrypted WebM.

It is a sink of each :class:`sfu.Producer` it records: the producer hands it every
forwarded RTP packet (after RTX unwrapping, before any rewriting).  The hand-off only
appends to a queue; the queue is drained right after, on the same loop: jitter buffer
(reordering, loss), depacketizing (RFC 7741 / 6184 / 7587), muxing (PyAV, no codec
ever opened), encryption into the vault (:class:`VaultSink`).

    recorder = Recorder(vault, case_id, case_key, blob_id, max_seconds=600)
    await recorder.start()
    recorder.attach(audio_producer)
    recorder.attach(video_producer)
    ...
    result = await recorder.stop()      # or: await recorder.wait()

A recording ends when ``stop()`` is called, when ``max_seconds`` of media are written,
or when every recorded producer has closed (the publisher left).  The result always
says how it ended: ``status`` is ``"completed"`` or ``"failed"`` (with ``error``); a
failed recording leaves no blob behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .depacketizer import (
    NAL_PPS,
    NAL_SPS,
    Frame,
    annexb_nal_units,
    annexb_to_avcc,
    avcc_record,
    h264_frame,
    h264_sps_size,
    h264_starts_frame,
    opus_samples,
    vp8_frame,
    vp8_starts_frame,
)
from .jitter import FramePackets, JitterBuffer
from .muxer import Muxer
from .vault_sink import VaultSink

if TYPE_CHECKING:
    from aiortc.rtp import RtpPacket

    from rooms.vault.store import SpaceVault
    from sfu.simulcast import Track

logger = logging.getLogger(__name__)

DEFAULT_MAX_SECONDS = 600.0
#: How long audio waits for the first video keyframe before recording without video.
KEYFRAME_WAIT = 3.0
VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000

RECORDING = "recording"
COMPLETED = "completed"
FAILED = "failed"


class RecorderError(Exception):
    """The recorder was used wrongly (e.g. a second video producer)."""


@dataclass
class RecordingResult:
    """How a recording ended and what it holds."""

    blob_id: str
    status: str  # "completed" | "failed"
    reason: str  # "stopped" | "max-length" | "publisher-left" | "error"
    duration_s: float = 0.0
    size: int = 0
    has_video: bool = False
    has_audio: bool = False
    video_frames: int = 0
    audio_frames: int = 0
    frames_dropped: int = 0
    packets_lost: int = 0
    keyframe_requests: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Track:
    """One recorded producer: its jitter buffer, timestamp mapping and frame state."""

    def __init__(self, recorder: Recorder, producer: Track) -> None:
        self.recorder = recorder
        self.producer = producer
        self.kind = producer.kind
        mime = producer.codec.mimeType.lower()
        self.codec = mime.split("/", 1)[1]
        if self.kind == "video" and self.codec not in ("vp8", "h264"):
            raise RecorderError(f"cannot record video codec {producer.codec.mimeType}")
        if self.kind == "audio" and self.codec != "opus":
            raise RecorderError(f"cannot record audio codec {producer.codec.mimeType}")
        self.clock = VIDEO_CLOCK if self.kind == "video" else AUDIO_CLOCK
        self.closed = False
        self.ssrc: int | None = None
        self.jitter = self._new_jitter()
        self.waiting_keyframe = self.kind == "video"
        self.frames = 0
        self.frames_dropped = 0
        self.packets_lost = 0
        self.width = 0
        self.height = 0
        self.extradata: bytes | None = None
        # RTP timestamp -> output pts (in ``clock`` units)
        self._ext_ts: int | None = None
        self._base_ts = 0
        self._offset = 0
        self.last_pts: int | None = None
        self.last_at = 0.0
        self.end_pts = 0  # pts + duration of the last frame written

    def _new_jitter(self) -> JitterBuffer:
        if self.kind == "audio":
            return JitterBuffer(frames_end_on_marker=False)
        starts: Callable[[bytes], bool] = (
            vp8_starts_frame if self.codec == "vp8" else h264_starts_frame
        )
        return JitterBuffer(frames_end_on_marker=True, starts_frame=starts)

    # --- ProducerSink: on the forwarding path, must be cheap and never raise -----------

    def on_rtp(self, packet: RtpPacket) -> None:
        self.recorder._enqueue(self, packet)

    def on_producer_closed(self, producer: Track) -> None:
        self.recorder._track_closed(self)

    # --- frames -------------------------------------------------------------------------

    def push(self, packet: RtpPacket, now: float) -> list[FramePackets]:
        frames: list[FramePackets] = []
        if packet.ssrc != self.ssrc:
            if self.ssrc is not None:  # the publisher restarted its stream
                frames = self.flush()
                self.jitter = self._new_jitter()
                self._ext_ts = None
                self.waiting_keyframe = self.kind == "video"
            self.ssrc = packet.ssrc
        frames += self.jitter.push(
            packet.sequence_number, packet.timestamp, packet.marker, packet.payload, now
        )
        return frames

    def flush(self) -> list[FramePackets]:
        frames = self.jitter.flush()
        self.packets_lost += self.jitter.packets_lost
        self.frames_dropped += self.jitter.frames_dropped
        self.jitter.packets_lost = self.jitter.frames_dropped = 0
        return frames

    def pts(self, timestamp: int, now: float, t0: float) -> int:
        """The output pts of RTP ``timestamp`` (unwrapped past 2^32)."""
        if self._ext_ts is None:
            if self.last_pts is None:  # first frame: place it by its arrival time
                self._offset = max(0, round((now - t0) * self.clock))
            else:  # a new source: continue after the last frame, by wall clock
                gap = max(1, round((now - self.last_at) * self.clock))
                self._offset = self.last_pts + gap
            self._base_ts = self._ext_ts = timestamp
        else:
            delta = (timestamp - self._ext_ts) & 0xFFFFFFFF
            if delta >= 0x80000000:
                delta -= 0x100000000
            self._ext_ts += delta
        return self._ext_ts - self._base_ts + self._offset

    def request_keyframe(self) -> None:
        if not self.producer.closed:
            self.producer.request_keyframe()
            self.recorder.keyframe_requests += 1


class Recorder:
    """Records one audio and/or one video producer into the blob ``blob_id``.

    Owns its tracks (producer sinks), the muxer, the vault sink and the task that
    finalizes; ``stop()`` always returns a :class:`RecordingResult`.
    """

    def __init__(
        self,
        vault: SpaceVault,
        case_id: str,
        case_key: bytes,
        blob_id: str,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        *,
        keyframe_wait: float = KEYFRAME_WAIT,
    ) -> None:
        self.blob_id = blob_id
        self.max_seconds = max_seconds
        self.status = RECORDING
        self.result: RecordingResult | None = None
        self.packets = 0
        self.keyframe_requests = 0
        self.on_finished: Callable[[RecordingResult], None] | None = None
        self._keyframe_wait = keyframe_wait
        self._sink = VaultSink(vault, case_id, case_key, blob_id)
        self._tracks: list[_Track] = []
        self._video: _Track | None = None
        self._audio: _Track | None = None
        self._queue: list[tuple[_Track, RtpPacket, float]] = []
        self._drain_scheduled = False
        self._muxer: Muxer | None = None
        self._early: list[tuple[_Track, Frame, int, int]] = []  # frames before the muxer
        self._first_audio_at: float | None = None
        self._held_video: tuple[bytes, int, bool] | None = None
        self._last_video_duration = VIDEO_CLOCK // 30
        self._t0: float | None = None
        self._started = False
        self._finishing: asyncio.Task[RecordingResult] | None = None
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._muxed_video = False

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the encrypted spool in the vault; call before ``attach``."""
        self._loop = asyncio.get_running_loop()
        await self._sink.open()
        self._started = True

    def attach(self, producer: Track) -> None:
        """Record ``producer`` (one audio and one video at most, attached before media
        is muxed)."""
        if not self._started or self.status != RECORDING:
            raise RecorderError("the recorder is not recording")
        if self._muxer is not None:
            raise RecorderError("producers must be attached before the recording starts")
        track = _Track(self, producer)
        if track.kind == "video":
            if self._video is not None:
                raise RecorderError("a recording holds one video producer")
            self._video = track
        else:
            if self._audio is not None:
                raise RecorderError("a recording holds one audio producer")
            self._audio = track
        self._tracks.append(track)
        producer.add_sink(track)
        if track.kind == "video":
            track.request_keyframe()

    async def stop(self, reason: str = "stopped") -> RecordingResult:
        """Finish the recording (a playable file) and return how it went."""
        if self._finishing is None:
            self._finishing = asyncio.ensure_future(self._finish(reason))
        return await asyncio.shield(self._finishing)

    async def wait(self) -> RecordingResult:
        """Wait until the recording ends by itself (length limit, publisher left) or is
        stopped."""
        while self._finishing is None:
            await self._changed()
        return await asyncio.shield(self._finishing)

    def _changed(self) -> asyncio.Future[None]:
        fut = self._waiter = asyncio.get_running_loop().create_future()
        return fut

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _end_soon(self, reason: str) -> None:
        if self._finishing is None:
            self._finishing = asyncio.ensure_future(self._finish(reason))
            self._wake()

    def _track_closed(self, track: _Track) -> None:
        track.closed = True
        if all(t.closed for t in self._tracks):
            self._end_soon("publisher-left")

    # --- the packet path ----------------------------------------------------------------

    def _enqueue(self, track: _Track, packet: RtpPacket) -> None:
        if self.status != RECORDING or self._finishing is not None:
            return
        self._queue.append((track, packet, time.monotonic()))
        if not self._drain_scheduled:
            self._drain_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        queue, self._queue = self._queue, []
        try:
            for track, packet, now in queue:
                self.packets += 1
                for frame in track.push(packet, now):
                    self._on_frame(track, frame, now)
        except Exception as exc:
            logger.exception("recording %s failed", self.blob_id)
            self._error = exc
            self._end_soon("error")

    def _on_frame(self, track: _Track, packets: FramePackets, now: float) -> None:
        if self._t0 is None:
            self._t0 = now
        pts = track.pts(packets.timestamp, now, self._t0)
        if track.kind == "audio":
            frame: Frame | None = Frame(packets.payloads[0], True)
            duration = opus_samples(packets.payloads[0]) or AUDIO_CLOCK // 50
        else:
            duration = 0
            frame = (vp8_frame if track.codec == "vp8" else h264_frame)(packets.payloads)
            if packets.after_loss or frame is None:
                track.waiting_keyframe = True
            if frame is None or (track.waiting_keyframe and not frame.keyframe):
                track.frames_dropped += 1
                track.request_keyframe()
                return
            track.waiting_keyframe = False
            if frame.keyframe:
                self._keyframe_seen(track, frame)
        if track.last_pts is not None and pts <= track.last_pts:
            track.frames_dropped += 1  # not after the previous frame: unusable
            return
        if pts >= self.max_seconds * track.clock:
            self._end_soon("max-length")
            return
        track.last_pts = pts
        track.last_at = now
        assert frame is not None  # audio always has one; video returned above without
        self._emit(track, frame, pts, duration, now)

    def _keyframe_seen(self, track: _Track, frame: Frame) -> None:
        if track.codec == "vp8":
            if not track.width:
                track.width, track.height = frame.width, frame.height
        elif track.extradata is None:
            nals = annexb_nal_units(frame.data)
            sps = next((n for n in nals if n[0] & 0x1F == NAL_SPS), None)
            pps = next((n for n in nals if n[0] & 0x1F == NAL_PPS), None)
            if sps is not None and pps is not None and len(sps) >= 4:
                width, height = h264_sps_size(sps)
                if width and height:
                    track.extradata = avcc_record(sps, pps)
                    track.width, track.height = width, height

    def _video_ready(self) -> bool:
        video = self._video
        if video is None:
            return True
        return bool(video.width)

    def _emit(self, track: _Track, frame: Frame, pts: int, duration: int, now: float) -> None:
        if self._muxer is None:
            if track.kind == "audio" and self._first_audio_at is None:
                self._first_audio_at = now
            self._early.append((track, frame, pts, duration))
            waited = self._first_audio_at is not None and (
                now - self._first_audio_at >= self._keyframe_wait
            )
            if self._video_ready() or waited:
                self._open_muxer()
            return
        self._write(track, frame, pts, duration)

    def _open_muxer(self) -> None:
        video = self._video if self._video_ready() and self._video is not None else None
        self._muxer = Muxer(
            self._sink,
            video_codec=video.codec if video is not None else None,
            width=video.width if video is not None else 0,
            height=video.height if video is not None else 0,
            video_extradata=video.extradata if video is not None else None,
            audio=self._audio is not None,
        )
        self._muxed_video = video is not None
        early, self._early = self._early, []
        for track, frame, pts, duration in early:
            self._write(track, frame, pts, duration)

    def _write(self, track: _Track, frame: Frame, pts: int, duration: int) -> None:
        muxer = self._muxer
        assert muxer is not None
        if track.kind == "audio":
            muxer.write_audio(frame.data, pts, duration)
            track.frames += 1
            track.end_pts = pts + duration
            return
        if not self._muxed_video:
            track.frames_dropped += 1
            return
        data = annexb_to_avcc(frame.data) if track.codec == "h264" else frame.data
        held = self._held_video
        self._held_video = (data, pts, frame.keyframe)
        if held is not None:
            self._write_held(held, pts - held[1])

    def _write_held(self, held: tuple[bytes, int, bool], duration: int) -> None:
        assert self._muxer is not None and self._video is not None
        data, pts, keyframe = held
        duration = max(1, duration)
        self._last_video_duration = duration
        self._muxer.write_video(data, pts, duration, keyframe)
        self._video.frames += 1
        self._video.end_pts = pts + duration

    # --- the end ------------------------------------------------------------------------

    async def _finish(self, reason: str) -> RecordingResult:
        for track in self._tracks:
            track.producer.remove_sink(track)
        error = self._error
        muxer = None
        try:
            if error is None:
                self._drain()  # packets already queued belong to the recording
                for track in self._tracks:
                    for packets in track.flush():
                        self._on_frame(track, packets, time.monotonic())
                error = self._error
            if error is None:
                if self._muxer is None and self._early:
                    self._open_muxer()
                muxer = self._muxer
                if muxer is None:
                    raise RecorderError("no media was received")
                if self._held_video is not None:
                    self._write_held(self._held_video, self._last_video_duration)
                    self._held_video = None
                self._muxer = None
                muxer.close()
                size = await self._sink.finish()
                result = self._result(COMPLETED, reason, size=size)
            else:
                raise error
        except Exception as exc:
            if muxer is None and self._muxer is not None:
                muxer = self._muxer
            if muxer is not None:
                try:
                    muxer.close()
                except Exception:
                    logger.debug("closing the muxer of a failed recording", exc_info=True)
            await self._sink.abort()
            if not isinstance(exc, RecorderError):
                logger.warning("recording %s failed: %r", self.blob_id, exc)
            result = self._result(FAILED, "error", error=str(exc) or type(exc).__name__)
        self.status = result.status
        self.result = result
        logger.info("recording %s ended: %s", self.blob_id, result)
        self._wake()
        if self.on_finished is not None:
            self.on_finished(result)
        return result

    def _result(self, status: str, reason: str, *, size: int = 0, error: str | None = None):
        video, audio = self._video, self._audio
        has_video = status == COMPLETED and video is not None and video.frames > 0
        has_audio = status == COMPLETED and audio is not None and audio.frames > 0
        duration = 0.0
        for track in self._tracks:
            if track.frames:
                duration = max(duration, track.end_pts / track.clock)
        return RecordingResult(
            blob_id=self.blob_id,
            status=status,
            reason=reason,
            duration_s=round(duration, 3) if status == COMPLETED else 0.0,
            size=size,
            has_video=has_video,
            has_audio=has_audio,
            video_frames=video.frames if video else 0,
            audio_frames=audio.frames if audio else 0,
            frames_dropped=sum(t.frames_dropped + t.jitter.frames_dropped for t in self._tracks),
            packets_lost=sum(t.packets_lost + t.jitter.packets_lost for t in self._tracks),
            keyframe_requests=self.keyframe_requests,
            error=error,
        )
