"""The compiled senders when the socket fails them: the batched send of a receive event
(the packets a receiver's routes forwarded wait in each subscriber's sink and leave in
one ``sendmmsg`` at the event's end, runs of one size as UDP_SEGMENT messages) and a
publisher's frame (``caucus_send_frame``).  A full send buffer drops what did not leave,
counted in the sink, which stays bound; a socket that fails unbinds the sink, its errno
kept, with the rest dropped; a kernel that refuses UDP_SEGMENT gets the same packets one
by one.  Whether the module segments is the process's (it stops at the first refusal),
so the tests that depend on it run in a child process of their own."""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest

from client.frames import FrameTemplate, new_frame_batch
from sfu.rtc import native, writer
from sfu.rtc.internals import srtp_context

from .native_support import Receiver, Sink, fast, rtp, run_isolated, session

lib = fast.lib
ffi = fast.ffi
#: The publisher's SSRC and payload type, and the subscriber's.
SSRC, PAYLOAD_TYPE = 0x1234, 96
CONSUMER_SSRC, CONSUMER_PAYLOAD_TYPE = 0x5678, 100
#: SRTP's trailer on every packet (AES-GCM's tag).
TAG = 16
#: <asm-generic/socket.h>: a UDP socket without checksums, which Linux refuses to segment.
SO_NO_CHECK = 11


def stalled_pair() -> tuple[socket.socket, socket.socket, bytes]:
    """A sending socket whose buffer holds about two packets of a thousand bytes, the
    socket it sends to, never read, and that one's address as a sockaddr (Unix datagram
    sockets: a packet counts against its sender's buffer until it is read)."""
    target = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    target.bind(b"\0caucus-" + os.urandom(8).hex().encode())
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.setblocking(False)
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # the kernel's least
    return sender, target, struct.pack("=H", socket.AF_UNIX) + target.getsockname()


def aim(sink: Any, fd: int, address: bytes) -> None:
    """Point ``sink`` at ``address`` through the descriptor ``fd``."""
    sink.fd = fd
    sink.addr[0 : len(address)] = address
    sink.addrlen = len(address)


def received(sock: socket.socket, count: int) -> list[int]:
    """The lengths of the next ``count`` datagrams at ``sock``, then of any more there."""
    sock.settimeout(2)
    lengths = [len(sock.recv(1 << 16)) for _ in range(count)]
    sock.setblocking(False)
    while True:
        try:
            lengths.append(len(sock.recv(1 << 16)))
        except BlockingIOError:
            return lengths


class Forwarding:
    """A compiled receiver whose route takes the publisher's packets to a compiled
    producer with one started consumer, which writes to a sink on ``fd``: what one event
    reads waits in the sink and leaves in its batched send."""

    def __init__(self, fd: int, address: bytes) -> None:
        self.receiver = Receiver()
        self.outbound = session(inbound=False)
        self.sink: Any = ffi.new("caucus_sink *")
        self.sink.protect = native.FAST_PROTECT
        self.sink.srtp = ffi.cast("void *", native.address_of(srtp_context(self.outbound)))
        aim(self.sink, fd, address)
        self.consumer: Any = ffi.new("caucus_consumer *")
        self.consumer.sink = self.sink
        self.consumer.ssrc = CONSUMER_SSRC
        self.consumer.payload_type = CONSUMER_PAYLOAD_TYPE
        self.consumer.started = 1
        self.consumer.source_span = 1
        self.producer: Any = ffi.new("caucus_producer *")
        producer = self.producer
        producer.has_ssrc = 1
        producer.ssrc = SSRC
        producer.payload_type = PAYLOAD_TYPE
        producer.budget_per_ms = producer.budget_depth = producer.budget_tokens = 1e9
        producer.outputs_complete = 1
        producer.outputs_used = 1
        producer.outputs[0].consumer = self.consumer
        assert lib.caucus_route_add_producer(self.receiver.rx, SSRC, PAYLOAD_TYPE, producer) == 0
        self.seq = 0

    def event(self, *sizes: int) -> None:
        """One receive event that reads packets with payloads of these sizes (at most
        CAUCUS_SINK_BATCH: one batched send, at the event's end), all forwarded."""
        before = self.producer.forwarded_here
        for size in sizes:
            self.seq += 1
            self.receiver.send(self.receiver.outbound.protect(rtp(SSRC, self.seq, bytes(size))))
        self.receiver.rx.budget = lib.CAUCUS_DRAIN_BATCH
        assert lib.caucus_receive(self.receiver.rx, ffi.NULL, 0) == lib.CAUCUS_RX_DONE
        assert self.producer.forwarded_here - before == len(sizes)
        assert self.receiver.rx.pending_count == 0 and self.sink.queued == 0

    def close(self) -> None:
        self.sink.srtp = ffi.NULL
        self.receiver.close()


