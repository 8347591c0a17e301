"""The compiled forwarding path (``sfu._fastpath``) against the Python one: the same
consumer fed the same packets puts the same datagrams on the wire, SRTP-protected with
the transport's context and sent on the nominated pair's socket, through both paths."""

from __future__ import annotations

import os
import random
import socket
import struct
from types import SimpleNamespace

import pylibsrtp
import pytest
from aiortc.rtcdtlstransport import State
from pyee import EventEmitter

from sfu import rtc
from sfu.consumer import Consumer
from sfu.settings import MediaSettings

from .test_consumer import Source

KEY = os.urandom(28)
PROFILE = pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM
#: A one-byte header extension block (RFC 8285): id 1, two bytes, padded to a word.
EXTENSION_BLOCK = b"\xbe\xde\x00\x01\x10\xaa\x00\x00"
#: The transport-wide sequence number's element first (id 2, its number to be written).
TRANSPORT_CC_ID = 2
NUMBERED_BLOCK = b"\xbe\xde\x00\x01\x21\x00\x00\x00"


def test_the_compiled_path_is_built() -> None:
    """CI installs Caucus, which compiles the path: it must be there, and in use."""
    assert rtc.FASTPATH


class Wire:
    """A writer on a real socket pair; reads back and unprotects what it sent."""

    def __init__(self, native: bool) -> None:
        self.receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.receiver.bind(("127.0.0.1", 0))
        self.receiver.settimeout(2)
        self.sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sender.bind(("127.0.0.1", 0))
        self.sender.setblocking(False)
        pair = SimpleNamespace(
            protocol=SimpleNamespace(transport=SimpleNamespace(_sock=self.sender)),
            remote_addr=self.receiver.getsockname(),
        )
        self.dtls = EventEmitter()
        policy = pylibsrtp.Policy(
            key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=PROFILE
        )
        policy.allow_repeat_tx = True  # as aiortc's transport sets it (retransmissions)
        policy.window_size = 1024
        self.dtls._tx_srtp = pylibsrtp.Session(policy)
        self.dtls._state = State.CONNECTED
        self.dtls.transport = SimpleNamespace(_connection=SimpleNamespace(_nominated={1: pair}))
        self.writer = rtc.RtpWriter(self.dtls)  # type: ignore[arg-type]
        self.writer.native = native
        policy = pylibsrtp.Policy(
            key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=PROFILE
        )
        policy.allow_repeat_tx = True
        policy.window_size = 1024
        self._rx = pylibsrtp.Session(policy)

    def packets(self, count: int) -> list[tuple[int, int, int, int, int, bytes]]:
        got = []
        for _ in range(count):
            datagram = self.receiver.recv(4096)
            try:
                data = self._rx.unprotect(datagram)
            except pylibsrtp.Error:
                # a duplicate (its sender may repeat an index; a receiver refuses it):
                # the header is in the clear
                got.append((*struct.unpack_from("!BBHII", datagram), b"(replay)"))
                continue
            got.append((*struct.unpack_from("!BBHII", data), data[12:]))
        self.receiver.settimeout(0.05)
        try:
            extra = self.receiver.recv(4096)
        except TimeoutError:
            extra = None
        self.receiver.settimeout(2)
        assert extra is None, "more datagrams than packets forwarded"
        return got

    def replace_socket(self) -> socket.socket:
        """Close the sending socket and put a new one on the nominated pair, as an ICE
        restart would; the writer's sink still holds the old one's descriptor."""
        replacement = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        replacement.bind(("127.0.0.1", 0))
        replacement.setblocking(False)
        old = self.sender
        self.dtls.transport._connection._nominated[1].protocol.transport._sock = replacement
        self.sender = replacement
        old.close()
        return replacement

    def close(self) -> None:
        self.receiver.close()
        self.sender.close()


def consumer_on(wire: Wire, source: Source, seed: int) -> Consumer:
    random.seed(seed)  # the consumer's random first sequence number and timestamp
    consumer = Consumer(
        producer=source,  # type: ignore[arg-type]
        transceiver=SimpleNamespace(mid="0"),  # type: ignore[arg-type]
        ssrc=0x1234,
        rtx_ssrc=0x1235,
        writer=wire.writer,
        settings=MediaSettings(),
    )
    consumer.configure(111, None, (0, 0))
    consumer.start()
    return consumer


