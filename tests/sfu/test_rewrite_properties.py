"""Properties of a Consumer's sequence-number and timestamp rewriting, over any history.

Real Producers (Opus) are fed RTP packets from publishers' streams with gaps, reorders,
duplicates and 16-bit / 32-bit wraps; one started Consumer switches between them, parks
on one that never sends, and sees its publisher restart.  What it forwards (read from a
recording writer, and from a real socket on the compiled path) must be one continuous
stream:

* no two different input packets ever share an outgoing sequence number;
* from the first packet of a source on (a start, a switch, a restart), outgoing numbers
  continue the newest one sent, without a gap, and follow the source's own numbers:
  gaps only where the input had gaps, and never a number before that first packet;
* timestamps keep their distances within a source, move strictly forward at each
  change of source and never backward between new packets (all modulo 2**32).
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from types import SimpleNamespace

import pylibsrtp
import pytest
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfu.consumer import Consumer
from sfu.producer import Producer
from sfu.settings import MediaSettings

from .test_fastpath import Wire

SETTINGS = MediaSettings()
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, payloadType=111)
#: Producers 0 and 1 publish; producer 2 never sends (a parking place).
PUBLISHERS = 2
PARKING = 2


class RecordingWriter:
    """A transport's writer that keeps what a consumer or producer writes."""

    native = False

    def __init__(self) -> None:
        self.forwarded: list[tuple[int, int, bytes]] = []

    def forward(self, first_byte, marker_pt, seq, timestamp, ssrc, tail) -> int:
        self.forwarded.append((seq, timestamp, bytes(tail)))
        return 12 + len(tail)

    def write_rtp(self, data: bytes) -> int:
        return len(data)

    def write_rtcp(self, data: bytes) -> None:
        pass


@dataclass
class Stream:
    """One publisher's RTP stream: numbers and timestamps from an index."""

    stream_id: int
    ssrc: int
    base_seq: int
    base_ts: int
    ts_step: int
    newest: int = -1
    sent: set[int] = field(default_factory=set)

    def packet(self, index: int) -> tuple[bytes, int]:
        seq = (self.base_seq + index) & 0xFFFF
        timestamp = (self.base_ts + index * self.ts_step) & 0xFFFFFFFF
        payload = struct.pack("!IQ", self.stream_id, index)
        return struct.pack("!BBHII", 0x80, 111, seq, timestamp, self.ssrc) + payload, timestamp


wrap_seq = st.one_of(st.integers(65_400, 65_535), st.integers(0, 65_535))
wrap_ts = st.one_of(st.integers(2**32 - 200_000, 2**32 - 1), st.integers(0, 2**32 - 1))
streams = st.builds(
    lambda seq, ts, step: (seq, ts, step), wrap_seq, wrap_ts, st.sampled_from([960, 480, 1])
)
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("new"), st.one_of(st.integers(0, 0), st.integers(1, 3), st.integers(4, 90))
        ),
        st.tuples(st.just("old"), st.integers(0, 40)),
        st.tuples(st.just("switch"), st.integers(0, PUBLISHERS)),
        st.tuples(st.just("restart"), streams),
        st.tuples(st.just("wait"), st.integers(0, 500)),
    ),
    min_size=1,
    max_size=150,
)


class History:
    """Checks each forwarded packet against everything forwarded before it."""

    def __init__(self) -> None:
        self.newest: int | None = None  # unwrapped newest outgoing number
        self.newest_raw = 0
        self.last_new_ts: int | None = None
        self.owner: dict[int, tuple[int, int, int]] = {}  # number -> (stream, index, ts)
        self.epoch: tuple[int, int, int, int, int] | None = None
        self.rebase = True

    def unwrap(self, seq: int) -> int:
        if self.newest is None:
            return seq
        delta = ((seq - self.newest_raw + 0x8000) & 0xFFFF) - 0x8000
        return self.newest + delta

    def forwarded(self, seq: int, ts: int, identity: tuple[int, int] | None, ts_in: int) -> None:
        number = self.unwrap(seq)
        if identity is None:  # a duplicate datagram SRTP refused to open: same number, time
            assert number in self.owner and self.owner[number][2] == ts, (seq, ts)
            return
        stream_id, index = identity
        if self.rebase:
            if self.newest is not None:
                assert number == self.newest + 1, "a new source does not continue the stream"
                gap = (ts - self.last_new_ts) & 0xFFFFFFFF
                assert 0 < gap < 2**31, "timestamps did not move forward at a change of source"
            self.epoch = (number, stream_id, index, ts, ts_in)
            self.rebase = False
        assert self.epoch is not None
        first, epoch_stream, first_index, first_ts, first_ts_in = self.epoch
        assert stream_id == epoch_stream, "a packet of another source got through"
        assert number >= first, "a packet from before its source's first one got through"
        assert number - first == index - first_index, "numbers do not follow the source's"
        assert (ts - first_ts) & 0xFFFFFFFF == (ts_in - first_ts_in) & 0xFFFFFFFF
        previous = self.owner.setdefault(number, (stream_id, index, ts))
        assert previous == (stream_id, index, ts), "two packets share an outgoing number"
        if self.newest is None or number > self.newest:
            if self.last_new_ts is not None:
                assert (ts - self.last_new_ts) & 0xFFFFFFFF < 2**31, "timestamp went back"
            self.newest, self.newest_raw, self.last_new_ts = number, seq, ts


