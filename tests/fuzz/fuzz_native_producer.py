"""Fuzz target: the compiled producer (``caucus_producer_packet`` of ``sfu._fastpath``).

Each input drives one ``caucus_producer`` with up to four consumers, each writing to a
sink bound to a datagram socket pair with a real libsrtp session: any bytes as a
received packet (lengths around the buffer's size included), the producer's state
switched (closed, recorders, keyframe waits, SSRC, payload type, budget, sequence
numbers, the ring's size), consumers started, paused, unbound and given extension ids,
the ring written and read through ``caucus_producer_store``, and the same packets
delivered by a receiver's route (``caucus_receive``), which queues the consumers' packets
and sends them as segmented batches.  A crash, a sanitizer report or a result outside
what the call documents is a failure.  Run under ``make sanitize`` for the memory checks.
"""

from __future__ import annotations

import socket
import struct
import sys

import atheris

with atheris.instrument_imports(include=["sfu.rtc"]):
    from sfu.rtc import native
    from sfu.rtc.internals import srtp_context
    from sfu.rtc.writer import _sockaddr

from srtp_pair import protect, session  # beside this file

fast = native.NATIVE
ffi, lib = fast.ffi, fast.lib
BUFFER = lib.CAUCUS_BUFFER
RING = 16
OUTPUTS = 4

# the sinks send real UDP datagrams on loopback (batched, segmented), as to a subscriber
SINK_SOCK = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
PEER_SOCK = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
PEER_SOCK.bind(("127.0.0.1", 0))
SINK_SOCK.setblocking(False)
PEER_SOCK.setblocking(False)
RX_SOCK, FEED_SOCK = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
RX_SOCK.setblocking(False)
FEED_SOCK.setblocking(False)
PRODUCER = ffi.new("caucus_producer *")
STORED = ffi.new("caucus_stored[]", RING)
SINKS = [ffi.new("caucus_sink *") for _ in range(OUTPUTS)]
CONSUMERS = [ffi.new("caucus_consumer *") for _ in range(OUTPUTS)]
RX = ffi.new("caucus_receiver *")
PEER_ADDRESS = _sockaddr(socket.AF_INET, PEER_SOCK.getsockname())
assert PEER_ADDRESS is not None


def drain(sock: socket.socket) -> None:
    while True:
        try:
            sock.recv(1 << 17)
        except BlockingIOError:
            return


def zero(pointer: object, type_name: str) -> None:
    ffi.memmove(pointer, bytes(ffi.sizeof(type_name)), ffi.sizeof(type_name))


@atheris.instrument_func
def packet(fdp: atheris.FuzzedDataProvider) -> bytes:
    """Any bytes, or an RTP packet of the producer's SSRC and payload type around its
    newest sequence number."""
    if fdp.ConsumeBool():
        return fdp.ConsumeBytes(fdp.PickValueInList([fdp.ConsumeIntInRange(0, 300), BUFFER]))
    first = fdp.PickValueInList([0x80, 0x90, 0xA0, 0xB0, 0x81, fdp.ConsumeIntInRange(0, 255)])
    seq = (PRODUCER.max_seq + fdp.ConsumeIntInRange(-3, 70)) & 0xFFFF
    header = struct.pack(
        "!BBHII",
        first,
        (fdp.ConsumeIntInRange(0, 1) << 7) | (PRODUCER.payload_type & 0x7F),
        seq,
        fdp.ConsumeUInt(4),
        PRODUCER.ssrc if fdp.ConsumeBool() else fdp.ConsumeUInt(4),
    )
    return header + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 1500))


