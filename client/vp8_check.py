"""Checking a received VP8 stream frame by frame, for the end-to-end tests.

A :class:`Vp8Check` is fed the RTP packets of one received video stream (the raw
packet with :meth:`Vp8Check.feed`, or its fields with :meth:`Vp8Check.feed_packet`), in
the order they arrived.  It

* counts packets per SSRC, and notices sequence-number gaps (lost packets), duplicates
  and late packets (older than the newest one: dropped, as a receiver without a jitter
  buffer would; a run of them is taken for a sender that started its numbers again);
* reads each payload's descriptor (RFC 7741: S bit, partition index, 7- or 15-bit
  picture ID, TL0PICIDX, TID) and reassembles frames from the packet that starts
  partition 0 to the one with the marker bit, all of one RTP timestamp, without a
  missing sequence number;
* notices picture-ID discontinuities between consecutive frames (and TL0PICIDX ones);
* decodes every complete frame with PyAV (FFmpeg's ``vp8`` decoder by default) and
  records the resolution of every frame that decoded cleanly.

A frame is *corrupt* when it is a delta frame whose references are not trustworthy:
after lost packets, a malformed payload, an incomplete frame, a new SSRC or a picture-ID
jump, until the next keyframe (and before the first).  It is counted and not decoded, as
a browser drops it (and asks for a keyframe).  A frame *failed* when its VP8 header is
malformed, the decoder raised, or it gave no picture for a shown frame.  Everything is
hostile input: a malformed packet is counted, never raised, and no table grows without
bound.  :meth:`Vp8Check.report` returns the figures at once as a
:class:`Vp8CheckReport`.  :meth:`Vp8Check.close` ends the check when its stream ends:
the decoder is released, and packets fed later are not counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import cast

import av
from av.video.codeccontext import VideoCodecContext

from .rtp_packet import parse_rtp

log = logging.getLogger(__name__)

#: Kept of each list of events (gaps, jumps); the counters go on.
KEEP_EVENTS = 100
#: SSRCs counted one by one; the packets of any more are counted together.
MAX_SSRCS = 64
#: A frame larger than this is given up (a 1080p keyframe is a few hundred KB).
MAX_FRAME_BYTES = 4 << 20
#: Keyframes declaring more pixels than this are not decoded (4096x2304).
MAX_PIXELS = 4096 * 2304
#: This many late packets in a row are taken for a sender that numbers afresh.
LATE_RUN_RESYNC = 16


@dataclass(frozen=True, slots=True)
class Vp8Descriptor:
    """The VP8 payload descriptor of one RTP packet (RFC 7741 §4.2)."""

    start: bool
    partition: int
    non_reference: bool
    picture_id: int | None
    #: 7 or 15 (0 without a picture ID)
    picture_id_bits: int
    tl0picidx: int | None
    tid: int | None
    layer_sync: bool
    keyidx: int | None
    #: bytes of descriptor before the VP8 data
    size: int


def parse_descriptor(payload: bytes) -> Vp8Descriptor | None:
    """The descriptor at the start of ``payload``; ``None`` when it is truncated or no
    VP8 data follows it."""
    size = len(payload)
    if size < 1:
        return None
    first = payload[0]
    pos = 1
    picture_id = tl0picidx = tid = keyidx = None
    bits = 0
    layer_sync = False
    if first & 0x80:  # X: the extension byte follows
        if size < 2:
            return None
        flags = payload[1]
        pos = 2
        if flags & 0x80:  # I: picture ID
            if pos >= size:
                return None
            if payload[pos] & 0x80:  # M: 15 bits
                if pos + 2 > size:
                    return None
                picture_id = (payload[pos] & 0x7F) << 8 | payload[pos + 1]
                bits = 15
                pos += 2
            else:
                picture_id = payload[pos]
                bits = 7
                pos += 1
        if flags & 0x40:  # L: TL0PICIDX
            if pos >= size:
                return None
            tl0picidx = payload[pos]
            pos += 1
        if flags & 0x30:  # T or K: TID/Y/KEYIDX
            if pos >= size:
                return None
            byte = payload[pos]
            pos += 1
            if flags & 0x20:
                tid = byte >> 6
                layer_sync = bool(byte & 0x20)
            if flags & 0x10:
                keyidx = byte & 0x1F
    if pos >= size:
        return None
    return Vp8Descriptor(
        start=bool(first & 0x10),
        partition=first & 0x07,
        non_reference=bool(first & 0x20),
        picture_id=picture_id,
        picture_id_bits=bits,
        tl0picidx=tl0picidx,
        tid=tid,
        layer_sync=layer_sync,
        keyidx=keyidx,
        size=pos,
    )


@dataclass(frozen=True, slots=True)
class Vp8FrameHeader:
    """The start of a VP8 frame (RFC 6386 §9.1): its tag, and a keyframe's size."""

    keyframe: bool
    show: bool
    first_partition_size: int
    width: int | None
    height: int | None


