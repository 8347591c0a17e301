"""Transport-wide congestion control on a headless subscriber's side: the answer that
accepts it and the arrivals its feedback reports.

The SFU offers the transport-wide sequence number header extension
(``a=extmap:<id> http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-
extensions-01``, :data:`sfu.twcc.TRANSPORT_CC_URI`) in a subscribe offer; a subscriber
that answers with the same line gets every packet stamped with the number and owes the
SFU transport feedback (:mod:`sfu.twcc`) instead of REMB.  aiortc does not know the URI
for negotiation and leaves it out of its answer: :func:`keep_transport_cc` puts it back
for a subscriber that sends feedback (``Participant(feedback=True)``); one that does not
answers without it, and the SFU falls back to REMB (which it then does not get either).

:class:`TransportArrivals` keeps, by unwrapped transport-wide sequence number, when
each packet not reported yet arrived, and hands them out as the consecutive run a
feedback reports (libwebrtc's ``RemoteEstimatorProxy`` is the model): from the first
number not reported yet to the highest received, the missing ones as lost.
"""

from __future__ import annotations

from collections.abc import Mapping

from sfu.sdp_lines import EXTMAP, extmaps, mid_of, rejected, split_sdp
from sfu.twcc import MAX_STATUSES, TRANSPORT_CC_URI


def transport_cc_ids(sdp: str) -> dict[str, int]:
    """``{mid: extension id}`` of every m-section of ``sdp`` that offers the
    transport-wide sequence number (a media-level ``a=extmap`` line, or a session-level
    one for every section without its own); ids outside 1-255 are skipped."""

    def offered(lines: list[str]) -> int:
        return next(
            (i for i, uri in extmaps(lines) if uri == TRANSPORT_CC_URI and 1 <= i <= 255), 0
        )

    lines = split_sdp(sdp)
    session_id = offered(lines.session)
    ids: dict[str, int] = {}
    for section in lines.sections:
        mid = mid_of(section)
        chosen = offered(section) or session_id
        if mid is not None and chosen:
            ids[mid] = chosen
    return ids


def keep_transport_cc(answer: str, ids: Mapping[str, int]) -> str:
    """``answer`` with ``a=extmap:<id> <transport-cc URI>`` in each m-section whose mid
    ``ids`` names (after its last ``a=extmap`` line, else after ``a=mid``), unless the
    section is rejected (port 0), already has the line, or uses that id for another
    extension.  Line endings are the answer's own."""
    if not ids:
        return answer
    lines = split_sdp(answer)
    lines.sections = [_with_extmap(section, ids) for section in lines.sections]
    return lines.text()


def _with_extmap(section: list[str], ids: Mapping[str, int]) -> list[str]:
    if rejected(section):
        return section
    mid = mid_of(section)
    number = ids.get(mid) if mid is not None else None
    if number is None:
        return section
    at = None
    for i, line in enumerate(section):
        match = EXTMAP.match(line)
        if match is not None:
            if int(match.group(1)) == number:
                return section  # already there, or the id is taken
            at = i
        elif line.startswith("a=mid:") and at is None:
            at = i
    position = len(section) if at is None else at + 1
    return [*section[:position], f"a=extmap:{number} {TRANSPORT_CC_URI}", *section[position:]]


#: Numbers one feedback window spans at most: a jump beyond it drops the oldest arrivals
#: (never reported) rather than growing.
MAX_WINDOW = MAX_STATUSES


class TransportArrivals:
    """The arrival times (µs on the receiver's clock) of packets not reported yet, by
    transport-wide sequence number unwrapped past 65535.

    Each number counts its first arrival (a duplicate is counted in
    :attr:`duplicates`).  A packet whose number was already reported (as lost: it is
    very late), or that lies more than :attr:`max_window` numbers behind the highest, is
    dropped and counted in :attr:`late` (libwebrtc keeps reported arrivals for 500 ms to
    report them again after reordering; this reports each number once).  Before the
    first report a reordered packet moves the window's start back.  Memory is bounded:
    a window longer than :attr:`max_window` (a jump forward) gives up its oldest
    arrivals, unreported.
    """

    __slots__ = (
        "_arrivals",
        "_highest",
        "_reported",
        "_start",
        "duplicates",
        "late",
        "max_window",
    )

    def __init__(self, max_window: int = MAX_WINDOW) -> None:
        self.max_window = max_window
        self._arrivals: dict[int, int] = {}
        #: The highest number seen (the reference for unwrapping), once one was.
        self._highest: int | None = None
        #: The first number the next report covers.
        self._start: int | None = None
        #: A report went out: numbers below ``_start`` were reported.
        self._reported = False
        self.duplicates = 0
        self.late = 0

    def __len__(self) -> int:
        return len(self._arrivals)

    def add(self, seq: int, arrival_us: int) -> bool:
        """Record that the packet numbered ``seq`` (16 bits) arrived at ``arrival_us``;
        ``False`` when it is not recorded (duplicate, late)."""
        highest = self._highest
        if highest is None:
            number = seq
        else:
            number = highest + ((seq - highest + 0x8000) & 0xFFFF) - 0x8000
        start = self._start
        if start is None:
            start = number
        elif number < start:
            if self._reported or (highest is not None and highest - number >= self.max_window):
                self.late += 1
                return False
            start = number  # reordered before anything was reported
        if number in self._arrivals:
            self.duplicates += 1
            return False
        self._arrivals[number] = arrival_us
        if highest is None or number > highest:
            highest = self._highest = number
        if highest - start >= self.max_window:
            start = highest - self.max_window + 1
            for old in [n for n in self._arrivals if n < start]:
                del self._arrivals[old]
        self._start = start
        return True

    def take(self) -> list[tuple[int, int | None]]:
        """The numbers from the first not reported yet to the highest received, as
        ``(16-bit number, arrival µs or None)``, and forget them: they count as reported.
        Empty when nothing arrived since the last call."""
        if not self._arrivals or self._start is None or self._highest is None:
            return []
        arrivals = self._arrivals
        window = [(n & 0xFFFF, arrivals.get(n)) for n in range(self._start, self._highest + 1)]
        arrivals.clear()
        self._start = self._highest + 1
        self._reported = True
        return window
