"""Serialising the parts of an RTP packet the SFU writes (RFC 3550, RFC 8285 one-byte form).

The payload and the header-extension block are built once per received packet and
shared by every consumer; each consumer only packs its own 12-byte fixed header.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from aiortc import clock

#: First byte (V=2, no padding, no CSRC) without / with a header extension.
VERSION_BYTE = 0x80
VERSION_BYTE_EXTENSION = 0x90

FIXED_HEADER = struct.Struct("!BBHII")
SEQUENCE = struct.Struct("!H")

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"


def abs_send_time() -> int:
    """Now, as a 6.18 fixed-point NTP time (the abs-send-time extension's value)."""
    return (clock.current_ntp_time() >> 14) & 0x00FFFFFF


def transport_cc_element(transport_cc_id: int) -> bytes:
    """The transport-wide sequence number's element (one-byte form, two bytes), its
    number 0 until the subscribe transport's writer numbers the packet as it sends it."""
    return bytes((transport_cc_id << 4 | 1, 0, 0))


def extension_block(
    abs_send_time_id: int,
    abs_send_time_value: int | None,
    audio_level_id: int,
    audio_level,
    transport_cc_id: int = 0,
) -> bytes:
    """The one-byte-header extension block, or ``b""`` when there is nothing to write.

    With a ``transport_cc_id`` the block begins with that element: the writer then finds
    the number's place at a fixed offset of every packet (bytes 17-18 behind a 12-byte
    header) instead of walking the block for each packet it sends."""
    elements = transport_cc_element(transport_cc_id) if transport_cc_id else b""
    if abs_send_time_id and abs_send_time_value is not None:
        elements += bytes((abs_send_time_id << 4 | 2,)) + abs_send_time_value.to_bytes(3, "big")
    if audio_level_id and audio_level is not None:
        vad, level = audio_level
        elements += bytes((audio_level_id << 4, (0x80 if vad else 0) | (level & 0x7F)))
    if not elements:
        return b""
    elements += b"\x00" * (-len(elements) % 4)
    return b"\xbe\xde" + SEQUENCE.pack(len(elements) // 4) + elements


# --- reading received packets (only what the forwarding path needs) ------------------

#: (first byte, marker|payload type, sequence number, timestamp, SSRC) of a packet.
read_fixed_header = FIXED_HEADER.unpack_from


def payload_bounds(data: bytes, first_byte: int) -> tuple[int, int]:
    """Where the payload of the RTP packet ``data`` starts and ends: after the CSRC list
    and the header extension, before the padding.  ``(0, 0)`` for a packet aiortc's
    parser would reject (truncated CSRC list or extension, invalid padding length)."""
    start = 12 + ((first_byte & 0x0F) << 2)
    end = len(data)
    if first_byte & 0x10:
        if end < start + 4:
            return 0, 0
        start += 4 + ((data[start + 2] << 8 | data[start + 3]) << 2)
    if first_byte & 0x20:
        padding = data[-1]
        if not padding or padding > end - start:
            return 0, 0
        end -= padding
    if start > end:
        return 0, 0
    return start, end


def extension_elements(
    data: bytes, pos: int, end: int, profile: int
) -> Iterator[tuple[int, bytes]]:
    """The elements ``(id, value)`` of the header-extension block ``data[pos:end]`` with
    ``profile``, in order, read as aiortc's parser reads them
    (``aiortc.rtp.unpack_header_extensions``): one-byte elements (RFC 8285 §4.2) for the
    profile 0xBEDE, two-byte elements (§4.3, no "appbits") for 0x1000, none for any other
    profile.  A zero byte where an element would start is padding; any other byte starts
    one, id 15 included (RFC 8285 reserves it; aiortc and the compiled reader read on).

    Raises ``ValueError`` at an element running past ``end``, after yielding those before
    it, where aiortc rejects the block: a caller that stops at an earlier element does not
    read that far (the walk costs only what it reads, see :func:`header_extension`).
    ``end`` must lie within ``data``."""
    if profile == 0xBEDE:
        while pos < end:
            byte = data[pos]
            if byte == 0:
                pos += 1
                continue
            length = (byte & 0x0F) + 1
            pos += 1
            if pos + length > end:
                raise ValueError("RTP one-byte header extension value is truncated")
            yield byte >> 4, data[pos : pos + length]
            pos += length
    elif profile == 0x1000:
        while pos < end:
            if data[pos] == 0:
                pos += 1
                continue
            if pos + 2 > end:
                raise ValueError("RTP two-byte header extension is truncated")
            element_id, length = data[pos], data[pos + 1]
            pos += 2
            if pos + length > end:
                raise ValueError("RTP two-byte header extension value is truncated")
            yield element_id, data[pos : pos + length]
            pos += length


def header_extension(data: bytes, first_byte: int, extension_id: int) -> bytes | None:
    """The value of the first non-empty element ``extension_id`` in the header extension
    of the RTP packet ``data`` (RFC 8285, one- or two-byte form), its elements read as
    aiortc's parser reads them (:func:`extension_elements`); ``None`` when there is none
    or the block (or its extension header) is malformed before it.

    The walk stops at the element, as the compiled reader (``caucus_audio_level``) does: a
    block malformed only after it still gives it, where aiortc would reject the packet.
    An empty element (two-byte form) is passed over for a later one with the id, as the
    compiled reader does (aiortc's map, where the last element of an id wins, gives that
    later one too)."""
    if not first_byte & 0x10 or not extension_id:
        return None
    pos = 12 + ((first_byte & 0x0F) << 2)
    if len(data) < pos + 4:
        return None
    end = pos + 4 + ((data[pos + 2] << 8 | data[pos + 3]) << 2)
    if end > len(data):
        return None
    try:
        for element_id, value in extension_elements(
            data, pos + 4, end, data[pos] << 8 | data[pos + 1]
        ):
            if element_id == extension_id and value:
                return value
    except ValueError:
        return None
    return None


def audio_level(data: bytes, first_byte: int, extension_id: int) -> tuple[bool, int] | None:
    """The (voice activity, level) of the ssrc-audio-level element (RFC 6464) with
    ``extension_id`` in the header extension of the RTP packet ``data``, as aiortc's
    parser reads it; ``None`` when there is none (or the extension block is malformed)."""
    value = header_extension(data, first_byte, extension_id)
    if not value:
        return None
    return value[0] & 0x80 == 0x80, value[0] & 0x7F


def vp8_picture(payload: bytes | bytearray, start: int = 0) -> tuple[int, int, int]:
    """Where the VP8 payload descriptor (RFC 7741 §4.2) at ``payload[start:]`` keeps its
    picture ID and TL0PICIDX: (offset of the picture ID or -1, its width in bits: 7 or
    15, offset of TL0PICIDX or -1), offsets from ``start``; (-1, 0, -1) for a descriptor
    without them or too short to hold what it announces."""
    n = len(payload) - start
    if n < 1 or not payload[start] & 0x80:
        return -1, 0, -1
    if n < 2:
        return -1, 0, -1
    flags = payload[start + 1]
    pos = 2
    picture, bits = -1, 0
    if flags & 0x80:  # I
        if n < pos + 1:
            return -1, 0, -1
        picture = pos
        if payload[start + pos] & 0x80:  # M: 15 bits
            bits = 15
            pos += 2
        else:
            bits = 7
            pos += 1
    tl0 = -1
    if flags & 0x40:  # L
        tl0 = pos
        pos += 1
    if pos > n:
        return -1, 0, -1
    return picture, bits, tl0
