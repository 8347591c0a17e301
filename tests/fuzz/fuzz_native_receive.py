"""Fuzz target: the compiled receive path (``caucus_receive`` of ``sfu._fastpath``).

Each input drives one ``caucus_receiver`` with a real libsrtp session (fresh per input,
as a transport's) reading a datagram socket pair: datagrams handed with the event (any
bytes, and lengths around the buffer's size, negative ones included), datagrams read
from the socket (raw, or RTP protected with the peer's key under a chosen SSRC), the
SSRC allowlist and its filter switched and replaced (up to one entry more than it
holds), the held datagram of an unknown SSRC unprotected, the context released, RTCP
dropped or handed on, routes to a compiled track counter, and the poller over the same
socket.  Rejections are result codes and counters; a crash, a sanitizer report or a
result outside what the call documents is a failure.  Run under ``make sanitize`` for
the memory checks (AddressSanitizer, UndefinedBehaviorSanitizer).
"""

from __future__ import annotations

import socket
import struct
import sys

import atheris

with atheris.instrument_imports(include=["sfu.rtc"]):
    from sfu import rtc
    from sfu.rtc import native
    from sfu.rtc.internals import srtp_context

from srtp_pair import protect, session  # beside this file

fast = native.NATIVE
ffi, lib = fast.ffi, fast.lib
BUFFER = lib.CAUCUS_BUFFER
RESULTS = {lib.CAUCUS_RX_DONE, lib.CAUCUS_RX_RTP, lib.CAUCUS_RX_OTHER, lib.CAUCUS_RX_UNKNOWN}
LENGTHS = (BUFFER - 1, BUFFER, BUFFER + 1, -1, -(2**31), 0, 1, 2, 12, 13, 2**31 - 1)

RX_SOCK, PEER_SOCK = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
RX_SOCK.setblocking(False)
PEER_SOCK.setblocking(False)
RX = ffi.new("caucus_receiver *")
TRACK = ffi.new("caucus_track *")
TABLE = ffi.new("uint32_t[]", lib.CAUCUS_ALLOWED_SSRCS + 1)
POLLER = ffi.new("caucus_poller *")
assert lib.caucus_poller_open(POLLER) >= 0


def empty_socket() -> None:
    while True:
        try:
            RX_SOCK.recv(1 << 17)
        except BlockingIOError:
            return


@atheris.instrument_func
def check(result: int) -> None:
    """What a call left must be what it documents."""
    assert result in RESULTS, result
    if result == lib.CAUCUS_RX_DONE:
        return
    assert 0 <= RX.length <= lib.CAUCUS_DATAGRAM
    if result == lib.CAUCUS_RX_RTP:
        assert 12 <= RX.length <= BUFFER
    elif result == lib.CAUCUS_RX_UNKNOWN:
        assert RX.filter and 12 < RX.length <= BUFFER
        ssrc = struct.unpack_from("!I", ffi.buffer(RX.buf, 12), 8)[0]
        assert ssrc not in list(RX.allowed)[: RX.allowed_count]
    else:
        kind = rtc.classify(bytes(ffi.buffer(RX.buf, 2)), RX.length)
        assert kind == rtc.KIND_OTHER or (kind == rtc.KIND_RTCP and not RX.drop_rtcp)


@atheris.instrument_func
def continue_event(fdp: atheris.FuzzedDataProvider) -> None:
    """Go on as Python would: unprotect what an admitted SSRC left, then read on."""
    RX.budget = lib.CAUCUS_DRAIN_BATCH
    result = lib.caucus_receive(RX, ffi.NULL, 0)
    for _ in range(64):
        check(result)
        if result == lib.CAUCUS_RX_DONE:
            return
        if result == lib.CAUCUS_RX_UNKNOWN and fdp.ConsumeBool():
            check(lib.caucus_unprotect_held(RX))
        result = lib.caucus_receive(RX, ffi.NULL, 0)


@atheris.instrument_func
def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    inbound, outbound = session(True), session(False)
    ffi.memmove(RX, bytes(ffi.sizeof("caucus_receiver")), ffi.sizeof("caucus_receiver"))
    ffi.memmove(TRACK, bytes(ffi.sizeof("caucus_track")), ffi.sizeof("caucus_track"))
    TRACK.clock_rate = 90000
    RX.unprotect = native.FAST_UNPROTECT
    RX.srtp = ffi.cast("void *", native.address_of(srtp_context(inbound)))
    RX.fd = RX_SOCK.fileno()
    RX.drop_rtcp = fdp.ConsumeBool()
    for _ in range(fdp.ConsumeIntInRange(1, 24)):
        op = fdp.ConsumeIntInRange(0, 8)
        if op == 0:  # the event's own datagram
            datagram = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, BUFFER + 64))
            length = fdp.PickValueInList([len(datagram), *LENGTHS])
            if 0 <= length <= BUFFER and length > len(datagram):
                length = len(datagram)  # the caller's length never runs past its bytes
            check(lib.caucus_receive(RX, datagram, length))
            RX.budget = 0
        elif op in (1, 2):  # from the socket: raw bytes, or RTP with the peer's key
            size = fdp.PickValueInList([fdp.ConsumeIntInRange(0, 300), BUFFER + 1, 20000])
            raw = fdp.ConsumeBytes(size)
            if op == 2 and len(raw) >= 12:
                raw = protect(outbound, bytes([0x80 | (raw[0] & 0x3F)]) + raw[1:])
            try:
                PEER_SOCK.send(raw)
            except OSError:
                pass  # the socket's buffer is full
            continue_event(fdp)
        elif op == 3:  # the allowlist, up to one entry more than it holds
            n = fdp.ConsumeIntInRange(-1, lib.CAUCUS_ALLOWED_SSRCS + 1)
            for i in range(max(n, 0)):
                TABLE[i] = fdp.ConsumeUInt(4)
            before = list(RX.allowed)
            result = lib.caucus_receiver_allow(RX, TABLE, n)
            if 0 <= n <= lib.CAUCUS_ALLOWED_SSRCS:
                assert result == 0 and RX.allowed_count == n
            else:
                assert result == -1 and list(RX.allowed) == before
            RX.filter = fdp.ConsumeBool()
        elif op == 4:  # the transport left "connected", or is back in this input
            if RX.srtp == ffi.NULL:
                RX.srtp = ffi.cast("void *", native.address_of(srtp_context(inbound)))
            else:
                RX.srtp = ffi.NULL
        elif op == 5:  # a route to the track counter
            lib.caucus_route_add(RX, fdp.ConsumeUInt(4), fdp.ConsumeIntInRange(0, 127), TRACK)
        elif op == 6:  # the track counter on its own
            packet = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 1500))
            assert lib.caucus_track_packet(TRACK, packet, len(packet)) in (0, 1)
        elif op == 7:  # the poller over the same socket
            if not RX.registered:
                assert lib.caucus_poller_add(POLLER, RX) == 0
            result = lib.caucus_poll(POLLER, 1)
            for _ in range(64):
                check(result)
                if result == lib.CAUCUS_RX_DONE:
                    break
                result = lib.caucus_poll(POLLER, 0)
            lib.caucus_poller_remove(POLLER, RX)
            assert RX.fd == -1 and not RX.registered
            RX.fd = RX_SOCK.fileno()
        else:
            RX.drop_rtcp = not RX.drop_rtcp
    assert RX.too_large <= RX.failed
    RX.srtp = ffi.NULL  # before the session goes
    empty_socket()


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
