"""What the hostile-peer tests of the media path share: a worker with short abuse windows,
a room of victims whose media is watched, and an attacker's raw access to its own
DTLS-SRTP session (so that the SFU decrypts everything it sends)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from dataclasses import dataclass, field

from aiortc import RTCPeerConnection

from client import LocalSignal, Participant
from sfu import MediaSettings, Transport, Worker, rtc
from tests.support.media import participant

RTP_HEADER = struct.Struct("!BBHII")


def hostile_settings(**overrides: object) -> MediaSettings:
    """The defaults, with abuse windows short enough for a test to see them end."""
    values: dict[str, object] = {"abuse_window": 1.0, "remb_expiry": 1.0}
    values.update(overrides)
    return MediaSettings(**values)  # type: ignore[arg-type]


def raw_writer(pc: RTCPeerConnection) -> rtc.RtpWriter:
    """A writer on ``pc``'s own (connected) DTLS transport: what it sends is protected
    with the peer's real keys, as a signed-in participant's hostile client would."""
    dtls = pc.getTransceivers()[0].sender.transport
    return rtc.RtpWriter(dtls)


def rtp(ssrc: int, seq: int, payload_type: int = 96, payload: bytes = b"\x00" * 160) -> bytes:
    return (
        RTP_HEADER.pack(0x80, payload_type, seq & 0xFFFF, seq * 3000 & 0xFFFFFFFF, ssrc) + payload
    )


def sfu_addresses(transport: Transport) -> list[tuple[str, int]]:
    return rtc.local_addresses(transport._pc)


def send_datagrams(addresses: list[tuple[str, int]], datagrams: list[bytes]) -> None:
    """Plain UDP from an address no participant uses (an outside attacker)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for address in addresses:
            if ":" in address[0]:
                continue  # IPv4 only here; the IPv6 sockets are the same code
            for datagram in datagrams:
                sock.sendto(datagram, address)


@dataclass
class MediaWatch:
    """Samples a subscriber's received packet count every 50 ms while an attack runs:
    the longest time its count stood still, and how many packets arrived."""

    subscriber: Participant
    samples: list[tuple[float, int]] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def count(self) -> int:
        """Packets counted (a counting subscriber) plus frames decoded (a decoding one)."""
        return sum(t.packets + t.frames for t in self.subscriber.tracks.values())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = time.monotonic()
            self.samples.append((now, self.count()))
            due = loop.time() + 0.05
            await asyncio.sleep(0.05)
            # how late the event loop (the SFU's, in process) ran this sampler
            self.lags.append(max(0.0, loop.time() - due))

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def until_more(self, count: int, within: float = 10.0) -> None:
        """Wait until the victim received ``count`` more packets (or frames) than now."""
        target = self.count() + count
        async with asyncio.timeout(within):
            while self.count() < target:  # noqa: ASYNC110
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self.samples.append((time.monotonic(), self.count()))

    @property
    def received(self) -> int:
        return self.samples[-1][1] - self.samples[0][1]

    def report(self, attack: str) -> str:
        """A line for the test's output: what the victim saw while ``attack`` ran (a
        figure, not an assertion: the machine's load decides the loop's lag too)."""
        lags = sorted(self.lags) or [0.0]
        p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))]
        line = (
            f"{attack}: victim received {self.received} packets/frames, longest stall "
            f"{self.longest_stall * 1000:.0f} ms, event-loop lag p99 {p99 * 1000:.1f} ms "
            f"max {lags[-1] * 1000:.1f} ms"
        )
        print(line)
        return line

    @property
    def longest_stall(self) -> float:
        longest = 0.0
        since = self.samples[0][0]
        last = self.samples[0][1]
        for at, value in self.samples[1:]:
            if value != last:
                since, last = at, value
            longest = max(longest, at - since)
        return longest


@dataclass
class Victims:
    """A publisher (of a pre-encoded clip) and a subscriber (counting, not decoding) in
    ``room``."""

    publisher: Participant
    subscriber: Participant

    def watch(self) -> MediaWatch:
        watch = MediaWatch(self.subscriber)
        watch.start()
        return watch


async def make_victims(worker: Worker, room: str, make) -> Victims:
    publisher = make(f"{room}-pub", room, audio=False)
    subscriber = make(f"{room}-sub", room, audio=False, video=None, decode=False)
    await publisher.join()
    await subscriber.join()
    async with asyncio.timeout(15):
        while not any(t.packets > 30 for t in subscriber.tracks.values()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return Victims(publisher, subscriber)


def participant_factory(worker: Worker, created: list[Participant]):
    def make(name: str, room: str = "room", **options) -> Participant:
        """Pre-encoded media, packets counted not decoded, unless ``options`` say."""
        p = participant(name, LocalSignal(worker, room), **options)
        created.append(p)
        return p

    return make


def transport_of(worker: Worker, participant_id: str, direction: str) -> Transport:
    return next(worker.transports_of(participant_id, direction))
