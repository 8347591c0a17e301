"""Round trip of the channel between a signaling node and a media worker (loopback TCP).

A worker-side process answers ``echo`` calls with ``signaling.cluster.rpc``; this process calls it
one at a time (latency) and then with 32 calls in flight (throughput), with a payload the
size of a forwarded ``media.publish`` event (an SDP offer of ~4 kB).  Prints JSON::

    {"sequential": {"calls", "p50_us", "p99_us"}, "concurrent": {"calls", "calls_per_s"}}

    .venv/bin/python bench/cluster_rpc.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from typing import Any

from signaling.cluster.rpc import RpcConnection

SECRET = "benchmark cluster secret"


async def _serve(port_queue: Any) -> None:
    async def handler(method: str, params: dict[str, Any]) -> Any:
        return params

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await RpcConnection.accept(reader, writer, SECRET, handler)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port_queue.put(server.sockets[0].getsockname()[1])
    await asyncio.Event().wait()


def _worker(port_queue: Any) -> None:
    asyncio.run(_serve(port_queue))


async def _ignore(method: str, params: dict[str, Any]) -> None:
    return None


async def measure(port: int, calls: int) -> dict[str, Any]:
    connection = await RpcConnection.connect("127.0.0.1", port, SECRET, _ignore)
    payload = {"event": "media.publish", "payload": {"case_id": "c" * 32, "sdp": "a=x\r\n" * 800}}
    try:
        for _ in range(100):  # warm up
            await connection.call("echo", payload)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            await connection.call("echo", payload)
            times.append((time.perf_counter() - start) * 1e6)
        times.sort()
        in_flight = 32
        start = time.perf_counter()
        for _ in range(calls // in_flight):
            await asyncio.gather(*(connection.call("echo", payload) for _ in range(in_flight)))
        elapsed = time.perf_counter() - start
        done = (calls // in_flight) * in_flight
        return {
            "payload_bytes": len(json.dumps(payload)),
            "sequential": {
                "calls": calls,
                "p50_us": round(statistics.median(times), 1),
                "p99_us": round(times[int(len(times) * 0.99) - 1], 1),
            },
            "concurrent": {
                "calls": done,
                "in_flight": in_flight,
                "calls_per_s": round(done / elapsed),
            },
        }
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    queue: Any = multiprocessing.Queue()
    worker = multiprocessing.Process(target=_worker, args=(queue,), daemon=True)
    worker.start()
    try:
        port = queue.get(timeout=30)
        print(json.dumps(asyncio.run(measure(port, args.calls)), indent=2))
    finally:
        worker.terminate()
        worker.join()


if __name__ == "__main__":
    main()
