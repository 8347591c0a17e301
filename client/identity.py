"""A headless participant whose every RTP packet says who sent it.

Used to check, at the receiving end, that nobody receives media from a live room they
are not in: each published packet ends with ``MARKER`` + the publisher's name.

* video: a tiny pre-encoded VP8 clip; every frame fits one RTP packet, so every packet
  carries the trailer (VP8 decoders ignore bytes after the coded frame);
* audio: packets that are only the trailer (the SFU never decodes audio).

``IdentifiedParticipant`` publishes both and calls ``on_packet(kind, name, mid, seq)`` for
every packet it receives, at the moment aiortc hands it to the receiver; ``seq`` is the
packet's RTP sequence number (the original one of a retransmission), which the signal's
``slots`` attribute to the assignment of ``mid`` the SFU sent it under.
"""

from __future__ import annotations

import asyncio
import fractions
import re
import time
from collections.abc import Callable

import av
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from sfu import rtc

from .media import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, encode_vp8_clip
from .participant import Participant, ReceivedTrack, _configuration, receiving_transceiver
from .simulcast import negotiate

MARKER = b"\x00CAUCUS-FROM:"
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)
PacketHandler = Callable[[str, str | None, str, int], None]
_RTX_PAYLOAD_TYPE = re.compile(r"^a=rtpmap:(\d+) rtx/", re.MULTILINE)
_MID = re.compile(r"^a=mid:(\S+)", re.MULTILINE)


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
        self._rtx_payload_types: dict[str, set[int]] = {}  # mid -> RTX payload types

    async def publish(self) -> None:
        pc = self._publish_pc = RTCPeerConnection(_configuration())
        for track in (
            IdentityAudioTrack(self.name),
            IdentityVideoTrack(self.name, self._clip_frames),
        ):
            self._sources.append(track)
            pc.addTransceiver(track, direction="sendonly")
        await negotiate(pc, self.signal.publish)

    async def _on_subscribe_offer(self, offer: str) -> str:
        # the interception comes before aiortc unwraps retransmissions: note their types
        for section in offer.split("\r\nm=")[1:]:
            mid = _MID.search(section)
            if mid is not None:
                self._rtx_payload_types[mid.group(1)] = {
                    int(pt) for pt in _RTX_PAYLOAD_TYPE.findall(section)
                }
        return await super()._on_subscribe_offer(offer)

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver, mid = receiving_transceiver(self._subscribe_pc, track)
        received = self.tracks[mid] = ReceivedTrack(mid, track.kind)
        kind = track.kind
        report = self._on_packet
        rtx = self._rtx_payload_types

        def arrived(packet, arrival_time_ms: int) -> None:
            seq = packet.sequence_number
            if packet.payload_type in rtx.get(mid, ()):
                if len(packet.payload) < 2:
                    return  # padding
                seq = int.from_bytes(packet.payload[:2], "big")
            received.packets += 1
            if received.first_frame_at is None:
                received.first_frame_at = time.monotonic()
            report(kind, identity_of(packet.payload), mid, seq)

        rtc.intercept_rtp(transceiver.receiver, arrived)
        self._notify()
