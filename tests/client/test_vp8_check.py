"""The receiver-side VP8 check (``client.vp8_check``) and the RTP reader under it
(``client.rtp_packet``): each simulcast layer's clip, packetized as the publisher sends
it, reassembles and decodes frame for frame at its size; a lost packet is a gap whose
delta frames are corrupt until the next keyframe; picture-ID jumps, SSRC changes,
duplicates and late packets are told apart; malformed packets and frames are counted,
never raised."""

from __future__ import annotations

import gc
import random
import struct
from collections.abc import Iterator

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from av.codec.context import CodecContext

from client.direct_publish import PacketizedClip, packetize_vp8
from client.rtp_packet import parse_rtp
from client.simulcast_clips import LayerClip, simulcast_clips
from client.simulcast_sdp import MID_URI, RID_URI
from client.stamped import stamp
from client.vp8_check import (
    KEEP_EVENTS,
    LATE_RUN_RESYNC,
    PictureIdJump,
    SequenceGap,
    Vp8Check,
    parse_descriptor,
    parse_frame_header,
)

SSRC = 0x1234_5678
PAYLOAD_TYPE = 96


@pytest.fixture(scope="module")
def layers() -> tuple[LayerClip, ...]:
    return simulcast_clips()


@pytest.fixture(scope="module")
def low(layers) -> PacketizedClip:
    """The lowest layer's clip, packetized (frame 0 its only keyframe)."""
    return packetize_vp8(list(layers[0].frames))


@pytest.fixture(scope="module")
def middle(layers) -> PacketizedClip:
    """The middle layer's clip, packetized: most of its frames take several packets."""
    return packetize_vp8(list(layers[1].frames))


def header(seq: int, timestamp: int, marker: bool, ssrc: int = SSRC, pt: int = PAYLOAD_TYPE):
    return struct.pack(
        "!BBHII", 0x80, pt | (0x80 if marker else 0), seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc
    )


def packets(
    clip: PacketizedClip,
    frames: int | None = None,
    *,
    seq: int = 65_500,
    timestamp: int = 0xFFFF_0000,
    picture_id: int = 32_760,
    ssrc: int = SSRC,
    picture_id_steps: dict[int, int] | None = None,
) -> Iterator[tuple[int, bytes]]:
    """``(frame number, RTP packet)`` of ``frames`` frames of ``clip`` looped, as the
    publisher sends them (15-bit picture ID per frame, the stamp on the last packet);
    sequence numbers, timestamps and picture IDs start near their wrap.
    ``picture_id_steps`` maps a frame number to the step before it (default 1)."""
    count = len(clip.frames) if frames is None else frames
    steps = picture_id_steps or {}
    for number in range(count):
        if number:
            picture_id = (picture_id + steps.get(number, 1)) & 0x7FFF
        payloads = clip.frames[number % len(clip.frames)]
        for index, payload in enumerate(payloads):
            data = bytearray(payload)
            data[2:4] = (0x8000 | picture_id).to_bytes(2, "big")
            last = index == len(payloads) - 1
            if last:
                data += stamp()
            yield number, header(seq, timestamp + number * 3000, last, ssrc) + data
            seq += 1


def fed(check: Vp8Check, stream: Iterator[tuple[int, bytes]]) -> Vp8Check:
    for _, data in stream:
        check.feed(data)
    return check


def test_each_layer_reassembles_and_decodes_at_its_size(layers) -> None:
    for layer in layers:
        clip = packetize_vp8(list(layer.frames))
        assert any(len(frame) > 1 for frame in clip.frames)  # frames of several packets
        check = fed(Vp8Check(payload_type=PAYLOAD_TYPE), packets(clip, 2 * len(clip.frames)))
        report = check.report()
        frames = 2 * len(layer.frames)
        size = (layer.spec.width, layer.spec.height)
        assert report.clean, report
        assert report.frames_assembled == report.frames_decoded == frames
        assert report.keyframes == 2
        assert report.resolutions == {size: frames} and report.last_resolution == size
        assert report.packets == report.packets_per_ssrc[SSRC] == sum(map(len, clip.frames)) * 2
        assert report.sequence_gaps == () and report.picture_id_jumps == ()


