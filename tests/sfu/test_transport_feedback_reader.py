"""A subscriber's transport feedback matched with what the SFU sent it
(``sfu.transport_feedback.TransportFeedbackReader``): the feedback is built as a
subscriber builds it (``sfu.twcc.build_feedback``), the estimate is the real one."""

from __future__ import annotations

import struct

from sfu.delay_based import DelayBasedEstimate
from sfu.transport_feedback import TransportFeedbackReader
from sfu.twcc import build_feedback


class SentPackets:
    """What a writer remembers: seq -> (send time, size, probe cluster)."""

    def __init__(self) -> None:
        self.packets: dict[int, tuple[float, int, int]] = {}

    def send(self, seq: int, at: float, size: int = 1200, cluster: int = 0) -> None:
        self.packets[seq & 0xFFFF] = (at, size, cluster)

    def __call__(self, seq: int) -> tuple[float, int, int] | None:
        return self.packets.get(seq)


def reader_with(sent: SentPackets) -> tuple[TransportFeedbackReader, list[float]]:
    clock = [100.0]
    return TransportFeedbackReader(sent, DelayBasedEstimate(800_000), lambda: clock[0]), clock


def test_feedback_reaches_the_estimate_once_per_packet_with_its_probe_cluster():
    sent = SentPackets()
    reader, clock = reader_with(sent)
    # 20 packets of a probe cluster at 1 Mbit/s (1,200 bytes every 9.6 ms), received at
    # the same pace 30 ms later on the subscriber's clock
    arrivals = []
    for i in range(20):
        sent.send(65530 + i, 100.0 + i * 0.0096, cluster=7)
        arrivals.append(((65530 + i) & 0xFFFF, 5_000_000 + 30_000 + int(i * 9600)))
    clock[0] = 100.3
    reader.on_part(build_feedback(1, 2, 0, arrivals))
    assert reader.feedbacks == 1 and reader.unknown == 0 and reader.malformed == 0
    result = reader.estimate.probe_result(7)
    assert result is not None and 0.85e6 < result < 1.1e6
    # the same feedback again (a subscriber repeating itself) weighs nothing more
    reader.on_part(build_feedback(1, 2, 1, arrivals))
    assert reader.unknown == 20


def test_unknown_numbers_and_malformed_feedback_are_counted_and_change_nothing():
    sent = SentPackets()
    reader, _clock = reader_with(sent)
    before = reader.estimate.bitrate()
    # numbers the writer never sent (or no longer remembers)
    reader.on_part(build_feedback(1, 2, 0, [(10, 1_000), (11, None), (12, 3_000)]))
    assert reader.unknown == 3 and reader.feedbacks == 1
    for part in (
        b"",
        struct.pack("!BBH", 0x8F, 205, 1) + b"\x00" * 4,
        build_feedback(1, 2, 0, [(1, 1_000)])[:-4],
        struct.pack("!BBHIIHHI", 0x8F, 205, 4, 1, 2, 0, 60_000, 0),  # 60,000 statuses
    ):
        reader.on_part(part)
    assert reader.malformed == 4
    assert reader.estimate.bitrate() == before
    assert reader.stats() == {
        "transport_feedbacks": 1,
        "transport_feedback_malformed": 4,
        "transport_feedback_unknown": 3,
    }


def test_losses_reported_reach_the_estimate():
    sent = SentPackets()
    reader, clock = reader_with(sent)
    arrivals: list[tuple[int, int | None]] = []
    for i in range(40):
        sent.send(i, 100.0 + i * 0.01)
        arrivals.append((i, None if i % 4 == 0 else 2_000_000 + i * 10_000))
    clock[0] = 100.5
    reader.on_part(build_feedback(1, 2, 0, arrivals))
    assert reader.estimate.loss() == 0.25
