"""The header-extension block (RFC 8285, one- and two-byte form) is read by one walker,
``sfu.rtp_header.extension_elements``, exactly as aiortc's parser reads it; the SFU's
element lookup (``header_extension``) and the load client's packet view (``parse_rtp``)
built on it agree with aiortc's ``RtpPacket.parse``: on crafted blocks (an element with
id 15, padding, the two-byte form, elements running past the block) and on thousands of
randomly mutated ones."""

from __future__ import annotations

import random
import struct

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    HeaderExtensions,
    HeaderExtensionsMap,
    RtpPacket,
    unpack_header_extensions,
)

from client.rtp_packet import parse_rtp
from sfu.rtp_header import extension_elements, header_extension

MID_ID, RID_ID = 1, 4
PAYLOAD = b"payload"
#: ids looked up in every block: each one-byte id, and two-byte ones
LOOKUP_IDS = (*range(1, 16), 16, 77, 255)


def named_map() -> HeaderExtensionsMap:
    """aiortc's map with a mid and an rtp-stream-id, as a simulcast publisher's."""
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(
                    id=MID_ID, uri="urn:ietf:params:rtp-hdrext:sdes:mid"
                ),
                RTCRtpHeaderExtensionParameters(
                    id=RID_ID, uri="urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
                ),
            ]
        )
    )
    return extensions


class RawElements:
    """An extensions map that keeps every element aiortc's parser reads, in order."""

    def __init__(self) -> None:
        self.elements: list[tuple[int, bytes]] = []

    def get(self, profile: int, value: bytes) -> HeaderExtensions:
        self.elements = unpack_header_extensions(profile, value)
        return HeaderExtensions()


class FramingOnly:
    """An extensions map that leaves the elements unread: aiortc's parser then judges the
    packet's framing only (CSRC list, extension block, padding)."""

    def get(self, profile: int, value: bytes) -> None:
        return None


def rtp(profile: int, elements: bytes, words: int | None = None, csrc: int = 0) -> bytes:
    """A packet with the extension block ``elements`` (its length in words given, or
    ``elements`` padded to a whole word) and the payload ``PAYLOAD``."""
    if words is None:
        elements += b"\x00" * (-len(elements) % 4)
        words = len(elements) // 4
    header = struct.pack("!BBHII", 0x90 | csrc, 96, 1, 2, 3) + b"\x00\x00\x00\x07" * csrc
    return header + struct.pack("!HH", profile, words) + elements + PAYLOAD


def block_of(data: bytes) -> tuple[int, int, bytes] | None:
    """Where the elements of ``data``'s extension block start, its profile and its bytes;
    ``None`` when the block runs past the packet."""
    pos = 12 + 4 * (data[0] & 0x0F)
    profile, words = struct.unpack_from("!HH", data, pos)
    if pos + 4 + 4 * words > len(data):
        return None
    return pos + 4, profile, data[pos + 4 : pos + 4 + 4 * words]


def read_before_rejection(profile: int, block: bytes) -> list[tuple[int, bytes]]:
    """The elements aiortc reads before it rejects ``block``: those of its longest prefix
    that aiortc accepts (the element it rejects still runs past any shorter cut)."""
    for size in range(len(block), -1, -1):
        try:
            return unpack_header_extensions(profile, block[:size])
        except ValueError:
            continue
    raise AssertionError("the empty block is always accepted")


def first_non_empty(elements: list[tuple[int, bytes]], extension_id: int) -> bytes | None:
    return next((value for i, value in elements if i == extension_id and value), None)


def walk(
    data: bytes, start: int, profile: int, block: bytes
) -> tuple[list[tuple[int, bytes]], bool]:
    """What ``extension_elements`` yields for the block, and whether it raised after."""
    found: list[tuple[int, bytes]] = []
    try:
        for element in extension_elements(data, start, start + len(block), profile):
            found.append(element)
    except ValueError:
        return found, True
    return found, False


