"""The forwarding path's lean reading of received RTP packets agrees with aiortc's parser:
payload bounds (CSRC list, one- and two-byte header extensions, padding) and the audio
level, on well-formed packets; on malformed ones it rejects what aiortc rejects."""

import os
import random
import struct

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from sfu.rtp_header import audio_level, payload_bounds, read_fixed_header

AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


def extensions_map(level_id: int) -> HeaderExtensionsMap:
    uris = {
        1: "urn:ietf:params:rtp-hdrext:sdes:mid",
        3: "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        5: "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        level_id: AUDIO_LEVEL,
    }
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=i, uri=uri) for i, uri in uris.items()
            ]
        )
    )
    return extensions


def random_packet(rng: random.Random, level_id: int) -> bytes:
    packet = RtpPacket(
        payload_type=rng.choice((96, 111)),
        marker=rng.randint(0, 1),
        sequence_number=rng.getrandbits(16),
        timestamp=rng.getrandbits(32),
        ssrc=rng.getrandbits(32),
        payload=os.urandom(rng.randint(0, 1200)),
    )
    packet.csrc = [rng.getrandbits(32) for _ in range(rng.randint(0, 3))]
    packet.padding_size = rng.choice((0, 0, 1, 4, 17))
    if rng.random() < 0.7:
        packet.extensions.mid = str(rng.randint(0, 9))
        packet.extensions.abs_send_time = rng.getrandbits(24)
        packet.extensions.transport_sequence_number = rng.getrandbits(16)
        if rng.random() < 0.7:
            packet.extensions.audio_level = (bool(rng.getrandbits(1)), rng.randint(0, 127))
    return packet.serialize(extensions_map(level_id))


@pytest.mark.parametrize("level_id", [2, 14, 15])  # 15: two-byte headers in aiortc's map
def test_agrees_with_aiortc_on_well_formed_packets(level_id):
    rng = random.Random(level_id)
    for _ in range(2000):
        data = random_packet(rng, level_id)
        expected = RtpPacket.parse(data, extensions_map(level_id))
        first, second, seq, timestamp, ssrc = read_fixed_header(data)
        assert (second & 0x7F, second >> 7, seq, timestamp, ssrc) == (
            expected.payload_type,
            expected.marker,
            expected.sequence_number,
            expected.timestamp,
            expected.ssrc,
        )
        start, end = payload_bounds(data, first)
        assert data[start:end] == expected.payload
        assert audio_level(data, first, level_id) == expected.extensions.audio_level


def test_two_byte_extension_headers():
    elements = bytes((2, 1, 0x85)) + bytes((7, 2, 1, 2)) + b"\x00"
    elements += b"\x00" * (-len(elements) % 4)
    header = struct.pack("!BBHII", 0x90, 111, 1, 2, 3)
    data = header + struct.pack("!HH", 0x1000, len(elements) // 4) + elements + b"opus"
    assert payload_bounds(data, data[0]) == (len(data) - 4, len(data))
    assert audio_level(data, data[0], 2) == (True, 5)
    assert audio_level(data, data[0], 7) == (False, 1)
    assert audio_level(data, data[0], 9) is None


@pytest.mark.parametrize(
    "data",
    [
        struct.pack("!BBHII", 0x83, 96, 1, 2, 3) + b"\x00" * 8,  # 3 CSRC, room for 2
        struct.pack("!BBHII", 0x90, 96, 1, 2, 3) + b"\xbe\xde",  # extension header cut
        struct.pack("!BBHII", 0x90, 96, 1, 2, 3) + b"\xbe\xde\x00\x02" + b"\x00" * 4,
        struct.pack("!BBHII", 0xA0, 96, 1, 2, 3) + b"abc\x00",  # padding count 0
        struct.pack("!BBHII", 0xA0, 96, 1, 2, 3) + b"ab\x09",  # more padding than data
    ],
)
def test_rejects_what_aiortc_rejects(data):
    with pytest.raises(ValueError):
        RtpPacket.parse(data)
    assert payload_bounds(data, data[0]) == (0, 0)


def test_malformed_extension_elements_give_no_audio_level():
    header = struct.pack("!BBHII", 0x90, 111, 1, 2, 3)
    truncated = header + b"\xbe\xde\x00\x01" + bytes((0x23, 1, 2, 3))  # 4 bytes claimed
    assert audio_level(truncated, truncated[0], 2) is None
    assert audio_level(header + b"\xbe\xde", 0x90, 2) is None
    plain = struct.pack("!BBHII", 0x80, 111, 1, 2, 3) + b"opus"
    assert audio_level(plain, plain[0], 2) is None
