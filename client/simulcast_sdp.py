"""Simulcast in the publish offer and its answer (RFC 8853 with RIDs, RFC 8851), written
as Chromium writes it.

aiortc neither writes nor reads simulcast: its offer for the video m-line announces one
SSRC (and its RTX SSRC).  :func:`rewrite_offer` turns that m-line into Chromium's
simulcast m-line: the ``a=ssrc``/``a=ssrc-group`` lines go (the streams are known by
their RIDs), the ``mid``, ``rtp-stream-id`` and ``repaired-rtp-stream-id`` header
extensions are declared (with ids no other extension of the offer uses), then
``a=rid:<rid> send`` per layer and ``a=simulcast:send q;h;f``.  The offer aiortc keeps
as its local description is its own; only the server sees the rewritten one.

:func:`read_answer` reads what the answerer accepted: the RIDs of its
``a=simulcast:recv`` line (alternatives and ``~``-paused streams as RFC 8853 writes
them) and the extension ids its m-line declares.  The answer is the server's and is
checked as any input: a missing or malformed ``a=simulcast``, an unknown or unanswered
RID, a missing ``rtp-stream-id`` extension raise :class:`SimulcastSdpError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sfu.sdp_lines import mid_of, split_sdp

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
#: The extensions a simulcast m-line declares, in the order they are added.
SIMULCAST_EXTENSIONS = (MID_URI, RID_URI, REPAIRED_RID_URI)

#: One-byte header extension ids (RFC 8285 §4.2: 15 is reserved).
_ONE_BYTE_IDS = range(1, 15)
#: A RID as RFC 8851 spells it, short enough for a one-byte header extension element.
_RID = re.compile(r"[A-Za-z0-9_-]{1,16}")
_EXTMAP = re.compile(r"a=extmap:(\d{1,5})(?:/[a-z]{1,8})? (\S{1,256})(?: .*)?")
#: Answers longer than this are refused before they are split into lines.
MAX_SDP = 256 * 1024


class SimulcastSdpError(ValueError):
    """An offer that cannot carry simulcast, or an answer that does not accept it."""


@dataclass(frozen=True)
class SimulcastOffer:
    """A rewritten offer: the SDP, and what its simulcast m-line declares."""

    sdp: str
    mid: str
    rids: tuple[str, ...]
    #: extension URI -> id, for :data:`SIMULCAST_EXTENSIONS`
    extension_ids: dict[str, int]
    #: the CNAME of the ``a=ssrc`` lines removed (for the streams' RTCP), if any
    cname: str | None


@dataclass(frozen=True)
class SimulcastAnswer:
    """What an answer accepted for the simulcast m-line ``mid``."""

    mid: str
    #: accepted RIDs, in the answer's order (the first of each alternative offered)
    rids: tuple[str, ...]
    #: accepted RIDs the answer marks paused (``~q``)
    paused: tuple[str, ...]
    #: extension URI -> id, for those of :data:`SIMULCAST_EXTENSIONS` it declares
    extension_ids: dict[str, int]


def _find_section(sections: list[list[str]], mid: str) -> int:
    found = [i for i, section in enumerate(sections) if mid_of(section) == mid]
    if len(found) != 1:
        raise SimulcastSdpError(f"{len(found)} media sections with mid {mid!r}")
    return found[0]


def _extmaps(lines: Sequence[str]) -> list[tuple[int, str]]:
    """``(id, uri)`` of the ``a=extmap`` lines; a malformed one raises."""
    found = []
    for line in lines:
        if not line.startswith("a=extmap:"):
            continue
        match = _EXTMAP.fullmatch(line)
        if match is None or not 1 <= int(match[1]) <= 255:
            raise SimulcastSdpError(f"malformed extmap line {line[:80]!r}")
        found.append((int(match[1]), match[2]))
    return found


def check_rid(rid: str) -> str:
    if not isinstance(rid, str) or not _RID.fullmatch(rid):
        raise SimulcastSdpError(f"invalid rid {rid!r} (1-16 letters, digits, - or _)")
    return rid


def rewrite_offer(sdp: str, mid: str, rids: Sequence[str]) -> SimulcastOffer:
    """``sdp`` (aiortc's offer) with the video m-line ``mid`` made a simulcast m-line
    sending ``rids`` (lowest layer first); see the module."""
    rids = tuple(check_rid(rid) for rid in rids)
    if len(set(rids)) != len(rids) or len(rids) < 2:
        raise SimulcastSdpError(f"simulcast needs two or more distinct rids, not {rids}")
    lines = split_sdp(sdp)
    index = _find_section(lines.sections, mid)
    section = lines.sections[index]
    if not section[0].startswith("m=video "):
        raise SimulcastSdpError(f"the m-line of mid {mid!r} is not video")
    if any(line.startswith(("a=rid:", "a=simulcast:")) for line in section):
        raise SimulcastSdpError(f"the m-line of mid {mid!r} already declares simulcast")
    if "a=sendonly" not in section and "a=sendrecv" not in section:
        raise SimulcastSdpError(f"the m-line of mid {mid!r} does not send")
    cname = None
    kept = []
    for line in section:
        if line.startswith("a=ssrc:"):
            _, _, attribute = line.partition(" ")
            if cname is None and attribute.startswith("cname:"):
                cname = attribute[len("cname:") :]
            continue
        if not line.startswith("a=ssrc-group:"):
            kept.append(line)
    # an id keeps one meaning in the whole offer (its m-lines share one BUNDLE transport)
    everywhere = _extmaps([*lines.session, *(line for s in lines.sections for line in s)])
    here = {uri: number for number, uri in _extmaps(section)}
    used = {number for number, _ in everywhere}
    ids: dict[str, int] = {}
    added = []
    for uri in SIMULCAST_EXTENSIONS:
        number = here.get(uri)
        if number is None:
            elsewhere = [n for n, u in everywhere if u == uri and n not in here.values()]
            free = [n for n in _ONE_BYTE_IDS if n not in used]
            if elsewhere:
                number = elsewhere[0]
            elif free:
                number = free[0]
            else:
                raise SimulcastSdpError("no free header extension id for " + uri)
            used.add(number)
            added.append(f"a=extmap:{number} {uri}")
        ids[uri] = number
    # with the other extensions (after the a=mid line when there are none)
    extmaps = [i for i, line in enumerate(kept) if line.startswith("a=extmap:")]
    after = extmaps[-1] if extmaps else kept.index(f"a=mid:{mid}")
    kept[after + 1 : after + 1] = added
    after_codecs = max(
        (
            i
            for i, line in enumerate(kept)
            if line.startswith(("a=rtpmap:", "a=rtcp-fb:", "a=fmtp:"))
        ),
        default=len(kept) - 1,
    )
    simulcast = [f"a=rid:{rid} send" for rid in rids] + ["a=simulcast:send " + ";".join(rids)]
    kept[after_codecs + 1 : after_codecs + 1] = simulcast
    lines.sections[index] = kept
    return SimulcastOffer(lines.text(), mid, rids, ids, cname)


def read_answer(sdp: str, mid: str, offered: Sequence[str]) -> SimulcastAnswer:
    """What the answer ``sdp`` accepted of the simulcast m-line ``mid`` that offered
    ``offered``; raises :class:`SimulcastSdpError` when it accepts no simulcast."""
    if not isinstance(sdp, str) or len(sdp) > MAX_SDP:
        raise SimulcastSdpError("the answer is not an SDP of a sane size")
    lines = split_sdp(sdp)
    section = lines.sections[_find_section(lines.sections, mid)]
    if section[0].startswith("m=video 0 "):
        raise SimulcastSdpError(f"the answer rejected the m-line of mid {mid!r}")
    lists = [line for line in section if line.startswith("a=simulcast:")]
    if len(lists) != 1:
        raise SimulcastSdpError(f"the answer has {len(lists)} a=simulcast lines for {mid!r}")
    direction, _, streams = lists[0][len("a=simulcast:") :].partition(" ")
    if direction != "recv" or not streams or " " in streams:
        raise SimulcastSdpError(f"the answer's {lists[0][:80]!r} is not a=simulcast:recv <rids>")
    answered = {}
    for line in section:
        if line.startswith("a=rid:"):
            rid, _, rest = line[len("a=rid:") :].partition(" ")
            answered[rid] = rest.partition(" ")[0]
    accepted: list[str] = []
    paused: list[str] = []
    named: set[str] = set()
    for stream in streams.split(";"):
        for number, alternative in enumerate(stream.split(",")):
            rid = alternative.removeprefix("~")
            if rid not in offered:
                raise SimulcastSdpError(f"the answer names rid {rid[:20]!r}, not offered")
            if answered.get(rid) != "recv":
                raise SimulcastSdpError(f"the answer has no a=rid:{rid} recv line")
            if rid in named:
                raise SimulcastSdpError(f"the answer names rid {rid!r} twice")
            named.add(rid)
            if number == 0:  # one stream is sent of a list of alternatives: the first
                accepted.append(rid)
                if alternative.startswith("~"):
                    paused.append(rid)
    ids = {uri: number for number, uri in _extmaps(section) if uri in SIMULCAST_EXTENSIONS}
    if RID_URI not in ids or MID_URI not in ids:
        raise SimulcastSdpError("the answer does not accept the mid and rtp-stream-id extensions")
    return SimulcastAnswer(mid, tuple(accepted), tuple(paused), ids)


__all__ = [
    "MAX_SDP",
    "MID_URI",
    "REPAIRED_RID_URI",
    "RID_URI",
    "SIMULCAST_EXTENSIONS",
    "SimulcastAnswer",
    "SimulcastOffer",
    "SimulcastSdpError",
    "check_rid",
    "read_answer",
    "rewrite_offer",
]
