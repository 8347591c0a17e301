"""Who is speaking in a room, from the audio-level header extension (RFC 6464), without
decoding anything.

Every publisher's audio packets carry its level (-dBov, 0 loudest, 127 silence) and,
from browsers, a voice-activity bit; the compiled receive path sums them per producer
(``Producer.take_audio_level``).  Each interval the worker gives :class:`ActiveSpeaker`
the levels of a room's members and it answers who is the active speaker, with
hysteresis so that the large tile does not flicker: a participant is *speaking* in an
interval when most of its packets had the voice-activity bit or their mean level was
louder than ``speaking_level``; the loudest speaking participant becomes the active
speaker after ``hold`` intervals in a row of being it, and takes over from a speaker who
is still speaking only when louder by ``switch_margin`` dB.  When nobody speaks, the last
speaker stays (the room keeps showing who spoke last).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpeakerRule:
    #: A mean level at or below this (-dBov) counts as speaking (speech is ~-20 to -45).
    speaking_level: float = 55.0
    #: Or at least this share of the interval's packets had the voice-activity bit.
    voiced_share: float = 0.5
    #: Intervals in a row a new speaker must lead before taking over.
    hold: int = 2
    #: How much louder (dB) a new speaker must be to take over from one still speaking.
    switch_margin: float = 6.0


#: One member's interval: (packets with a level, their mean level in -dBov, voiced packets).
Levels = tuple[int, float, int]


class ActiveSpeaker:
    """The active speaker of one room (see the module's rule)."""

    def __init__(self, rule: SpeakerRule | None = None) -> None:
        self.rule = rule or SpeakerRule()
        #: The participant shown as speaking, or ``None`` before anyone spoke.
        self.current: str | None = None
        self._candidate: str | None = None
        self._streak = 0

    def speaking(self, levels: Levels) -> bool:
        packets, mean, voiced = levels
        rule = self.rule
        return packets > 0 and (
            voiced >= rule.voiced_share * packets or mean <= rule.speaking_level
        )

    def update(self, levels: dict[str, Levels]) -> str | None:
        """Take one interval's levels (participant id -> :data:`Levels`); returns the new
        active speaker when it changed, else ``None``."""
        if self.current is not None and self.current not in levels:
            self.current = None  # left the room
        speaking = {pid: lv[1] for pid, lv in levels.items() if self.speaking(lv)}
        if not speaking:
            self._candidate, self._streak = None, 0
            return None
        loudest = min(speaking, key=lambda pid: (speaking[pid], pid))
        if loudest == self.current:
            self._candidate, self._streak = None, 0
            return None
        current_level = speaking.get(self.current) if self.current is not None else None
        if (
            current_level is not None
            and current_level - speaking[loudest] < self.rule.switch_margin
        ):
            self._candidate, self._streak = None, 0
            return None
        if loudest != self._candidate:
            self._candidate, self._streak = loudest, 0
        self._streak += 1
        if self._streak < self.rule.hold:
            return None
        self.current, self._candidate, self._streak = loudest, None, 0
        return loudest
