"""What a datagram on a peer connection's socket is, by its first two bytes.

The one demultiplexing rule of every path that tells RTP from RTCP and from the rest
(STUN, DTLS): :func:`classify`.  The compiled module's ``caucus_classify`` returns the
same numbers, and a test compares the two on every first and second byte.
"""

from __future__ import annotations

from typing import Any

KIND_OTHER = 0  # neither RTP nor RTCP: STUN, DTLS, ... (aioice's and aiortc's)
KIND_RTP = 1
KIND_RTCP = 2  # packet types 192-208, those aiortc's SRTCP path takes
KIND_MALFORMED = 3  # RTCP packet types 209-223, or RTP too short for its header


def classify(data: Any, length: int) -> int:
    """RFC 7983 (a first byte of 128-191 is RTP or RTCP) and RFC 5761 §4 (RTCP when the
    second byte, the packet type, is 192-223; RTP otherwise).  aiortc's SRTCP path
    (``aiortc.rtp.is_rtcp``) takes packet types 192-208 only and would unprotect 209-223
    as RTP, which RFC 5761 forbids (they are RTP payload types 64-95 with the marker
    bit): :data:`KIND_MALFORMED`, dropped, as is RTP no longer than its 12-byte header
    (SRTP adds an authentication tag)."""
    if length < 2:
        return KIND_OTHER
    first = data[0]
    if first < 128 or first > 191:
        return KIND_OTHER
    second = data[1]
    if 191 < second < 224:
        return KIND_RTCP if second < 209 else KIND_MALFORMED
    return KIND_RTP if length > 12 else KIND_MALFORMED
