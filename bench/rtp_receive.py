"""Benchmark the CPU cost of one received RTP packet, on the SFU and in the load client.

Both ends run in this process over loopback: an SFU :class:`sfu.Worker`, a publisher
peer connection that negotiates a VP8 track but sends nothing by itself, and a load-test
subscriber (:class:`client.loadtest.LoadParticipant`, the load client's own receive path:
a :class:`client.track_stats.TrackStats` per track).  A separate sender process then
replays SRTP datagrams protected in advance with the real sessions, at a steady rate in
bursts (a video frame's packets leave back to back), to one socket at a time:

* ``sfu``: to the SFU's publish socket, as the publisher's stream (header extensions as
  the publisher negotiated them: mid, abs-send-time, transport-cc); nobody subscribes,
  so this is the receive path alone: datagram → ICE → SRTP unprotect → RTP → producer.
* ``client``: to the subscriber's socket, as the SFU's forwarded stream (its
  abs-send-time block, a payload stamped with its send time on the frame's last packet).

The figure is this process's CPU (user + system, ``resource.getrusage``) during the
replay minus its CPU over an idle window of the same length (timers, consent checks,
RTCP), divided by the packets the receiver counted.  Each side is measured ``--repeat``
times; the row gives the median and every run.

    .venv/bin/python bench/rtp_receive.py [--rate 1000] [--burst 4] [--seconds 6] [--repeat 3]
        [--pin]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.rtcrtpparameters import RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from client.loadtest import LoadParticipant
from client.stamped import stamp
from sfu import Worker, rtc
from sfu.rtc.internals import nominated_pair, tx_session

SCRIPT = os.path.abspath(__file__)
ROOM = "bench"
PAYLOAD = 1000  # bytes per packet, like a VP8 frame split in ~1 KB packets


def nominated_local_address(dtls) -> tuple[str, int]:
    """The (address, port) of the socket of ``dtls``'s nominated pair."""
    return tuple(nominated_pair(dtls).protocol.transport.get_extra_info("sockname")[:2])


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the sender process ----------------------------------------------------------------


def send() -> None:
    """Replays the datagrams it is given on stdin, paced: a line of hex-encoded pickled
    datagrams loads them, a ``go`` line sends them."""
    import socket

    job = pickle.load(sys.stdin.buffer)
    if job["core"] is not None:
        os.sched_setaffinity(0, {job["core"]})
    family = socket.AF_INET6 if ":" in job["addr"][0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    print("ready", flush=True)
    packets: list[bytes] = []
    for line in sys.stdin:
        if line.strip() != "go":
            packets = pickle.loads(bytes.fromhex(line.strip()))
            print("loaded", flush=True)
            continue
        interval = job["burst"] / job["rate"]
        start = time.monotonic()
        for index in range(0, len(packets), job["burst"]):
            due = start + index // job["burst"] * interval
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            for data in packets[index : index + job["burst"]]:
                sock.sendto(data, job["addr"])
        print("done", flush=True)


class Sender:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    async def start(
        cls, addr: tuple[str, int], rate: float, burst: int, core: int | None
    ) -> Sender:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            SCRIPT,
            "--send",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        job = {"addr": addr, "rate": rate, "burst": burst, "core": core}
        process.stdin.write(pickle.dumps(job))
        await process.stdin.drain()
        assert (await process.stdout.readline()).strip() == b"ready"
        return cls(process)

    async def load(self, packets: list[bytes]) -> None:
        self._process.stdin.write(pickle.dumps(packets).hex().encode() + b"\n")
        await self._process.stdin.drain()
        assert (await self._process.stdout.readline()).strip() == b"loaded"

    async def replay(self) -> None:
        """Send what was loaded; returns when the last datagram has left."""
        self._process.stdin.write(b"go\n")
        await self._process.stdin.drain()
        assert (await self._process.stdout.readline()).strip() == b"done"

    async def stop(self) -> None:
        self._process.stdin.close()
        await self._process.wait()


# --- the set-up ------------------------------------------------------------------------


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


def _extensions_map(transceiver) -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(headerExtensions=rtc.negotiated_header_extensions(transceiver))
    )
    return extensions


class Stream:
    """Makes the SRTP datagrams of one RTP stream: consecutive sequence numbers and
    90 kHz timestamps, ``burst`` packets per frame, the marker on a frame's last one."""

    def __init__(self, dtls, ssrc: int, payload_type: int, transceiver, mid: str | None):
        self._session = tx_session(dtls)
        self._ssrc = ssrc
        self._payload_type = payload_type
        self._extensions = _extensions_map(transceiver)
        self._mid = mid
        self._seq = 1000
        self._timestamp = 0
        self._transport_seq = 0
        self._body = os.urandom(PAYLOAD)

    def packets(self, count: int, burst: int, stamped: bool) -> list[bytes]:
        out = []
        for index in range(count):
            last = index % burst == burst - 1
            payload = self._body
            if stamped and last:
                payload = payload[: -len(stamp())] + stamp()
            packet = RtpPacket(
                payload_type=self._payload_type,
                marker=int(last),
                sequence_number=self._seq & 0xFFFF,
                timestamp=self._timestamp & 0xFFFFFFFF,
                ssrc=self._ssrc,
                payload=payload,
            )
            packet.extensions.abs_send_time = (self._seq * 37) & 0xFFFFFF
            packet.extensions.mid = self._mid
            packet.extensions.transport_sequence_number = self._transport_seq & 0xFFFF
            self._seq += 1
            self._transport_seq += 1
            if last:
                self._timestamp += 3000
            out.append(self._session.protect(packet.serialize(self._extensions)))
        return out


