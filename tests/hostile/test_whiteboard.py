"""A whiteboard flood: a participant sends the longest strokes as fast as the server takes
them.  The room's board stops at its byte limit (``board_full``), the server's memory
follows that limit and is given back by a clear, and the others keep receiving strokes."""

from __future__ import annotations

import asyncio
import gc
import random
import re
import tracemalloc

import pytest

from client import Participant, SignalError, SocketSignal
from signaling.http.state import NAMESPACES
from signaling.realtime.namespaces.media import MediaNamespace
from signaling.settings import Settings
from tests.support.world import PASSWORD, World

#: The board's byte limit here (the default is 2 MiB): the flood, its memory and its release
#: scale with it, and a quarter of the default keeps them well apart from the noise.
BOARD_BYTES = 512 * 1024
FLOOD_STROKES = 400  # the limit in force allows about 65 strokes of 500 points


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"whiteboard_max_bytes": BOARD_BYTES})


def refusals(metrics_text: str, limit: str) -> float:
    match = re.search(rf'^caucus_refusals_total{{limit="{limit}"}} (\S+)$', metrics_text, re.M)
    return float(match.group(1)) if match else 0.0


def drain(name: str, signal: SocketSignal, received: dict[str, int]) -> None:
    """Count the strokes ``signal`` received and drop them (this process is the server and
    the clients: the clients' copies must not weigh in the server's measure)."""
    strokes = sum(e == "live.board.stroke" for e, _ in signal.live_events)
    received[name] = received.get(name, 0) + strokes
    signal.live_events.clear()


def longest_stroke(case_id: str, rng: random.Random, points: int = 500) -> dict:
    return {
        "case_id": case_id,
        "points": [[rng.random(), rng.random()] for _ in range(points)],
        "color": "#123abc",
        "width": 4,
    }


async def test_a_whiteboard_flood_is_bounded_in_bytes_and_released_on_clear(
    world: World,
) -> None:
    case_a = world.cases["Case A"]
    settings = world.server.services.settings
    limit = settings.whiteboard_max_bytes
    assert limit == BOARD_BYTES
    namespace = next(n for n in world.server.app[NAMESPACES] if isinstance(n, MediaNamespace))
    signals = {
        name: SocketSignal(world.server.url, name, PASSWORD, case_a, insecure=True)
        for name in ("nina", "paula")
    }
    people = [Participant(n, s, video=None, audio=False) for n, s in signals.items()]
    nina, paula = signals["nina"], signals["paula"]
    rng = random.Random(7)
    before_metrics = refusals((await world.clients["root"].get("/metrics"))[1], "whiteboard_bytes")
    try:
        for person in people:
            await person.join()
        # A stroke longer than the per-stroke limit is refused with its own code.
        too_long = longest_stroke(case_a, rng, settings.whiteboard_max_stroke_points + 1)
        try:
            await paula.call("live.board.stroke", too_long)
        except SignalError as refusal:
            assert refusal.code == "stroke_too_long"
        else:
            raise AssertionError("a stroke over the point limit was accepted")

        gc.collect()
        tracemalloc.start()
        try:
            baseline = tracemalloc.get_traced_memory()[0]
            accepted = 0
            received: dict[str, int] = {}
            refused: SignalError | None = None
            for _ in range(FLOOD_STROKES):
                drain("nina", nina, received)
                drain("paula", paula, received)
                try:
                    reply = await paula.call("live.board.stroke", longest_stroke(case_a, rng))
                except SignalError as error:
                    refused = error
                    break
                accepted += 1
                assert reply["bytes"] <= limit
            assert refused is not None, f"{accepted} strokes of 500 points were all accepted"
            assert refused.code == "board_full"
            assert str(limit) in refused.message
            boards = [b for key, b in namespace.controls._boards.items() if key[0] == case_a]
            assert len(boards) == 1
            board = boards[0]
            assert board.size == sum(len(s) for s in board.strokes) <= limit
            assert board.size > limit - 10_000  # it really filled up
            assert all(isinstance(s, bytes) for s in board.strokes)
            stored = board.size
            del board, boards  # only the server holds the strokes now
            # Everyone in the room received every accepted stroke.
            async with asyncio.timeout(30):
                while received.get("nina", 0) < accepted:
                    await asyncio.sleep(0.05)
                    drain("nina", nina, received)
            drain("paula", paula, received)
            assert received["nina"] == received["paula"] == accepted
            gc.collect()
            full = tracemalloc.get_traced_memory()[0]
            # ~0.5 MB of strokes hold ~0.5 MB (not the ~19 MB of Python float lists they were)
            assert full - baseline < 3 * limit, (full - baseline, limit)
            # Refusals keep coming while the board is full; nobody's strokes get in.
            for caller in (paula, nina):
                try:
                    await caller.call("live.board.stroke", longest_stroke(case_a, rng))
                except SignalError as error:
                    assert error.code == "board_full"
                else:
                    raise AssertionError("a full board took another stroke")

            await nina.call("live.board.clear", {"case_id": case_a})
            gc.collect()
            cleared = tracemalloc.get_traced_memory()[0]
            assert full - cleared > 0.8 * stored, (full, cleared, stored)
        finally:
            tracemalloc.stop()
        assert not [b for key, b in namespace.controls._boards.items() if key[0] == case_a]
        # The room goes on: a new stroke is taken, relayed and replayed.
        seen = sum(e == "live.board.stroke" for e, _ in paula.live_events)
        await nina.call("live.board.stroke", longest_stroke(case_a, rng, 4))
        async with asyncio.timeout(10):
            await paula.wait_until(
                lambda s: sum(e == "live.board.stroke" for e, _ in s.live_events) > seen
            )
        assert len((await paula.call("live.board", {"case_id": case_a}))["strokes"]) == 1
    finally:
        for person in people:
            await person.close()
    after_metrics = refusals((await world.clients["root"].get("/metrics"))[1], "whiteboard_bytes")
    assert after_metrics - before_metrics == 3