def run(native: bool, seed: int) -> tuple[list, dict]:
    """Reordered, duplicated and wrapping numbers, packets from before the source began,
    a switch to another source, markers, extension blocks (one with the transport-wide
    number's element first, numbered by the transport); returns what left, and the
    consumer's and the transport's counters."""
    wire = Wire(native)
    wire.writer.transport_cc_id = TRANSPORT_CC_ID
    try:
        source, other = Source(), Source()
        consumer = consumer_on(wire, source, seed)
        assert consumer._native is native
        rng = random.Random(seed)
        sent = 0

        def feed(
            src: Source,
            seqs: list[int],
            arrival_ms: int,
            first_byte: int = 0x80,
            block: bytes = EXTENSION_BLOCK,
        ):
            nonlocal sent
            for seq in seqs:
                payload = rng.randbytes(rng.randint(1, 1200))
                tail = payload if first_byte == 0x80 else block + payload
                timestamp = (seq * 960 + 12345) & 0xFFFFFFFF
                before = consumer.packets
                consumer.write(seq, timestamp, seq & 1, first_byte, tail, True, arrival_ms)
                sent += consumer.packets - before

        got = []

        def collect() -> None:  # before the receiving socket's buffer fills up
            nonlocal sent
            got.extend(wire.packets(sent))
            sent = 0

        feed(source, [65533, 65535, 1, 0, 2, 65534, 1, 3], 1000)
        feed(source, [65000, 65532], 1010)  # from before the source's first packet
        collect()
        for start in range(4, 304, 50):
            feed(source, [(start + i) & 0xFFFF for i in range(50)], 1020, first_byte=0x90)
            collect()
        feed(source, list(range(304, 354)), 1030, first_byte=0x90, block=NUMBERED_BLOCK)
        collect()
        consumer.switch_to(other)  # type: ignore[arg-type]
        feed(other, [40000, 40002, 40001, 39999, 40003], 1400)
        collect()
        counters = {
            "packets": consumer.packets,
            "bytes": consumer.bytes,
            "next": consumer.next_sequence_number,
            "writer": (wire.writer.packets, wire.writer.bytes, wire.writer.dropped),
            "numbered": [
                wire.writer.sent(n)[1:]  # type: ignore[index]
                for n in range(wire.writer.next_transport_seq)
            ],
        }
        return got, counters
    finally:
        wire.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_both_paths_put_the_same_packets_on_the_wire(seed: int) -> None:
    compiled, compiled_counters = run(True, seed)
    python, python_counters = run(False, seed)
    assert compiled == python
    assert compiled_counters == python_counters
    # the two from before the first source and the late one of the second never left
    assert len(compiled) == 8 + 350 + 4
    # only the 50 with the transport-wide number's element first were numbered
    numbered = compiled[308:358]
    assert [p[5][:7] for p in numbered] == [
        NUMBERED_BLOCK[:5] + n.to_bytes(2, "big") for n in range(50)
    ]
    assert compiled_counters["numbered"] == [(12 + len(p[5]) + 16, 0) for p in numbered]
    assert [p for p in compiled if p[5] == b"(replay)"] == [compiled[6]]  # the second "1"
    assert compiled_counters["writer"][2] == 0
    # one stream: one SSRC, the payload type with the marker of each packet
    assert {p[4] for p in compiled} == {0x1234}
    assert {p[1] & 0x7F for p in compiled} == {111}


def test_a_closed_transport_stops_the_compiled_path_and_a_reconnect_resumes_it() -> None:
    wire = Wire(True)
    try:
        consumer = consumer_on(wire, Source(), 7)
        consumer.write(10, 9600, 0, 0x80, b"one", True, 1000)
        wire.dtls._state = State.CLOSED
        wire.dtls.emit("statechange")  # as aiortc's RTCDtlsTransport._set_state does
        consumer.write(11, 10560, 0, 0x80, b"two", True, 1020)
        wire.dtls._state = State.CONNECTED
        consumer.write(12, 11520, 0, 0x80, b"three", True, 1040)
        got = wire.packets(2)
        assert [p[5] for p in got] == [b"one", b"three"]
        assert got[1][2] == (got[0][2] + 2) & 0xFFFF  # 11 was not sent, its number kept
        assert consumer.packets == 2
    finally:
        wire.close()


def test_a_failed_send_binds_again_and_resends_on_the_new_socket() -> None:
    wire = Wire(True)
    try:
        consumer = consumer_on(wire, Source(), 8)
        consumer.write(1, 960, 0, 0x80, b"a", True, 1000)
        # the socket the sink wrote to is gone (an ICE restart would replace it)
        replacement = wire.replace_socket()
        # fails on the closed socket, which unbinds the sink; bound again, sent again
        consumer.write(2, 1920, 0, 0x80, b"b", True, 1020)
        assert wire.writer.sink.fd == replacement.fileno()
        consumer.write(3, 2880, 0, 0x80, b"c", True, 1040)
        got = wire.packets(3)
        assert [p[5] for p in got] == [b"a", b"b", b"c"]
        assert wire.writer.dropped == 1  # the attempt on the closed socket
        assert consumer.packets == 3
    finally:
        wire.close()
