"""Checks every decrypted RTCP compound packet of a peer before it is parsed.

aiortc's RTCP parser expands a NACK into every sequence number it names (a 1 KB NACK
names 4,590) and raises on shapes its routing does not expect (a REMB claiming more
SSRCs than it carries), and nothing limits how many RTCP packets a peer sends.  The
guard walks the compound packet's headers (RFC 3550 §6.4, RFC 4585 §6), drops each
part that is malformed, cuts a NACK to its first ``max_nack_items`` items before
anything expands them, addresses a FIR by its FCI (a FIR's media SSRC is 0 by
RFC 5104), and drops whole compounds beyond the peer's rate.  It keeps counts of each.

Transport feedback (RTPFB format 15, draft-holmer-rmcat-transport-wide-cc-extensions-01)
never reaches aiortc, which would read its chunks as a NACK list: it goes, as it came, to
``on_transport_feedback`` when the transport negotiated it (the subscriber's downlink
estimate reads it), and is dropped otherwise.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from .token_bucket import TokenBucket

_PT_SR = 200
_PT_RR = 201
_PT_SDES = 202
_PT_BYE = 203
_PT_APP = 204
_PT_RTPFB = 205
_PT_PSFB = 206
_PT_XR = 207
_KNOWN = frozenset((_PT_SR, _PT_RR, _PT_SDES, _PT_BYE, _PT_APP, _PT_RTPFB, _PT_PSFB, _PT_XR))
_FMT_NACK = 1
_FMT_TRANSPORT_CC = 15
_FMT_PLI = 1
_FMT_FIR = 4
_FMT_APP = 15
_HEADER = struct.Struct("!BBH")
_SSRC = struct.Struct("!I")
#: FIRs answered per compound (each names one media SSRC).
_MAX_FIR_ENTRIES = 4


class RtcpGuard:
    """The RTCP check of one transport (see the module's docstring)."""

    __slots__ = (
        "_bucket",
        "dropped_malformed",
        "dropped_rate",
        "firs_readdressed",
        "max_nack_items",
        "nack_items_ignored",
        "on_transport_feedback",
        "transport_feedback",
    )

    def __init__(
        self,
        *,
        rate: float = 500.0,
        max_nack_items: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bucket = TokenBucket(rate, clock=clock)
        self.max_nack_items = max_nack_items
        #: Parts dropped as malformed; compounds dropped over the rate; NACK items cut.
        self.dropped_malformed = 0
        self.dropped_rate = 0
        self.nack_items_ignored = 0
        self.firs_readdressed = 0
        #: Called with each transport feedback packet (header included), if set.
        self.on_transport_feedback: Callable[[bytes], None] | None = None
        self.transport_feedback = 0

    def check(self, data: bytes) -> bytes | None:
        """The parts of ``data`` that may be parsed, rewritten as said; ``None``: none."""
        if not self._bucket.take():
            self.dropped_rate += 1
            return None
        parts: list[bytes] = []
        offset = 0
        size = len(data)
        changed = False
        while offset < size:
            if size - offset < 4:
                self.dropped_malformed += 1
                changed = True
                break
            first, packet_type, words = _HEADER.unpack_from(data, offset)
            length = (words + 1) * 4
            if first >> 6 != 2 or offset + length > size:
                self.dropped_malformed += 1  # the rest cannot be framed
                changed = True
                break
            part = data[offset : offset + length]
            offset += length
            checked = self._check_part(part, first & 0x1F, packet_type, first & 0x20)
            if checked is not part:
                changed = True
            if checked:
                parts.append(checked)
        if not parts:
            return None
        return b"".join(parts) if changed else data

    def _check_part(self, part: bytes, count: int, packet_type: int, padded: int) -> bytes:
        """``part`` itself, a rewritten copy, or ``b""`` (dropped)."""
        length = len(part)
        body = length
        if padded:
            pad = part[-1]
            if pad == 0 or pad > length - 4:
                self.dropped_malformed += 1
                return b""
            body = length - pad
        if packet_type not in _KNOWN:
            self.dropped_malformed += 1
            return b""
        if packet_type == _PT_SR:
            ok = body >= 28 + 24 * count
        elif packet_type == _PT_RR:
            ok = body >= 8 + 24 * count
        elif packet_type in (_PT_RTPFB, _PT_PSFB):
            ok = body >= 12
        elif packet_type == _PT_BYE:
            ok = body >= 4 + 4 * count
        else:
            ok = True
        if not ok:
            self.dropped_malformed += 1
            return b""
        if packet_type == _PT_RTPFB and count == _FMT_TRANSPORT_CC:
            self.transport_feedback += 1
            handler = self.on_transport_feedback
            if handler is not None:
                handler(part)
            return b""
        if packet_type == _PT_RTPFB and count == _FMT_NACK:
            if padded or (body - 12) % 4:
                self.dropped_malformed += 1
                return b""
            items = (body - 12) // 4
            if items > self.max_nack_items:
                self.nack_items_ignored += items - self.max_nack_items
                keep = 12 + 4 * self.max_nack_items
                return _HEADER.pack(part[0], part[1], keep // 4 - 1) + part[4:keep]
            return part
        if packet_type == _PT_PSFB:
            if count == _FMT_APP:
                return self._check_remb(part, body)
            if count == _FMT_FIR:
                return self._readdress_fir(part, body, padded)
        return part

    def _check_remb(self, part: bytes, body: int) -> bytes:
        if body < 20 or part[12:16] != b"REMB":
            return part  # another application's feedback: aiortc ignores it
        if body < 20 + 4 * part[16]:
            self.dropped_malformed += 1
            return b""
        return part

    def _readdress_fir(self, part: bytes, body: int, padded: int) -> bytes:
        entries = (body - 12) // 8
        if padded or entries == 0 or (body - 12) % 8:
            self.dropped_malformed += 1
            return b""
        if _SSRC.unpack_from(part, 8)[0] != 0:
            return part
        # one FIR per entry, each addressed to the SSRC its FCI names
        out = []
        for i in range(min(entries, _MAX_FIR_ENTRIES)):
            fci = part[12 + 8 * i : 20 + 8 * i]
            out.append(_HEADER.pack(part[0], part[1], 4) + part[4:8] + fci[:4] + fci)
        self.firs_readdressed += len(out)
        return b"".join(out)

    def stats(self) -> dict[str, int]:
        return {
            "rtcp_dropped_malformed": self.dropped_malformed,
            "rtcp_dropped_rate": self.dropped_rate,
            "nack_items_ignored": self.nack_items_ignored,
            "firs_readdressed": self.firs_readdressed,
            "transport_feedback": self.transport_feedback,
        }
