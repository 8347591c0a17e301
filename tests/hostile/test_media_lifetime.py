"""Nothing of a closed transport stays alive: the ingress checks' callbacks end up in
tables keyed weakly by aiortc objects, and a value there that reaches its key (through
a policy, a bound method or a closure) would keep the whole peer connection alive for
ever; the soak benchmark saw media workers grow ~25 MB a minute from it."""

from __future__ import annotations

import asyncio
import gc
import weakref

from .media_support import make_victims


async def test_closed_transports_and_their_connections_are_freed(worker, participants):
    refs: list[weakref.ref] = []
    for round_ in range(3):
        victims = await make_victims(worker, f"room-{round_}", participants)
        refs.extend(weakref.ref(t) for t in worker.transports)
        refs.extend(weakref.ref(t._pc) for t in worker.transports)
        await victims.publisher.close()
        await victims.subscriber.close()
    assert len(refs) >= 12
    async with asyncio.timeout(10):
        while any(ref() is not None for ref in refs):
            gc.collect()
            await asyncio.sleep(0.1)
