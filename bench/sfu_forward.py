"""Benchmark the SFU's forwarding cost.

One publisher of pre-encoded VP8 (about 100 packets/s), N subscribers over loopback,
the SFU in its own process.  Prints one JSON row per N::

    {"subscribers": N, "forwarded_pps": ..., "cpu_us_per_packet": ..., "loss_pct": ...,
     "sfu_user_us_per_packet": ..., "sfu_sys_us_per_packet": ..., "publisher_pps": ...,
     "sfu_cpu_ms_per_s": ..., "sfu_us_per_received_packet": ...,
     "client_cpu_ms_per_s": ..., "client_us_per_received_packet": ...}

cpu_us_per_packet is the SFU process's CPU time (user + system, from ``os.times()`` in
that process) divided by the packets it forwarded during the measurement window; the
``sfu_user``/``sfu_sys`` keys split it (``null`` with 0 subscribers).  ``publisher_pps``
is what the SFU received from the publisher, ``sfu_cpu_ms_per_s`` the SFU's CPU per
wall-clock second, ``sfu_us_per_received_packet`` that CPU divided by the packets
received from the publisher (the receive side's cost where nothing is forwarded, the
0-subscriber row; at ~100 packets/s it includes the SFU's timers, RTCP and consent
checks: ``bench/rtp_receive.py`` isolates the per-packet part).  ``client_cpu_ms_per_s``
is the CPU of this driver process, which runs every client: subscribers only count
packets (no decoding), the publisher sends a pre-encoded clip;
``client_us_per_received_packet`` divides it by the packets the subscribers received
(the publisher's share included, ~1 µs per packet at N = 50).

    .venv/bin/python bench/sfu_forward.py --json [--subscribers 0 1 10 50] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from client import Participant, encode_vp8_clip

ROOM = "bench"
SCRIPT = os.path.abspath(__file__)


class LineRpc:
    """Symmetric JSON-lines RPC over a pair of asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer, handlers: dict) -> None:
        self._reader = reader
        self._writer = writer
        self._handlers = handlers
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future] = {}
        self._task = asyncio.ensure_future(self._run())
        self._serving: set[asyncio.Future] = set()

    async def call(self, method: str, *params):
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
    from sfu import Worker

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, sys.stdout
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    worker = Worker()
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

    async def join(participant_id: str) -> None:
        worker.router(ROOM).join(participant_id)

    async def counters() -> dict:
        times = os.times()
        forwarded = sum(
            c.packets for t in worker.transports for c in t.consumers.values() if c.started
        )
        received = sum(p.packets for t in worker.transports for p in t.producers.values())
        return {
            "user": times.user,
            "sys": times.system,
            "forwarded": forwarded,
            "received": received,
        }

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
            "stop": stop,
        },
    )
    await done.wait()


# --- the driver ------------------------------------------------------------------------


class RemoteSignal:
    """Negotiates with the SFU process over :class:`LineRpc`."""

    def __init__(self, rpc: LineRpc, offer_handlers: dict) -> None:
        self._rpc = rpc
        self._offer_handlers = offer_handlers
        self._publish: str | None = None

    async def connect(self, participant_id: str, on_subscribe_offer) -> None:
        self._participant_id = participant_id
        self._offer_handlers[participant_id] = on_subscribe_offer
        await self._rpc.call("create_transport", participant_id, "subscribe")
        await self._rpc.call("join", participant_id)

    async def publish(self, offer_sdp: str) -> str:
        if self._publish is None:
            self._publish = await self._rpc.call(
                "create_transport", self._participant_id, "publish"
            )
        return await self._rpc.call("accept_offer", self._publish, offer_sdp)

    async def close(self) -> None:
        return None


async def run(subscribers: int, seconds: float, clip: list[bytes]) -> dict:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        SCRIPT,
        "--serve",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    offer_handlers: dict = {}

    async def subscribe_offer(participant_id: str, offer: str) -> str:
        return await offer_handlers[participant_id](offer)

    rpc = LineRpc(process.stdout, process.stdin, {"subscribe_offer": subscribe_offer})
    clients = [
        Participant(
            f"s{i}", RemoteSignal(rpc, offer_handlers), audio=False, video=None, decode=False
        )
        for i in range(subscribers)
    ]
    publisher = Participant(
        "publisher", RemoteSignal(rpc, offer_handlers), audio=False, video="preencoded", clip=clip
    )
    try:
        for client in clients:
            await client.join()
        await publisher.join()
        async with asyncio.timeout(30):
            for client in clients:
                await client.wait_until(lambda p: any(t.packets for t in p.tracks.values()))
            # the SFU is another process: polling its counters is the way to wait
            while not (await rpc.call("counters"))["received"]:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # let connection set-up traffic settle before measuring

        def received() -> int:
            return sum(t.packets for c in clients for t in c.tracks.values())

        start = await rpc.call("counters")
        received_start = received()
        client_start = os.times()
        began = time.monotonic()
        await asyncio.sleep(seconds)
        end = await rpc.call("counters")
        elapsed = time.monotonic() - began
        client_end = os.times()
        forwarded = end["forwarded"] - start["forwarded"]
        got = received() - received_start
        user = end["user"] - start["user"]
        system = end["sys"] - start["sys"]
        client_cpu = (client_end.user - client_start.user) + (
            client_end.system - client_start.system
        )
        received_by_sfu = end["received"] - start["received"]

        def per(cpu: float, packets: int) -> float | None:
            return round(cpu * 1e6 / packets, 2) if packets else None

        return {
            "subscribers": subscribers,
            "forwarded_pps": round(forwarded / elapsed, 1),
            "cpu_us_per_packet": per(user + system, forwarded),
            "loss_pct": round(max(0.0, 1 - got / forwarded) * 100, 2) if forwarded else 0.0,
            "sfu_user_us_per_packet": per(user, forwarded),
            "sfu_sys_us_per_packet": per(system, forwarded),
            "publisher_pps": round(received_by_sfu / elapsed, 1),
            "sfu_cpu_ms_per_s": round((user + system) / elapsed * 1e3, 1),
            "sfu_us_per_received_packet": per(user + system, received_by_sfu),
            "client_cpu_ms_per_s": round(client_cpu / elapsed * 1e3, 1),
            "client_us_per_received_packet": per(client_cpu, got),
        }
    finally:
        await rpc.call("stop")
        rpc.close()
        for participant in [publisher, *clients]:
            await participant.close()
        await process.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[0, 1, 10, 50])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if args.serve:
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
        return
    clip = encode_vp8_clip()
    rows = [await run(n, args.seconds, clip) for n in args.subscribers]
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(row)


if __name__ == "__main__":
    asyncio.run(main())