def check_against_aiortc(data: bytes) -> None:
    """The walker, the SFU's lookup and the client's view, each against aiortc's parser."""
    # the maps stand in for aiortc's HeaderExtensionsMap (type: ignore[arg-type])
    try:
        framed: RtpPacket | None = RtpPacket.parse(data, FramingOnly())  # type: ignore[arg-type]
    except ValueError:
        framed = None
    raw = RawElements()
    try:
        RtpPacket.parse(data, raw)  # type: ignore[arg-type]
        elements_read = True
    except ValueError:
        elements_read = False
    view = parse_rtp(data)
    if framed is None:
        assert view is None
    else:
        assert view is not None and view.payload == framed.payload
        assert view.malformed_extensions == (not elements_read)
        if elements_read:
            assert view.extensions == {
                element_id: first_non_empty(raw.elements, element_id) or b""
                for element_id, _ in raw.elements
            }

    found = block_of(data)
    if found is None:
        for extension_id in LOOKUP_IDS:
            assert header_extension(data, data[0], extension_id) is None
        return
    start, profile, block = found
    try:
        elements = unpack_header_extensions(profile, block)
        rejected = False
    except ValueError:
        elements = read_before_rejection(profile, block)
        rejected = True
    assert walk(data, start, profile, block) == (elements, rejected)
    for extension_id in LOOKUP_IDS:
        # the lookup stops at its element: before a malformed one it still finds it
        expected = first_non_empty(elements, extension_id)
        assert header_extension(data, data[0], extension_id) == expected, extension_id


def one_byte(element_id: int, value: bytes) -> bytes:
    return bytes(((element_id << 4) | (len(value) - 1),)) + value


def two_byte(element_id: int, value: bytes) -> bytes:
    return bytes((element_id, len(value))) + value


CRAFTED = {
    # RFC 8285 reserves id 15; aiortc reads it as an element and reads on
    "id 15 between elements": rtp(
        0xBEDE, one_byte(MID_ID, b"0") + one_byte(15, b"xy") + one_byte(RID_ID, b"h")
    ),
    "id 15 first": rtp(0xBEDE, one_byte(15, b"\x00") + one_byte(RID_ID, b"mid")),
    "padding bytes": rtp(
        0xBEDE, b"\x00\x00" + one_byte(MID_ID, b"0") + b"\x00" + one_byte(RID_ID, b"h") + b"\x00"
    ),
    "an id 0 element": rtp(0xBEDE, b"\x02abc" + one_byte(RID_ID, b"f")),
    "two-byte form": rtp(
        0x1000, two_byte(MID_ID, b"m" * 20) + b"\x00" + two_byte(RID_ID, b"h") + two_byte(200, b"")
    ),
    "two-byte form, an empty element before one with its id": rtp(
        0x1000, two_byte(RID_ID, b"") + two_byte(RID_ID, b"q") + two_byte(MID_ID, b"1")
    ),
    "one-byte element past the block": rtp(
        0xBEDE, one_byte(MID_ID, b"0") + one_byte(RID_ID, b"abcd")[:2], words=1
    ),
    "one-byte element past the block, after id 15": rtp(
        0xBEDE, one_byte(15, b"z") + one_byte(RID_ID, b"abcd")[:2], words=1
    ),
    "two-byte element header cut by the block": rtp(
        0x1000, two_byte(RID_ID, b"h") + b"\x05", words=1
    ),
    "two-byte element past the block": rtp(
        0x1000, two_byte(MID_ID, b"1") + two_byte(RID_ID, b"long")[:5], words=2
    ),
    "block past the packet": rtp(0xBEDE, one_byte(RID_ID, b"h") + b"\x00\x00", words=9),
    "profile with appbits": rtp(0x1001, two_byte(RID_ID, b"h")),
    "other profile": rtp(0xABCD, one_byte(RID_ID, b"h")),
    "a CSRC list": rtp(0xBEDE, one_byte(15, b"!") + one_byte(RID_ID, b"l"), csrc=2),
}


