"""The direct receive path (``rtc.receive_directly``): received media goes from
the socket to the receiver hooks without aioice's queue and aiortc's receive task, while
STUN, DTLS and RTCP keep aiortc's path; a failing hook, an undecryptable or an oversized
datagram never closes the connection."""

import os
import socket
import struct
import threading
import time

import pytest

from sfu import rtc
from sfu.rtc import receive
from sfu.rtc.internals import datagram_socket, nominated_pair
from tests.support.eventually import eventually
from tests.support.rtp_tools import nominated_local_address


def is_media(data: bytes) -> bool:
    return rtc.classify(data, len(data)) == rtc.KIND_RTP


def allowed_ssrc(dtls) -> int:
    """An SSRC the transport's SSRC policy lets through to libsrtp (the publisher's)."""
    allowed = receive._direct_state(dtls).allowed
    assert allowed
    return min(allowed)


async def joined(worker, participants):
    publisher = participants("alice")
    subscriber = participants("bob", audio=False, video=None, decode=False)
    await subscriber.join()
    await publisher.join()
    transport = next(worker.transports_of("alice", "publish"))
    await eventually(lambda: transport.stats()["packets_received"] > 30, 20)
    await eventually(lambda: any(t.packets for t in subscriber.tracks.values()), 20)
    return transport, subscriber


async def test_media_skips_aiortcs_queue_and_rtcp_takes_it(worker, participants):
    transport, subscriber = await joined(worker, participants)
    dtls = transport._writer.dtls
    queued: list[bytes] = []
    receive = dtls.transport._recv

    async def watched() -> bytes:
        data = await receive()
        queued.append(data)
        return data

    dtls.transport._recv = watched
    video = next(p for p in transport.producers.values() if p.kind == "video")
    video._sr = None
    before = transport.stats()["packets_received"]
    seen = sum(t.packets for t in subscriber.tracks.values())
    # the publisher's sender reports (SRTCP) still reach the producer through aiortc
    await eventually(
        lambda: (
            video._sr is not None
            and len(queued) >= 2  # the task awaited the queue already: the first is unseen
            and transport.stats()["packets_received"] > before + 30
            and sum(t.packets for t in subscriber.tracks.values()) > seen + 30
        ),
        10,
    )
    assert queued and not [d for d in queued if is_media(d)]
    assert rtc.direct_receive_failures(transport._pc) == 0
    assert transport.connection_state == "connected"


async def test_a_failing_hook_never_closes_the_connection(worker, participants):
    transport, _ = await joined(worker, participants)
    video = next(p for p in transport.producers.values() if p.kind == "video")
    receiver = next(t.receiver for t in transport._pc.getTransceivers() if t.mid == video.mid)
    calls = []

    def failing(data: bytes, arrival_time_ms: int) -> None:
        calls.append(arrival_time_ms)
        raise RuntimeError("a hook that fails")

    rtc.intercept_rtp_data(receiver, failing)
    # The compiled path took the stream over once its first packet went through the
    # producer's hook: it would hand the failing hook only what the producer leaves to
    # Python (a gap, a keyframe wait), a handful a second or none. Forget its routes, so
    # that every packet goes through the failing hook (which, raising, installs none).
    for rx in receive._direct_state(receiver.transport).receivers:
        rx.routes_used = 0
    await eventually(lambda: len(calls) > 20, 10)
    assert transport.connection_state == "connected"
    rtc.intercept_rtp_data(receiver, video.on_rtp_data)
    before = video.packets
    await eventually(lambda: video.packets > before + 20, 10)


async def test_undecryptable_and_oversized_datagrams_are_dropped(worker, participants):
    """A forged datagram of the publisher's SSRC fails to unprotect, an oversized one is
    dropped before, one of an SSRC the transport's policy refuses never reaches libsrtp."""
    transport, _ = await joined(worker, participants)
    dtls = transport._writer.dtls
    policy = receive._direct_state(dtls).ssrc_policy
    refused = policy.dropped
    address = nominated_local_address(dtls)
    forged = struct.pack("!BBHII", 0x80, 96, 1, 2, allowed_ssrc(dtls)) + os.urandom(200)
    unknown = struct.pack("!BBHII", 0x80, 96, 1, 2, 3) + os.urandom(200)
    with socket.socket(
        socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_DGRAM
    ) as sock:
        sock.sendto(forged, address)
        sock.sendto(forged[:12] + os.urandom(3000), address)
        sock.sendto(unknown, address)
    await eventually(lambda: policy.dropped == refused + 1, 5)
    await eventually(lambda: rtc.direct_receive_failures(transport._pc) == 2, 5)
    before = transport.stats()["packets_received"]
    await eventually(lambda: transport.stats()["packets_received"] > before + 20, 10)
    assert transport.connection_state == "connected"


