"""Keeping the garbage collector's full collections short in long-running processes.

CPython's cyclic collector stops the process for as long as a full collection takes, and
a full collection walks every tracked object.  In a media worker that pause holds up
every packet in flight: measured in a worker carrying 26 rooms of 4 on the reference
machine, full collections took 100-260 ms, which is what the capacity benchmark's p99
latency spikes were.  What was imported at start-up (modules, classes, functions:
~135,000 objects for Caucus, 59 ms of each full collection there) lives as long as the
process, so :func:`freeze_startup_heap` moves it out of the collector's reach
(``gc.freeze()``) once start-up is done; objects created later are collected as before.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Collect once, then freeze every object alive now; returns how many were frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("start-up heap frozen", extra={"objects": frozen})
    return frozen
