"""Simulcast in the publisher's offer and the SFU's answer (RFC 8853): the rids are read,
hostile simulcast lines refused with a reason, and the answer accepts the layers so a
browser sends them all."""

from __future__ import annotations

import re

import pytest
from aiortc import RTCPeerConnection
from aiortc.sdp import SessionDescription

from client.media import PatternVideoTrack
from sfu import MediaError, Worker
from sfu.errors import InvalidSdp
from sfu.simulcast import SimulcastProducer
from sfu.simulcast_sdp import (
    REPAIRED_RID_URI,
    RID_URI,
    SimulcastSection,
    answer_simulcast,
    read_simulcast,
)

LINES = (
    f"a=extmap:10 {RID_URI}",
    f"a=extmap:11 {REPAIRED_RID_URI}",
    "a=rid:q send",
    "a=rid:h send",
    "a=rid:f send",
    "a=simulcast:send q;h;f",
)


def with_lines(sdp: str, lines: tuple[str, ...], kind: str = "video") -> str:
    """``sdp`` with ``lines`` added to its first ``kind`` section, after its mid, and
    that section's SSRCs undeclared (as a browser sending simulcast leaves them)."""
    out, sections, target, done = [], 0, None, False
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            sections += 1
            if target is None and line.startswith(f"m={kind}"):
                target = sections
        in_kind = target == sections
        if in_kind and line.startswith("a=ssrc"):
            continue
        out.append(line)
        if in_kind and not done and line.startswith("a=mid:"):
            out.extend(lines)
            done = True
    assert done
    return "\r\n".join(out)


async def aiortc_offer(*kinds: str) -> str:
    pc = RTCPeerConnection()
    for kind in kinds:
        if kind == "video":
            pc.addTransceiver(PatternVideoTrack(), direction="sendonly")
        else:
            pc.addTransceiver("audio", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


async def test_a_browser_like_offer_is_read_lowest_layer_first() -> None:
    offer = with_lines(await aiortc_offer("audio", "video"), LINES)
    sections = read_simulcast(offer, 3)
    assert list(sections.values()) == [SimulcastSection("1", ("q", "h", "f"), frozenset(), 10, 11)]


async def test_paused_layers_alternatives_and_too_many_layers() -> None:
    lines = (
        f"a=extmap:12 {RID_URI}",
        "a=rid:a send",
        "a=rid:b send max-width=640",
        "a=rid:c send",
        "a=rid:d send",
        "a=rid:x send",
        "a=simulcast:send a,x;~b;c;d",
    )
    offer = with_lines(await aiortc_offer("video"), lines)
    (section,) = read_simulcast(offer, 3).values()
    assert section.rids == ("a", "b", "c")  # alternatives: the first; cut to three layers
    assert section.paused == frozenset({"b"})
    assert section.rid_extension_id == 12 and section.repaired_rid_extension_id == 0


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        ((f"a=extmap:10 {RID_URI}", "a=rid:q send", "a=simulcast:send q;h"), "not declared"),
        ((f"a=extmap:10 {RID_URI}", "a=rid:q send", "a=simulcast:send q;q"), "twice"),
        ((f"a=extmap:10 {RID_URI}", "a=rid:q", "a=simulcast:send q"), "malformed rid"),
        ((f"a=extmap:10 {RID_URI}", "a=rid:q recv", "a=simulcast:send q"), "malformed rid"),
        ((f"a=extmap:10 {RID_URI}", "a=rid:" + "q" * 40 + " send"), "malformed rid"),
        (("a=rid:q send", "a=rid:h send", "a=simulcast:send q;h"), "rtp-stream-id"),
        ((f"a=extmap:10 {RID_URI}", "a=rid:q send", "a=simulcast:recv q"), "'send <rids>'"),
        (
            (f"a=extmap:10 {RID_URI}", "a=rid:q send", "a=simulcast:send q", "a=simulcast:send q"),
            "two simulcast lines",
        ),
        ((f"a=extmap:10 {RID_URI}", "a=rid:q send", "a=simulcast:send q;<script>"), "not declared"),
    ],
)
async def test_hostile_simulcast_lines_are_refused_with_a_reason(lines, reason) -> None:
    offer = with_lines(await aiortc_offer("video"), lines)
    with pytest.raises(InvalidSdp, match=re.escape(reason)):
        read_simulcast(offer, 3)


async def test_one_encoding_is_an_ordinary_track_and_audio_is_never_simulcast() -> None:
    single = (f"a=extmap:10 {RID_URI}", "a=rid:q send", "a=simulcast:send q")
    assert read_simulcast(with_lines(await aiortc_offer("video"), single), 3) == {}
    audio = with_lines(await aiortc_offer("audio"), LINES, kind="audio")
    assert read_simulcast(audio, 3) == {}


async def test_the_answer_accepts_exactly_the_offered_layers() -> None:
    answer = await aiortc_offer("audio", "video")  # any SDP with two sections will do
    section = SimulcastSection("1", ("q", "h"), frozenset({"h"}), 10, 11)
    written = answer_simulcast(answer, {"1": section})
    audio, video = written.split("\r\nm=")[1:]
    assert "a=simulcast" not in audio and "a=rid" not in audio
    assert [
        line for line in video.split("\r\n") if re.match("a=(rid|simulcast)|a=extmap:1[01] ", line)
    ] == [
        f"a=extmap:10 {RID_URI}",
        f"a=extmap:11 {REPAIRED_RID_URI}",
        "a=rid:q recv",
        "a=rid:h recv",
        "a=simulcast:recv q;~h",
    ]
    assert written.endswith("\r\n")
    SessionDescription.parse(written)  # still valid SDP
    assert answer_simulcast(answer, {}) == answer


async def test_the_sfu_answers_a_simulcast_publisher_with_its_layers(worker: Worker) -> None:
    offer = with_lines(await aiortc_offer("audio", "video"), LINES)
    transport = await worker.create_transport("alice", "publish")
    answer = await transport.accept_offer(offer)
    assert "a=simulcast:recv q;h;f" in answer
    assert "a=rid:f recv" in answer and f"a=extmap:10 {RID_URI}" in answer
    video = [p for p in transport.producers.values() if p.kind == "video"]
    assert len(video) == 1 and isinstance(video[0], SimulcastProducer)
    assert video[0].rids == ("q", "h", "f")
    # media + RTX per layer (the audio section declares its SSRC)
    assert transport.ingress.ssrc._learn_slots == 2 * 3
    await transport.close()


async def test_a_hostile_simulcast_offer_closes_nothing_but_its_transport(worker: Worker) -> None:
    other = await worker.create_transport("bob", "publish")
    await other.accept_offer(await aiortc_offer("video"))
    offer = with_lines(await aiortc_offer("video"), ("a=rid:q send", "a=simulcast:send q;z"))
    transport = await worker.create_transport("alice", "publish")
    with pytest.raises(MediaError, match="not declared"):
        await transport.accept_offer(offer)
    assert transport.closed and not other.closed
    await other.close()