def parse_frame_header(frame: bytes) -> Vp8FrameHeader | None:
    """The header of the VP8 frame ``frame``, or ``None`` when it is malformed (too
    short, a keyframe without the start code or with no size, a first partition that
    runs past the frame)."""
    if len(frame) < 3:
        return None
    tag = frame[0] | frame[1] << 8 | frame[2] << 16
    keyframe = not tag & 0x01
    first_partition_size = tag >> 5
    width = height = None
    header = 3
    if keyframe:
        header = 10
        if len(frame) < header or frame[3:6] != b"\x9d\x01\x2a":
            return None
        width = (frame[6] | frame[7] << 8) & 0x3FFF
        height = (frame[8] | frame[9] << 8) & 0x3FFF
        if not width or not height:
            return None
    if first_partition_size > len(frame) - header:
        return None
    return Vp8FrameHeader(keyframe, bool(tag & 0x10), first_partition_size, width, height)


@dataclass(frozen=True, slots=True)
class SequenceGap:
    """Sequence numbers ``expected`` up to (not including) ``received`` never came."""

    ssrc: int
    expected: int
    received: int

    @property
    def lost(self) -> int:
        return (self.received - self.expected) & 0xFFFF


@dataclass(frozen=True, slots=True)
class PictureIdJump:
    """A frame began with picture ID ``received`` where ``expected`` was next.

    ``after_loss``: packets were lost (or malformed) since the frame before, which may
    explain frames missing; without loss the sender (or the server) skipped them."""

    expected: int
    received: int
    after_loss: bool


@dataclass(frozen=True)
class Vp8CheckReport:
    """The figures of a :class:`Vp8Check` at one moment (see the module)."""

    packets: int
    packets_per_ssrc: dict[int, int]
    #: packets of the SSRCs beyond the first :data:`MAX_SSRCS`
    packets_other_ssrcs: int
    #: packets of another payload type than the one checked (RTX, say): not checked
    ignored_packets: int
    malformed_packets: int
    duplicate_packets: int
    late_packets: int
    lost_packets: int
    sequence_gap_count: int
    sequence_gaps: tuple[SequenceGap, ...]
    ssrc_changes: int
    picture_id_jump_count: int
    picture_id_jumps: tuple[PictureIdJump, ...]
    tl0picidx_jumps: int
    frames_assembled: int
    frames_incomplete: int
    oversized_frames: int
    keyframes: int
    frames_decoded: int
    frames_failed: int
    frames_corrupt: int
    #: (width, height) -> frames of that size that decoded cleanly
    resolutions: dict[tuple[int, int], int]
    last_resolution: tuple[int, int] | None

    @property
    def clean(self) -> bool:
        """Nothing lost, malformed, failed, corrupt or discontinuous."""
        return not (
            self.malformed_packets
            or self.lost_packets
            or self.late_packets
            or self.picture_id_jump_count
            or self.frames_incomplete
            or self.oversized_frames
            or self.frames_failed
            or self.frames_corrupt
        )


@dataclass
class _Frame:
    timestamp: int
    picture_id: int | None
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    #: a picture-ID jump not explained by loss began this frame
    jumped: bool = False


