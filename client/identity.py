"""A headless participant whose every RTP packet says who sent it.

Used to check, at the receiving end, that nobody receives media from a live room they
are not in: each published packet ends with ``MARKER`` + the publisher's name.

* video: a tiny pre-encoded VP8 clip; every frame fits one RTP packet, so every packet
  carries the trailer (VP8 decoders ignore bytes after the coded frame);
* audio: packets that are only the trailer (the SFU never decodes audio).

``IdentifiedParticipant`` publishes both and calls ``on_packet(kind, name, mid)`` for
every packet it receives, at the moment aiortc hands it to the receiver.
"""

from __future__ import annotations

import asyncio
import fcntl
import fractions
import struct
import termios
import time
from collections.abc import Callable

import av
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from sfu import aiortc_adapter

from .media import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, encode_vp8_clip
from .participant import Participant, ReceivedTrack, _configuration

MARKER = b"\x00CAUCUS-FROM:"
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)
PacketHandler = Callable[[str, str | None, str], None]


def identity_of(payload: bytes) -> str | None:
    """The publisher name a packet's payload ends with, if any."""
    at = payload.rfind(MARKER)
    if at < 0:
        return None
    return payload[at + len(MARKER) :].decode("ascii", "replace")


def small_clip() -> list[bytes]:
    """A VP8 clip whose frames each fit one RTP packet (with the trailer)."""
    clip = encode_vp8_clip(frames=30, width=48, height=32, bitrate=60_000)
    if max(len(frame) for frame in clip) > 1100:
        raise RuntimeError("the identity clip's frames must fit one RTP packet")
    return clip


class _Paced(MediaStreamTrack):
    def __init__(self, period: float) -> None:
        super().__init__()
        self._period = period
        self._start: float | None = None
        self._index = 0

    async def _tick(self) -> int:
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._index += 1
            wait = self._start + self._index * self._period - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        return self._index


class IdentityVideoTrack(_Paced):
    kind = "video"

    def __init__(self, name: str, clip: list[bytes], fps: int = 15) -> None:
        super().__init__(1 / fps)
        self._trailer = MARKER + name.encode("ascii")
        self._clip = clip
        self._fps = fps

    async def recv(self) -> av.Packet:
        index = await self._tick()
        packet = av.Packet(self._clip[index % len(self._clip)] + self._trailer)
        packet.pts = index * VIDEO_CLOCK_RATE // self._fps
        packet.time_base = VIDEO_TIME_BASE
        return packet


class IdentityAudioTrack(_Paced):
    kind = "audio"

    def __init__(self, name: str) -> None:
        super().__init__(0.02)
        self._payload = MARKER + name.encode("ascii")

    async def recv(self) -> av.Packet:
        index = await self._tick()
        packet = av.Packet(self._payload)
        packet.pts = index * 960
        packet.time_base = AUDIO_TIME_BASE
        return packet


class IdentifiedParticipant(Participant):
    """Publishes identity-carrying audio and video as ``name``; reports every packet."""

    def __init__(self, name: str, signal, clip: list[bytes], on_packet: PacketHandler) -> None:
        super().__init__(name, signal, decode=False)
        self.name = name
        self._clip_frames = clip
        self._on_packet = on_packet

    async def publish(self) -> None:
        pc = self._publish_pc = RTCPeerConnection(_configuration())
        for track in (
            IdentityAudioTrack(self.name),
            IdentityVideoTrack(self.name, self._clip_frames),
        ):
            self._sources.append(track)
            pc.addTransceiver(track, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        answer = await self.signal.publish(pc.localDescription.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def drain_received(self, limit: float = 5.0) -> None:
        """Handle every datagram that has already reached the subscribe connection's
        socket (or aiortc's queue behind it), so that media which arrived before a message
        is accounted for before the message is."""
        pc = self._subscribe_pc
        transceivers = pc.getTransceivers() if pc is not None else []
        if not transceivers:
            return
        connection = transceivers[0].receiver.transport.transport._connection
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            waiting = not connection._queue.empty()
            for protocol in connection._protocols:
                transport = getattr(protocol, "transport", None)
                sock = transport.get_extra_info("socket") if transport is not None else None
                if sock is not None and _datagram_waiting(sock.fileno()):
                    waiting = True
            if not waiting:
                return
            await asyncio.sleep(0)

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(
            t for t in self._subscribe_pc.getTransceivers() if t.receiver.track is track
        )
        mid = transceiver.mid
        received = self.tracks[mid] = ReceivedTrack(mid, track.kind)
        kind = track.kind
        report = self._on_packet

        def arrived(packet, arrival_time_ms: int) -> None:
            received.packets += 1
            if received.first_frame_at is None:
                received.first_frame_at = time.monotonic()
            report(kind, identity_of(packet.payload), mid)

        aiortc_adapter.intercept_rtp(transceiver.receiver, arrived)
        self._notify()


def _datagram_waiting(fd: int) -> bool:
    """Whether a datagram waits in the socket's receive queue (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0] > 0
