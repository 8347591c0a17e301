"""What each live room is told of its call as it goes, beside who is there: who the active
speaker is and how well everyone's connection carries the call.

* ``media.speaker`` ``{"participant_id", "seq"}``: the SFU decided a new active speaker of
  the room (``sfu.speaker``, from the audio levels publishers send; nothing decoded).  The
  views (``media.tracks``, ``media.offer``) carry the room's speaker too (``speaker``,
  ``speaker_seq``), so a person joining or moved into a room learns who speaks there.
  ``seq`` counts the changes on this worker: a client keeps the speaker with the highest.
* ``media.quality`` ``{"participants": {participant_id: {"level", "loss_pct", "rtt_ms"}},
  "paused": [producer_id…]}``: sampled every ``interval`` seconds (``sfu.quality``: RTCP
  and the SFU's reception counters), sent to a person only when what they would be told
  changed.  ``paused`` lists the videos withheld from that person because their link
  cannot carry the lowest layer.  A participant nothing is measured of yet is left out.

People in the waiting area are told neither: they are in no room.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any, Protocol

from rooms.cases.live import WAITING
from sfu.quality import QualityMeter

if TYPE_CHECKING:
    from sfu import Worker
    from signaling.realtime.namespaces.live import LiveParticipant

log = logging.getLogger(__name__)

#: Seconds between two samples of everyone's connection quality.
QUALITY_INTERVAL = 2.0


class IndicatorHost(Protocol):
    """What the indicators need of the namespace that holds them."""

    def in_rooms(self) -> dict[str, list[LiveParticipant]]:
        """The participants of this process by room (router id), the waiting area and
        those leaving left out."""
        ...

    async def tell(self, sid: str, name: str, data: dict[str, Any]) -> None:
        """Send event ``name`` to socket ``sid``."""
        ...


class CallIndicators:
    """Owns the pushes of ``media.speaker`` and ``media.quality`` (see the module): the
    worker's active-speaker hook, the sampling task and what each socket was last told."""

    def __init__(
        self, host: IndicatorHost, worker: Worker, interval: float = QUALITY_INTERVAL
    ) -> None:
        self.host = host
        self.worker = worker
        self.interval = interval
        self.meter = QualityMeter(worker)
        worker.on_active_speaker = self._speaker_changed
        #: Changes of any room's active speaker on this worker so far.
        self.speaker_seq = 0
        self._told: dict[str, str] = {}  # sid -> the last media.quality sent, as JSON
        self._task: asyncio.Task[None] | None = None
        self._pushes: set[asyncio.Task[None]] = set()

    # --- the active speaker -------------------------------------------------------------

    def speaker_of(self, room: str) -> dict[str, Any]:
        """What a view of ``room`` (a router id) says of its active speaker."""
        speaker = None if _waiting(room) else self.worker.active_speaker(room)
        return {"speaker": speaker, "speaker_seq": self.speaker_seq}

    def _speaker_changed(self, room: str, participant_id: str) -> None:
        # called by the worker's speaker task, synchronously: the sends run in a task
        self.speaker_seq += 1
        push = asyncio.ensure_future(self._tell_speaker(room, participant_id, self.speaker_seq))
        self._pushes.add(push)
        push.add_done_callback(self._pushes.discard)

    async def _tell_speaker(self, room: str, participant_id: str, seq: int) -> None:
        payload = {"participant_id": participant_id, "seq": seq}
        for session in self.host.in_rooms().get(room, []):
            try:
                await self.host.tell(session.sid, "media.speaker", payload)
            except Exception:
                log.exception("could not tell the active speaker", extra={"room": room})
        log.debug("active speaker", extra={"room": room, "participant": participant_id})

    # --- connection quality -------------------------------------------------------------

    def start(self) -> None:
        """Sample and push the quality every ``interval`` seconds (from the first join
        on; the loop runs until :meth:`close`)."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.push_quality()
            except Exception:
                log.exception("connection quality push failed")

    async def push_quality(self) -> None:
        """Sample everyone in a room once and tell each of them what changed for them."""
        rooms = self.host.in_rooms()
        present = {s.sid for sessions in rooms.values() for s in sessions}
        for sid in [sid for sid in self._told if sid not in present]:
            del self._told[sid]
        for room, sessions in rooms.items():
            measured = self.meter.sample(s.participant_id for s in sessions)
            people = {
                pid: {
                    "level": quality["level"],
                    "loss_pct": _percent(quality["loss"]),
                    "rtt_ms": _tens(quality["rtt_ms"]),
                }
                for pid, quality in measured.items()
                if quality["level"] is not None
            }
            for session in sessions:
                payload = {
                    "participants": people,
                    "paused": measured[session.participant_id]["paused_producers"],
                }
                told = json.dumps(payload, sort_keys=True)
                if self._told.get(session.sid) == told:
                    continue
                self._told[session.sid] = told
                try:
                    await self.host.tell(session.sid, "media.quality", payload)
                except Exception:
                    self._told.pop(session.sid, None)
                    log.exception("could not tell the connection quality", extra={"room": room})

    def forget(self, sid: str) -> None:
        """Socket ``sid`` left its live session: the next one is told everything anew."""
        self._told.pop(sid, None)

    async def close(self) -> None:
        """Stop sampling and drop the pushes under way."""
        if self.worker.on_active_speaker == self._speaker_changed:
            self.worker.on_active_speaker = None
        tasks = [t for t in (self._task, *self._pushes) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _waiting(room: str) -> bool:
    return not room or room.endswith(":" + WAITING)


def _percent(share: float | None) -> int | None:
    return None if share is None else round(share * 100)


def _tens(ms: float | None) -> int | None:
    """A round trip to the nearest 10 ms (finer changes are not worth a message)."""
    return None if ms is None else int(round(ms, -1))
