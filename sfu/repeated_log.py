"""Logging of failures that a peer can repeat at will: one line per interval, with a count.

A hostile peer can make every packet fail the same way; a traceback per packet would fill
the disk faster than the packets fill the link.
"""

from __future__ import annotations

import logging
import time


class RepeatedLog:
    """Logs the first occurrence of each ``kind`` at once, then at most one line per
    ``interval`` seconds saying how many occurred since the last line.  No tracebacks:
    the exception's type and message are enough to recognise a known failure."""

    __slots__ = ("_clock", "_logger", "_seen", "interval", "lines")

    def __init__(
        self, logger: logging.Logger, interval: float = 10.0, clock=time.monotonic
    ) -> None:
        self._logger = logger
        self.interval = interval
        self._clock = clock
        #: kind -> (time of the last line, occurrences since)
        self._seen: dict[str, list[float]] = {}
        #: Lines written (tests and metrics read it).
        self.lines = 0

    def failure(self, kind: str, message: str, **fields: object) -> None:
        now = self._clock()
        entry = self._seen.get(kind)
        if entry is None:
            if len(self._seen) >= 256:
                self._seen.clear()  # kinds are ours, but keep the table bounded anyway
            self._seen[kind] = [now, 0]
            self._emit(kind, message, 1, fields)
            return
        entry[1] += 1
        if now - entry[0] >= self.interval:
            count = int(entry[1])
            entry[0], entry[1] = now, 0
            self._emit(kind, message, count, fields)

    def _emit(self, kind: str, message: str, count: int, fields: dict[str, object]) -> None:
        self.lines += 1
        self._logger.warning(
            "%s (%d since the last report)",
            message,
            count,
            extra={"failure": kind, "count": count, **fields},
        )