@pytest.fixture
def not_a_socket() -> Iterator[int]:
    """A descriptor ``sendmmsg`` fails on (ENOTSOCK), whatever was sent before."""
    fd = os.open(os.devnull, os.O_WRONLY)
    yield fd
    os.close(fd)


def test_a_full_send_buffer_drops_the_rest_of_an_event_and_keeps_the_sink() -> None:
    sender, target, address = stalled_pair()
    forwarding = Forwarding(sender.fileno(), address)
    sink = forwarding.sink
    try:
        sizes = [1000, 1001, 1002, 1003, 1004, 1005]  # each longer: no run, six messages
        forwarding.event(*sizes)
        assert forwarding.consumer.packets == 6  # forwarded: queued in the sink ...
        left = sink.packets  # ... of which the socket's buffer took these
        assert 1 <= left < 6
        assert sink.dropped == 6 - left
        assert sink.bytes == sum(12 + size for size in sizes[:left])
        assert sink.srtp != ffi.NULL and sink.last_errno == 0
        assert received(target, left) == [12 + size + TAG for size in sizes[:left]]
        forwarding.event(1000)  # still bound: the next event's packet leaves
        assert sink.packets == left + 1 and sink.dropped == 6 - left
        assert received(target, 1) == [12 + 1000 + TAG]
    finally:
        forwarding.close()
        sender.close()
        target.close()


def numbered(forwarding: Forwarding, extension_id: int = 3) -> Any:
    """Has the forwarding's subscriber negotiated the transport-wide number and its sink
    number packets; the sink's ring of what left."""
    ring = ffi.new("caucus_sent[]", lib.CAUCUS_SENT_RING)
    forwarding.sink.sent = ring
    forwarding.sink.transport_cc_id = extension_id
    forwarding.producer.outputs[0].transport_cc_id = extension_id
    return ring


def test_the_packets_of_an_event_are_numbered_and_remembered_as_they_leave() -> None:
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    address = writer._sockaddr(socket.AF_INET, target.getsockname())
    assert address is not None
    forwarding = Forwarding(sender.fileno(), address)
    ring = numbered(forwarding)
    try:
        forwarding.sink.transport_seq = 0xFFFE
        forwarding.sink.probe_cluster = 4
        before = time.monotonic_ns() // 1000
        forwarding.event(100, 1000, 1000, 600)
        after = time.monotonic_ns() // 1000
        inbound = forwarding.receiver.inbound  # the receiver's key is the sink's too
        packets = [inbound.unprotect(target.recv(4096)) for _ in range(4)]
        # the block (the element alone, padded) leads each; numbers wrap
        numbers = [0xFFFE, 0xFFFF, 0, 1]
        assert [p[12:20] for p in packets] == [
            b"\xbe\xde\x00\x01\x31" + n.to_bytes(2, "big") + b"\x00" for n in numbers
        ]
        slots = [ring[n & (lib.CAUCUS_SENT_RING - 1)] for n in numbers]
        assert [(s.seq, s.size, s.probe_cluster) for s in slots] == [
            (n, 12 + 8 + size + TAG, 4)
            for n, size in zip(numbers, (100, 1000, 1000, 600), strict=True)
        ]
        # one clock reading for what left together
        assert len({s.sent_us for s in slots}) == 1 and before <= slots[0].sent_us <= after
        assert forwarding.sink.transport_seq == 2
    finally:
        forwarding.close()
        sender.close()
        target.close()


