"""What one transport lets in from its peer, and the counts of what it did not.

Owns the transport's :class:`~sfu.ssrc_policy.SsrcPolicy` (which SSRCs may reach SRTP),
its :class:`~sfu.rtcp_guard.RtcpGuard` (which RTCP may reach the parser) and the
counters of datagrams dropped before or by SRTP.  The hooks that apply it to aiortc's
objects are in :mod:`sfu.rtc.guard` (:func:`~sfu.rtc.guard.guard_ingress`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .repeated_log import RepeatedLog
from .rtcp_guard import RtcpGuard
from .settings import MediaSettings
from .ssrc_policy import SsrcPolicy

logger = logging.getLogger("sfu.ingress")


class Ingress:
    """The checks and counters of one transport's incoming datagrams."""

    def __init__(
        self, settings: MediaSettings, on_abuse: Callable[[str], None] | None = None
    ) -> None:
        self.max_datagram = settings.max_datagram
        self.ssrc = SsrcPolicy(
            max_dropped=settings.max_unknown_ssrc_packets,
            window=settings.abuse_window,
            on_abuse=on_abuse,
        )
        self.rtcp = RtcpGuard(rate=settings.rtcp_rate, max_nack_items=settings.max_nack_items)
        self.log = RepeatedLog(logger, settings.repeated_log_interval)
        #: Datagrams longer than ``max_datagram`` (dropped before SRTP).
        self.oversize = 0
        #: Empty datagrams (dropped before aiortc reads their first byte).
        self.empty = 0
        #: Packets that authenticated but did not parse (dropped).
        self.malformed_rtp = 0
        self.malformed_rtcp = 0

    def stats(self) -> dict[str, int]:
        return {
            "dropped_oversize": self.oversize,
            "dropped_empty": self.empty,
            "dropped_unknown_ssrc": self.ssrc.dropped,
            "dropped_unknown_rtcp_ssrc": self.ssrc.rtcp_dropped,
            "dropped_malformed_rtp": self.malformed_rtp,
            "rtcp_parse_failures": self.malformed_rtcp,
            **self.rtcp.stats(),
            "log_lines": self.log.lines,
        }
