"""A subscriber's transport feedback, matched with what the SFU sent it.

Every RTP packet the SFU sends on a subscribe transport that negotiated transport-cc
carries the transport's next sequence number, and its writer remembers when each left,
its size and the probe cluster it belonged to (:meth:`sfu.rtc.RtpWriter.sent`).  The
subscriber's feedback (RTCP transport feedback, every 50-100 ms, parsed by
:func:`sfu.twcc.parse_feedback`) says when each arrived or that it did not;
:class:`TransportFeedbackReader` pairs the two and gives the packets, in sequence order,
to the transport's :class:`~sfu.delay_based.DelayBasedEstimate`.

The feedback is the subscriber's and hostile: a malformed packet is counted and dropped;
a sequence number the writer no longer holds (older than its ring, or never sent) is
skipped; a packet reported twice counts once (its first report), so that a subscriber
repeating feedback cannot weigh a packet more.  A lying subscriber can only lower or
raise its own estimate, never another's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .delay_based import DelayBasedEstimate, PacketResult
from .twcc import FeedbackError, parse_feedback

#: (send time in seconds of ``time.monotonic``, size in bytes, probe cluster or 0)
SentLookup = Callable[[int], "tuple[float, int, int] | None"]

#: The most packet statuses one feedback may name: a 50-100 ms interval of the fastest
#: subscriber (~20 Mbit/s of ~1,200-byte packets is ~200 packets) with a wide margin.
MAX_STATUSES = 2048
#: Packets remembered as reported (a power of two, as the writer's ring).
_REPORTED = 4096


class TransportFeedbackReader:
    """One subscribe transport's feedback into its delay-based estimate."""

    __slots__ = ("_clock", "_reported", "_sent", "estimate", "feedbacks", "malformed", "unknown")

    def __init__(
        self,
        sent: SentLookup,
        estimate: DelayBasedEstimate,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sent = sent
        self.estimate = estimate
        self._clock = clock
        #: per seq & (_REPORTED - 1): the send time of the packet reported there
        self._reported: list[float] = [-1.0] * _REPORTED
        self.feedbacks = 0
        self.malformed = 0
        #: statuses naming a packet the writer does not hold (or already reported)
        self.unknown = 0

    def on_part(self, part: bytes) -> None:
        """One transport feedback RTCP packet (header included), as the guard framed it."""
        try:
            feedback = parse_feedback(part, max_statuses=MAX_STATUSES)
        except FeedbackError:
            self.malformed += 1
            return
        self.feedbacks += 1
        results: list[PacketResult] = []
        reported = self._reported
        lookup = self._sent
        for seq, arrival_us in feedback.packets:
            sent = lookup(seq)
            slot = seq & (_REPORTED - 1)
            if sent is None or reported[slot] == sent[0]:
                self.unknown += 1
                continue
            reported[slot] = sent[0]
            send_time, size, cluster = sent
            results.append(
                PacketResult(
                    send_time=send_time,
                    size=size,
                    arrival_time=None if arrival_us is None else arrival_us / 1e6,
                    probe_cluster=cluster or None,
                )
            )
        if results:
            self.estimate.on_feedback(results, self._clock())

    def stats(self) -> dict[str, int]:
        return {
            "transport_feedbacks": self.feedbacks,
            "transport_feedback_malformed": self.malformed,
            "transport_feedback_unknown": self.unknown,
        }
