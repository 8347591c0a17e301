"""Simulcast in a publisher's offer and the SFU's answer (RFC 8853, RFC 8851).

A browser publishing its camera as several encodings offers one video m-line with
``a=rid:<id> send`` per encoding, ``a=simulcast:send q;h;f`` and the RTP stream ID header
extensions (``sdes:rtp-stream-id`` on each encoding's packets, ``repaired-rtp-stream-id``
on their retransmissions); it declares no SSRCs.  aiortc reads none of these lines, so
the SFU reads them here and writes the matching ``recv`` lines into aiortc's answer: the
browser sends every encoding only when the answer accepts them.

The order of ``a=simulcast`` is taken as the layers' order, lowest first (the order of
``sendEncodings`` on the page: ``q`` a quarter, ``h`` half, ``f`` full resolution).  A
hostile offer is refused with a clear reason (:class:`~sfu.errors.InvalidSdp`): a rid
the simulcast line names but no ``a=rid`` declares, a rid named twice, a malformed rid,
simulcast without the rtp-stream-id extension.  More layers than the SFU forwards are
cut to the first ``max_layers`` in the answer (the browser then sends only those).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidSdp
from .sdp_lines import EXTMAP, mid_of, split_sdp

RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"

#: RFC 8851 allows longer rids; no browser uses more than a few characters.
_RID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


@dataclass(frozen=True)
class SimulcastSection:
    """One m-line the publisher sends as several layers."""

    mid: str
    #: The layers' rids, lowest first.
    rids: tuple[str, ...]
    #: Rids the offer starts paused (``~rid``): accepted, not expected to arrive yet.
    paused: frozenset[str]
    #: The publisher's rtp-stream-id extension id, and repaired-rtp-stream-id's (0: none).
    rid_extension_id: int
    repaired_rid_extension_id: int


def read_simulcast(sdp: str, max_layers: int) -> dict[str, SimulcastSection]:
    """The simulcast sections of a publisher's offer, by mid."""
    found: dict[str, SimulcastSection] = {}
    for lines in split_sdp(sdp).sections:
        if not lines[0].startswith("m=video"):
            continue
        mid = None
        declared: set[str] = set()
        listing: str | None = None
        extensions: dict[str, int] = {}
        for line in lines:
            if line.startswith("a=mid:"):
                mid = line[6:].strip()
            elif line.startswith("a=rid:"):
                fields = line[6:].split()
                if len(fields) < 2 or fields[1] != "send" or not _RID.match(fields[0]):
                    raise InvalidSdp(f"malformed rid line: {line[:80]!r}")
                declared.add(fields[0])
            elif line.startswith("a=simulcast:"):
                if listing is not None:
                    raise InvalidSdp("an m-line with two simulcast lines")
                listing = line[12:].strip()
            else:
                match = EXTMAP.match(line)
                if match:
                    extensions[match.group(2)] = int(match.group(1))
        if listing is None:
            continue
        parts = listing.split()
        if len(parts) != 2 or parts[0] != "send":
            raise InvalidSdp(f"a publisher's simulcast line is 'send <rids>': {listing[:80]!r}")
        rids: list[str] = []
        paused: set[str] = set()
        for group in parts[1].split(";"):
            # alternatives (",") of one layer: the first one is taken
            rid = group.split(",")[0]
            stopped = rid.startswith("~")
            rid = rid.lstrip("~")
            if not _RID.match(rid) or rid not in declared:
                raise InvalidSdp(f"the simulcast line names rid {rid[:20]!r}, not declared")
            if rid in rids:
                raise InvalidSdp(f"the simulcast line names rid {rid!r} twice")
            rids.append(rid)
            if stopped:
                paused.add(rid)
        rid_id = extensions.get(RID_URI, 0)
        if not 1 <= rid_id <= 255:
            raise InvalidSdp("simulcast needs the rtp-stream-id header extension")
        repaired = extensions.get(REPAIRED_RID_URI, 0)
        if not 0 <= repaired <= 255:
            repaired = 0
        if mid is None:
            raise InvalidSdp("a simulcast m-line without a mid")
        if len(rids) < 2:
            continue  # one encoding: an ordinary track
        kept = tuple(rids[:max_layers])
        found[mid] = SimulcastSection(
            mid=mid,
            rids=kept,
            paused=frozenset(paused & set(kept)),
            rid_extension_id=rid_id,
            repaired_rid_extension_id=repaired,
        )
    return found


def answer_simulcast(answer: str, sections: dict[str, SimulcastSection]) -> str:
    """``answer`` (aiortc's) with the receiving side of each simulcast section: the RTP
    stream ID extensions under the offer's ids, ``a=rid:<id> recv`` per layer and
    ``a=simulcast:recv``."""
    if not sections:
        return answer
    lines = split_sdp(answer)
    for section in lines.sections:
        mid = mid_of(section)
        if mid is None or mid not in sections:
            continue
        simulcast = sections[mid]
        section.append(f"a=extmap:{simulcast.rid_extension_id} {RID_URI}")
        if simulcast.repaired_rid_extension_id:
            section.append(f"a=extmap:{simulcast.repaired_rid_extension_id} {REPAIRED_RID_URI}")
        section.extend(f"a=rid:{rid} recv" for rid in simulcast.rids)
        listed = ";".join(("~" + rid) if rid in simulcast.paused else rid for rid in simulcast.rids)
        section.append(f"a=simulcast:recv {listed}")
    return lines.text()
