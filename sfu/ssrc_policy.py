"""Which SSRCs a peer may send on one transport, decided on the clear-text header.

libsrtp keeps one stream per SSRC it has authenticated and finds a packet's stream by
a linear search; aiortc's router learns every SSRC it sees and a producer restarts on
each.  A signed-in publisher sending a new SSRC per packet would make each of those
grow without bound.  So a transport accepts the SSRCs its peer declared in the SDP
(``a=ssrc``, with their ``a=ssrc-group`` RTX partners) and, for each active media
section that declares none, learns at most two (media + RTX) per stream (a simulcast
section sends one stream per layer) the first time they
authenticate; RTCP sender SSRCs likewise, from a small budget.  Everything else is
dropped before SRTP and counted, and a peer that keeps sending it is disconnected.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

#: SSRCs learned per active media section that declares none (media + RTX).
SSRCS_PER_UNDECLARED_SECTION = 2
#: RTCP sender SSRCs a peer may use besides its media SSRCs, plus two per section.
RTCP_SSRC_BASE = 4
#: The most SSRCs one transport ever accepts (the compiled receive path's table holds 16).
MAX_RTP_SSRCS = 16
MAX_RTCP_SSRCS = 64


class SsrcPolicy:
    """The accepted SSRCs of one transport and the count of what was dropped.

    The receive paths ask :meth:`admit` for an SSRC that is not :meth:`allowed` before
    unprotecting a packet, report :meth:`learned` once one authenticated, and add to
    :attr:`dropped` for each packet refused.  ``on_abuse`` is called once when more than
    ``max_dropped`` packets were refused within ``window`` seconds.
    """

    def __init__(
        self,
        *,
        max_dropped: int = 500,
        window: float = 10.0,
        on_abuse: Callable[[str], None] | None = None,
        on_change: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._declared: frozenset[int] = frozenset()
        self._learned: list[int] = []
        self._learn_slots = 0
        self._rtcp: set[int] = set()
        self._rtcp_slots = RTCP_SSRC_BASE
        self._max_dropped = max_dropped
        self._window = window
        self._clock = clock
        self._window_start = clock()
        self._window_dropped = 0
        self._dropped = 0
        self.rtcp_dropped = 0
        self.on_abuse = on_abuse
        #: Called when :meth:`allowed` changed (to push the table to the compiled path).
        self.on_change = on_change
        self.abused = False

    # --- what the SDP says --------------------------------------------------------------

    def negotiated(self, sections: Iterable[tuple[bool, tuple[int, ...], int]]) -> None:
        """The peer's media sections: (active, declared SSRCs, streams) each, streams
        being the number of simulcast layers a section sends (1 without simulcast).
        Learned SSRCs are kept (up to the new number of slots): a re-offer does not
        restart streams."""
        declared: set[int] = set()
        undeclared = 0
        count = 0
        for active, ssrcs, streams in sections:
            count += 1
            if not active:
                continue
            if ssrcs:
                declared.update(ssrcs)
            else:
                undeclared += max(1, streams)
        self._declared = frozenset(list(declared)[:MAX_RTP_SSRCS])
        self._learn_slots = min(
            undeclared * SSRCS_PER_UNDECLARED_SECTION, MAX_RTP_SSRCS - len(self._declared)
        )
        self._learned = [s for s in self._learned if s not in self._declared][: self._learn_slots]
        self._rtcp_slots = min(RTCP_SSRC_BASE + 2 * count, MAX_RTCP_SSRCS)
        if self.on_change is not None:
            self.on_change()

    # --- RTP ----------------------------------------------------------------------------

    def allowed(self) -> tuple[int, ...]:
        return (*self._declared, *self._learned)

    def is_allowed(self, ssrc: int) -> bool:
        return ssrc in self._declared or ssrc in self._learned

    def admit(self, ssrc: int) -> bool:
        """May a packet of the unknown ``ssrc`` be authenticated (a learning slot is free)?"""
        return len(self._learned) < self._learn_slots

    def learned(self, ssrc: int) -> None:
        """A packet of the admitted ``ssrc`` authenticated: accept that SSRC from now on."""
        if ssrc in self._declared or ssrc in self._learned:
            return
        if len(self._learned) < self._learn_slots:
            self._learned.append(ssrc)
            if self.on_change is not None:
                self.on_change()

    @property
    def dropped(self) -> int:
        """RTP packets refused for their SSRC."""
        return self._dropped

    @dropped.setter
    def dropped(self, value: int) -> None:
        self._count(value - self._dropped)
        self._dropped = value

    # --- RTCP ---------------------------------------------------------------------------

    def admit_rtcp(self, ssrc: int) -> bool:
        """May an SRTCP packet from sender ``ssrc`` be authenticated?"""
        if ssrc in self._rtcp or self.is_allowed(ssrc) or len(self._rtcp) < self._rtcp_slots:
            return True
        self.rtcp_dropped += 1
        self._count(1)
        return False

    def learned_rtcp(self, ssrc: int) -> None:
        if not self.is_allowed(ssrc) and len(self._rtcp) < self._rtcp_slots:
            self._rtcp.add(ssrc)

    # --- abuse --------------------------------------------------------------------------

    def _count(self, n: int) -> None:
        now = self._clock()
        if now - self._window_start > self._window:
            self._window_start = now
            self._window_dropped = 0
        self._window_dropped += n
        if self._window_dropped > self._max_dropped and not self.abused:
            self.abused = True
            if self.on_abuse is not None:
                self.on_abuse("unknown-ssrc")