def test_a_full_send_buffer_keeps_the_numbers_of_what_it_dropped_unremembered() -> None:
    sender, target, address = stalled_pair()
    forwarding = Forwarding(sender.fileno(), address)
    ring = numbered(forwarding)
    try:
        forwarding.event(1000, 1001, 1002, 1003, 1004, 1005)
        left = forwarding.sink.packets
        assert 1 <= left < 6 and forwarding.sink.transport_seq == 6
        assert [ring[n].sent_us != 0 for n in range(6)] == [True] * left + [False] * (6 - left)
        assert [ring[n].size for n in range(left)] == [12 + 8 + 1000 + n + TAG for n in range(left)]
    finally:
        forwarding.close()
        sender.close()
        target.close()


def test_a_socket_failing_an_event_unbinds_the_sink(not_a_socket: int) -> None:
    forwarding = Forwarding(not_a_socket, b"\x02\x00")
    sink = forwarding.sink
    try:
        forwarding.event(1000, 1000, 1000, 500)
        assert forwarding.consumer.packets == 4
        assert (sink.packets, sink.bytes, sink.dropped, sink.batches) == (0, 0, 4, 1)
        assert sink.srtp == ffi.NULL and sink.last_errno == errno.ENOTSOCK
    finally:
        forwarding.close()


def test_a_failure_after_part_of_an_event_left_unbinds_the_sink() -> None:
    """The second message (a run of five packets, sent as one Unix datagram) is larger
    than the socket's buffer: the first packet left, the run is dropped."""
    result = run_isolated(
        """
        from tests.hostile.test_native_send_failures import (
            Forwarding, ffi, received, stalled_pair,
        )
        sender, target, address = stalled_pair()
        forwarding = Forwarding(sender.fileno(), address)
        forwarding.event(100, 1000, 1000, 1000, 1000, 1000)
        s = forwarding.sink
        print(s.packets, s.bytes, s.dropped, s.batches, s.srtp != ffi.NULL)
        print(s.last_errno, received(target, 1))
        forwarding.close()
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    first, second = result.stdout.splitlines()
    assert first.split() == ["1", "112", "5", "2", "False"]
    assert second == f"{errno.EMSGSIZE} [{12 + 100 + TAG}]"


def test_runs_leave_segmented_and_one_by_one_where_the_kernel_refuses() -> None:
    """On a UDP socket a run of one size is one message the kernel cuts into datagrams;
    a socket Linux will not segment on (no checksums) gets the packets again one by one,
    and from then on the process sends every run so."""
    result = run_isolated(
        """
        import socket
        from sfu.rtc import writer
        from tests.hostile.test_native_send_failures import SO_NO_CHECK, Forwarding, received

        target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        target.bind(("127.0.0.1", 0))
        address = writer._sockaddr(socket.AF_INET, target.getsockname())
        for no_check in (0, 1, 0):
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sender.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, no_check)
            forwarding = Forwarding(sender.fileno(), address)
            forwarding.event(1000, 1000, 1000, 1000, 1000, 600)
            s = forwarding.sink
            print(s.packets, s.bytes, s.dropped, s.batches, s.last_errno, received(target, 6))
            forwarding.close()
            sender.close()
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    datagrams = [12 + 1000 + TAG] * 5 + [12 + 600 + TAG]
    counters = ["6", str(5 * 1012 + 612), "0"]
    segmented, refused, after = (line.split(" ", 5) for line in result.stdout.splitlines())
    assert segmented == [*counters, "1", "0", str(datagrams)]  # one message: one call
    assert refused == [*counters, "2", "0", str(datagrams)]  # refused, then one by one
    assert after == [*counters, "1", "0", str(datagrams)]  # one by one from the start