@pytest.mark.parametrize("data", CRAFTED.values(), ids=CRAFTED.keys())
def test_crafted_blocks_read_as_aiortc_reads_them(data: bytes) -> None:
    check_against_aiortc(data)
    try:
        expected: RtpPacket | None = RtpPacket.parse(data, named_map())
    except ValueError:
        expected = None
    view = parse_rtp(data)
    rid = header_extension(data, data[0], RID_ID)
    if expected is None:
        # the client keeps a packet with malformed elements, without its elements
        assert view is None or (view.malformed_extensions and not view.extensions)
    else:
        assert view is not None and not view.malformed_extensions
        assert view.extension_text(MID_ID) == expected.extensions.mid
        assert view.extension_text(RID_ID) == expected.extensions.rtp_stream_id
        assert (rid.decode() if rid else None) == expected.extensions.rtp_stream_id


def test_id_15_does_not_end_the_block() -> None:
    data = CRAFTED["id 15 between elements"]
    assert RtpPacket.parse(data, named_map()).extensions.rtp_stream_id == "h"
    view = parse_rtp(data)
    assert view is not None and view.extensions == {MID_ID: b"0", 15: b"xy", RID_ID: b"h"}
    assert header_extension(data, data[0], RID_ID) == b"h"
    assert header_extension(data, data[0], 15) == b"xy"


def test_malformed_block_after_the_element() -> None:
    """aiortc rejects the packet; the client keeps its payload without elements, the
    SFU's lookup finds an element read before the malformed one, none after it."""
    data = CRAFTED["one-byte element past the block"]
    with pytest.raises(ValueError):
        RtpPacket.parse(data, named_map())
    view = parse_rtp(data)
    assert view is not None and view.malformed_extensions and view.payload == PAYLOAD
    assert header_extension(data, data[0], MID_ID) == b"0"
    assert header_extension(data, data[0], RID_ID) is None


def test_empty_two_byte_element_is_passed_over() -> None:
    data = CRAFTED["two-byte form, an empty element before one with its id"]
    assert RtpPacket.parse(data, named_map()).extensions.rtp_stream_id == "q"
    assert header_extension(data, data[0], RID_ID) == b"q"


def random_block(rng: random.Random) -> tuple[int, bytes]:
    """A well-formed block of either form: elements (id 15 among the one-byte ids, empty
    values among the two-byte ones) with zero bytes between them."""
    two_byte_form = rng.random() < 0.4
    elements = b""
    for _ in range(rng.randrange(0, 6)):
        elements += b"\x00" * rng.choice((0, 0, 0, 1, 2))
        if two_byte_form:
            element_id = rng.choice((*range(1, 16), 16, 77, 255, rng.randrange(1, 256)))
            elements += two_byte(element_id, rng.randbytes(rng.choice((0, 1, 2, 3, 17))))
        else:
            element_id = rng.choice((*range(1, 16), 15, 15))
            elements += one_byte(element_id, rng.randbytes(rng.randrange(1, 17)))
    elements += b"\x00" * (-len(elements) % 4)
    return (0x1000 if two_byte_form else 0xBEDE), elements


def mutated_packet(rng: random.Random) -> bytes:
    profile, elements = random_block(rng)
    words = len(elements) // 4
    mutation = rng.randrange(6)
    if mutation == 0 and elements:  # bytes changed
        changed = bytearray(elements)
        for _ in range(rng.randrange(1, 4)):
            changed[rng.randrange(len(changed))] = rng.choice(
                (0, 0x0F, 0xF0, 0xFF, rng.randrange(256))
            )
        elements = bytes(changed)
    elif mutation == 1:  # the length in words off by a little
        words = max(0, words + rng.choice((-2, -1, 1, 2)))
    elif mutation == 2 and elements:  # cut short, the length kept
        elements = elements[: rng.randrange(len(elements))]
    elif mutation == 3:  # another profile
        profile = rng.choice((0x1001, 0x100F, 0xBEDF, 0x0000, rng.randrange(65536)))
    elif mutation == 4:  # a random block
        elements = rng.randbytes(4 * rng.randrange(0, 5))
        words = len(elements) // 4
    return rtp(profile, elements, words=words, csrc=rng.choice((0, 0, 1, 3)))


def test_mutated_blocks_read_as_aiortc_reads_them() -> None:
    rng = random.Random(8285)
    for _ in range(4000):
        data = mutated_packet(rng)
        try:
            check_against_aiortc(data)
        except AssertionError as error:
            raise AssertionError(f"{data.hex()}: {error}") from error