async def _until(condition, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110  # aiortc objects have no change events
            await asyncio.sleep(0.05)


async def measure(
    sender: Sender, stream: Stream, count, burst: int, seconds: float, rate: float, stamped
) -> dict:
    await sender.load(stream.packets(int(seconds * rate), burst, stamped))
    await asyncio.sleep(0.5)
    idle_start = _cpu()
    idle_began = time.monotonic()
    await asyncio.sleep(seconds)
    idle = (_cpu() - idle_start) / (time.monotonic() - idle_began)
    received = count()
    cpu_start = _cpu()
    began = time.monotonic()
    await sender.replay()
    await asyncio.sleep(0.2)  # what is still queued in the socket
    elapsed = time.monotonic() - began
    cpu = _cpu() - cpu_start
    got = count() - received
    return {
        "sent": int(seconds * rate),
        "received": got,
        "us_per_packet": round((cpu - idle * elapsed) * 1e6 / max(1, got), 2),
        "us_per_packet_raw": round(cpu * 1e6 / max(1, got), 2),
        "idle_ms_per_s": round(idle * 1e3, 2),
    }


def _summary(runs: list[dict]) -> dict:
    return {
        "us_per_packet": statistics.median(r["us_per_packet"] for r in runs),
        "us_per_packet_raw": statistics.median(r["us_per_packet_raw"] for r in runs),
        "runs": runs,
    }


async def run(rate: float, burst: int, seconds: float, repeat: int, pin: bool) -> dict:
    sender_core = None
    if pin:  # this process on core 1, the sender on core 0
        os.sched_setaffinity(0, {1})
        sender_core = 0
    worker = Worker()
    publisher = _pc()
    subscriber = LoadParticipant(
        room=0,
        case_id="",
        account={"username": "sub", "display_name": "sub"},
        publishes=False,
        signal=None,  # type: ignore[arg-type]  # negotiated directly below
    )
    try:
        # the publisher: a VP8 track that sends nothing by itself
        transceiver = publisher.addTransceiver(rtc.IdleTrack("video"), direction="sendonly")
        transceiver.setCodecPreferences(
            [
                c
                for c in RTCRtpSender.getCapabilities("video").codecs
                if c.mimeType.lower() in ("video/vp8", "video/rtx")
            ]
        )
        await publisher.setLocalDescription(await publisher.createOffer())
        publish = await worker.create_transport("pub", "publish")
        answer = await publish.accept_offer(publisher.localDescription.sdp)
        await publisher.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await _until(
            lambda: (
                publish.connection_state == "connected" and publisher.connectionState == "connected"
            )
        )
        producer = next(iter(publish.producers.values()))
        worker.router(ROOM).join("pub")

        # the SFU's publish socket, fed the publisher's stream
        sfu_stream = Stream(
            transceiver.sender.transport,
            rtc.sender_ssrcs(transceiver.sender)[0],
            rtc.negotiated_codecs(transceiver)[0].payloadType,
            transceiver,
            transceiver.mid,
        )
        sfu_runs = []
        sender = await Sender.start(
            nominated_local_address(dtls_of(publish)), rate, burst, sender_core
        )
        try:
            for _ in range(repeat):
                sfu_runs.append(
                    await measure(
                        sender, sfu_stream, lambda: producer.packets, burst, seconds, rate, False
                    )
                )
        finally:
            await sender.stop()

        # the load client's subscribe connection, fed the SFU's forwarded stream
        subscribe = await worker.create_transport("sub", "subscribe")
        subscribe.negotiator = subscriber._on_offer
        worker.router(ROOM).join("sub")
        await _until(
            lambda: (
                subscribe.connection_state == "connected"
                and subscriber._subscribe_pc is not None
                and subscriber._subscribe_pc.connectionState == "connected"
                and subscriber.tracks
            )
        )
        consumer = next(iter(subscribe.consumers.values()))
        client_transceiver = subscriber._subscribe_pc.getTransceivers()[0]
        stats = subscriber.tracks[client_transceiver.mid]
        client_stream = Stream(
            dtls_of(subscribe),
            consumer.stats()["ssrc"],
            rtc.negotiated_codecs(client_transceiver)[0].payloadType,
            client_transceiver,
            None,
        )
        client_runs = []
        sender = await Sender.start(
            nominated_local_address(client_transceiver.receiver.transport),
            rate,
            burst,
            sender_core,
        )
        try:
            for _ in range(repeat):
                client_runs.append(
                    await measure(
                        sender, client_stream, lambda: stats.packets, burst, seconds, rate, True
                    )
                )
        finally:
            await sender.stop()
        return {
            "rate_pps": rate,
            "burst": burst,
            "seconds": seconds,
            "pinned": pin,
            "sfu_us_per_received_packet": _summary(sfu_runs),
            "client_us_per_received_packet": _summary(client_runs),
        }
    finally:
        await subscriber.close()
        await publisher.close()
        await worker.close()


def dtls_of(transport):
    """The DTLS transport of an SFU transport's peer connection (BUNDLE: the first)."""
    return transport._pc.getTransceivers()[0].sender.transport


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--send", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=1000.0, help="packets per second")
    parser.add_argument("--burst", type=int, default=4, help="packets per frame")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--pin", action="store_true", help="this process on core 1, the sender on core 0"
    )
    args = parser.parse_args()
    print(json.dumps(await run(args.rate, args.burst, args.seconds, args.repeat, args.pin)))


if __name__ == "__main__":
    if "--send" in sys.argv:
        send()
    else:
        asyncio.run(main())