@atheris.instrument_func
def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    inbound, outbound = session(True), session(False)
    zero(PRODUCER, "caucus_producer")
    zero(RX, "caucus_receiver")
    PRODUCER.buffer = STORED
    PRODUCER.buffer_size = RING
    PRODUCER.has_ssrc = 1
    PRODUCER.ssrc = 0x1234
    PRODUCER.payload_type = 96
    PRODUCER.budget_per_ms = 1000.0
    PRODUCER.budget_depth = PRODUCER.budget_tokens = 1e6
    PRODUCER.audio_level_id = fdp.ConsumeIntInRange(0, 15)
    PRODUCER.outputs_complete = 1
    PRODUCER.outputs_used = fdp.ConsumeIntInRange(0, OUTPUTS)
    for i in range(OUTPUTS):
        zero(SINKS[i], "caucus_sink")
        zero(CONSUMERS[i], "caucus_consumer")
        sink = SINKS[i]
        sink.protect = native.FAST_PROTECT
        sink.srtp = ffi.cast("void *", native.address_of(srtp_context(outbound)))
        sink.fd = SINK_SOCK.fileno()
        sink.addrlen = len(PEER_ADDRESS)
        ffi.memmove(sink.addr, PEER_ADDRESS, sink.addrlen)
        consumer = CONSUMERS[i]
        consumer.sink = sink
        consumer.ssrc = 0x1000 + i
        consumer.payload_type = 100 + i
        consumer.started = consumer.paused = 0
        consumer.source_span = fdp.ConsumeIntInRange(0, 0x8000)
        # VP8 picture-ID and TL0PICIDX rewriting on hostile payload descriptors
        consumer.vp8 = fdp.ConsumeBool()
        consumer.pic_offset = fdp.ConsumeIntInRange(0, 0xFFFF)
        consumer.tl0_offset = fdp.ConsumeIntInRange(0, 0xFF)
        consumer.last_pic = consumer.last_tl0 = -1
        PRODUCER.outputs[i].consumer = consumer
        PRODUCER.outputs[i].abs_send_time_id = fdp.ConsumeIntInRange(0, 15)
        PRODUCER.outputs[i].audio_level_id = fdp.ConsumeIntInRange(0, 15)
    RX.unprotect = native.FAST_UNPROTECT
    RX.srtp = ffi.cast("void *", native.address_of(srtp_context(inbound)))
    RX.fd = RX_SOCK.fileno()
    lib.caucus_route_add_producer(RX, PRODUCER.ssrc, PRODUCER.payload_type, PRODUCER)
    for _ in range(fdp.ConsumeIntInRange(1, 24)):
        op = fdp.ConsumeIntInRange(0, 8)
        if op == 0:  # a packet handed to the producer
            data = packet(fdp)
            length = fdp.PickValueInList([len(data), len(data), 0, 11, 12])
            length = min(length, len(data))
            result = lib.caucus_producer_packet(
                PRODUCER, data, length, fdp.ConsumeIntInRange(0, 2**40), -1
            )
            assert result in (0, 1)
        elif op == 1:  # the same through a receiver's route: queued, then sent in batches
            try:
                FEED_SOCK.send(protect(outbound, packet(fdp)))
            except OSError:
                pass
            RX.budget = lib.CAUCUS_DRAIN_BATCH
            for _ in range(64):
                result = lib.caucus_receive(RX, ffi.NULL, 0)
                assert result in (lib.CAUCUS_RX_DONE, lib.CAUCUS_RX_RTP, lib.CAUCUS_RX_OTHER)
                if result == lib.CAUCUS_RX_DONE:
                    break
            assert RX.pending_count == 0
            assert all(sink.queued == 0 for sink in SINKS)
        elif op == 2:  # a consumer's state
            consumer = CONSUMERS[fdp.ConsumeIntInRange(0, OUTPUTS - 1)]
            consumer.started = fdp.ConsumeBool()
            consumer.paused = fdp.ConsumeBool()
        elif op == 3:  # a sink unbound or bound again
            sink = SINKS[fdp.ConsumeIntInRange(0, OUTPUTS - 1)]
            if sink.srtp == ffi.NULL:
                sink.srtp = ffi.cast("void *", native.address_of(srtp_context(outbound)))
            else:
                sink.srtp = ffi.NULL
        elif op == 4:  # the producer's own state
            PRODUCER.closed = fdp.ConsumeBool()
            PRODUCER.sinks = fdp.ConsumeIntInRange(0, 1)
            PRODUCER.keyframe_waiters = fdp.ConsumeIntInRange(0, 1)
            PRODUCER.keyframe_pending = fdp.ConsumeBool()
            PRODUCER.budget_tokens = fdp.PickValueInList([1e6, 0.0, -5.0, 1500.0])
            PRODUCER.max_seq = fdp.ConsumeUInt(2)
        elif op == 5:  # the ring, written and read
            payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 1500))
            seq = fdp.ConsumeUInt(2)
            length = fdp.PickValueInList([len(payload), -1, lib.CAUCUS_STORED_PAYLOAD + 1])
            lib.caucus_producer_store(PRODUCER, seq, 0, 1, payload, min(length, len(payload)))
            slot = STORED[seq % RING]
            if slot.valid:
                assert 0 <= slot.length <= lib.CAUCUS_STORED_PAYLOAD
        elif op == 6:  # the readers of a packet's header on their own
            data = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200))
            start, end = ffi.new("int *"), ffi.new("int *")
            if lib.caucus_payload_bounds(data, len(data), start, end) == 0:
                assert 12 <= start[0] <= end[0] <= len(data)
            level = lib.caucus_audio_level(data, len(data), fdp.ConsumeIntInRange(0, 255))
            assert -1 <= level <= 255
        elif op == 7:  # the producer's outputs changed
            PRODUCER.outputs_used = fdp.ConsumeIntInRange(0, OUTPUTS)
            PRODUCER.outputs_complete = fdp.ConsumeBool()
        else:  # the ring forgotten, or none at all (audio)
            lib.caucus_producer_clear(PRODUCER)
            if fdp.ConsumeBool():
                PRODUCER.buffer_size = 0
        drain(PEER_SOCK)
    for sink in SINKS:
        assert sink.queued == 0
        sink.srtp = ffi.NULL  # before the session goes
    RX.srtp = ffi.NULL
    drain(RX_SOCK)
    drain(PEER_SOCK)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
