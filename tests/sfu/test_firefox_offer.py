"""Firefox's publish offer, as Firefox ESR 153 sends it (captured from the live page):
every media section after the first is offered with port 0 and ``a=bundle-only`` inside
the BUNDLE group, with Firefox's own mids, extmap ids, rtcp-fb lines and msid form.  The
SFU takes such a section as active: its SSRCs are accepted by the ingress, a video
producer is made, and the answer carries the section; a port-0 section outside the
BUNDLE group stays rejected."""

from __future__ import annotations

from pathlib import Path

from aiortc.sdp import SessionDescription

from sfu import Worker
from sfu.transport import _declared_ssrcs

FIREFOX_OFFER = (Path(__file__).parent / "sdp" / "firefox-153-publish-offer.sdp").read_text()
AUDIO_SSRC = 272877988
VIDEO_SSRCS = (1743524274, 1999632864)  # the video stream and its RTX


def test_a_bundle_only_section_declares_its_ssrcs() -> None:
    description = SessionDescription.parse(FIREFOX_OFFER)
    assert [m.port for m in description.media] == [9, 0]
    assert _declared_ssrcs(description) == [(True, (AUDIO_SSRC,), 1), (True, VIDEO_SSRCS, 1)]


def test_a_port_zero_section_outside_the_bundle_group_is_rejected() -> None:
    rejected = FIREFOX_OFFER.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0")
    assert _declared_ssrcs(SessionDescription.parse(rejected)) == [
        (True, (AUDIO_SSRC,), 1),
        (False, VIDEO_SSRCS, 1),
    ]


async def test_the_sfu_answers_firefox_and_admits_its_video(worker: Worker) -> None:
    worker.router("room").join("firefox")
    transport = await worker.create_transport("firefox", "publish")
    answer = SessionDescription.parse(await transport.accept_offer(FIREFOX_OFFER))

    audio, video = answer.media
    assert (audio.rtp.muxId, video.rtp.muxId) == ("0", "1")
    assert video.port != 0 and video.direction == "recvonly"
    assert [c.mimeType for c in video.rtp.codecs] == ["video/VP8", "video/rtx"]
    # Firefox's payload types and extension ids are kept in the answer
    assert [c.payloadType for c in video.rtp.codecs] == [120, 124]
    assert {e.uri: e.id for e in video.rtp.headerExtensions}[
        "urn:ietf:params:rtp-hdrext:sdes:mid"
    ] == 3
    assert set(transport.ingress.ssrc.allowed()) >= {AUDIO_SSRC, *VIDEO_SSRCS}
    producers = [p["codec"] for t in worker.stats()["transports"] for p in t["producers"]]
    assert sorted(producers) == ["audio/opus", "video/VP8"]
