"""Fuzz target: a subscriber's transport-wide congestion control feedback.

Every input is one RTCP packet as the SFU hands it to ``sfu.twcc.parse_feedback`` (one
part of a decrypted compound, framed by its length field).  It is read twice: as it is,
and with a valid transport feedback header put in front of all but its first four bytes
(so that the chunks, deltas and padding are reached by most inputs), each also with a
small status limit.

Documented rejection: ``FeedbackError``.  A crash is any other exception; a feedback
read with more statuses than its limit or none; one whose sequence numbers are not
consecutive from its base; or one that ``build_feedback`` cannot write again as a
packet that reads back the same (same SSRCs, base, feedback count, losses, and arrival
times equal modulo the reference time's wrap).
"""

from __future__ import annotations

import struct
import sys

import atheris

with atheris.instrument_imports(include=["sfu.twcc"]):
    from sfu.twcc import (
        REFERENCE_WRAP_US,
        FeedbackError,
        TransportFeedback,
        build_feedback,
        parse_feedback,
    )


def check(feedback: TransportFeedback, limit: int) -> None:
    packets = feedback.packets
    assert 0 < len(packets) <= limit, len(packets)
    for i, (seq, _) in enumerate(packets):
        assert seq == (feedback.base_seq + i) & 0xFFFF, (i, seq)
    rebuilt = build_feedback(
        feedback.sender_ssrc, feedback.media_ssrc, feedback.feedback_count, packets
    )
    assert len(rebuilt) % 4 == 0
    again = parse_feedback(rebuilt, max_statuses=limit)
    assert (again.sender_ssrc, again.media_ssrc) == (feedback.sender_ssrc, feedback.media_ssrc)
    assert (again.base_seq, again.feedback_count) == (feedback.base_seq, feedback.feedback_count)
    assert len(again.packets) == len(packets)
    for (seq, time), (seq_again, time_again) in zip(packets, again.packets, strict=True):
        assert seq == seq_again
        assert (time is None) == (time_again is None), seq
        if time is not None and time_again is not None:
            assert (time - time_again) % REFERENCE_WRAP_US == 0, (seq, time, time_again)


def read(data: bytes) -> None:
    for limit in (4096, 16):
        try:
            feedback = parse_feedback(data, max_statuses=limit)
        except FeedbackError:
            continue
        check(feedback, limit)


def TestOneInput(data: bytes) -> None:
    read(data)
    if len(data) >= 4:
        body = data[4:]
        body += bytes(-len(body) % 4)
        header = struct.pack("!BBH", 0x8F | (data[0] & 0x20), 205, len(body) // 4)
        read(header + body)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
