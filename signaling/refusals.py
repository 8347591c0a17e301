"""Counts of requests refused by a limit of this process, for ``GET /metrics``
(``caucus_refusals_total{limit=...}``).

Counted where a refusal reaches the client: the HTTP error mapping and the socket.io
acknowledgements of this signaling node (a refusal decided in a media worker comes back
through the node that forwarded the event, and is counted there once), and the log filter
of malformed HTTP requests.
"""

from __future__ import annotations

import threading
from collections import Counter

#: socket.io refusal codes -> the limit they stand for
SOCKET_LIMITS = {
    "board_full": "whiteboard_bytes",
    "stroke_too_long": "whiteboard_stroke_points",
    "too_many_sessions": "live_sessions_per_user",
    "server_full": "live_sessions_per_worker",
}
#: HTTP error codes (other than rate limits, which name their limit) -> the limit
HTTP_LIMITS = {"weak_password": "password_policy"}


class RefusalCounter:
    """Owns the per-limit refusal counts of this process (they only grow)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()  # the log filter may run on another thread

    def count(self, limit: str) -> None:
        with self._lock:
            self._counts[limit] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


REFUSALS = RefusalCounter()
