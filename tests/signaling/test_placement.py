"""Which worker a new case goes to: the least projected forwarding, not the lagging
measurement of packets/s."""

from __future__ import annotations

import random

import pytest

from signaling.cluster.placement import (
    PPS_PER_CONSUMER,
    RecentPlacements,
    WorkerInfo,
    expected_pps,
    least_loaded,
)


def worker(worker_id: str, **load: float) -> WorkerInfo:
    return WorkerInfo(id=worker_id, node="n1", host="127.0.0.1", port=1, load=dict(load))


def test_no_worker_places_nothing() -> None:
    assert least_loaded([]) is None


def test_consumers_count_before_their_packets_are_measured() -> None:
    # w2 measured fewer packets/s, but the media of its newest case has not started
    w1 = worker("w1", consumers=24, forwarded_pps=980.0)
    w2 = worker("w2", consumers=66, forwarded_pps=784.0)
    assert expected_pps(w2) == 66 * PPS_PER_CONSUMER
    assert least_loaded([w1, w2]) is w1


def test_measured_packets_count_where_they_are_more() -> None:
    # fewer consumers, but each forwarding high-bitrate video
    hd = worker("hd", consumers=20, forwarded_pps=5000.0)
    plain = worker("plain", consumers=40, forwarded_pps=2400.0)
    assert expected_pps(hd) == 5000.0
    assert least_loaded([hd, plain]) is plain


def test_equal_loads_fall_to_participants_then_cases_then_id() -> None:
    a = worker("a", consumers=0, participants=2, cases=1)
    b = worker("b", consumers=0, participants=1, cases=1)
    assert least_loaded([a, b]) is b
    c = worker("c", consumers=0, participants=1, cases=0)
    assert least_loaded([a, b, c]) is c
    d = worker("d", consumers=0, participants=1, cases=0)
    assert least_loaded([d, c]) is c


@pytest.mark.parametrize("seed", range(10))
def test_cases_placed_in_quick_succession_are_spread_evenly(seed: int) -> None:
    """A load test's ramp: rooms of 4 publishers joining one participant every 0.1 s,
    each case placed when its first participant arrives; a consumer's media starts
    0.5-3 s after it was created (ICE, DTLS, the first keyframe) and each worker measures
    its packets/s over 0.5 s windows.  By measured packets/s first, the same ramp placed
    a streak of 11 cases on one worker (seed 0) and ended 15/17 or 17/15 in 9 of these
    10 seeds."""
    rng = random.Random(seed)
    workers = {w: worker(w) for w in ("w1", "w2")}
    flowing_from: dict[str, list[float]] = {w: [] for w in workers}  # one per consumer
    participants = dict.fromkeys(workers, 0)
    cases = dict.fromkeys(workers, 0)
    placed: list[str] = []
    for tick in range(32 * 4):
        now = tick * 0.1
        if tick % 5 == 0:  # a measurement window ends
            for w, info in workers.items():
                info.load["forwarded_pps"] = 60.0 * sum(now >= t for t in flowing_from[w])
        case, joined_before = divmod(tick, 4)
        if joined_before == 0:
            chosen = least_loaded(list(workers.values()))
            assert chosen is not None
            placed.append(chosen.id)
            cases[chosen.id] += 1
        home = placed[case]
        participants[home] += 1
        # audio and video, from each participant already in the room and to each
        flowing_from[home].extend(now + rng.uniform(0.5, 3.0) for _ in range(4 * joined_before))
        for w, info in workers.items():
            info.load.update(
                consumers=float(len(flowing_from[w])),
                participants=float(participants[w]),
                cases=float(cases[w]),
            )
    assert placed.count("w1") == placed.count("w2") == 16
    assert "w1w1w1" not in "".join(placed) and "w2w2w2" not in "".join(placed)


def test_recent_placements_count_once_per_case_and_fade() -> None:
    recent = RecentPlacements(seconds=4)
    recent.add("c1", "w1", now=0.0)
    recent.add("c1", "w1", now=1.0)  # a second event of the same case
    recent.add("c2", "w2", now=2.0)
    recent.add("c3", "w1", now=2.0)
    assert recent.counts(now=2.0) == {"w1": 0.5 + 1.0, "w2": 1.0}
    recent.add("c2", "w1", now=3.0)  # another node had placed it on w1
    assert recent.counts(now=3.0) == {"w1": 0.25 + 0.75 + 0.75}
    recent.discard("c3")
    assert recent.counts(now=4.0) == {"w1": 0.5}  # c1, placed at 0, no longer counts
    assert recent.counts(now=6.0) == {}


def test_cases_placed_at_the_same_moment_go_to_different_workers() -> None:
    """Cases whose first events arrive together see the same reported loads."""
    w1 = worker("w1", consumers=96, participants=20, cases=5, forwarded_pps=1065.0)
    w2 = worker("w2", consumers=96, participants=20, cases=5, forwarded_pps=1028.0)
    recent = RecentPlacements()
    placed = []
    for case in ("a", "b", "c", "d"):
        chosen = least_loaded([w1, w2], recent.counts())
        assert chosen is not None
        recent.add(case, chosen.id)
        placed.append(chosen.id)
    assert sorted(placed) == ["w1", "w1", "w2", "w2"]
    # without them, every one went to the same worker
    assert len({least_loaded([w1, w2]).id for _ in range(4)}) == 1  # type: ignore[union-attr]
