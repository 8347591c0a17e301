"""Blob I/O off the event loop: the batch size of one system call and worker threads
that a cancellation cannot stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

# Ciphertext written (or read) per system call: 16 chunks of 64 KiB.
IO_BATCH_BYTES = 1024 * 1024

T = TypeVar("T")


def in_thread(func: Callable[..., T], *args: object) -> asyncio.Future[T]:
    """Run ``func`` in a worker thread. Callers await it through ``asyncio.shield``: a
    thread cannot be stopped, so its future must stay uncancelled and mean "thread done"."""
    return asyncio.ensure_future(asyncio.to_thread(func, *args))


async def join_threads(futures: Iterable[asyncio.Future[Any]]) -> None:
    """Wait until worker threads are done, even if this task is cancelled meanwhile (they
    may use a file descriptor about to be closed); then let the cancellation through."""
    pending = {f for f in futures if not f.done()}
    cancelled = False
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True
    for future in futures:
        if future.done() and not future.cancelled():
            future.exception()  # retrieved: failures are reported by the caller's path
    if cancelled:
        raise asyncio.CancelledError
