"""Transport-wide congestion control in the SFU's subscribe offers and their answers.

The SFU offers a subscriber the transport-wide sequence number header extension
(draft-holmer-rmcat-transport-wide-cc-extensions-01) on every m-section of its subscribe
transport, and ``a=rtcp-fb:<pt> transport-cc`` on each video codec, so that a browser (or
the headless client with ``feedback=True``) answers it and then reports, every 50-100 ms,
when each packet arrived (RTCP transport feedback).  aiortc knows neither line: its
offer is rewritten here, and the id the answer accepted is read here.

Only subscribe transports offer it: a publisher negotiating it would expect the SFU to
send feedback on what it publishes, which the SFU does not.

With BUNDLE every m-section shares one transport and so one sequence: the extension has
one id in every section.  The id is the lowest one (1-14, the one-byte header form) no
other extension of the offer uses, chosen at the first offer and kept for the
transport's life, since a later offer may not move it.  An answer that accepts it with
another id, with two ids, or on an id another extension holds is read as not accepting
it (the SFU then estimates from REMB and receiver reports, as without it).
"""

from __future__ import annotations

import re

from .sdp_lines import EXTMAP, extmaps, split_sdp
from .twcc import TRANSPORT_CC_URI

_RTPMAP = re.compile(r"^a=rtpmap:(\d+)\s+([^/\s]+)/")


def offer_transport_cc(sdp: str, ext_id: int = 0) -> tuple[str, int]:
    """``sdp`` (the SFU's subscribe offer) with the transport-cc extension on each audio
    and video m-section and its feedback on each video codec but RTX, and the id used:
    ``ext_id`` when given (a later offer of the same transport), else the lowest free
    one.  ``(sdp, 0)`` unchanged when no id is free."""
    lines = split_sdp(sdp)
    used = {
        i for section in lines.sections for i, uri in extmaps(section) if uri != TRANSPORT_CC_URI
    }
    if not ext_id:
        ext_id = next((i for i in range(1, 15) if i not in used), 0)
    if not ext_id or ext_id in used:
        return sdp, 0
    sections = []
    for section in lines.sections:
        kind = section[0][2:].split(" ", 1)[0]
        if kind not in ("audio", "video"):
            sections.append(section)
            continue
        kept = [
            line
            for line in section
            if not (
                (match := EXTMAP.match(line)) is not None and match.group(2) == TRANSPORT_CC_URI
            )
            and not (line.startswith("a=rtcp-fb:") and line.endswith(" transport-cc"))
        ]
        extmap = f"a=extmap:{ext_id} {TRANSPORT_CC_URI}"
        last_extmap = max((n for n, line in enumerate(kept) if EXTMAP.match(line)), default=-1)
        if last_extmap >= 0:
            kept.insert(last_extmap + 1, extmap)
        else:
            first_attribute = next(
                (n for n, line in enumerate(kept) if line.startswith("a=")), len(kept)
            )
            kept.insert(first_attribute, extmap)
        if kind == "video":
            with_feedback: list[str] = []
            for line in kept:
                with_feedback.append(line)
                match = _RTPMAP.match(line)
                if match and match.group(2).lower() != "rtx":
                    with_feedback.append(f"a=rtcp-fb:{match.group(1)} transport-cc")
            kept = with_feedback
        sections.append(kept)
    lines.sections = sections
    return lines.text(), ext_id


def answered_transport_cc(sdp: str, ext_id: int) -> bool:
    """Whether the subscriber's answer ``sdp`` accepts the transport-cc extension the
    offer gave ``ext_id``: some section accepts it, every one that does with that id, and
    no other extension of the answer holds that id."""
    if not 1 <= ext_id <= 14:
        return False
    accepted = False
    for section in split_sdp(sdp).sections:
        for i, uri in extmaps(section):
            if uri == TRANSPORT_CC_URI:
                if i != ext_id:
                    return False
                accepted = True
            elif i == ext_id:
                return False
    return accepted