@pytest.mark.media_settings(receive_poller=False)
async def test_queued_datagrams_are_read_in_one_event_and_keep_their_order(worker, participants):
    """A readiness event reads the socket until it is empty (asyncio's transport reads one
    datagram per event); what is not for the direct path still reaches aioice, in order,
    and RTP queued behind it takes aiortc's path too."""
    transport, _ = await joined(worker, participants)
    dtls = transport._writer.dtls
    address = nominated_local_address(dtls)
    pair = nominated_pair(dtls)
    protocol = pair.protocol
    aioice_received = type(protocol).datagram_received.__get__(protocol)
    passed: list[bytes] = []
    events: list[int] = []

    def original(data: bytes, addr: tuple) -> None:
        passed.append(data)
        aioice_received(data, addr)

    receiver = receive.DirectReceiver(
        dtls, receive._direct_state(dtls), original, datagram_socket(protocol.transport)
    )
    direct = (
        receiver.datagram_received
        if receiver.rx is not None
        else (receiver.datagram_received_in_python)
    )

    def counted(data: bytes, addr: tuple) -> None:
        # datagrams of the test this one event took care of
        before = rtc.direct_receive_failures(transport._pc) + len(passed)
        direct(data, addr)
        events.append(rtc.direct_receive_failures(transport._pc) + len(passed) - before)

    protocol.datagram_received = counted
    failures = rtc.direct_receive_failures(transport._pc)
    ssrc = allowed_ssrc(dtls)
    forged = [struct.pack("!BBHII", 0x80, 96, n, 2, ssrc) + os.urandom(200) for n in range(15)]
    garbage = b"\x00\x01" + os.urandom(40)  # neither STUN nor media: aioice queues it
    with socket.socket(
        socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_DGRAM
    ) as sock:
        for data in forged[:10]:
            sock.sendto(data, address)
        sock.sendto(garbage, address)
        for data in forged[10:]:
            sock.sendto(data, address)
        await eventually(lambda: all(d in passed for d in forged[10:]), 5)
    # the ten before the garbage failed to unprotect on the direct path
    assert rtc.direct_receive_failures(transport._pc) == failures + 10
    order = [passed.index(d) for d in (garbage, *forged[10:])]
    assert order == sorted(order)
    # one event read at least the ten queued before the garbage, not one each
    assert max(events) >= 10
    before = transport.stats()["packets_received"]
    await eventually(lambda: transport.stats()["packets_received"] > before + 20, 10)
    assert transport.connection_state == "connected"


async def test_ordinary_packets_are_forwarded_without_python(worker, participants):
    """Once a producer's stream began, the compiled receive path forwards its packets to
    the consumers itself: the producer's counters move while its Python method is not
    called for them, and the subscriber keeps receiving."""
    assert rtc.FASTRECEIVE, "CI builds the compiled module"
    transport, subscriber = await joined(worker, participants)
    dtls = transport._writer.dtls
    receivers = receive._direct_state(dtls).receivers
    video = next(p for p in transport.producers.values() if p.kind == "video")
    called = 0
    original = video.on_rtp_data

    def counting(data: bytes, arrival_ms: int) -> None:
        nonlocal called
        called += 1
        original(data, arrival_ms)

    # the subscriber's video began (at a keyframe): from here on packets are ordinary
    await eventually(
        lambda: len(subscriber.tracks) == 2 and all(t.packets for t in subscriber.tracks.values()),
        20,
    )
    await eventually(lambda: not video.keyframe_waiters, 10)
    for transceiver in transport._pc.getTransceivers():
        hook = transceiver.receiver._handle_rtp_packet
        if getattr(hook.route, "__self__", None) is video:
            hook.on_data = counting
    packets = video.packets
    forwarded = sum(int(rx.forwarded) for rx in receivers)
    seen = sum(t.packets for t in subscriber.tracks.values())
    await eventually(
        lambda: (
            video.packets > packets + 100
            and sum(t.packets for t in subscriber.tracks.values()) > seen + 100
        ),
        10,
    )
    in_c = sum(int(rx.forwarded) for rx in receivers) - forwarded
    assert in_c > 100
    assert called < (video.packets - packets) / 2
    assert video.native.forwarded_here > 100


