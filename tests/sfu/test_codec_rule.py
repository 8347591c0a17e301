"""One video codec per live room: the SFU forwards video without transcoding, so a room's
video is a codec every participant decodes (``room_video_codecs``, VP8 by default).  A
publisher offering H.264 before VP8 is answered with VP8 and seen by a VP8 subscriber; an
H.264-only publisher in a room is refused with a clear error and nobody receives a track
they cannot decode; a video message (in no room) may still be H.264."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.sdp import SessionDescription

from client.media import PatternVideoTrack
from sfu import NoSupportedCodec, Worker
from tests.support.eventually import eventually


def codecs(*names: str) -> list:
    """aiortc's video capabilities named ``names``, in that order, then RTX."""
    capabilities = RTCRtpSender.getCapabilities("video").codecs
    chosen = [c for name in names for c in capabilities if c.mimeType == name]
    return chosen + [c for c in capabilities if c.mimeType == "video/rtx"]


async def publish(worker: Worker, participant_id: str, preferences: list) -> RTCPeerConnection:
    """A real aiortc publisher of one video track offering ``preferences``."""
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver(PatternVideoTrack(), direction="sendonly")
    transceiver.setCodecPreferences(preferences)
    await pc.setLocalDescription(await pc.createOffer())
    transport = await worker.create_transport(participant_id, "publish")
    try:
        answer = await transport.accept_offer(pc.localDescription.sdp)
    except Exception:
        await pc.close()
        raise
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc


def answered_video_codecs(pc: RTCPeerConnection) -> list[str]:
    description = SessionDescription.parse(pc.remoteDescription.sdp)
    return [c.mimeType for m in description.media for c in m.rtp.codecs if m.kind == "video"]


def producer_codecs(worker: Worker) -> list[str]:
    return [p["codec"] for t in worker.stats()["transports"] for p in t["producers"]]


async def test_vp8_is_chosen_over_a_preferred_h264(worker: Worker, participants) -> None:
    viewer = participants("viewer", audio=False, video=None, decode=True)
    await viewer.join()
    worker.router("room").join("pub")
    pc = await publish(worker, "pub", codecs("video/H264", "video/VP8"))
    try:
        assert producer_codecs(worker) == ["video/VP8"]
        assert answered_video_codecs(pc) == ["video/VP8", "video/rtx"]
        # the viewer decodes the publisher's frames (VP8)
        await eventually(
            lambda: any(t.frames >= 3 for t in viewer.tracks.values() if t.kind == "video"), 20
        )
    finally:
        await pc.close()


async def test_an_h264_only_publisher_in_a_room_is_refused(worker: Worker, participants) -> None:
    viewer = participants("viewer", audio=False, video=None, decode=True)
    await viewer.join()
    worker.router("room").join("pub")
    with pytest.raises(NoSupportedCodec) as refusal:
        await publish(worker, "pub", codecs("video/H264"))
    assert refusal.value.code == "no-supported-codec"
    assert "this room's video is video/VP8" in refusal.value.message
    assert "the offer has only video/H264" in refusal.value.message
    # the refused publish connection is gone; the viewer is offered nothing to show black
    await eventually(lambda: not list(worker.transports_of("pub", "publish")), 5)
    assert producer_codecs(worker) == []
    subscribe = viewer.signal.subscribe_transport
    assert subscribe is not None and not subscribe.consumers


async def test_an_h264_only_publisher_is_refused_by_a_participant_too(participants) -> None:
    """The headless participant gets the refusal when it publishes (what a browser's
    ``media.publish`` reply says: code ``no_supported_codec``)."""
    publisher = participants("h264", audio=False, video="pattern", video_codec="video/H264")
    with pytest.raises(NoSupportedCodec):
        await publisher.join()


async def test_a_video_message_may_be_h264(worker: Worker) -> None:
    pc = await publish(worker, "rec-1", codecs("video/H264"))
    try:
        assert producer_codecs(worker) == ["video/H264"]
    finally:
        await pc.close()