def test_without_decoding_the_keyframes_tell_the_size(low, layers) -> None:
    check = fed(Vp8Check(decode=False), packets(low, 10))
    assert check.frames_decoded == 10 and check.resolutions == {(320, 180): 10}


def test_a_closed_check_releases_its_decoder_and_counts_nothing_more(low) -> None:
    check = fed(Vp8Check(payload_type=PAYLOAD_TYPE), packets(low, 10))
    assert check.decoder is not None and check.decoder.is_open
    decoder_id = id(check.decoder)
    figures = check.report()
    assert figures.frames_decoded == 10
    check.close()
    check.close()  # closing again does nothing
    assert check.decoder is None
    gc.collect()
    assert decoder_id not in {id(o) for o in gc.get_objects() if isinstance(o, CodecContext)}
    # fed after the close: nothing counted, nothing decoded, nothing raised
    fed(check, packets(low, 10, seq=100))
    check.feed(b"\x80")
    check.feed_packet(SSRC, 7, 0, True, b"\x90")
    assert check.report() == figures and check.decoder is None


def test_a_lost_packet_is_a_gap_and_delta_frames_are_corrupt_until_a_keyframe(
    middle,
) -> None:
    low = middle
    stream = list(packets(low, len(low.frames) + 5))
    # the first packet of a frame of several (so that its other packets arrive headless)
    multi = next(n for n in range(10, 40) if len(low.frames[n]) > 1)
    dropped = next(i for i, (number, _) in enumerate(stream) if number == multi)
    lost_seq = parse_rtp(stream[dropped][1]).sequence_number  # type: ignore[union-attr]
    check = Vp8Check()
    for index, (_, data) in enumerate(stream):
        if index != dropped:
            check.feed(data)
    report = check.report()
    assert report.sequence_gaps == (SequenceGap(SSRC, lost_seq, (lost_seq + 1) & 0xFFFF),)
    assert report.sequence_gap_count == 1 and report.lost_packets == 1
    assert report.frames_incomplete == 1  # the frame that lost its first packet
    # every delta frame after it is corrupt, until the clip's keyframe comes round again
    assert report.frames_corrupt == len(low.frames) - multi - 1
    assert report.frames_decoded == multi + 5 and report.keyframes == 2
    assert report.frames_failed == 0 and not report.clean


def test_a_lost_last_packet_gives_the_frame_up(middle) -> None:
    stream = list(packets(middle, 20))
    multi = next(n for n in range(3, 15) if len(middle.frames[n]) > 1)
    marker = max(i for i, (number, _) in enumerate(stream) if number == multi)
    check = Vp8Check()
    for index, (_, data) in enumerate(stream):
        if index != marker:
            check.feed(data)
    assert check.lost_packets == 1 and check.frames_incomplete == 1
    assert check.frames_decoded == multi and check.frames_corrupt == 20 - multi - 1


def test_picture_id_jumps_are_reported(low) -> None:
    # picture IDs skip 4 at frame 20 (a delta frame) and at frame 60 (the keyframe of
    # the next loop), with no packet missing
    stream = packets(low, 70, picture_id_steps={20: 5, 60: 3})
    check = fed(Vp8Check(), stream)
    report = check.report()
    first = 32_760
    at_20 = (first + 19 + 5) & 0x7FFF
    at_60 = (at_20 + 39 + 3) & 0x7FFF
    assert report.picture_id_jumps == (
        PictureIdJump((first + 19 + 1) & 0x7FFF, at_20, after_loss=False),
        PictureIdJump((at_20 + 40) & 0x7FFF, at_60, after_loss=False),
    )
    assert report.lost_packets == 0
    # the delta frames after the first jump are corrupt; the keyframe's jump is harmless
    assert report.frames_corrupt == 40 and report.frames_decoded == 30


def test_picture_ids_of_seven_bits_wrap_without_a_jump(low) -> None:
    check = Vp8Check()
    seq = 0
    for number in range(200):
        for index, payload in enumerate(low.frames[number % len(low.frames)]):
            # descriptor rewritten with a 7-bit picture ID: X=1, I=1, M=0
            data = bytes([payload[0], 0x80, number & 0x7F]) + payload[4:]
            last = index == len(low.frames[number % len(low.frames)]) - 1
            check.feed(header(seq, number * 3000, last) + data)
            seq += 1
    assert check.picture_id_jump_count == 0 and check.frames_decoded == 200


