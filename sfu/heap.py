"""Keeping the garbage collector's pauses short in long-running processes.

CPython's cyclic collector stops the process while it runs, and a full collection walks
every tracked object.  In a media worker that pause holds up every packet in flight:
measured in one worker carrying 24 rooms of 4 on the reference machine (≈ 530,000
tracked objects), a full collection took 140-200 ms and came every ~10 s even with no one
joining, which is what the capacity benchmark's p99 latency spikes of 80-210 ms were.
Two changes, made once start-up is done (:func:`freeze_startup_heap`):

* what was imported at start-up (modules, classes, functions: ~137,000 objects, 59 ms of
  every full collection) lives as long as the process: ``gc.freeze()`` moves it out of
  the collector's reach;
* the young generation is collected every 10,000 net allocations instead of 700
  (:data:`THRESHOLDS`).  With the default, an object living about a second (an asyncio
  timer of aiortc's RTCP loops, an RTCP report being handled) was promoted to the old
  generation, and these promotions triggered the full collections; now they die young.
  The middle generation is collected every 5 young collections (a pause of 10-40 ms in
  that worker), the old one at most every 100 middle collections.

Same worker, same load, 10 s windows: p99 latency 80-100 ms → 14-18 ms, no full
collection during the window.  Cyclic garbage would then wait long for a full
collection: under steady joins and leaves none came in ten minutes and closed peer
connections piled up (~8 MB a minute in a worker), so the SFU's worker runs one itself
at most once a minute while connections have closed (``sfu.Worker._reclaim_closed``).
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

#: ``gc.set_threshold`` once start-up is done (the default is 700, 10, 10).
THRESHOLDS = (10_000, 5, 100)


def freeze_startup_heap() -> int:
    """Collect once, freeze every object alive now and set :data:`THRESHOLDS`; returns
    how many objects were frozen."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    frozen = gc.get_freeze_count()
    log.debug("start-up heap frozen", extra={"objects": frozen})
    return frozen
