"""Recognise the first packet of a keyframe in an RTP payload, per codec, without decoding.

A consumer starts (and restarts after a source switch) on such a packet so that the
subscriber's decoder never sees a frame it has no reference for.
"""

from __future__ import annotations

from collections.abc import Callable

KeyframeTest = Callable[[bytes], bool]


def vp8_keyframe_start(payload: bytes) -> bool:
    """RFC 7741: S bit set, partition 0, and the VP8 frame header's P bit clear."""
    size = len(payload)
    if size < 1:
        return False
    b0 = payload[0]
    if not b0 & 0x10 or b0 & 0x0F:  # S=1 and PID=0: start of the frame
        return False
    i = 1
    if b0 & 0x80:  # X: extension byte follows
        if size < 2:
            return False
        x = payload[1]
        i = 2
        if x & 0x80:  # I: picture id, 7 or 15 bits
            if size <= i:
                return False
            i += 2 if payload[i] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            i += 1
        if x & 0x30:  # T or K: TID/KEYIDX byte
            i += 1
    if size <= i:
        return False
    return not payload[i] & 0x01


_H264_IDR = 5
_H264_SPS = 7
_H264_STAP_A = 24
_H264_FU_A = 28


def h264_keyframe_start(payload: bytes) -> bool:
    """RFC 6184: an SPS or IDR slice, alone, first in a STAP-A, or starting an FU-A."""
    if len(payload) < 2:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in (_H264_IDR, _H264_SPS):
        return True
    if nal_type == _H264_STAP_A:
        i = 1
        while i + 2 < len(payload):
            size = (payload[i] << 8) | payload[i + 1]
            t = payload[i + 2] & 0x1F
            if t in (_H264_IDR, _H264_SPS):
                return True
            i += 2 + size
        return False
    if nal_type == _H264_FU_A:
        return bool(payload[1] & 0x80) and (payload[1] & 0x1F) in (_H264_IDR, _H264_SPS)
    return False


def always(payload: bytes) -> bool:
    return True


def keyframe_test(mime_type: str) -> KeyframeTest:
    """The test for ``mime_type``; audio codecs start anywhere."""
    name = mime_type.lower()
    if name == "video/vp8":
        return vp8_keyframe_start
    if name == "video/h264":
        return h264_keyframe_start
    return always
