"""One way for a test to wait: poll a condition until it holds or a deadline passes.

Counters of aiortc, the SFU, the recorder and real server processes have no change
notifications, so a test waits by polling; never by sleeping a fixed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Condition = Callable[[], object] | Callable[[], Awaitable[object]]


async def _check(condition: Condition) -> object:
    value = condition()
    if inspect.isawaitable(value):
        value = await value
    return value


def _describe(condition: Condition) -> str:
    try:
        source = inspect.getsource(condition).strip()
    except (OSError, TypeError):
        return getattr(condition, "__qualname__", repr(condition))
    return source if len(source) < 400 else source[:400] + "…"


async def eventually(
    condition: Condition,
    within: float = 10.0,
    *,
    what: str | None = None,
    interval: float = 0.05,
    details: Callable[[], str] | None = None,
) -> object:
    """Wait until ``condition()`` (a function, or a coroutine function) returns something
    true, checking every ``interval`` seconds; returns that value. After ``within``
    seconds, fails with an ``AssertionError`` naming the condition (``what``, else its
    source) and ``details()`` when given (logs of the processes involved, say)."""
    deadline = time.monotonic() + within
    while True:
        value = await _check(condition)
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
    message = f"not true within {within:g} s: {what or _describe(condition)} (last: {value!r})"
    if details is not None:
        message += "\n" + details()
    raise AssertionError(message)
