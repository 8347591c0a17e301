"""The SFU in a process of its own, driven over JSON lines, for the benchmarks.

``bench/sfu_forward.py`` and ``bench/versus_janus.py`` measure an :class:`sfu.Worker` in a
child process (``python bench/_sfu_process.py``): what a ``caucus serve`` media worker
process runs (its collector settings included), without the signaling node, so the
process's CPU is the media path's.  The driver talks to it over the child's
stdin/stdout with :class:`LineRpc` (create a transport, answer an offer, join a room,
read the counters, stop); the SFU's subscribe offers come back the same way and are
answered by the participant's handler.

    sfu = await SfuProcess.start()
    participant = Participant("alice", sfu.signal("room-1"), ...)
    counters = await sfu.counters()   # {"user", "sys", "forwarded", "received"}
    await sfu.stop()

With ``CAUCUS_BENCH_PROFILE=<file>`` in its environment the child runs under cProfile
(process time) and writes its statistics there when stopped.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

ROOM = "bench"
#: The VP8 clip one publisher sends in the fan-out benchmarks (``sfu_forward.py`` and
#: ``versus_janus.py``): ``client.encode_vp8_clip(**FANOUT_CLIP)``, 30 frames of noise
#: with a keyframe each, looped at 30 fps; the encoder overshoots its target on noise:
#: ~4.7 Mbit/s, ~480 RTP packets/s.
FANOUT_CLIP = {"width": 640, "height": 480, "bitrate": 4_000_000}
SCRIPT = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(SCRIPT))


class LineRpc:
    """Symmetric JSON-lines RPC over a pair of asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: Any, handlers: dict) -> None:
        self._reader = reader
        self._writer = writer
        self._handlers = handlers
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future] = {}
        self._task = asyncio.ensure_future(self._run())
        self._serving: set[asyncio.Future] = set()

    async def call(self, method: str, *params: Any) -> Any:
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        self._send({"id": request_id, "method": method, "params": params})
        return await future

    def _send(self, message: dict) -> None:
        self._writer.write(json.dumps(message).encode() + b"\n")

    async def _run(self) -> None:
        while line := await self._reader.readline():
            message = json.loads(line)
            if "method" in message:
                task = asyncio.ensure_future(self._serve(message))
                self._serving.add(task)
                task.add_done_callback(self._serving.discard)
            else:
                future = self._waiting.pop(message["id"])
                if "error" in message:
                    future.set_exception(RuntimeError(message["error"]))
                else:
                    future.set_result(message["result"])
        for future in self._waiting.values():  # the other side is gone
            if not future.done():
                future.set_exception(RuntimeError("the SFU process ended"))

    async def _serve(self, message: dict) -> None:
        try:
            result = await self._handlers[message["method"]](*message["params"])
            self._send({"id": message["id"], "result": result})
        except Exception as exc:
            self._send({"id": message["id"], "error": repr(exc)})

    def close(self) -> None:
        self._task.cancel()


# --- the SFU process -------------------------------------------------------------------


async def serve() -> None:
    """Serve one :class:`sfu.Worker` over stdin/stdout until ``stop``."""
    sys.path.insert(0, ROOT)
    from sfu import MediaSettings, Worker
    from sfu.simulcast import SimulcastProducer

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, sys.stdout
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    # CAUCUS_BENCH_PIN_LAYERS=1: no layer selection of the worker's own; ``spread_layers``
    # places the subscribers of a simulcast camera (the benchmark's own spread)
    pinned = os.environ.get("CAUCUS_BENCH_PIN_LAYERS") == "1"
    worker = Worker(MediaSettings(layer_interval=0) if pinned else None)
    done = asyncio.Event()
    rpc: LineRpc

    async def create_transport(participant_id: str, direction: str) -> str:
        transport = await worker.create_transport(participant_id, direction)
        if direction == "subscribe":

            async def negotiator(offer: str) -> str:
                return await rpc.call("subscribe_offer", participant_id, offer)

            transport.negotiator = negotiator
        return transport.id

    async def accept_offer(transport_id: str, sdp: str) -> str:
        return await worker.transport(transport_id).accept_offer(sdp)

    async def join(participant_id: str, room: str = ROOM) -> None:
        worker.router(room).join(participant_id)

    async def counters() -> dict:
        times = os.times()
        forwarded = sum(
            c.packets for t in worker.transports for c in t.consumers.values() if c.started
        )
        forwarded_bytes = sum(
            c.bytes for t in worker.transports for c in t.consumers.values() if c.started
        )
        received = sum(p.packets for t in worker.transports for p in t.producers.values())
        return {
            "user": times.user,
            "sys": times.system,
            # every thread's CPU time to the nanosecond (os.times() counts 10 ms ticks)
            "cpu": time.process_time(),
            "forwarded": forwarded,
            "forwarded_bytes": forwarded_bytes,
            "received": received,
            # the receive poller's wake-ups and the datagrams they read
            "polls": worker.receive_poller.polls if worker.receive_poller else 0,
            "datagrams": worker.receive_poller.datagrams if worker.receive_poller else 0,
        }

    async def spread_layers() -> list[int]:
        """Consumer k of each simulcast camera forwards layer k modulo the layers (from
        that layer's next keyframe); returns how many consumers each layer got."""
        counts: list[int] = []
        for transport in worker.transports:
            for producer in transport.producers.values():
                if not isinstance(producer, SimulcastProducer):
                    continue
                counts = [0] * len(producer.layers)
                for k, consumer in enumerate(list(producer.consumers)):
                    layer = k % len(producer.layers)
                    consumer.select_layer(layer)
                    counts[layer] += 1
        return counts

    async def layers_settled() -> bool:
        """Every consumer of a simulcast camera forwards the layer it was given."""
        return all(
            c.switching_to is None and c.layer is not None and not c._paused
            for t in worker.transports
            for p in t.producers.values()
            if isinstance(p, SimulcastProducer)
            for c in p.consumers
        )

    async def stop() -> None:
        await worker.close()
        done.set()

    rpc = LineRpc(
        reader,
        writer,
        {
            "create_transport": create_transport,
            "accept_offer": accept_offer,
            "join": join,
            "counters": counters,
            "spread_layers": spread_layers,
            "layers_settled": layers_settled,
            "stop": stop,
        },
    )
    await done.wait()


