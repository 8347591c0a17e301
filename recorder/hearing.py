"""A HearingRecorder records a hearing: one WebM per participant (per stretch of
publishing) and a JSON timeline of who was in which live room when.

    hearing = HearingRecorder(vault, case_id, case_key, "hearing-7")
    await hearing.start()
    await hearing.add_participant("alice", "main", [audio_producer, video_producer])
    hearing.moved("alice", "breakout-1")
    hearing.left("alice")
    result = await hearing.stop()    # HearingResult: timeline blob + one result per file

Each participant's recording is an ordinary :class:`Recorder`; it ends by itself when
the participant's producers close.  A participant who publishes again gets a new file.
The timeline is written to the vault (encrypted) when the hearing stops, as blob
``<hearing_id>-timeline``; recording blobs are ``<hearing_id>-<n>``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .recorder import COMPLETED, DEFAULT_MAX_SECONDS, FAILED, Recorder, RecordingResult

if TYPE_CHECKING:
    from rooms.vault.store import SpaceVault
    from sfu.simulcast import Track

HEARING_MAX_SECONDS = 4 * 3600.0


@dataclass
class HearingResult:
    hearing_id: str
    timeline_blob_id: str
    status: str  # "completed" if the timeline and every recording were written
    recordings: list[RecordingResult] = field(default_factory=list)


class HearingRecorder:
    """Owns one :class:`Recorder` per participant's publishing stretch and the timeline."""

    def __init__(
        self,
        vault: SpaceVault,
        case_id: str,
        case_key: bytes,
        hearing_id: str,
        max_seconds: float = HEARING_MAX_SECONDS,
        *,
        recording_max_seconds: float | None = None,
    ) -> None:
        self.hearing_id = hearing_id
        self.timeline_blob_id = f"{hearing_id}-timeline"
        self.max_seconds = max_seconds
        self._vault = vault
        self._case_id = case_id
        self._case_key = case_key
        self._recording_max = recording_max_seconds or max_seconds or DEFAULT_MAX_SECONDS
        self._events: list[dict[str, Any]] = []
        self._recordings: list[tuple[str, float, Recorder]] = []
        self._active: dict[str, Recorder] = {}
        self._started_at = 0.0
        self._t0 = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._stopping: asyncio.Task[HearingResult] | None = None

    def _now(self) -> float:
        return round(time.monotonic() - self._t0, 3)

    async def start(self) -> None:
        self._started_at = time.time()
        self._t0 = time.monotonic()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.max_seconds, lambda: self._stop_soon())

    def _stop_soon(self) -> None:
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())

    async def add_participant(
        self, participant_id: str, room_id: str, producers: Iterable[Track]
    ) -> Recorder:
        """Start recording ``participant_id``'s producers (one audio, one video)."""
        previous = self._active.pop(participant_id, None)
        if previous is not None:
            await previous.stop()
        blob_id = f"{self.hearing_id}-{len(self._recordings) + 1}"
        recorder = Recorder(
            self._vault, self._case_id, self._case_key, blob_id, self._recording_max
        )
        await recorder.start()
        for producer in producers:
            recorder.attach(producer)
        self._recordings.append((participant_id, self._now(), recorder))
        self._active[participant_id] = recorder
        self._event("joined", participant_id, room_id, blob_id=blob_id)
        return recorder

    def moved(self, participant_id: str, room_id: str) -> None:
        self._event("moved", participant_id, room_id)

    def left(self, participant_id: str) -> None:
        self._active.pop(participant_id, None)
        self._event("left", participant_id, None)

    def _event(self, kind: str, participant_id: str, room_id: str | None, **extra: Any) -> None:
        self._events.append(
            {"t": self._now(), "event": kind, "participant_id": participant_id, "room_id": room_id}
            | extra
        )

    async def stop(self) -> HearingResult:
        self._stop_soon()
        assert self._stopping is not None
        return await asyncio.shield(self._stopping)

    async def _stop(self) -> HearingResult:
        if self._timer is not None:
            self._timer.cancel()
        results = [await recorder.stop() for _, _, recorder in self._recordings]
        ended = self._now()
        timeline = {
            "hearing_id": self.hearing_id,
            "started_at": self._started_at,
            "duration_s": ended,
            "events": self._events,
            "recordings": [
                {"participant_id": pid, "starts_at_s": at} | result.to_dict()
                for (pid, at, _), result in zip(self._recordings, results, strict=True)
            ],
        }
        status = COMPLETED
        try:
            await self._vault.write_bytes(
                self._case_id,
                self._case_key,
                self.timeline_blob_id,
                json.dumps(timeline, indent=1).encode(),
            )
        except Exception:
            status = FAILED
        if any(r.status != COMPLETED for r in results):
            status = FAILED
        return HearingResult(self.hearing_id, self.timeline_blob_id, status, results)