async def test_the_workers_poller_reads_every_publish_socket(worker, participants):
    """The SFU's publish sockets are read through the worker's epoll set, on readiness:
    media flows, what is not media still reaches aioice (here a datagram that is neither
    STUN nor media, which aioice queues for the DTLS transport), forged SRTP is dropped
    and counted, and the connection stays up."""
    assert rtc.FASTRECEIVE, "CI builds the compiled module"
    poller = worker.receive_poller
    assert poller is not None
    polls, datagrams = poller.polls, poller.datagrams
    transport, subscriber = await joined(worker, participants)
    await eventually(lambda: poller.polls > polls and poller.datagrams > datagrams + 30, 10)
    dtls = transport._writer.dtls
    queued: list[bytes] = []
    recv = dtls.transport._recv

    async def watched() -> bytes:
        data = await recv()
        queued.append(data)
        return data

    dtls.transport._recv = watched
    address = nominated_local_address(dtls)
    failures = rtc.direct_receive_failures(transport._pc)
    ssrc = allowed_ssrc(dtls)
    forged = [struct.pack("!BBHII", 0x80, 96, n, 2, ssrc) + os.urandom(200) for n in range(8)]
    garbage = b"\x00\x01" + os.urandom(40)
    with socket.socket(
        socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_DGRAM
    ) as sock:
        for data in forged[:4]:
            sock.sendto(data, address)
        sock.sendto(garbage, address)  # the one the queue's reader awaits already is unseen
        sock.sendto(garbage + b"2", address)
        for data in forged[4:]:
            sock.sendto(data, address)
        await eventually(
            lambda: (
                garbage + b"2" in queued
                and rtc.direct_receive_failures(transport._pc) == failures + 8
            ),
            5,
        )
    seen = sum(t.packets for t in subscriber.tracks.values())
    await eventually(lambda: sum(t.packets for t in subscriber.tracks.values()) > seen + 20, 10)
    assert transport.connection_state == "connected"


async def test_under_load_the_poller_reads_on_a_tick_and_returns_to_readiness(worker, participants):
    """More than one wake-up per millisecond (here a peer's flood of forged media, ~3 per
    ms, from another thread) turns the worker's poller to its busy tick; when the flood
    stops, most ticks find nothing and it reads on readiness again.  Every forged datagram
    was read (and dropped) meanwhile, and media kept flowing."""
    poller = worker.receive_poller
    assert poller is not None and poller.busy_tick == 0.001
    transport, subscriber = await joined(worker, participants)
    dtls = transport._writer.dtls
    address = nominated_local_address(dtls)
    failures = rtc.direct_receive_failures(transport._pc)
    ssrc = allowed_ssrc(dtls)
    count = 1500
    stop = threading.Event()

    def flood() -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            start = time.monotonic()
            for n in range(count):
                if stop.is_set():
                    return
                sock.sendto(struct.pack("!BBHII", 0x80, 96, n, 2, ssrc) + bytes(100), address)
                # three a millisecond, evenly
                delay = start + (n + 1) / 3000 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    sender = threading.Thread(target=flood)
    sender.start()
    try:
        await eventually(lambda: poller.ticking, 5)
        assert poller.busy_periods >= 1
        await eventually(lambda: rtc.direct_receive_failures(transport._pc) >= failures + count, 10)
    finally:
        stop.set()
        sender.join()
    await eventually(lambda: not poller.ticking, 5)
    seen = sum(t.packets for t in subscriber.tracks.values())
    await eventually(lambda: sum(t.packets for t in subscriber.tracks.values()) > seen + 20, 10)
    assert transport.connection_state == "connected"
