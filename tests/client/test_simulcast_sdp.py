"""The simulcast offer and answer (``client.simulcast_sdp``): aiortc's offer rewritten as
Chromium writes a simulcast m-line, read back line by line (and by aiortc's parser); the
extension ids are fresh; answers that do not accept simulcast are refused with a clear
error."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from client.direct_publish import DirectPublisher, packetize_opus
from client.simulcast import SimulcastVideo
from client.simulcast_clips import simulcast_clips
from client.simulcast_sdp import (
    MAX_SDP,
    MID_URI,
    REPAIRED_RID_URI,
    RID_URI,
    SimulcastSdpError,
    read_answer,
    rewrite_offer,
)
from client.stamped import encode_opus_clip
from tests.client.simulcast_peer import accept_simulcast, offered_simulcast

RIDS = ("q", "h", "f")


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


def sections(sdp: str) -> list[list[str]]:
    lines = sdp.split("\r\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")] + [len(lines)]
    return [lines[: starts[0]]] + [lines[a:b] for a, b in itertools.pairwise(starts)]


def extmaps(lines: list[str]) -> dict[int, str]:
    found: dict[int, str] = {}
    for line in lines:
        if line.startswith("a=extmap:"):
            number, uri = line[len("a=extmap:") :].split(" ")[:2]
            assert int(number) not in found
            found[int(number)] = uri
    return found


@pytest.fixture
async def offer() -> AsyncIterator[tuple[str, str]]:
    """aiortc's offer of an audio clip and a simulcast video, and the video's mid."""
    pc = _pc()
    publisher = DirectPublisher(pc)
    publisher.add(packetize_opus(encode_opus_clip(0.1)))
    video = SimulcastVideo(publisher, simulcast_clips())
    try:
        await pc.setLocalDescription(await pc.createOffer())
        assert video.transceiver.mid is not None
        yield pc.localDescription.sdp, video.transceiver.mid
    finally:
        await publisher.close()
        await pc.close()


async def test_the_offer_is_rewritten_as_chromium_writes_simulcast(offer) -> None:
    original, mid = offer
    rewritten = rewrite_offer(original, mid, RIDS)
    before, after = sections(original), sections(rewritten.sdp)
    assert len(before) == len(after) == 3
    assert after[0] == before[0] and after[1] == before[1]  # session and audio untouched
    video_before, video = before[2], after[2]
    assert video[0].startswith("m=video ") and f"a=mid:{mid}" in video
    # the SSRCs went (with their CNAME, kept for the layers' RTCP); nothing else did
    removed = [line for line in video_before if line not in video]
    assert removed and all(line.startswith(("a=ssrc:", "a=ssrc-group:")) for line in removed)
    assert not [line for line in video if line.startswith(("a=ssrc:", "a=ssrc-group:"))]
    cname = next(line.split("cname:")[1] for line in video_before if "cname:" in line)
    assert rewritten.cname == cname
    # RIDs in order, lowest first, then the simulcast line, after the codecs
    added = [line for line in video if line not in video_before]
    assert [line for line in added if not line.startswith("a=extmap:")] == [
        "a=rid:q send",
        "a=rid:h send",
        "a=rid:f send",
        "a=simulcast:send q;h;f",
    ]
    last_codec = max(i for i, x in enumerate(video) if x.startswith(("a=rtpmap:", "a=fmtp:")))
    assert video.index("a=rid:q send") == last_codec + 1
    # the three extensions, the mid's id unchanged, the others on ids nothing else uses
    ids = extmaps(video)
    at = [i for i, line in enumerate(video) if line.startswith("a=extmap:")]
    assert at == list(range(at[0], at[0] + len(ids)))  # the extensions together
    assert {uri: number for number, uri in ids.items()} | rewritten.extension_ids == {
        uri: number for number, uri in ids.items()
    }
    assert ids[rewritten.extension_ids[MID_URI]] == MID_URI
    assert extmaps(video_before)[rewritten.extension_ids[MID_URI]] == MID_URI
    everywhere_else = {**extmaps(after[1]), **extmaps(video_before)}
    for uri in (RID_URI, REPAIRED_RID_URI):
        number = rewritten.extension_ids[uri]
        assert 1 <= number <= 14 and number not in everywhere_else
    assert rewritten.extension_ids[RID_URI] != rewritten.extension_ids[REPAIRED_RID_URI]
    assert rewritten.rids == RIDS and rewritten.mid == mid
    # what a test server reads back is what was declared
    assert offered_simulcast(rewritten.sdp).extension_ids == rewritten.extension_ids


async def test_aiortc_reads_the_rewritten_offer(offer) -> None:
    original, mid = offer
    rewritten = rewrite_offer(original, mid, RIDS)
    answerer = _pc()
    try:
        await answerer.setRemoteDescription(RTCSessionDescription(rewritten.sdp, "offer"))
        await answerer.setLocalDescription(await answerer.createAnswer())
        answer = answerer.localDescription.sdp
        # aiortc's answer knows nothing of simulcast: refused as such
        with pytest.raises(SimulcastSdpError, match="a=simulcast"):
            read_answer(answer, mid, RIDS)
        accepted = read_answer(accept_simulcast(answer, rewritten), mid, RIDS)
        assert accepted.rids == RIDS and accepted.paused == ()
        assert accepted.extension_ids == rewritten.extension_ids
    finally:
        await answerer.close()


def test_ids_taken_elsewhere_are_not_reused_and_an_id_keeps_its_meaning() -> None:
    sdp = "\r\n".join(
        [
            "v=0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=mid:a",
            "a=sendonly",
            *(f"a=extmap:{n} urn:example:{n}" for n in (1, 2, 3, 5)),
            f"a=extmap:7 {RID_URI}",
            "m=video 9 UDP/TLS/RTP/SAVPF 96",
            "a=mid:v",
            "a=sendonly",
            "a=extmap:4 urn:example:4",
            "a=rtpmap:96 VP8/90000",
            "a=ssrc:11 cname:x",
            "",
        ]
    )
    rewritten = rewrite_offer(sdp, "v", ("lo", "hi"))
    # the RID's id of the other m-line (one BUNDLE transport: one meaning per id)
    assert rewritten.extension_ids == {MID_URI: 6, RID_URI: 7, REPAIRED_RID_URI: 8}
    assert rewritten.sdp.endswith("a=rid:lo send\r\na=rid:hi send\r\na=simulcast:send lo;hi\r\n")
    crowded = sdp.replace(
        "a=extmap:4 urn:example:4",
        "\r\n".join(f"a=extmap:{n} urn:example:{n}" for n in (4, 6, 8, 9, 10, 11, 12, 13, 14)),
    )
    with pytest.raises(SimulcastSdpError, match="no free header extension id"):
        rewrite_offer(crowded, "v", ("lo", "hi"))


@pytest.mark.parametrize(
    ("mid", "rids", "message"),
    [
        ("v", ("q",), "two or more"),
        ("v", ("q", "q"), "two or more distinct"),
        ("v", ("q", "h h"), "invalid rid"),
        ("v", ("q", "x" * 17), "invalid rid"),
        ("v", ("q", ""), "invalid rid"),
        ("a", ("q", "h"), "not video"),
        ("nope", ("q", "h"), "0 media sections"),
    ],
)
def test_offers_that_cannot_carry_simulcast_are_refused(mid, rids, message) -> None:
    sdp = "v=0\r\nm=audio 9 X 0\r\na=mid:a\r\nm=video 9 X 96\r\na=mid:v\r\na=sendonly\r\n"
    with pytest.raises(SimulcastSdpError, match=message):
        rewrite_offer(sdp, mid, rids)
    once = rewrite_offer(sdp, "v", ("q", "h")).sdp
    with pytest.raises(SimulcastSdpError, match="already declares simulcast"):
        rewrite_offer(once, "v", ("q", "h"))
    with pytest.raises(SimulcastSdpError, match="does not send"):
        rewrite_offer(sdp.replace("a=sendonly", "a=recvonly"), "v", ("q", "h"))


ANSWER = "\r\n".join(
    [
        "v=0",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=mid:1",
        "a=recvonly",
        f"a=extmap:1 {MID_URI}",
        f"a=extmap:4 {RID_URI}",
        "a=rtpmap:96 VP8/90000",
        "a=rid:q recv",
        "a=rid:h recv",
        "a=rid:f recv",
        "a=simulcast:recv q;~h;f",
        "",
    ]
)


def test_an_answer_may_accept_some_layers_paused_or_as_alternatives() -> None:
    answer = read_answer(ANSWER, "1", RIDS)
    assert answer.rids == RIDS and answer.paused == ("h",)
    assert answer.extension_ids == {MID_URI: 1, RID_URI: 4}
    two = read_answer(ANSWER.replace("q;~h;f", "q;f,h"), "1", RIDS)
    assert two.rids == ("q", "f") and two.paused == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("a=simulcast:recv q;~h;f\r\n", ""), "0 a=simulcast lines"),
        (("a=simulcast:recv", "a=simulcast:send"), "not a=simulcast:recv"),
        (("q;~h;f", "q;~h;f x"), "not a=simulcast:recv"),
        (("q;~h;f", "q;~h;z"), "rid 'z', not offered"),
        (("q;~h;f", "q;h;q"), "twice"),
        (("a=rid:f recv\r\n", ""), "no a=rid:f recv"),
        (("a=rid:f recv", "a=rid:f send"), "no a=rid:f recv"),
        ((f"a=extmap:4 {RID_URI}\r\n", ""), "rtp-stream-id"),
        ((f"a=extmap:4 {RID_URI}", f"a=extmap:x {RID_URI}"), "malformed extmap"),
        (("m=video 9 ", "m=video 0 "), "rejected"),
        (("a=mid:1", "a=mid:2"), "0 media sections"),
    ],
)
def test_answers_that_do_not_accept_simulcast_are_refused(change, message) -> None:
    old, new = change
    assert old in ANSWER
    with pytest.raises(SimulcastSdpError, match=message):
        read_answer(ANSWER.replace(old, new), "1", RIDS)


def test_an_oversized_answer_is_refused_before_it_is_read() -> None:
    with pytest.raises(SimulcastSdpError, match="sane size"):
        read_answer(ANSWER + "a=x\r\n" * (MAX_SDP // 5), "1", RIDS)