def test_a_refused_run_after_a_lone_packet_is_sent_one_by_one() -> None:
    """The kernel refuses to segment a run after a lone packet of the same event left: the
    run's packets go one by one (nothing dropped, the sink kept), and so does every run
    after."""
    result = run_isolated(
        """
        import socket
        from sfu.rtc import writer
        from tests.hostile.test_native_send_failures import SO_NO_CHECK, Forwarding, received

        target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        target.bind(("127.0.0.1", 0))
        address = writer._sockaddr(socket.AF_INET, target.getsockname())
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
        forwarding = Forwarding(sender.fileno(), address)
        for _ in range(2):
            forwarding.event(600, 1000, 1000, 1000, 1000, 600)
            s = forwarding.sink
            bound = int(s.srtp != 0)
            print(s.packets, s.dropped, s.batches, s.last_errno, bound, received(target, 6))
        forwarding.close()
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    datagrams = [12 + 600 + TAG] + [12 + 1000 + TAG] * 4 + [12 + 600 + TAG]
    first, second = (line.split(" ", 5) for line in result.stdout.splitlines())
    # the lone packet and the refused run in two calls, then the run one by one
    assert first == ["6", "0", "3", "0", "1", str(datagrams)]
    assert second == ["12", "0", "4", "0", "1", str(datagrams)]  # one by one from then on


def frame(sizes: list[int]) -> FrameTemplate:
    """A frame whose tails have these lengths (no picture ID, no stamp)."""
    return FrameTemplate(
        [bytes([i]) * size for i, size in enumerate(sizes)],
        batch=new_frame_batch(),
        first_byte=0x80,
        payload_type=PAYLOAD_TYPE,
        ssrc=SSRC,
        picture_id_offset=None,
        stamped=False,
    )


def send(sink: Any, template: FrameTemplate) -> int:
    return lib.caucus_send_frame(
        sink,
        template.batch,
        template.first_byte,
        template.payload_type,
        1,
        3000,
        template.ssrc,
        template.tails,
        template.size,
        template.lengths,
        template.count,
        -1,
        0,
        0,
        template.sent_bytes,
    )


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


def test_a_full_send_buffer_drops_the_rest_of_a_frame_and_keeps_the_sink(sink: Sink) -> None:
    """Twenty packets: the first sendmmsg of sixteen fills the buffer, the next four
    find it full."""
    sender, target, address = stalled_pair()
    try:
        aim(sink.sink, sender.fileno(), address)
        template = frame([1000] * 20)
        left = send(sink.sink, template)
        assert 1 <= left < 16
        assert sink.sink.packets == left and sink.sink.dropped == 20 - left
        assert template.sent_bytes[0] == sink.sink.bytes == left * 1012
        assert sink.sink.srtp != ffi.NULL and sink.sink.last_errno == 0
        assert received(target, left) == [1012 + TAG] * left
        assert send(sink.sink, frame([200])) == 1  # still bound
    finally:
        sender.close()
        target.close()


def test_a_socket_failing_a_frame_unbinds_the_sink(sink: Sink, not_a_socket: int) -> None:
    sink.sink.fd = not_a_socket
    template = frame([1000] * 20)
    assert send(sink.sink, template) == lib.CAUCUS_NOT_BOUND
    assert (sink.sink.packets, sink.sink.bytes, sink.sink.dropped) == (0, 0, 16)
    assert template.sent_bytes[0] == 0
    assert sink.sink.srtp == ffi.NULL and sink.sink.last_errno == errno.ENOTSOCK
