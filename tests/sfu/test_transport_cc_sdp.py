"""Transport-cc in the SFU's subscribe offer and in the answer (``sfu.transport_cc_sdp``)."""

from __future__ import annotations

import re

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from sfu.transport_cc_sdp import TRANSPORT_CC_URI, answered_transport_cc, offer_transport_cc


async def subscribe_offer() -> str:
    """An offer as the SFU's subscribe transport makes it (aiortc, audio + video)."""
    pc = RTCPeerConnection()
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def sections(sdp: str) -> list[list[str]]:
    out: list[list[str]] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            out.append([line])
        elif out:
            out[-1].append(line)
    return out


async def test_the_offer_carries_the_extension_on_every_section_with_one_free_id():
    original = await subscribe_offer()
    sdp, ext_id = offer_transport_cc(original)
    used = {int(i) for i in re.findall(r"^a=extmap:(\d+) (?!http://www.ietf)", original, re.M)}
    assert ext_id == min(set(range(1, 15)) - used)
    for section in sections(sdp):
        assert section.count(f"a=extmap:{ext_id} {TRANSPORT_CC_URI}") == 1
        if section[0].startswith("m=video"):
            codecs = [
                m.group(1)
                for line in section
                if (m := re.match(r"a=rtpmap:(\d+) (\S+)/", line)) and m.group(2) != "rtx"
            ]
            assert codecs
            for pt in codecs:
                assert f"a=rtcp-fb:{pt} transport-cc" in section
            rtx = [m.group(1) for line in section if (m := re.match(r"a=rtpmap:(\d+) rtx/", line))]
            assert not [pt for pt in rtx if f"a=rtcp-fb:{pt} transport-cc" in section]
    # every other line is kept, in order, with the same line endings
    added = [
        line for line in sdp.split("\r\n") if "transport-cc" in line or TRANSPORT_CC_URI in line
    ]
    assert [line for line in sdp.split("\r\n") if line not in added] == original.split("\r\n")


async def test_a_later_offer_keeps_the_id_and_does_not_repeat_the_lines():
    original = await subscribe_offer()
    first, ext_id = offer_transport_cc(original)
    again, same = offer_transport_cc(first, ext_id)
    assert same == ext_id
    assert again == first


async def test_no_free_id_leaves_the_offer_as_it_was():
    original = await subscribe_offer()
    crowded = original.replace(
        "a=mid:1",
        "\r\n".join(f"a=extmap:{i} urn:example:{i}" for i in range(1, 15)) + "\r\na=mid:1",
    )
    assert offer_transport_cc(crowded) == (crowded, 0)
    # an id another extension took since is not used either
    assert offer_transport_cc(crowded, 4) == (crowded, 0)


async def test_a_real_answer_is_read_and_a_hostile_one_is_not_taken():
    offer, ext_id = offer_transport_cc(await subscribe_offer())
    subscriber = RTCPeerConnection()
    await subscriber.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    await subscriber.setLocalDescription(await subscriber.createAnswer())
    answer = subscriber.localDescription.sdp
    await subscriber.close()
    # aiortc does not know the extension: its answer leaves it out, as a client
    # without transport feedback does
    assert TRANSPORT_CC_URI not in answer
    assert not answered_transport_cc(answer, ext_id)
    line = f"a=extmap:{ext_id} {TRANSPORT_CC_URI}"
    accepted = answer.replace("a=mid:1", f"{line}\r\na=mid:1")
    assert answered_transport_cc(accepted, ext_id)
    with_direction = answer.replace(
        "a=mid:1", f"a=extmap:{ext_id}/recvonly {TRANSPORT_CC_URI}\r\na=mid:1"
    )
    assert answered_transport_cc(with_direction, ext_id)
    moved = answer.replace("a=mid:1", f"a=extmap:{ext_id + 1} {TRANSPORT_CC_URI}\r\na=mid:1")
    assert not answered_transport_cc(moved, ext_id)
    twice = accepted.replace("a=mid:0", f"a=extmap:{ext_id + 1} {TRANSPORT_CC_URI}\r\na=mid:0")
    assert not answered_transport_cc(twice, ext_id)
    clash = accepted.replace("a=mid:0", f"a=extmap:{ext_id} urn:example:other\r\na=mid:0")
    assert not answered_transport_cc(clash, ext_id)
    assert not answered_transport_cc(accepted, 0)
    assert not answered_transport_cc(accepted, 15)
