"""A token bucket: the rate limiter of every per-peer budget in the media path."""

from __future__ import annotations

import time


class TokenBucket:
    """``rate`` tokens a second, at most ``depth`` saved up; starts full.

    ``take(n)`` spends ``n`` tokens when that many are there and says whether it did.
    The clock is ``time.monotonic`` unless another is given (tests pass their own).
    """

    __slots__ = ("_at", "_clock", "_tokens", "depth", "rate")

    def __init__(self, rate: float, depth: float | None = None, clock=time.monotonic) -> None:
        self.rate = float(rate)
        self.depth = float(rate if depth is None else depth)
        self._clock = clock
        self._tokens = self.depth
        self._at = clock()

    def _refill(self) -> float:
        now = self._clock()
        tokens = self._tokens + (now - self._at) * self.rate
        self._at = now
        if tokens > self.depth:
            tokens = self.depth
        self._tokens = tokens
        return tokens

    def take(self, n: float = 1.0) -> bool:
        if self._refill() < n:
            return False
        self._tokens -= n
        return True

    def take_up_to(self, n: int) -> int:
        """Spend as many whole tokens as there are, up to ``n``; returns how many."""
        granted = min(n, int(self._refill()))
        if granted > 0:
            self._tokens -= granted
        return max(granted, 0)
