"""What the tests of the compiled media module (``sfu._fastpath``) against hostile input
share: real SRTP sessions on one key, a compiled receiver on a real UDP socket, and a
way to run a call that could crash the interpreter in a child process of its own."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pylibsrtp

from sfu.rtc import native, writer
from sfu.rtc.internals import srtp_context

ROOT = Path(__file__).resolve().parents[2]
KEY = bytes(range(28))
PROFILE = pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM
RTP_HEADER = struct.Struct("!BBHII")

fast = native.NATIVE


def session(inbound: bool) -> pylibsrtp.Session:
    """A libsrtp session on :data:`KEY`, as aiortc configures its transports'."""
    policy = pylibsrtp.Policy(
        key=KEY,
        ssrc_type=(
            pylibsrtp.Policy.SSRC_ANY_INBOUND if inbound else pylibsrtp.Policy.SSRC_ANY_OUTBOUND
        ),
        srtp_profile=PROFILE,
    )
    policy.allow_repeat_tx = True
    policy.window_size = 1024
    return pylibsrtp.Session(policy)


def rtp(ssrc: int, seq: int, payload: bytes = b"\x01" * 100, second: int = 96) -> bytes:
    return RTP_HEADER.pack(0x80, second, seq & 0xFFFF, seq * 3000 & 0xFFFFFFFF, ssrc) + payload


def protect(outbound: pylibsrtp.Session, packet: bytes) -> bytes:
    """``packet`` protected by libsrtp in place, whatever its length (pylibsrtp's own
    ``protect`` refuses packets longer than a common MTU)."""
    ffi = native.srtp_ffi
    buf = ffi.new("char[]", len(packet) + pylibsrtp.SRTP_MAX_TRAILER_LEN)
    buf[0 : len(packet)] = packet
    size = ffi.new("int *", len(packet))
    assert native.srtp_protect(srtp_context(outbound), buf, size) == 0
    return ffi.buffer(buf, size[0])[:]


def has_stream(inbound: pylibsrtp.Session, ssrc: int) -> bool:
    """Whether libsrtp created a stream for ``ssrc`` in ``inbound`` (it does once a packet
    of that SSRC authenticated); the stream is removed to find out."""
    try:
        inbound.remove_stream(ssrc)
    except pylibsrtp.Error:
        return False
    return True


class Receiver:
    """A ``caucus_receiver`` reading a real UDP socket, unprotecting with a real inbound
    session (held here for as long as the receiver points into it)."""

    def __init__(self) -> None:
        self.inbound = session(inbound=True)
        self.outbound = session(inbound=False)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rx: Any = fast.ffi.new("caucus_receiver *")
        self.rx.unprotect = native.FAST_UNPROTECT
        self.rx.srtp = fast.ffi.cast("void *", native.address_of(srtp_context(self.inbound)))
        self.rx.fd = self.sock.fileno()

    def send(self, *datagrams: bytes) -> None:
        for data in datagrams:
            self.peer.sendto(data, self.sock.getsockname())

    def allow(self, *ssrcs: int) -> int:
        table = fast.ffi.new("uint32_t[]", list(ssrcs) or [0])
        result = fast.lib.caucus_receiver_allow(self.rx, table, len(ssrcs))
        self.rx.filter = 1
        return result

    def held(self) -> bytes:
        return bytes(fast.ffi.buffer(self.rx.buf, self.rx.length))

    def close(self) -> None:
        self.rx.srtp = fast.ffi.NULL
        self.sock.close()
        self.peer.close()


def run_isolated(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (the same environment: a sanitizer run's
    preloaded runtime and module included), for calls that crashed the process before
    they were checked; the caller asserts on the exit status and output."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


class Sink:
    """A ``caucus_sink`` sending on a real UDP socket with a real outbound session, and
    the socket it sends to (read back with :meth:`received`)."""

    def __init__(self) -> None:
        self.outbound = session(inbound=False)
        self.inbound = session(inbound=True)
        self.target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.target.bind(("127.0.0.1", 0))
        self.target.setblocking(False)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sink: Any = fast.ffi.new("caucus_sink *")
        self.sink.protect = native.FAST_PROTECT
        self.sink.srtp = fast.ffi.cast("void *", native.address_of(srtp_context(self.outbound)))
        self.sink.fd = self.sock.fileno()
        address = writer._sockaddr(socket.AF_INET, self.target.getsockname())
        assert address is not None
        self.sink.addr[0 : len(address)] = address
        self.sink.addrlen = len(address)

    def received(self) -> list[bytes]:
        """The unprotected packets waiting at the target."""
        got = []
        while True:
            try:
                got.append(self.inbound.unprotect(self.target.recv(4096)))
            except BlockingIOError:
                return got

    def close(self) -> None:
        self.sink.srtp = fast.ffi.NULL
        self.sock.close()
        self.target.close()
