"""Which participant's track each m-line of the subscribe connection carried, by RTP
sequence number.

The SFU reuses a subscribe m-line for another participant's track after a room move and
keeps its rewritten sequence numbers continuous; every ``media.offer``/``media.tracks``
says, in ``first_seq``, from which sequence number on each m-line carries what the
message lists (a track, or nothing for a parked m-line).  :class:`SlotHistory` keeps every
such assignment, so that a received packet can be attributed to the assignment in force
when the SFU sent it -- whether it arrives before or after the message that announces
the change.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any


def unwrap(reference: int, seq: int) -> int:
    """``seq`` (16 bits) as the extended sequence number nearest to ``reference``
    (serial-number arithmetic: within half the sequence space of it)."""
    return reference + ((seq - reference + 0x8000) & 0xFFFF) - 0x8000


@dataclass
class Assignment:
    """What one m-line carries from extended sequence number ``first`` on."""

    mid: str
    first: int
    view_seq: int  # the server's ``seq`` of the message that announced it
    track: dict[str, Any] | None  # None: parked, nothing is sent on it
    #: Annotations of whoever checks the history (e.g. when it was verified).
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def participant_id(self) -> str | None:
        return self.track["participant_id"] if self.track is not None else None


class _Slot:
    def __init__(self, mid: str) -> None:
        self.mid = mid
        self.reference: int | None = None  # latest extended sequence number seen
        self.assignments: list[Assignment] = []  # by (first, view_seq)

    def extend(self, seq: int) -> int:
        if self.reference is None:
            self.reference = seq
            return seq
        extended = unwrap(self.reference, seq)
        self.reference = max(self.reference, extended)
        return extended


class SlotHistory:
    """Every assignment announced for each mid, looked up by received sequence number."""

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}

    def record(self, view: dict[str, Any]) -> list[Assignment]:
        """Take the ``first_seq`` of a ``media.offer``/``media.tracks`` payload into account
        (in any order: an overtaken message still describes its stretch of sequence
        numbers).  Answers the assignments that are new."""
        tracks = {track["mid"]: track for track in view.get("tracks", [])}
        view_seq = view.get("seq", 0)
        added = []
        for mid, first in view.get("first_seq", {}).items():
            slot = self._slots.get(mid)
            if slot is None:
                slot = self._slots[mid] = _Slot(mid)
            start = slot.extend(first)
            track = tracks.get(mid)
            owner = track["participant_id"] if track is not None else None
            keys = [(a.first, a.view_seq) for a in slot.assignments]
            at = bisect.bisect(keys, (start, view_seq))
            before = slot.assignments[at - 1] if at > 0 else None
            after = slot.assignments[at] if at < len(slot.assignments) else None
            if before is not None and before.first == start and before.participant_id == owner:
                before.view_seq = view_seq  # unchanged since the earlier message
                continue
            if after is not None and after.first == start and after.participant_id == owner:
                continue  # an overtaken message about an assignment already known
            assignment = Assignment(mid, start, view_seq, track)
            slot.assignments.insert(at, assignment)
            added.append(assignment)
        return added

    def assignment(self, mid: str, seq: int) -> Assignment | None:
        """The assignment of ``mid`` in force for the packet numbered ``seq``: the one with
        the latest start at or before it (of two starting at the same number, the later
        announced: nothing was sent under the first).  None when no assignment announced
        so far covers it."""
        slot = self._slots.get(mid)
        if slot is None:
            return None
        extended = slot.extend(seq)
        found = None
        for assignment in slot.assignments:
            if assignment.first > extended:
                break
            found = assignment
        return found

    def history(self, mid: str) -> list[Assignment]:
        """The assignments of ``mid`` announced so far, in sequence-number order."""
        slot = self._slots.get(mid)
        return list(slot.assignments) if slot is not None else []

    def mids(self) -> list[str]:
        return list(self._slots)

    def latest(self, mid: str) -> Assignment | None:
        """The newest assignment announced for ``mid``."""
        slot = self._slots.get(mid)
        return slot.assignments[-1] if slot is not None and slot.assignments else None

    def newest(self) -> dict[str, Assignment]:
        """Each mid's latest assignment (the one in force from its start on)."""
        return {mid: slot.assignments[-1] for mid, slot in self._slots.items() if slot.assignments}
