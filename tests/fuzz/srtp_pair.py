"""What the fuzz targets of the compiled media module (``fuzz_native_*.py``) share: libsrtp
sessions on one key, inbound and outbound, as aiortc configures its transports', and a
packet protected with one, whatever its length.

The targets import it as a module beside them: run as a script, a target has this folder
first on ``sys.path``; pytest puts it there too when it imports ``test_fuzz_targets.py``
from here (a folder without ``__init__.py``).
"""

from __future__ import annotations

import pylibsrtp

from sfu.rtc import native
from sfu.rtc.internals import srtp_context

KEY = bytes(range(28))
PROFILE = pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM


def session(inbound: bool, window_size: int | None = None) -> pylibsrtp.Session:
    """A session on :data:`KEY`, repeated indexes allowed when sending (retransmissions);
    with ``window_size``, that replay window instead of libsrtp's default."""
    policy = pylibsrtp.Policy(
        key=KEY,
        ssrc_type=(
            pylibsrtp.Policy.SSRC_ANY_INBOUND if inbound else pylibsrtp.Policy.SSRC_ANY_OUTBOUND
        ),
        srtp_profile=PROFILE,
    )
    policy.allow_repeat_tx = True
    if window_size is not None:
        policy.window_size = window_size
    return pylibsrtp.Session(policy)


def protect(outbound: pylibsrtp.Session, packet: bytes) -> bytes:
    """``packet`` protected by libsrtp in place (pylibsrtp's own ``protect`` refuses
    packets longer than a common MTU), or as it was when libsrtp refuses it."""
    buf = native.srtp_ffi.new("char[]", len(packet) + pylibsrtp.SRTP_MAX_TRAILER_LEN)
    buf[0 : len(packet)] = packet
    size = native.srtp_ffi.new("int *", len(packet))
    if native.srtp_protect(srtp_context(outbound), buf, size):
        return packet
    return native.srtp_ffi.buffer(buf, size[0])[:]