def received(wire: Wire, count: int) -> list[tuple[int, int, bytes]]:
    """The next ``count`` datagrams on the wire: (number, timestamp, payload), the payload
    ``b"(replay)"`` for one SRTP refuses as a repeat (its header is in clear text)."""
    got = []
    for _ in range(count):
        datagram = wire.receiver.recv(4096)
        try:
            data = wire._rx.unprotect(datagram)
        except pylibsrtp.Error:
            got.append((*struct.unpack_from("!HI", datagram, 2), b"(replay)"))
            continue
        got.append((*struct.unpack_from("!HI", data, 2), data[12:]))
    return got


def run(ops, first_stream, consumer_start, native: bool) -> None:
    loop = asyncio.new_event_loop()
    wire = Wire(native) if native else None
    try:
        loop.run_until_complete(scenario(ops, first_stream, consumer_start, wire))
    finally:
        if wire is not None:
            wire.close()
        loop.close()


async def scenario(ops, first_stream, consumer_start, wire: Wire | None) -> None:
    producers = [
        Producer(
            participant_id=f"p{i}",
            kind="audio",
            codec=OPUS,
            rtx_payload_type=None,
            rtcp_ssrc=1,
            writer=RecordingWriter(),  # type: ignore[arg-type]
            settings=SETTINGS,
        )
        for i in range(PUBLISHERS + 1)
    ]
    ids = iter(range(1, 10_000))
    seq, ts, step = first_stream
    live = [
        Stream(next(ids), 0x1000, seq, ts, step),
        Stream(next(ids), 0x2000, seq ^ 0x5555, ts, 960),
    ]
    writer = wire.writer if wire is not None else RecordingWriter()
    consumer = Consumer(
        producer=producers[0],
        transceiver=SimpleNamespace(mid="0"),  # type: ignore[arg-type]
        ssrc=0x5000,
        rtx_ssrc=0x5001,
        writer=writer,  # type: ignore[arg-type]
        settings=SETTINGS,
    )
    consumer._last_seq, consumer._last_ts = consumer_start
    consumer.configure(111, None, (0, 0))
    consumer.start()
    history = History()
    current = 0
    now = 3_900_000_000_000
    inputs: dict[tuple[int, int], int] = {}  # (stream, index) -> input timestamp

    def send(stream: Stream, index: int) -> None:
        data, ts_in = stream.packet(index)
        inputs[(stream.stream_id, index)] = ts_in
        before = len(writer.forwarded) if wire is None else consumer.packets
        producers[live.index(stream)].on_rtp_data(data, now)
        if wire is None:
            got = [(s, t, p) for s, t, p in writer.forwarded[before:]]
        else:
            got = received(wire, consumer.packets - before)
        for out_seq, out_ts, payload in got:
            identity = None if payload == b"(replay)" else struct.unpack("!IQ", payload)
            ts_in = inputs[identity] if identity is not None else 0
            history.forwarded(out_seq, out_ts, identity, ts_in)

    for op, arg in ops:
        now += 20
        if op == "wait":
            now += arg
        elif op == "switch":
            if consumer.producer is not producers[arg]:
                consumer.switch_to(producers[arg])
                history.rebase = True
            current = arg
        elif current == PARKING:
            continue
        elif op == "restart":
            seq, ts, step = arg
            live[current] = Stream(next(ids), 0x3000 + next(ids), seq, ts, step)
            history.rebase = True  # the producer sees a new SSRC and restarts its consumers
            send(live[current], 0)
            live[current].newest = 0
            live[current].sent.add(0)
        elif op == "new":
            stream = live[current]
            stream.newest += 1 + arg
            stream.sent.add(stream.newest)
            send(stream, stream.newest)
        elif op == "old" and live[current].newest >= 0:
            stream = live[current]
            index = max(0, stream.newest - arg)
            stream.sent.add(index)
            send(stream, index)
    for producer in producers:
        producer.close()
    consumer.close()
    if wire is not None:
        wire.receiver.setblocking(False)
        with pytest.raises(BlockingIOError):
            wire.receiver.recv(4096)  # nothing was sent that was not counted


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=operations,
    first_stream=streams,
    consumer_start=st.tuples(wrap_seq, wrap_ts),
)
def test_rewriting_stays_continuous(ops, first_stream, consumer_start) -> None:
    run(ops, first_stream, consumer_start, native=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=operations,
    first_stream=streams,
    consumer_start=st.tuples(wrap_seq, wrap_ts),
)
def test_the_compiled_path_rewrites_the_same_way(ops, first_stream, consumer_start) -> None:
    run(ops, first_stream, consumer_start, native=True)


def test_the_history_check_catches_a_reused_number() -> None:
    """The checker itself: a number given to a second packet is caught."""
    history = History()
    history.forwarded(10, 1000, (1, 0), 0)
    history.forwarded(11, 1960, (1, 1), 960)
    with pytest.raises(AssertionError):
        history.forwarded(11, 2920, (1, 2), 1920)
