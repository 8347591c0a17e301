"""Malformed SDP and offers without a supported codec give domain errors and leak nothing."""

import asyncio
import re
import threading

import pytest
from aiortc import RTCPeerConnection, RTCRtpSender

from client.media import PatternVideoTrack
from sfu import MediaError
from tests.support.eventually import eventually


async def _vp9_only_offer() -> str:
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver(PatternVideoTrack(), direction="sendonly")
    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]
    transceiver.setCodecPreferences(vp8)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return re.sub(r"VP8/90000", "VP9/90000", sdp)


def _media_threads() -> int:
    """Threads other than the event loop's executor (whose idle workers linger)."""
    return sum(1 for t in threading.enumerate() if not t.name.startswith("asyncio_"))


async def test_bad_offers_give_errors_and_release_everything(worker):
    threads_before = _media_threads()
    tasks_before = len(asyncio.all_tasks())
    vp9_offer = await _vp9_only_offer()
    cases = [
        ("this is not SDP", "invalid-sdp"),
        ("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96\r\n", "invalid-sdp"),
        (vp9_offer, "no-supported-codec"),
    ]
    for sdp, code in cases:
        transport = await worker.create_transport("mallory", "publish")
        with pytest.raises(MediaError) as info:
            await transport.accept_offer(sdp)
        assert info.value.code == code
        assert transport.closed

    await eventually(lambda: not worker.transports, 5)
    # + the RTCP, active-speaker and layer-selection tasks
    await eventually(lambda: len(asyncio.all_tasks()) <= tasks_before + 3, 5)
    await eventually(lambda: _media_threads() <= threads_before, 5)
    assert worker.stats()["transports"] == []


async def test_wrong_direction_is_refused(worker):
    transport = await worker.create_transport("x", "subscribe")
    with pytest.raises(MediaError) as info:
        await transport.accept_offer("v=0\r\n")
    assert info.value.code == "invalid-state"
    await transport.close()