async def serve_main() -> None:
    """:func:`serve`, under cProfile when ``CAUCUS_BENCH_PROFILE`` names a file; the
    collector set up as a media worker process sets it (``sfu.heap``: start-up heap
    frozen, young generation collected every 10,000 allocations), without which
    full collections pause the process for tens to hundreds of milliseconds."""
    sys.path.insert(0, ROOT)
    import sfu  # noqa: F401  (what a worker has imported when it freezes its heap)
    from sfu.heap import freeze_startup_heap

    freeze_startup_heap()
    profile = os.environ.get("CAUCUS_BENCH_PROFILE")
    if not profile:
        await serve()
        return
    import cProfile

    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    try:
        await serve()
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


# --- the driver ------------------------------------------------------------------------

OfferHandler = Callable[[str], Awaitable[str]]


class RemoteSignal:
    """A :class:`client.Signal` that negotiates with the SFU process over :class:`LineRpc`;
    joins ``room``."""

    def __init__(self, rpc: LineRpc, offer_handlers: dict, room: str = ROOM) -> None:
        self.on_ended: Callable[[str], None] | None = None
        #: The load client's owner lookup: nothing is said of who a mid carries here.
        self.tracks: dict[str, dict] = {}
        self._rpc = rpc
        self._offer_handlers = offer_handlers
        self._room = room
        self._publish: str | None = None

    async def connect(self, participant_id: str, on_subscribe_offer: OfferHandler) -> None:
        self._participant_id = participant_id
        self._offer_handlers[participant_id] = on_subscribe_offer
        await self._rpc.call("create_transport", participant_id, "subscribe")
        await self._rpc.call("join", participant_id, self._room)

    async def publish(self, offer_sdp: str) -> str:
        if self._publish is None:
            self._publish = await self._rpc.call(
                "create_transport", self._participant_id, "publish"
            )
        return await self._rpc.call("accept_offer", self._publish, offer_sdp)

    async def close(self) -> None:
        return None


class SfuProcess:
    """The child process serving one worker, and the driver's end of its RPC."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._offer_handlers: dict[str, OfferHandler] = {}

        async def subscribe_offer(participant_id: str, offer: str) -> str:
            return await self._offer_handlers[participant_id](offer)

        assert process.stdout is not None and process.stdin is not None
        self.rpc = LineRpc(process.stdout, process.stdin, {"subscribe_offer": subscribe_offer})

    @classmethod
    async def start(cls, command: list[str] | None = None) -> SfuProcess:
        """Start ``python bench/_sfu_process.py`` (or ``command``, which must serve)."""
        process = await asyncio.create_subprocess_exec(
            *(command or [sys.executable, SCRIPT]),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        return cls(process)

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, room: str = ROOM) -> RemoteSignal:
        return RemoteSignal(self.rpc, self._offer_handlers, room)

    async def counters(self) -> dict:
        return await self.rpc.call("counters")

    async def stop(self) -> None:
        try:
            async with asyncio.timeout(30):
                await self.rpc.call("stop")
        except (RuntimeError, TimeoutError):
            self.process.kill()
        finally:
            self.rpc.close()
            await self.process.wait()


if __name__ == "__main__":
    asyncio.run(serve_main())