class Vp8Check:
    """Checks one received VP8 stream (see the module).

    ``payload_type``, when given, is the one checked (others are counted in
    ``ignored_packets``: RTX, say).  ``decode=False`` reassembles and checks without
    decoding (resolutions then come from the keyframes' headers).  ``codec`` is the
    PyAV decoder's name (``"vp8"``, FFmpeg's own, or ``"libvpx"``).  Owns its decoder,
    until :meth:`close`.
    """

    def __init__(
        self,
        *,
        payload_type: int | None = None,
        decode: bool = True,
        codec: str = "vp8",
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self._payload_type = payload_type
        self._decode = decode
        self._codec_name = codec
        self._decoder: VideoCodecContext | None = None
        self._max_pixels = max_pixels
        self.packets = 0
        self.packets_per_ssrc: dict[int, int] = {}
        self.packets_other_ssrcs = 0
        self.ignored_packets = 0
        self.malformed_packets = 0
        self.duplicate_packets = 0
        self.late_packets = 0
        self.lost_packets = 0
        self.sequence_gap_count = 0
        self.sequence_gaps: list[SequenceGap] = []
        self.ssrc_changes = 0
        self.picture_id_jump_count = 0
        self.picture_id_jumps: list[PictureIdJump] = []
        self.tl0picidx_jumps = 0
        self.frames_assembled = 0
        self.frames_incomplete = 0
        self.oversized_frames = 0
        self.keyframes = 0
        self.frames_decoded = 0
        self.frames_failed = 0
        self.frames_corrupt = 0
        self.resolutions: Counter[tuple[int, int]] = Counter()
        self.last_resolution: tuple[int, int] | None = None
        self._ssrc: int | None = None
        self._last_seq: int | None = None  # of the current SSRC
        self._late_run = 0
        self._frame: _Frame | None = None
        #: the timestamp of a frame given up on (its later packets are dropped quietly)
        self._dropped_timestamp: int | None = None
        self._need_keyframe = True
        self._loss = False  # since the latest frame began
        self._last_picture_id: tuple[int, int] | None = None  # (picture ID, bits)
        self._last_tl0picidx: int | None = None
        self._header_size: tuple[int, int] | None = None
        self._closed = False

    # --- input ----------------------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """One received RTP packet, whole (header, extensions, payload, padding)."""
        if self._closed:
            return
        packet = parse_rtp(data)
        if packet is None:  # its sequence number is unknown: a gap will tell if it mattered
            self.packets += 1
            self.malformed_packets += 1
            return
        if self._payload_type is not None and packet.payload_type != self._payload_type:
            self.ignored_packets += 1
            return
        self.feed_packet(
            packet.ssrc, packet.sequence_number, packet.timestamp, packet.marker, packet.payload
        )

    def feed_packet(
        self, ssrc: int, seq: int, timestamp: int, marker: bool, payload: bytes
    ) -> None:
        """One received RTP packet's fields."""
        if self._closed:
            return
        self.packets += 1
        if ssrc in self.packets_per_ssrc:
            self.packets_per_ssrc[ssrc] += 1
        elif len(self.packets_per_ssrc) < MAX_SSRCS:
            self.packets_per_ssrc[ssrc] = 1
        else:
            self.packets_other_ssrcs += 1
        if ssrc != self._ssrc:
            if self._ssrc is not None:
                self.ssrc_changes += 1
                self._give_up_frame()
                self._need_keyframe = True
                self._last_picture_id = None
                self._last_tl0picidx = None
            self._ssrc = ssrc
            self._last_seq = None
        last = self._last_seq
        if last is not None:
            step = (seq - last) & 0xFFFF
            if step == 0:
                self.duplicate_packets += 1
                return
            if step >= 0x8000:
                self._late_run += 1
                if self._late_run < LATE_RUN_RESYNC:
                    self.late_packets += 1
                    return
                step = 2  # numbered afresh: a discontinuity
            self._late_run = 0
            if step > 1:
                gap = SequenceGap(ssrc, (last + 1) & 0xFFFF, seq)
                self.sequence_gap_count += 1
                self.lost_packets += min(gap.lost, 0x7FFF)
                if len(self.sequence_gaps) < KEEP_EVENTS:
                    self.sequence_gaps.append(gap)
                self._lost_something()
        self._last_seq = seq
        descriptor = parse_descriptor(payload)
        if descriptor is None:
            self.malformed_packets += 1
            self._lost_something()
            return
        data = payload[descriptor.size :]
        frame = self._frame
        if frame is not None and (
            timestamp != frame.timestamp or (descriptor.start and descriptor.partition == 0)
        ):
            self._give_up_frame()  # it never got its marker bit
            frame = None
        if descriptor.start and descriptor.partition == 0:
            frame = self._begin_frame(descriptor, timestamp)
        elif frame is None:
            # a packet of a frame whose start was lost, or that was given up on
            if timestamp != self._dropped_timestamp:
                self.frames_incomplete += 1
                self._dropped_timestamp = timestamp
                self._need_keyframe = True
            return
        elif descriptor.picture_id != frame.picture_id:
            self.malformed_packets += 1
            self._give_up_frame()
            return
        frame.parts.append(data)
        frame.size += len(data)
        if frame.size > MAX_FRAME_BYTES:
            self.oversized_frames += 1
            self._frame = None
            self._dropped_timestamp = timestamp
            self._need_keyframe = True
            return
        if marker:
            self._frame = None
            self._complete(frame)

    # --- frames ---------------------------------------------------------------------

    def _lost_something(self) -> None:
        """Something of the stream is missing: the frame in progress cannot complete,
        and delta frames are corrupt until a keyframe."""
        self._loss = True
        self._need_keyframe = True
        self._give_up_frame()

    def _give_up_frame(self) -> None:
        frame, self._frame = self._frame, None
        if frame is not None:
            self.frames_incomplete += 1
            self._dropped_timestamp = frame.timestamp
            self._need_keyframe = True

    def _begin_frame(self, descriptor: Vp8Descriptor, timestamp: int) -> _Frame:
        frame = self._frame = _Frame(timestamp, descriptor.picture_id)
        self._dropped_timestamp = None
        picture_id = descriptor.picture_id
        if picture_id is not None:
            bits = descriptor.picture_id_bits
            last = self._last_picture_id
            if last is not None:
                expected = (last[0] + 1) % (1 << last[1])
                if bits != last[1] or picture_id != expected:
                    self.picture_id_jump_count += 1
                    if len(self.picture_id_jumps) < KEEP_EVENTS:
                        self.picture_id_jumps.append(
                            PictureIdJump(expected, picture_id, after_loss=self._loss)
                        )
                    frame.jumped = not self._loss
            self._last_picture_id = (picture_id, bits)
        tl0picidx = descriptor.tl0picidx
        if tl0picidx is not None:
            last_tl0 = self._last_tl0picidx
            if last_tl0 is not None and not self._loss:
                expected = (last_tl0 + 1) & 0xFF if not descriptor.tid else last_tl0
                if tl0picidx != expected:
                    self.tl0picidx_jumps += 1
            self._last_tl0picidx = tl0picidx
        self._loss = False
        return frame

    def _complete(self, frame: _Frame) -> None:
        self.frames_assembled += 1
        data = b"".join(frame.parts)
        header = parse_frame_header(data)
        if header is None:
            self.frames_failed += 1
            self._need_keyframe = True
            return
        if header.keyframe:
            self.keyframes += 1
            assert header.width is not None and header.height is not None  # keyframe
            if header.width * header.height > self._max_pixels:
                self.frames_failed += 1
                self._need_keyframe = True
                return
            self._header_size = (header.width, header.height)
            self._need_keyframe = False
            corrupt = False
        else:
            corrupt = self._need_keyframe or frame.jumped
        if corrupt:
            self.frames_corrupt += 1
            self._need_keyframe = True
            return
        size = self._header_size
        if self._decode:
            pictures = self._decode_frame(data)
            if pictures is None or (not pictures and header.show):
                self.frames_failed += 1
                self._need_keyframe = True
                return
            if pictures:
                size = (pictures[-1].width, pictures[-1].height)
        self.frames_decoded += 1
        if size is not None:
            self.resolutions[size] += 1
            self.last_resolution = size

    def _decode_frame(self, data: bytes) -> list[av.VideoFrame] | None:
        """The pictures the decoder gives for ``data``; ``None`` when it raised."""
        if self._decoder is None:
            decoder = cast(VideoCodecContext, av.CodecContext.create(self._codec_name, "r"))
            decoder.thread_count = 1  # a picture per frame, at once
            self._decoder = decoder
        try:
            return list(self._decoder.decode(av.Packet(data)))
        except (av.FFmpegError, ValueError) as error:
            log.debug("a VP8 frame failed to decode: %s", error)
            return None

    # --- end ------------------------------------------------------------------------

    @property
    def decoder(self) -> VideoCodecContext | None:
        """The PyAV decoder, once a frame was decoded; ``None`` again after :meth:`close`."""
        return self._decoder

    def close(self) -> None:
        """The stream ended: release the decoder and the frame in progress; packets fed
        from now on are not counted.  Closing again does nothing.

        PyAV has no way to close a codec context: it frees it (FFmpeg's context and its
        buffers) when the last reference goes, and the check holds the only one."""
        self._closed = True
        self._decoder = None
        self._frame = None

    # --- output ---------------------------------------------------------------------

    def report(self) -> Vp8CheckReport:
        """The figures now."""
        return Vp8CheckReport(
            packets=self.packets,
            packets_per_ssrc=dict(self.packets_per_ssrc),
            packets_other_ssrcs=self.packets_other_ssrcs,
            ignored_packets=self.ignored_packets,
            malformed_packets=self.malformed_packets,
            duplicate_packets=self.duplicate_packets,
            late_packets=self.late_packets,
            lost_packets=self.lost_packets,
            sequence_gap_count=self.sequence_gap_count,
            sequence_gaps=tuple(self.sequence_gaps),
            ssrc_changes=self.ssrc_changes,
            picture_id_jump_count=self.picture_id_jump_count,
            picture_id_jumps=tuple(self.picture_id_jumps),
            tl0picidx_jumps=self.tl0picidx_jumps,
            frames_assembled=self.frames_assembled,
            frames_incomplete=self.frames_incomplete,
            oversized_frames=self.oversized_frames,
            keyframes=self.keyframes,
            frames_decoded=self.frames_decoded,
            frames_failed=self.frames_failed,
            frames_corrupt=self.frames_corrupt,
            resolutions=dict(self.resolutions),
            last_resolution=self.last_resolution,
        )


__all__ = [
    "KEEP_EVENTS",
    "LATE_RUN_RESYNC",
    "MAX_FRAME_BYTES",
    "MAX_PIXELS",
    "MAX_SSRCS",
    "PictureIdJump",
    "SequenceGap",
    "Vp8Check",
    "Vp8CheckReport",
    "Vp8Descriptor",
    "Vp8FrameHeader",
    "parse_descriptor",
    "parse_frame_header",
]