def test_duplicates_late_packets_and_a_new_ssrc(low) -> None:
    stream = [data for _, data in packets(low, 12)]
    check = Vp8Check()
    for data in stream[:5]:
        check.feed(data)
    check.feed(stream[4])  # again
    check.feed(stream[2])  # late
    for data in stream[5:]:
        check.feed(data)
    assert check.duplicate_packets == 1 and check.late_packets == 1
    assert check.frames_decoded == 12 and check.lost_packets == 0
    # another SSRC: counted apart, and its delta frames need a keyframe first
    for _, data in packets(low, 3, ssrc=99, seq=7):
        check.feed(data)
    assert check.ssrc_changes == 1 and check.packets_per_ssrc[99] > 0
    assert check.frames_decoded == 15  # its frame 0 is a keyframe
    check = Vp8Check()
    fed(check, packets(low, 3, ssrc=5, seq=100))
    for number, data in packets(low, 6, ssrc=6, seq=200):
        if number >= 3:  # starts mid-stream: deltas without their keyframe
            check.feed(data)
    assert check.frames_corrupt == 3 and check.frames_decoded == 3


def test_a_sender_that_numbers_afresh_is_followed_after_a_run_of_late_packets(low) -> None:
    check = fed(Vp8Check(), packets(low, 5, seq=30_000))
    fed(check, packets(low, 70, seq=0))  # far behind: late, until the run is long enough
    assert check.late_packets == LATE_RUN_RESYNC - 1
    # followed from then on: decoded again from the clip's next keyframe (frame 60)
    assert check.sequence_gap_count == 1 and check.frames_decoded == 5 + 10


def test_only_the_payload_type_checked_is_read(low) -> None:
    check = Vp8Check(payload_type=PAYLOAD_TYPE)
    check.feed(header(1, 0, True, pt=97) + b"\x00\x01" + b"RTX payload")
    fed(check, packets(low, 2))
    assert check.ignored_packets == 1 and check.frames_decoded == 2 and check.report().clean


MALFORMED_RTP = [
    b"",
    b"\x80",
    header(1, 0, True)[:11],
    b"\x00" + header(1, 0, True)[1:] + b"\x90\xe0",  # version 0
    b"\x8f" + header(1, 0, True)[1:] + b"\x00" * 8,  # 15 CSRCs, 8 bytes
    b"\x90" + header(1, 0, True)[1:] + b"\xbe\xde\x00\x09" + b"\x00" * 8,  # extension past end
    b"\x90" + header(1, 0, True)[1:] + b"\xbe\xde",  # extension header cut
    b"\xa0" + header(1, 0, True)[1:] + b"\x90\xe0\x00",  # padding of 0
    b"\xa0" + header(1, 0, True)[1:] + b"\x90\xe0\x09",  # padding past the payload
]

MALFORMED_PAYLOADS = [
    b"",  # empty
    b"\x90",  # X=1, the extension byte missing
    b"\x90\x80",  # I=1, no picture ID
    b"\x90\x80\x81",  # 15-bit picture ID cut
    b"\x90\xc0\x81\x02",  # L=1, no TL0PICIDX
    b"\x90\xe0\x81\x02\x03",  # T=1, no TID byte
    b"\x90\x80\x81\x02",  # a whole descriptor, no VP8 data
]


@pytest.mark.parametrize("data", MALFORMED_RTP)
def test_malformed_rtp_is_counted(data: bytes, low) -> None:
    assert parse_rtp(data) is None
    check = Vp8Check()
    check.feed(data)
    assert check.malformed_packets == 1 and check.packets == 1
    fed(check, packets(low, 2))
    assert check.frames_decoded == 2  # what follows is read as before


