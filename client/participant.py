"""A headless participant: publishes media through one peer connection and receives the
room through another, counting what arrives per track.

    participant = Participant("alice", LocalSignal(worker, "room"), video="pattern")
    await participant.join()
    async with asyncio.timeout(10):
        await participant.wait_until(lambda p: p.frames_from_all(2))
    await participant.close()
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack

from sfu import aiortc_adapter

from .media import PatternVideoTrack, PreEncodedVideoTrack
from .signal import Signal


def _configuration() -> RTCConfiguration:
    # MAX_BUNDLE: with aiortc's default (balanced) policy a second m-line of one kind in
    # an offer keeps a transport that BUNDLE then discards.
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


@dataclass
class ReceivedTrack:
    """What arrived on one received track (one m-line of the subscribe connection)."""

    mid: str
    kind: str
    packets: int = 0
    frames: int = 0
    #: ``time.monotonic()`` of the first decoded frame (or first packet when not decoding).
    first_frame_at: float | None = None
    frame_times: list[float] = field(default_factory=list)

    def frames_since(self, since: float) -> int:
        return sum(1 for t in self.frame_times if t >= since)


class Participant:
    """Publishes ``audio``/``video`` and receives everybody else in its room.

    ``video`` is ``"pattern"`` (generated, encoded live), ``"preencoded"`` (a VP8 clip
    looped; pass ``clip``) or ``None``.  ``video_codec`` picks the published codec
    (``"video/VP8"`` or ``"video/H264"``).  With ``decode=False`` received packets are
    counted but never decoded (benchmarks).  ``loss`` drops that fraction of received
    media datagrams, like a lossy link toward this participant.
    """

    def __init__(
        self,
        participant_id: str,
        signal: Signal,
        *,
        audio: bool = True,
        video: str | None = "pattern",
        video_codec: str = "video/VP8",
        clip: list[bytes] | None = None,
        decode: bool = True,
        loss: float = 0.0,
    ) -> None:
        self.id = participant_id
        self.signal = signal
        self.tracks: dict[str, ReceivedTrack] = {}
        self.joined_at: float | None = None
        self._audio = audio
        self._video = video
        self._video_codec = video_codec
        self._clip = clip
        self._decode = decode
        self._loss = loss
        self._random = random.Random(participant_id)
        self._publish_pc: RTCPeerConnection | None = None
        self._subscribe_pc: RTCPeerConnection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sources: list[MediaStreamTrack] = []
        self._changed = asyncio.Event()

    async def join(self) -> None:
        """Connect, start receiving the room, and publish."""
        await self.connect()
        if self._audio or self._video:
            await self.publish()

    async def connect(self) -> None:
        """Connect and start receiving the room, without publishing yet."""
        self.joined_at = time.monotonic()
        await self.signal.connect(self.id, self._on_subscribe_offer)

    async def publish(self) -> None:
        pc = self._publish_pc = RTCPeerConnection(_configuration())
        if self._audio:
            track = AudioStreamTrack()
            self._sources.append(track)
            pc.addTransceiver(track, direction="sendonly")
        if self._video:
            if self._video == "preencoded":
                video: MediaStreamTrack = PreEncodedVideoTrack(self._clip or [])
            else:
                video = PatternVideoTrack()
            self._sources.append(video)
            transceiver = pc.addTransceiver(video, direction="sendonly")
            codecs = [
                c
                for c in RTCRtpSender.getCapabilities("video").codecs
                if c.mimeType.lower() in (self._video_codec.lower(), "video/rtx")
            ]
            transceiver.setCodecPreferences(codecs)
        await pc.setLocalDescription(await pc.createOffer())
        answer = await self.signal.publish(pc.localDescription.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def _on_subscribe_offer(self, offer: str) -> str:
        pc = self._subscribe_pc
        if pc is None:
            pc = self._subscribe_pc = RTCPeerConnection(_configuration())
            pc.on("track", self._on_track)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        if self._loss:
            transceivers = pc.getTransceivers()
            if transceivers and not getattr(pc, "_caucus_lossy", False):
                pc._caucus_lossy = True  # type: ignore[attr-defined]
                aiortc_adapter.drop_incoming_rtp(
                    transceivers[0].receiver.transport,
                    lambda: self._random.random() < self._loss,
                )
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription.sdp

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(
            t for t in self._subscribe_pc.getTransceivers() if t.receiver.track is track
        )
        received = self.tracks[transceiver.mid] = ReceivedTrack(transceiver.mid, track.kind)
        if self._decode:
            task = asyncio.ensure_future(self._consume(track, received))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:

            def count(packet: object, arrival_time_ms: int) -> None:
                received.packets += 1
                if received.first_frame_at is None:
                    received.first_frame_at = time.monotonic()

            aiortc_adapter.intercept_rtp(transceiver.receiver, count)
        self._notify()

    async def _consume(self, track: MediaStreamTrack, received: ReceivedTrack) -> None:
        try:
            while True:
                await track.recv()
                now = time.monotonic()
                received.frames += 1
                received.frame_times.append(now)
                if received.first_frame_at is None:
                    received.first_frame_at = now
                self._notify()
        except MediaStreamError:
            pass

    def _notify(self) -> None:
        self._changed.set()

    async def update_packet_counts(self) -> None:
        """Refresh ``packets`` of decoded tracks from the receivers' statistics."""
        if self._subscribe_pc is None or not self._decode:
            return
        for transceiver in self._subscribe_pc.getTransceivers():
            received = self.tracks.get(transceiver.mid)
            if received is None:
                continue
            stats = await transceiver.receiver.getStats()
            received.packets = sum(
                s.packetsReceived for s in stats.values() if s.type == "inbound-rtp"
            )

    def frames_from_all(self, count: int, kind: str | None = None) -> bool:
        """True when at least ``count`` tracks (of ``kind``) have decoded a frame."""
        decoded = [t for t in self.tracks.values() if t.frames and (kind is None or t.kind == kind)]
        return len(decoded) >= count

    async def wait_until(self, condition: Callable[[Participant], bool]) -> None:
        """Wait until ``condition(self)`` holds (wrap in ``asyncio.timeout``)."""
        while not condition(self):
            self._changed.clear()
            try:
                async with asyncio.timeout(0.2):
                    await self._changed.wait()
            except TimeoutError:
                pass

    async def close(self) -> None:
        await self.signal.close()
        for pc in (self._publish_pc, self._subscribe_pc):
            if pc is not None:
                await pc.close()
        for source in self._sources:
            source.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
