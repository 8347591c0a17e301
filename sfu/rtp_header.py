"""Serialising the parts of an RTP packet the SFU writes (RFC 3550, RFC 8285 one-byte form).

The payload and the header-extension block are built once per received packet and
shared by every consumer; each consumer only packs its own 12-byte fixed header.
"""

from __future__ import annotations

import struct

from aiortc import clock

#: First byte (V=2, no padding, no CSRC) without / with a header extension.
VERSION_BYTE = 0x80
VERSION_BYTE_EXTENSION = 0x90

FIXED_HEADER = struct.Struct("!BBHII")
SEQUENCE = struct.Struct("!H")

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


def abs_send_time() -> int:
    """Now, as a 6.18 fixed-point NTP time (the abs-send-time extension's value)."""
    return (clock.current_ntp_time() >> 14) & 0x00FFFFFF


def extension_block(
    abs_send_time_id: int, abs_send_time_value: int | None, audio_level_id: int, audio_level
) -> bytes:
    """The one-byte-header extension block, or ``b""`` when there is nothing to write."""
    elements = b""
    if abs_send_time_id and abs_send_time_value is not None:
        elements += bytes((abs_send_time_id << 4 | 2,)) + abs_send_time_value.to_bytes(3, "big")
    if audio_level_id and audio_level is not None:
        vad, level = audio_level
        elements += bytes((audio_level_id << 4, (0x80 if vad else 0) | (level & 0x7F)))
    if not elements:
        return b""
    elements += b"\x00" * (-len(elements) % 4)
    return b"\xbe\xde" + SEQUENCE.pack(len(elements) // 4) + elements
