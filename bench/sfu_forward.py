"""Benchmark the SFU's forwarding cost.

One publisher of pre-encoded VP8 (by default the clip of ``bench/versus_janus.py``'s
fan-out, ``FANOUT_CLIP`` in ``bench/_sfu_process.py``: 640x480, ~4.7 Mbit/s, ~480
packets/s; ``--width --height --bitrate`` choose another, e.g. ``320 240 1000000`` for the
~100 packets/s of the figures in sfu/README.md), N subscribers over loopback, the SFU in
its own process (``bench/_sfu_process.py``).  The clients are those of
``bench/versus_janus.py`` (``BenchParticipant``: the load client's publisher, which sends
each frame's packets in one ``sendmmsg``, and receivers counting in C), so that a row
here and the same fan-out step there measure the same thing.  With ``--simulcast N...``
(50 by default) the publisher also sends its camera as three simulcast layers (the load client's
320x180, 640x360 and 1280x720 clips, rids q/h/f) to N subscribers spread evenly over the
layers (the SFU's own layer selection off, ``CAUCUS_BENCH_PIN_LAYERS``); that row carries
``simulcast_layers`` (subscribers per layer) and ``ratio_to_single_layer`` (its
cpu_us_per_packet over the single-layer row's with as many subscribers, same run).

After each measurement window the publisher pauses and the SFU's CPU is measured as long
again with the same connections and no media (``sfu_idle_cpu_ms_per_s``: timers, RTCP,
consent checks); ``marginal_us_per_packet`` is the CPU above that per forwarded packet,
and ``marginal_ratio_to_single_layer`` compares a simulcast row's with the single-layer
row's.  The plain figure divides the fixed cost by the packets forwarded, so a stream of
fewer packets (three layers of 150, 500 and 1,200 kbit/s against one of 4.7 Mbit/s,
each packet going to a third of the subscribers) shows a higher one for the same work.
``cpu_us_per_kbyte`` divides the same CPU by the kilobytes of RTP forwarded (and
``ratio_to_single_layer_per_kbyte`` compares those), ``datagrams_per_wakeup`` is how many
datagrams each wake-up of the SFU's receive poller read.
Prints one JSON row per N::

    {"subscribers": N, "forwarded_pps": ..., "cpu_us_per_packet": ..., "loss_pct": ...,
     "sfu_user_us_per_packet": ..., "sfu_sys_us_per_packet": ..., "publisher_pps": ...,
     "sfu_cpu_ms_per_s": ..., "sfu_us_per_received_packet": ...,
     "client_cpu_ms_per_s": ..., "client_us_per_received_packet": ...}

cpu_us_per_packet is the SFU process's CPU time (``time.process_time()`` in that process:
every thread, to the nanosecond) divided by the packets it forwarded during the
measurement window; the ``sfu_user``/``sfu_sys`` keys split it (from ``os.times()``, in
10 ms ticks; ``null`` with 0 subscribers).  ``publisher_pps``
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
        [--width 640 --height 480 --bitrate 4000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _sfu_process import FANOUT_CLIP, SfuProcess, serve_main
from versus_janus import BenchParticipant

from client import encode_vp8_clip
from client.direct_publish import PacketizedClip, packetize_vp8
from client.receive_poller import ReceivePoller
from client.simulcast_clips import LayerClip, simulcast_clips
from sfu import rtc


async def run(
    subscribers: int,
    seconds: float,
    clip: PacketizedClip,
    simulcast: Sequence[LayerClip] | None = None,
    repeat: int = 1,
) -> dict:
    sfu = await SfuProcess.start()
    rpc = sfu.rpc
    poller = ReceivePoller() if rtc.FASTRECEIVE else None
    clients = [BenchParticipant(f"s{i}", sfu.signal(), poller) for i in range(subscribers)]
    publisher = BenchParticipant("publisher", sfu.signal(), poller)
    try:
        for client in clients:
            await client.enter([])
        if simulcast is None:
            await publisher.enter([clip])
        else:
            await publisher.enter([], simulcast=simulcast)
        async with asyncio.timeout(30):
            # the SFU is another process and the clients count in C: polling is the way
            while not (  # noqa: ASYNC110
                all(c.flowing() for c in clients) and (await rpc.call("counters"))["received"]
            ):
                await asyncio.sleep(0.1)
        spread = None
        if simulcast is not None:
            spread = await rpc.call("spread_layers")
            async with asyncio.timeout(30):
                while not await rpc.call("layers_settled"):  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # let connection set-up traffic settle before measuring

        def received() -> int:
            if poller is not None:
                poller.poll()
            return sum(t.packets for c in clients for t in c.tracks.values())

        async def window() -> dict:
            """One measurement window: the counters at both ends and the CPU between."""
            start = await rpc.call("counters")
            received_start = received()
            client_start = os.times()
            began = time.monotonic()
            await asyncio.sleep(seconds)
            end = await rpc.call("counters")
            elapsed = time.monotonic() - began
            client_end = os.times()
            return {
                "start": start,
                "end": end,
                "elapsed": elapsed,
                "got": received() - received_start,
                "client_cpu": (client_end.user - client_start.user)
                + (client_end.system - client_start.system),
                "forwarded": end["forwarded"] - start["forwarded"],
                "cpu": end["cpu"] - start["cpu"],
            }

        def per(cpu: float, packets: int) -> float | None:
            return round(cpu * 1e6 / packets, 2) if packets else None

        windows = [await window() for _ in range(repeat)]
        # the median window by CPU per forwarded packet: one busy moment of the machine
        # (or one quiet one) does not make the row
        ranked = sorted(windows, key=lambda w: w["cpu"] / w["forwarded"] if w["forwarded"] else 0)
        chosen = ranked[len(ranked) // 2]
        start, end, elapsed = chosen["start"], chosen["end"], chosen["elapsed"]
        forwarded, got, cpu = chosen["forwarded"], chosen["got"], chosen["cpu"]
        client_cpu = chosen["client_cpu"]
        user = end["user"] - start["user"]
        system = end["sys"] - start["sys"]
        received_by_sfu = end["received"] - start["received"]

        # the same connections without media: what the SFU spends anyway (timers, RTCP,
        # consent checks), to tell the cost of forwarding itself
        assert publisher.publisher is not None
        for stream in publisher.publisher.streams:
            stream.pause()
        await asyncio.sleep(1)
        idle_start = await rpc.call("counters")
        idle_began = time.monotonic()
        await asyncio.sleep(seconds)
        idle_end = await rpc.call("counters")
        idle_rate = (idle_end["cpu"] - idle_start["cpu"]) / (time.monotonic() - idle_began)
        marginal = cpu - idle_rate * elapsed

        return {
            "subscribers": subscribers,
            **({"simulcast_layers": spread} if spread is not None else {}),
            "forwarded_pps": round(forwarded / elapsed, 1),
            "cpu_us_per_packet": per(cpu, forwarded),
            **(
                {"windows_cpu_us_per_packet": [per(w["cpu"], w["forwarded"]) for w in windows]}
                if repeat > 1
                else {}
            ),
            "loss_pct": round(max(0.0, 1 - got / forwarded) * 100, 2) if forwarded else 0.0,
            "sfu_user_us_per_packet": per(user, forwarded),
            "sfu_sys_us_per_packet": per(system, forwarded),
            "publisher_pps": round(received_by_sfu / elapsed, 1),
            "sfu_cpu_ms_per_s": round(cpu / elapsed * 1e3, 1),
            "sfu_us_per_received_packet": per(cpu, received_by_sfu),
            "client_cpu_ms_per_s": round(client_cpu / elapsed * 1e3, 1),
            "client_us_per_received_packet": per(client_cpu, got),
            "sfu_idle_cpu_ms_per_s": round(idle_rate * 1e3, 1),
            "marginal_us_per_packet": per(marginal, forwarded),
            # the same CPU per forwarded kilobyte of RTP (before SRTP): packets of a low
            # simulcast layer are fewer per frame and smaller, so its fan-out batches less
            "cpu_us_per_kbyte": per(
                cpu, (end["forwarded_bytes"] - start["forwarded_bytes"]) // 1000
            ),
            "forwarded_bytes_per_packet": (
                round((end["forwarded_bytes"] - start["forwarded_bytes"]) / forwarded)
                if forwarded
                else None
            ),
            # how many datagrams each wake-up of the SFU's receive poller read
            "datagrams_per_wakeup": (
                round((end["datagrams"] - start["datagrams"]) / (end["polls"] - start["polls"]), 2)
                if end["polls"] > start["polls"]
                else None
            ),
        }
    finally:
        await sfu.stop()
        for participant in [publisher, *clients]:
            await participant.close()
        if poller is not None:
            poller.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[0, 1, 10, 50])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measurement windows per row, back to back; the row is the median one "
        "(windows_cpu_us_per_packet lists them all)",
    )
    parser.add_argument("--width", type=int, default=FANOUT_CLIP["width"])
    parser.add_argument("--height", type=int, default=FANOUT_CLIP["height"])
    parser.add_argument("--bitrate", type=int, default=FANOUT_CLIP["bitrate"])
    parser.add_argument(
        "--simulcast",
        type=int,
        nargs="*",
        default=[50],
        help="subscriber counts of the simulcast rows (three layers, subscribers spread "
        "over them; none: no simulcast row)",
    )
    args = parser.parse_args()
    if args.serve:  # the SFU process (CAUCUS_BENCH_PROFILE=file profiles it)
        await serve_main()
        return
    clip = packetize_vp8(
        encode_vp8_clip(width=args.width, height=args.height, bitrate=args.bitrate)
    )
    # no layer selection of the SFU's own: the simulcast rows spread subscribers themselves
    os.environ["CAUCUS_BENCH_PIN_LAYERS"] = "1"
    if args.repeat < 1:
        parser.error("--repeat is at least 1")
    rows = [await run(n, args.seconds, clip, repeat=args.repeat) for n in args.subscribers]
    if args.simulcast:
        layers = simulcast_clips()
        rows += [await run(n, args.seconds, clip, layers, args.repeat) for n in args.simulcast]
        single = {r["subscribers"]: r for r in rows if "simulcast_layers" not in r}
        for row in rows:
            base = single.get(row["subscribers"]) if "simulcast_layers" in row else None
            if base and base["cpu_us_per_packet"] and row["cpu_us_per_packet"]:
                row["ratio_to_single_layer"] = round(
                    row["cpu_us_per_packet"] / base["cpu_us_per_packet"], 3
                )
            if base and base["cpu_us_per_kbyte"] and row["cpu_us_per_kbyte"]:
                row["ratio_to_single_layer_per_kbyte"] = round(
                    row["cpu_us_per_kbyte"] / base["cpu_us_per_kbyte"], 3
                )
            if base and base["marginal_us_per_packet"] and row["marginal_us_per_packet"]:
                row["marginal_ratio_to_single_layer"] = round(
                    row["marginal_us_per_packet"] / base["marginal_us_per_packet"], 3
                )
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(row)


if __name__ == "__main__":
    asyncio.run(main())
