"""Turn the RTP payloads of one frame back into the codec's frame, without decoding it.

* VP8 (RFC 7741): strip each packet's payload descriptor; the frame starts on a packet
  with S=1 and PID=0; the VP8 payload header's P bit says keyframe, and a keyframe header
  carries the picture size.
* H.264 (RFC 6184): single NAL unit, STAP-A and FU-A packets become an Annex B access
  unit (start codes); :func:`annexb_to_avcc` gives the length-prefixed form and
  :func:`avcc_record` the decoder configuration record built from SPS and PPS.
* Opus (RFC 7587): one packet is one frame; its duration comes from the TOC byte.
"""

from __future__ import annotations

from dataclasses import dataclass

START_CODE = b"\x00\x00\x00\x01"


@dataclass(slots=True)
class Frame:
    """One encoded frame: the codec's bytes and whether it can start decoding."""

    data: bytes
    keyframe: bool
    width: int = 0
    height: int = 0


# --- VP8 -------------------------------------------------------------------------------


def vp8_descriptor_size(payload: bytes) -> int:
    """Length of the RFC 7741 payload descriptor at the start of ``payload``; -1 if the
    payload is too short to hold it."""
    size = len(payload)
    if size < 1:
        return -1
    i = 1
    if payload[0] & 0x80:  # X: extension byte
        if size < 2:
            return -1
        x = payload[1]
        i = 2
        if x & 0x80:  # I: picture id, 7 or 15 bits
            if size <= i:
                return -1
            i += 2 if payload[i] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            i += 1
        if x & 0x30:  # T or K: TID/Y/KEYIDX
            i += 1
    return i if i < size else -1


def vp8_starts_frame(payload: bytes) -> bool:
    """S bit set and partition index 0: the first packet of a frame."""
    return bool(payload) and payload[0] & 0x10 != 0 and payload[0] & 0x0F == 0


