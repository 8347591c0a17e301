"""The worker's periodic jobs (``sfu.worker.Every``): each run one timer of the event loop
with its deadline at a multiple of its interval, a failing run logged without ending the
next ones, and jobs whose intervals divide one another run in the same iteration of the
loop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sfu.worker import Every
from tests.support.eventually import eventually


async def test_runs_again_after_a_failure_and_stops_when_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[float] = []
    loop = asyncio.get_running_loop()

    def job() -> None:
        runs.append(loop.time())
        if len(runs) == 2:
            raise RuntimeError("a round that fails")

    with caplog.at_level(logging.ERROR, logger="sfu.worker"):
        every = Every(0.02, job, "a test job")
        await eventually(lambda: len(runs) >= 4, 5, interval=0.01)
    assert [r.message for r in caplog.records] == ["a test job failed"]
    # the deadlines are whole multiples of the interval (when each run starts depends on
    # the machine's load: not asserted)
    assert abs(every._next / 0.02 - round(every._next / 0.02)) < 1e-6
    every.cancel()
    stopped = len(runs)
    other: list[float] = []
    witness = Every(0.02, lambda: other.append(loop.time()), "witness")
    await eventually(lambda: len(other) >= 3, 5, interval=0.01)
    witness.cancel()
    assert len(runs) == stopped


async def test_jobs_of_dividing_intervals_run_in_the_same_loop_iteration() -> None:
    """Each run leaves a marker for the next iteration of the loop (``call_soon``): a
    "whole" run next to a "half" run with no marker between them shared its iteration."""
    loop = asyncio.get_running_loop()
    seen: list[str] = []

    def run(name: str) -> None:
        seen.append(name)
        loop.call_soon(seen.append, "|")

    half = Every(0.05, lambda: run("half"), "half")
    whole = Every(0.1, lambda: run("whole"), "whole")
    try:
        await eventually(lambda: seen.count("whole") >= 3, 5)
    finally:
        half.cancel()
        whole.cancel()
    for i, name in enumerate(seen):
        if name == "whole":
            assert seen[i - 1] == "half" or seen[i + 1 : i + 2] == ["half"], seen
