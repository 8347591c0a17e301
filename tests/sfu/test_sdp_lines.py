"""The SDP lines the SFU's rewriters share (``sfu.sdp_lines``): split as aiortc splits,
written back with the SDP's own line ending."""

from __future__ import annotations

from sfu.sdp_lines import extmaps, mid_of, rejected, split_sdp

OFFER = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "a=extmap:9 urn:example:session\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=extmap:1/sendonly urn:example:one\r\n"
    "m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n"
)


def test_a_crlf_sdp_splits_into_session_and_sections_and_comes_back_unchanged():
    lines = split_sdp(OFFER)
    assert lines.newline == "\r\n"
    assert lines.session[0] == "v=0" and lines.session[-1].startswith("a=extmap:9")
    assert [section[0].split()[0] for section in lines.sections] == ["m=audio", "m=video"]
    assert lines.text() == OFFER


def test_extmaps_mids_and_rejected_sections():
    lines = split_sdp(OFFER)
    assert extmaps(lines.session) == [(9, "urn:example:session")]
    assert extmaps(lines.sections[0]) == [(1, "urn:example:one")]  # the direction is not the id
    assert [mid_of(section) for section in lines.sections] == ["0", "1"]
    assert [rejected(section) for section in lines.sections] == [False, True]
    assert rejected(["m=video"])  # malformed: no port


def test_mixed_line_endings_are_read_as_aiortc_reads_them():
    """A hostile SDP mixing ``\\n``, ``\\r`` and ``\\r\\n`` is split on each (as
    ``str.splitlines``, aiortc's reading), empty lines dropped; written back with
    ``\\r\\n``, the ending it has somewhere."""
    sdp = "v=0\ns=-\rm=audio 9 RTP/AVP 0\r\na=mid:a\n\n\na=extmap:3 urn:x\r\n"
    lines = split_sdp(sdp)
    assert lines.session == ["v=0", "s=-"]
    assert lines.sections == [["m=audio 9 RTP/AVP 0", "a=mid:a", "a=extmap:3 urn:x"]]
    assert lines.text() == "v=0\r\ns=-\r\nm=audio 9 RTP/AVP 0\r\na=mid:a\r\na=extmap:3 urn:x\r\n"


def test_an_sdp_without_media_or_lines():
    assert split_sdp("").sections == [] and split_sdp("").text() == ""
    lines = split_sdp("v=0\n")
    assert lines.newline == "\n" and lines.session == ["v=0"] and lines.text() == "v=0\n"


def test_an_extmap_id_of_thousands_of_digits_is_no_extmap_line():
    """The other side's SDP may carry an id Python's ``int()`` refuses (over 4,300
    digits): read as no extension, never an exception."""
    lines = [f"a=extmap:{'9' * 5000} urn:example:huge", "a=extmap:123456 urn:example:six"]
    assert extmaps(lines) == []
    assert extmaps(["a=extmap:12345 urn:example:five"]) == [(12345, "urn:example:five")]