def vp8_frame(payloads: list[bytes]) -> Frame | None:
    """The VP8 frame carried by ``payloads`` (all packets of one frame, in order), or
    ``None`` if they do not form one (first packet not a frame start, bad descriptor)."""
    if not payloads or not vp8_starts_frame(payloads[0]):
        return None
    parts = []
    for payload in payloads:
        start = vp8_descriptor_size(payload)
        if start < 0:
            return None
        parts.append(payload[start:] if start else payload)
    data = b"".join(parts)
    if len(data) < 3:
        return None
    keyframe = not data[0] & 0x01
    if not keyframe:
        return Frame(data, False)
    # keyframe: 3-byte frame tag, start code 9d 01 2a, then 14-bit width and height
    if len(data) < 10 or data[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return Frame(data, True, width, height)


# --- H.264 -----------------------------------------------------------------------------

NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
NAL_STAP_A = 24
NAL_FU_A = 28


def h264_starts_frame(payload: bytes) -> bool:
    """A packet that can begin an access unit: a whole NAL, a STAP-A, or an FU-A start."""
    if len(payload) < 2:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type == NAL_FU_A:
        return bool(payload[1] & 0x80)
    return 1 <= nal_type <= NAL_STAP_A


def h264_nal_units(payloads: list[bytes]) -> list[bytes] | None:
    """The NAL units of one access unit; ``None`` if the packets are inconsistent
    (an FU-A fragment without its start or end, a truncated STAP-A)."""
    nals: list[bytes] = []
    fragment: bytearray | None = None
    for payload in payloads:
        if not payload:
            return None
        nal_type = payload[0] & 0x1F
        if nal_type == NAL_FU_A:
            if len(payload) < 2:
                return None
            header = payload[1]
            if header & 0x80:  # start
                if fragment is not None:
                    return None
                fragment = bytearray(((payload[0] & 0xE0) | (header & 0x1F),))
            elif fragment is None:
                return None
            fragment += payload[2:]
            if header & 0x40:  # end
                nals.append(bytes(fragment))
                fragment = None
        elif fragment is not None:
            return None
        elif nal_type == NAL_STAP_A:
            i = 1
            while i < len(payload):
                if i + 2 > len(payload):
                    return None
                size = int.from_bytes(payload[i : i + 2], "big")
                i += 2
                if size == 0 or i + size > len(payload):
                    return None
                nals.append(payload[i : i + size])
                i += size
        elif 1 <= nal_type < NAL_STAP_A:
            nals.append(payload)
        else:
            return None  # STAP-B, MTAP, FU-B: not used by WebRTC
    if fragment is not None:
        return None
    return nals


def h264_frame(payloads: list[bytes]) -> Frame | None:
    """The Annex B access unit carried by ``payloads``; a keyframe holds an IDR slice."""
    nals = h264_nal_units(payloads)
    if not nals:
        return None
    keyframe = any(nal[0] & 0x1F == NAL_IDR for nal in nals)
    return Frame(b"".join(START_CODE + nal for nal in nals), keyframe)


def annexb_nal_units(data: bytes) -> list[bytes]:
    """Split an Annex B byte stream (3- or 4-byte start codes) into NAL units."""
    units = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        start = i + 3
        nxt = data.find(b"\x00\x00\x01", start)
        end = len(data) if nxt < 0 else nxt
        if nxt >= 0 and data[nxt - 1] == 0:
            end -= 1
        if end > start:
            units.append(data[start:end])
        i = nxt
    return units


def annexb_to_avcc(data: bytes) -> bytes:
    """Annex B to 4-byte length-prefixed NAL units (the MP4/Matroska sample form)."""
    return b"".join(len(nal).to_bytes(4, "big") + nal for nal in annexb_nal_units(data))


class _Bits:
    """Exp-Golomb reader over an RBSP (emulation prevention bytes removed)."""

    def __init__(self, data: bytes) -> None:
        self._data = data.replace(b"\x00\x00\x03", b"\x00\x00")
        self._pos = 0

    def bit(self) -> int:
        byte = self._data[self._pos >> 3]  # IndexError on truncated data
        value = byte >> (7 - (self._pos & 7)) & 1
        self._pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = value << 1 | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.bit():
            zeros += 1
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


def h264_sps_size(sps: bytes) -> tuple[int, int]:
    """(width, height) coded in an SPS NAL unit (ITU-T H.264 7.3.2.1); (0, 0) if it
    cannot be read."""
    try:
        r = _Bits(sps[1:])
        profile = r.bits(8)
        r.bits(16)  # constraint flags, level
        r.ue()  # seq_parameter_set_id
        chroma_format = 1
        if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
            chroma_format = r.ue()
            if chroma_format == 3:
                r.bit()
            r.ue()  # bit depth luma
            r.ue()  # bit depth chroma
            r.bit()
            if r.bit():  # scaling matrices
                for i in range(8 if chroma_format != 3 else 12):
                    if r.bit():
                        last = nxt = 8
                        for _ in range(16 if i < 6 else 64):
                            if nxt:
                                nxt = (last + r.se()) % 256
                            last = nxt or last
        r.ue()  # log2_max_frame_num
        poc_type = r.ue()
        if poc_type == 0:
            r.ue()
        elif poc_type == 1:
            r.bit()
            r.se()
            r.se()
            for _ in range(r.ue()):
                r.se()
        r.ue()  # max_num_ref_frames
        r.bit()
        width = (r.ue() + 1) * 16
        map_units = r.ue() + 1
        frame_mbs_only = r.bit()
        height = map_units * 16 * (2 - frame_mbs_only)
        if not frame_mbs_only:
            r.bit()
        r.bit()  # direct_8x8_inference
        if r.bit():  # cropping
            left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
            crop_x = 2 if chroma_format in (1, 2) else 1
            crop_y = (2 if chroma_format == 1 else 1) * (2 - frame_mbs_only)
            width -= (left + right) * crop_x
            height -= (top + bottom) * crop_y
        return width, height
    except IndexError:
        return 0, 0


def avcc_record(sps: bytes, pps: bytes) -> bytes:
    """The AVCDecoderConfigurationRecord (ISO 14496-15) for one SPS and one PPS."""
    return (
        bytes((1, sps[1], sps[2], sps[3], 0xFF, 0xE1))
        + len(sps).to_bytes(2, "big")
        + sps
        + b"\x01"
        + len(pps).to_bytes(2, "big")
        + pps
    )


# --- Opus ------------------------------------------------------------------------------

#: Frame length in 48 kHz samples for each TOC configuration (RFC 6716 section 3.1).
_OPUS_FRAME_SAMPLES = (
    [480, 960, 1920, 2880] * 3  # SILK: 10, 20, 40, 60 ms
    + [480, 960] * 2  # hybrid: 10, 20 ms
    + [120, 240, 480, 960] * 4  # CELT: 2.5, 5, 10, 20 ms
)


def opus_samples(payload: bytes) -> int:
    """Duration of one Opus packet in 48 kHz samples (0 if malformed)."""
    if not payload:
        return 0
    toc = payload[0]
    per_frame = _OPUS_FRAME_SAMPLES[toc >> 3]
    code = toc & 0x03
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(payload) < 2:
            return 0
        frames = payload[1] & 0x3F
    return per_frame * frames


def opus_head(channels: int = 2, sample_rate: int = 48000, pre_skip: int = 0) -> bytes:
    """The Opus identification header (RFC 7845), the CodecPrivate of a WebM Opus track."""
    return (
        b"OpusHead"
        + bytes((1, channels))
        + pre_skip.to_bytes(2, "little")
        + sample_rate.to_bytes(4, "little")
        + b"\x00\x00\x00"  # output gain 0, channel mapping family 0
    )
