"""Depacketizing VP8, H.264 and Opus payloads back into frames."""

from recorder.depacketizer import (
    START_CODE,
    annexb_nal_units,
    annexb_to_avcc,
    avcc_record,
    h264_frame,
    h264_starts_frame,
    opus_head,
    opus_samples,
    vp8_descriptor_size,
    vp8_frame,
    vp8_starts_frame,
)

KEYFRAME = bytes((0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A)) + (640).to_bytes(2, "little")
KEYFRAME += (480).to_bytes(2, "little") + b"rest-of-partition"


def test_vp8_descriptor_sizes():
    assert vp8_descriptor_size(b"\x10x") == 1
    assert vp8_descriptor_size(b"\x90\x80\x05x") == 3  # X, I with a 7-bit picture id
    assert vp8_descriptor_size(b"\x90\x80\x80\x05x") == 4  # 15-bit picture id
    assert vp8_descriptor_size(b"\x90\xe0\x80\x05\x01\x20x") == 6  # I, L, T
    assert vp8_descriptor_size(b"\x90\x80") == -1  # truncated


def test_vp8_keyframe_across_packets_with_picture_ids():
    first = b"\x90\x80\x80\x05" + KEYFRAME[:7]
    second = b"\x80\x80\x80\x05" + KEYFRAME[7:]  # S=0: continuation
    assert vp8_starts_frame(first) and not vp8_starts_frame(second)
    frame = vp8_frame([first, second])
    assert frame is not None and frame.keyframe
    assert frame.data == KEYFRAME
    assert (frame.width, frame.height) == (640, 480)


def test_vp8_interframe_and_bad_frames():
    frame = vp8_frame([b"\x10\x01\x00\x00payload"])
    assert frame is not None and not frame.keyframe
    assert vp8_frame([b"\x00\x01\x00\x00payload"]) is None  # no frame start
    assert vp8_frame([b"\x10\x00\x00\x00bad-start-code"]) is None  # keyframe, no 9d012a


SPS = bytes((0x67, 0x42, 0xC0, 0x1F, 0xAA))
PPS = bytes((0x68, 0xCE, 0x3C, 0x80))
IDR = bytes((0x65,)) + bytes(range(40))


def stap_a(*nals: bytes) -> bytes:
    return b"\x18" + b"".join(len(n).to_bytes(2, "big") + n for n in nals)


def fu_a(nal: bytes, pieces: int) -> list[bytes]:
    indicator = (nal[0] & 0xE0) | 28
    body = nal[1:]
    step = -(-len(body) // pieces)
    out = []
    for i in range(pieces):
        header = nal[0] & 0x1F
        if i == 0:
            header |= 0x80
        if i == pieces - 1:
            header |= 0x40
        out.append(bytes((indicator, header)) + body[i * step : (i + 1) * step])
    return out


def test_h264_stap_a_and_fu_a_make_an_annex_b_keyframe():
    packets = [stap_a(SPS, PPS), *fu_a(IDR, 3)]
    assert h264_starts_frame(packets[0]) and h264_starts_frame(packets[1])
    assert not h264_starts_frame(packets[2])
    frame = h264_frame(packets)
    assert frame is not None and frame.keyframe
    assert frame.data == START_CODE + SPS + START_CODE + PPS + START_CODE + IDR
    assert annexb_nal_units(frame.data) == [SPS, PPS, IDR]
    assert annexb_to_avcc(frame.data) == b"".join(
        len(n).to_bytes(4, "big") + n for n in (SPS, PPS, IDR)
    )
    record = avcc_record(SPS, PPS)
    assert record[:4] == bytes((1, 0x42, 0xC0, 0x1F)) and SPS in record and PPS in record


def test_h264_single_nal_and_broken_fragments():
    frame = h264_frame([bytes((0x41, 1, 2, 3))])
    assert frame is not None and not frame.keyframe
    fragments = fu_a(IDR, 3)
    assert h264_frame(fragments[1:]) is None  # start lost
    assert h264_frame(fragments[:2]) is None  # end lost
    assert h264_frame([b"\x18\x00\x09\x65"]) is None  # truncated STAP-A


def test_opus_durations_and_header():
    assert opus_samples(bytes((0xFC,))) == 960  # CELT 20 ms, one frame
    assert opus_samples(bytes((0x78 | 1,))) == 1920  # SILK 20 ms, two frames
    assert opus_samples(bytes((0x03, 0x03))) == 3 * 480  # SILK 10 ms, code 3, 3 frames
    assert opus_samples(b"") == 0
    head = opus_head()
    assert head[:8] == b"OpusHead" and len(head) == 19 and head[9] == 2


def test_sps_picture_size_including_cropping():
    import av

    from recorder.depacketizer import NAL_SPS, h264_sps_size

    for width, height, profile in ((320, 240, "baseline"), (1280, 720, "high"), (640, 360, "main")):
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
        codec.options = {"profile": profile}
        frame = av.VideoFrame(width, height, "yuv420p")
        packets = [bytes(p) for p in codec.encode(frame)] + [bytes(p) for p in codec.encode(None)]
        sps = next(n for n in annexb_nal_units(b"".join(packets)) if n[0] & 0x1F == NAL_SPS)
        assert h264_sps_size(sps) == (width, height)
    assert h264_sps_size(b"\x67\x42") == (0, 0)
