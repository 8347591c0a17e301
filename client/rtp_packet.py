"""Reading a received RTP packet (RFC 3550) and its header extension elements (RFC 8285)
for the client's checks of what it receives.

Every length is checked against the data before it is used: a packet that is not RTP
version 2, whose CSRC list, extension block or padding runs past its end gives ``None``
(never an exception), as aiortc's parser would reject it.  The extension elements of
both forms are read as the SFU and aiortc read them (``sfu.rtp_header.extension_elements``)
and kept by id, unknown ones included (aiortc drops those it was not told of, the
``rtp-stream-id`` among them).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from sfu.rtp_header import extension_elements

_FIXED = struct.Struct("!BBHII")


@dataclass(frozen=True, slots=True)
class RtpPacketView:
    """The fields of one received RTP packet."""

    payload_type: int
    marker: bool
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes
    #: header extension elements by id (of an id given twice, the first non-empty one, as
    #: ``sfu.rtp_header.header_extension`` finds it)
    extensions: dict[int, bytes] = field(default_factory=dict)
    #: an extension block was there but could not be read element by element
    malformed_extensions: bool = False

    def extension_text(self, extension_id: int | None) -> str | None:
        """The element ``extension_id`` as ASCII text (a mid or RID), else ``None``."""
        value = self.extensions.get(extension_id) if extension_id else None
        if value is None:
            return None
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return None


def parse_rtp(data: bytes | bytearray | memoryview) -> RtpPacketView | None:
    """``data`` read as an RTP packet, or ``None`` when it is not a well-formed one."""
    data = bytes(data)
    size = len(data)
    if size < _FIXED.size:
        return None
    first, second, sequence_number, timestamp, ssrc = _FIXED.unpack_from(data)
    if first >> 6 != 2:
        return None
    start = _FIXED.size + 4 * (first & 0x0F)
    end = size
    if start > end:
        return None
    extensions: dict[int, bytes] = {}
    malformed = False
    if first & 0x10:
        if start + 4 > end:
            return None
        profile, words = struct.unpack_from("!HH", data, start)
        block_end = start + 4 + 4 * words
        if block_end > end:
            return None
        elements = _elements(data, start + 4, block_end, profile)
        if elements is None:
            malformed = True
        else:
            extensions = elements
        start = block_end
    if first & 0x20:
        padding = data[-1]
        if not padding or padding > end - start:
            return None
        end -= padding
    return RtpPacketView(
        payload_type=second & 0x7F,
        marker=bool(second & 0x80),
        sequence_number=sequence_number,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=data[start:end],
        extensions=extensions,
        malformed_extensions=malformed,
    )


def _elements(data: bytes, pos: int, end: int, profile: int) -> dict[int, bytes] | None:
    """The elements of the extension block ``data[pos:end]`` by id, read as aiortc reads
    them (:func:`sfu.rtp_header.extension_elements`: a profile of neither form carries
    none); ``None`` when one runs past the block, where aiortc rejects the packet.  Of an
    id given twice the first non-empty element is kept, the one the SFU's lookup finds."""
    found: dict[int, bytes] = {}
    try:
        for element_id, value in extension_elements(data, pos, end, profile):
            if not found.get(element_id):
                found[element_id] = value
    except ValueError:
        return None
    return found


__all__ = ["RtpPacketView", "parse_rtp"]