@pytest.mark.parametrize("payload", MALFORMED_PAYLOADS)
def test_malformed_descriptors_are_counted(payload: bytes, low) -> None:
    assert parse_descriptor(payload) is None
    check = Vp8Check()
    stream = [data for _, data in packets(low, 4)]
    first = parse_rtp(stream[0])
    assert first is not None
    seq = first.sequence_number
    check.feed(stream[0])
    # a packet of frame 0 replaced by a malformed one: frame 0 cannot complete
    check.feed(header(seq + 1, first.timestamp, False) + payload)
    for data in stream[2:]:
        check.feed(data)
    report = check.report()
    assert report.malformed_packets == 1 and report.frames_incomplete >= 1
    assert report.frames_decoded == 0 and report.frames_failed == 0


def test_malformed_frames_fail_and_huge_ones_are_not_decoded(layers) -> None:
    keyframe = layers[0].frames[0]
    first = parse_frame_header(keyframe)
    assert first is not None and first.keyframe and (first.width, first.height) == (320, 180)
    check = Vp8Check()
    descriptor = b"\x90\x80\x80\x01"
    keyframe_tag = b"\x10\x02\x00"  # keyframe, shown, first partition of 16 bytes
    frames = [
        b"\x00\x00",  # shorter than a frame tag
        keyframe_tag + b"\x00\x00\x00" + b"\x40\x01\xf0\x00",  # no start code
        keyframe_tag + b"\x9d\x01\x2a" + b"\x00\x00\xf0\x00" + bytes(20),  # width 0
        b"\xf1\xff\xff" + bytes(4),  # a delta frame whose first partition runs past it
        keyframe_tag + b"\x9d\x01\x2a" + b"\xff\x3f\xff\x3f" + bytes(40),  # 16383x16383
        keyframe[: 10 + first.first_partition_size],  # its other partition cut: the decoder fails
    ]
    for number, frame in enumerate(frames):
        check.feed(header(number, number * 3000, True) + descriptor + frame)
    assert check.frames_assembled == check.frames_failed == len(frames)
    assert parse_frame_header(frames[4]) is not None  # well-formed, only too large
    assert parse_frame_header(frames[5]) is not None  # well-formed, cut after the header


def test_random_input_is_counted_never_raised(low) -> None:
    rng = random.Random(3)
    check = Vp8Check()
    stream = [data for _, data in packets(low, 30)]
    for round_ in range(3000):
        kind = round_ % 3
        if kind == 0:
            data = rng.randbytes(rng.randrange(0, 80))
        elif kind == 1:  # a real header, a random payload
            data = header(rng.randrange(65536), rng.randrange(1 << 32), rng.random() < 0.3)
            data += rng.randbytes(rng.randrange(0, 60))
        else:  # a real packet with some bytes changed
            data = bytearray(rng.choice(stream))
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        check.feed(data)
    report = check.report()
    assert report.packets == 3000
    assert len(report.sequence_gaps) <= KEEP_EVENTS and len(report.picture_id_jumps) <= KEEP_EVENTS
    assert len(report.packets_per_ssrc) <= 64


def test_extension_elements_of_both_forms_are_read() -> None:
    ids = HeaderExtensionsMap()
    ids.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=1, uri=MID_URI),
                RTCRtpHeaderExtensionParameters(id=4, uri=RID_URI),
            ]
        )
    )
    packet = RtpPacket(payload_type=96, sequence_number=9, timestamp=7, ssrc=5)
    packet.extensions.mid = "1"
    packet.extensions.rtp_stream_id = "h"
    packet.payload = b"\x10\x00"
    view = parse_rtp(packet.serialize(ids))
    assert view is not None
    assert view.extension_text(1) == "1" and view.extension_text(4) == "h"
    assert view.payload == b"\x10\x00" and view.sequence_number == 9 and view.ssrc == 5
    # two-byte elements (a mid longer than 16 bytes makes aiortc write that form)
    packet.extensions.mid = "m" * 20
    view = parse_rtp(packet.serialize(ids))
    assert view is not None and view.extensions == {1: b"m" * 20, 4: b"h"}
    # an element running past its block is malformed; the packet is still read
    data = bytearray(header(1, 0, False))
    data[0] |= 0x10
    data += b"\xbe\xde\x00\x01" + b"\x13ab\x00" + b"payload"
    view = parse_rtp(bytes(data))
    assert view is not None and view.malformed_extensions and view.payload == b"payload"
