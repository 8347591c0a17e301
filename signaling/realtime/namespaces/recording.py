"""socket.io ``/recording``: video messages in spaces and recordings of live rooms.

**Video messages.** A member of a space publishes camera and microphone on a publish
transport of its own (participant id ``rec-…``): it is in no live room and nobody
receives it; a :class:`recorder.Recorder` is attached to its producers as a sink. The
recording ends when the member stops it (``video.stop``), at the server's maximum length
(``video_message_max_seconds``), when the publisher goes away, or when the socket
disconnects. A finished recording becomes a space file (kind ``video_message``, WebM)
and a message of kind ``video`` pointing at it, announced to the space like any other
message; a failed one becomes a message of kind ``video_failed`` saying so. The socket
that recorded gets ``video.ended`` either way. A recording started with ``review`` is held
instead, once finished: its author plays it back (the page's own copy) and sends it
(``video.decide``, posted as above) or discards it (its blob deleted); one left undecided
is deleted when its socket disconnects, the case closes or the server stops.

**Hearing recordings.** The case's neutral or a co-neutral records a live room
(``hearing.start``): everybody in it is told (``recording.state`` on ``/media``, before
any of their media is recorded; newcomers when they enter), and each participant's camera
and microphone are recorded by a :class:`recorder.HearingRecorder` (one file per
participant per stretch of publishing, plus a JSON timeline). ``hearing.stop`` stores
the files and the timeline in the space the neutral chose when starting.

The SFU tells this namespace about room moves and new producers through
:class:`sfu.WorkerObserver`; it never changes what the live rooms forward.

The namespace runs where media is hosted; a signaling node only declares its events
(``signaling.realtime.namespaces.forwarding``), so the recorder (and PyAV with it) is
loaded by the methods that record, never at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rooms.cases.roles import CASE_ROLES, NEUTRAL_ROLES
from rooms.errors import CaucusError, Conflict, InvalidInput, NotFound
from rooms.spaces.events import SpaceEvent
from rooms.storage.schema import new_id
from signaling.realtime.events import Caller, CasePayload, EventNamespace, event
from signaling.realtime.ice_servers import browser_ice_servers
from signaling.realtime.namespaces.live import LiveParticipant, router_id
from signaling.realtime.namespaces.media import MediaNamespace
from signaling.realtime.schemas.recording import (
    RECORDING_NAMESPACE,
    HearingStartPayload,
    HearingStopPayload,
    VideoDecidePayload,
    VideoStartPayload,
    VideoStopPayload,
)
from signaling.services import Services

if TYPE_CHECKING:
    from recorder import HearingRecorder, Recorder
    from recorder import RecordingResult as Result
    from sfu import Router, Transport, Worker
    from sfu.simulcast import Track

log = logging.getLogger(__name__)

#: A video message whose media stops arriving ends this long after its maximum length.
STALL_GRACE_SECONDS = 5.0
VIDEO_MESSAGE = "video_message"
HEARING_RECORDING = "hearing_recording"
HEARING_TIMELINE = "hearing_timeline"


def _clock_text(seconds: float) -> str:
    whole = max(0, round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def _stamp(at: float) -> str:
    return time.strftime("%Y-%m-%d %H.%M UTC", time.gmtime(at))


def _content_type(producers: list[Track]) -> str:
    if any(p.kind == "video" and p.codec.mimeType.lower() == "video/h264" for p in producers):
        return "video/x-matroska"
    return "video/webm"


@dataclass
class VideoMessage:
    """One video message being recorded: its transport, recorder and outcome."""

    id: str  # the file (and vault blob) id
    sid: str
    case_id: str
    space_id: str
    user_id: str
    transport: Transport
    recorder: Recorder
    max_seconds: float
    content_type: str = "video/webm"
    discard: bool = False
    review: bool = False
    guard: asyncio.TimerHandle | None = None
    done: asyncio.Future[dict[str, Any]] | None = None


@dataclass
class HeldVideo:
    """A finished video message waiting for its author to send or discard it."""

    video: VideoMessage
    result: Result


@dataclass
class Hearing:
    """The recording of one live room."""

    hearing_id: str
    case_id: str
    room_id: str
    space_id: str
    started_by: str
    started_at: float
    recorder: HearingRecorder
    names: dict[str, str] = field(default_factory=dict)  # blob id -> display name
    active: dict[str, Recorder] = field(default_factory=dict)  # participant id -> recorder
    recorded: dict[str, set[str]] = field(default_factory=dict)  # participant -> producer ids
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    stopping: bool = False

    @property
    def key(self) -> str:
        return router_id(self.case_id, self.room_id)

    def state(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "room_id": self.room_id,
            "recording": True,
            "hearing_id": self.hearing_id,
            "started_at": self.started_at,
        }


class RecordingNamespace(EventNamespace):
    """Owns video messages being recorded and the live rooms being recorded."""

    def __init__(self, services: Services, worker: Worker, media: MediaNamespace) -> None:
        super().__init__(RECORDING_NAMESPACE, services)
        self.worker = worker
        self.media = media
        self.videos: dict[str, VideoMessage] = {}  # sid -> the video message it records
        # (case id, space id, author) -> the finished video message held for review
        self.held: dict[tuple[str, str, str], HeldVideo] = {}
        self.hearings: dict[str, Hearing] = {}  # router id -> hearing
        self.watchers: dict[str, set[str]] = {}  # case id -> sids watching recording.state
        self._where: dict[str, str] = {}  # participant id -> recorded router id it is in
        self._tasks: set[asyncio.Task[Any]] = set()
        worker.observers.append(self)
        services.spaces.listen(self._space_changed)

    # --- video messages -----------------------------------------------------------------

    @event("video.start", VideoStartPayload, "space", CASE_ROLES)
    async def video_start(self, caller: Caller, payload: VideoStartPayload) -> dict[str, Any]:
        if caller.sid in self.videos:
            raise Conflict(
                "This connection is already recording a video message; stop it first.",
                code="already_recording",
            )
        spaces = self.services.spaces
        space = await spaces.get(payload.case_id, payload.space_id)
        if space.archived_at is not None:
            raise Conflict("This space is archived: it can be read, not written.")
        from recorder import Recorder, RecorderError  # PyAV: where media is hosted

        key = await self.services.case_keys.key_for(payload.case_id)
        max_seconds = float(self.services.settings.video_message_max_seconds)
        file_id = new_id()
        recorder = Recorder(self.services.vault, payload.case_id, key, file_id, max_seconds)
        await recorder.start()
        transport = await self.worker.create_transport(f"rec-{uuid.uuid4().hex[:12]}", "publish")
        try:
            answer = await transport.accept_offer(payload.sdp)
            producers = [p for p in transport.producers.values() if not p.closed]
            if not producers:
                raise InvalidInput("The offer sends no audio or video.", code="invalid_sdp")
            for producer in producers:
                recorder.attach(producer)
        except BaseException as exc:
            await transport.close()
            await recorder.stop()  # no media: fails and leaves nothing behind
            if isinstance(exc, RecorderError):
                raise InvalidInput(
                    f"This recording cannot be made: {exc}.", code="invalid_sdp"
                ) from exc
            raise
        video = VideoMessage(
            file_id,
            caller.sid,
            payload.case_id,
            payload.space_id,
            caller.user_id,
            transport,
            recorder,
            max_seconds,
            content_type=_content_type(producers),
            review=payload.review,
        )
        video.done = asyncio.get_running_loop().create_future()
        self.videos[caller.sid] = video
        recorder.on_finished = lambda result: self._spawn(self._video_finished(video, result))
        video.guard = asyncio.get_running_loop().call_later(
            max_seconds + STALL_GRACE_SECONDS,
            lambda: self._spawn(recorder.stop("max-length")),
        )
        log.info("video message recording", extra={"space": payload.space_id, "file": file_id})
        return {"recording_id": file_id, "sdp": answer, "max_seconds": max_seconds}

    @event("video.stop", VideoStopPayload, "space", CASE_ROLES)
    async def video_stop(self, caller: Caller, payload: VideoStopPayload) -> dict[str, Any]:
        video = self.videos.get(caller.sid)
        if (
            video is None
            or video.space_id != payload.space_id
            or payload.recording_id not in (None, video.id)
        ):
            raise NotFound("No such recording on this connection.", code="not_recording")
        await video.recorder.stop()
        assert video.done is not None
        return await asyncio.shield(video.done)

    async def _video_finished(self, video: VideoMessage, result: Result) -> None:
        """Store a finished video message (or say that it failed) and tell the recorder."""
        from recorder import COMPLETED

        if video.guard is not None:
            video.guard.cancel()
        self.videos.pop(video.sid, None)
        outcome: dict[str, Any] = {
            "recording_id": video.id,
            "status": result.status,
            "reason": result.reason,
            "duration_s": result.duration_s,
            "message": None,
            "file": None,
            "error": result.error,
        }
        try:
            await video.transport.close()
            reviewable = video.review and result.reason != "publisher-left"
            if video.discard or (video.review and not reviewable):
                if result.status == COMPLETED:
                    await self.services.vault.delete_blob(video.case_id, video.id)
            elif result.status == COMPLETED and reviewable:
                await self._hold(HeldVideo(video, result))
                outcome["held"] = True
            elif result.status == COMPLETED:
                outcome.update(await self._store_video(video, result))
            else:
                outcome["message"] = await self._post_failure(video, result.error)
        except Exception as exc:
            log.exception("storing video message %s failed", video.id)
            outcome["status"] = "failed"
            outcome["error"] = str(exc) or type(exc).__name__
        finally:
            assert video.done is not None
            if not video.done.done():
                video.done.set_result(outcome)
        with contextlib.suppress(Exception):
            await self.emit("video.ended", outcome, to=video.sid)

    async def _hold(self, held: HeldVideo) -> None:
        video = held.video
        replaced = self.held.pop((video.case_id, video.space_id, video.user_id), None)
        if replaced is not None:  # recorded again without deciding: the new one counts
            await self._drop(replaced)
        self.held[(video.case_id, video.space_id, video.user_id)] = held

    async def _drop(self, held: HeldVideo) -> None:
        with contextlib.suppress(OSError):
            await self.services.vault.delete_blob(held.video.case_id, held.video.id)

    @event("video.decide", VideoDecidePayload, "space", CASE_ROLES)
    async def video_decide(self, caller: Caller, payload: VideoDecidePayload) -> dict[str, Any]:
        """Send or discard the caller's video message held for review in this space."""
        key = (payload.case_id, payload.space_id, caller.user_id)
        held = self.held.get(key)
        if held is None or payload.recording_id not in (None, held.video.id):
            raise NotFound("No recorded video message waits for your decision.", code="not_held")
        del self.held[key]
        outcome: dict[str, Any] = {
            "recording_id": held.video.id,
            "status": "discarded",
            "reason": held.result.reason,
            "duration_s": held.result.duration_s,
            "message": None,
            "file": None,
            "error": None,
        }
        if not payload.send:
            await self._drop(held)
            return outcome
        outcome.update(await self._store_video(held.video, held.result))
        outcome["status"] = "completed"
        return outcome

    async def _store_video(self, video: VideoMessage, result: Result) -> dict[str, Any]:
        spaces = self.services.spaces
        name = f"Video message {_stamp(time.time())}.webm"
        body = f"Video message ({_clock_text(result.duration_s)})"
        try:
            record, message = await spaces.add_recording(
                video.case_id,
                video.space_id,
                video.user_id,
                video.id,
                name,
                video.content_type,
                result.size,
                kind=VIDEO_MESSAGE,
                duration_s=result.duration_s,
                message_body=body,
            )
        except BaseException:
            await self.services.vault.delete_blob(video.case_id, video.id)
            raise
        return {
            "file": record.public(),
            "message": message.public() if message is not None else None,
        }

    async def _post_failure(self, video: VideoMessage, error: str | None) -> dict[str, Any] | None:
        reason = error or "unknown error"
        body = f"A video message could not be recorded ({reason})."
        try:
            message = await self.services.spaces.post(
                video.case_id, video.space_id, video.user_id, body, kind="video_failed"
            )
        except CaucusError:
            return None  # no longer a member, or the space is archived: nobody to tell
        return message.public()

    # --- hearings -----------------------------------------------------------------------

    @event("hearing.start", HearingStartPayload, "space", NEUTRAL_ROLES)
    async def hearing_start(self, caller: Caller, payload: HearingStartPayload) -> dict[str, Any]:
        hearing = await self.start_hearing(
            payload.case_id, payload.room_id, payload.space_id, caller.user_id
        )
        return hearing.state()

    async def start_hearing(
        self, case_id: str, room_id: str, space_id: str, started_by: str
    ) -> Hearing:
        """Record the live room ``room_id`` of the case into ``space_id`` (the caller
        checked that ``started_by`` may)."""
        state = await self.media.rooms_state.load(case_id)
        if room_id not in state.rooms:
            raise NotFound("No such room.", code="room_not_found")
        space = await self.services.spaces.get(case_id, space_id)
        if space.archived_at is not None:
            raise Conflict("This space is archived: recordings cannot be stored in it.")
        key = router_id(case_id, room_id)
        if key in self.hearings:
            raise Conflict("This room is already being recorded.", code="already_recording")
        from recorder import HearingRecorder  # PyAV: where media is hosted

        case_key = await self.services.case_keys.key_for(case_id)
        hearing_id = uuid.uuid4().hex[:16]  # blob ids "<hearing>-<n>" fit file ids
        recorder = HearingRecorder(self.services.vault, case_id, case_key, hearing_id)
        await recorder.start()
        hearing = Hearing(hearing_id, case_id, room_id, space_id, started_by, time.time(), recorder)
        self.hearings[key] = hearing
        async with hearing.lock:
            for session in self._sessions_in(key):
                await self._enter(hearing, session)
        await self._tell_watchers(case_id, hearing.state())
        log.info("hearing recording started", extra={"room": key, "hearing": hearing_id})
        return hearing

    @event("hearing.stop", HearingStopPayload, "case", NEUTRAL_ROLES)
    async def hearing_stop(self, caller: Caller, payload: HearingStopPayload) -> dict[str, Any]:
        hearing = self.hearings.get(router_id(payload.case_id, payload.room_id))
        if hearing is None or hearing.stopping:
            raise NotFound("This room is not being recorded.", code="not_recording")
        return await self._stop_hearing(hearing)

    @event("recording.watch", CasePayload, "case", CASE_ROLES)
    async def watch(self, caller: Caller, payload: CasePayload) -> dict[str, Any]:
        """The live rooms of the case being recorded now (``recording.state`` pushes
        follow on this socket), the ICE servers for recording a video message, and for
        neutrals the case's live rooms (to choose one to record)."""
        self.watchers.setdefault(payload.case_id, set()).add(caller.sid)
        answer = {
            "case_id": payload.case_id,
            "recordings": self._states(payload.case_id),
            "ice_servers": browser_ice_servers(
                self.worker.settings, self.media.turn, caller.user_id
            ),
        }
        if caller.member is not None and caller.member.role in NEUTRAL_ROLES:
            state = await self.media.rooms_state.load(payload.case_id)
            answer["rooms"] = [{"id": r.id, "name": r.name} for r in state.rooms.values()]
        return answer

    def _states(self, case_id: str) -> list[dict[str, Any]]:
        return [h.state() for h in self.hearings.values() if h.case_id == case_id]

    async def _stop_hearing(self, hearing: Hearing, *, store: bool = True) -> dict[str, Any]:
        hearing.stopping = True
        async with hearing.lock:
            self.hearings.pop(hearing.key, None)
            for pid in [p for p, k in self._where.items() if k == hearing.key]:
                del self._where[pid]
            result = await hearing.recorder.stop()
        ended = {
            "case_id": hearing.case_id,
            "room_id": hearing.room_id,
            "recording": False,
            "hearing_id": hearing.hearing_id,
        }
        for session in self._sessions_in(hearing.key):
            await self._tell(session, ended)
        await self._tell_watchers(hearing.case_id, ended)
        files: list[dict[str, Any]] = []
        if store:
            files = await self._store_hearing(hearing, result.recordings)
        else:
            await self.services.vault.delete_blob(hearing.case_id, result.timeline_blob_id)
            for recording in result.recordings:
                await self.services.vault.delete_blob(hearing.case_id, recording.blob_id)
        log.info(
            "hearing recording stopped", extra={"room": hearing.key, "hearing": hearing.hearing_id}
        )
        return {
            **ended,
            "status": result.status,
            "space_id": hearing.space_id,
            "files": files,
            "recordings": [r.to_dict() for r in result.recordings],
        }

    async def _store_hearing(self, hearing: Hearing, recordings: list[Result]) -> list[dict]:
        """The recordings and the timeline as files of the hearing's space."""
        from recorder import COMPLETED

        spaces, vault = self.services.spaces, self.services.vault
        stamp = _stamp(hearing.started_at)
        files = []
        blobs = [(r.blob_id, r) for r in recordings if r.status == COMPLETED]
        for number, (blob_id, recording) in enumerate(blobs, start=1):
            owner = hearing.names.get(blob_id, "participant")
            name = f"Hearing {stamp} - {owner} ({number}).webm"
            try:
                record, _ = await spaces.add_recording(
                    hearing.case_id,
                    hearing.space_id,
                    hearing.started_by,
                    blob_id,
                    name,
                    "video/webm",
                    recording.size,
                    kind=HEARING_RECORDING,
                    duration_s=recording.duration_s,
                )
                files.append(record.public())
            except Exception:
                log.exception("storing hearing recording %s failed", blob_id)
                await vault.delete_blob(hearing.case_id, blob_id)
        timeline_id = hearing.recorder.timeline_blob_id
        try:
            case_key = await self.services.case_keys.key_for(hearing.case_id)
            size = len(await vault.read_bytes(hearing.case_id, case_key, timeline_id))
            record, _ = await spaces.add_recording(
                hearing.case_id,
                hearing.space_id,
                hearing.started_by,
                timeline_id,
                f"Hearing {stamp} - timeline.json",
                "application/json",
                size,
                kind=HEARING_TIMELINE,
                duration_s=None,
            )
            files.append(record.public())
        except Exception:
            log.exception("storing hearing timeline %s failed", timeline_id)
            await vault.delete_blob(hearing.case_id, timeline_id)
        return files

    # --- following the live rooms -------------------------------------------------------

    def membership_changed(self, participant_id: str, router: Router | None) -> None:
        if participant_id in self._where or (
            self.hearings and participant_id in self.media.by_participant
        ):
            self._spawn(self._follow(participant_id))

    def producer_added(self, producer: Track) -> None:
        pid = producer.participant_id
        router = self.worker.router_of(pid)
        if router is not None and router.room_id in self.hearings:
            self._spawn(self._follow(pid))

    async def _follow(self, participant_id: str) -> None:
        """Bring ``participant_id``'s recording in line with the room it is in now."""
        router = self.worker.router_of(participant_id)
        now = router.room_id if router is not None else None
        before = self._where.get(participant_id)
        session = self.media.by_participant.get(participant_id)
        if before is not None and before != now:
            hearing = self.hearings.get(before)
            self._where.pop(participant_id, None)
            if hearing is not None:
                async with hearing.lock:
                    recorder = hearing.active.pop(participant_id, None)
                    if recorder is not None:
                        await recorder.stop()
                    hearing.recorder.left(participant_id)
                if session is not None and (now is None or now not in self.hearings):
                    await self._tell(session, {**hearing.state(), "recording": False})
        hearing = self.hearings.get(now) if now is not None else None
        if hearing is not None and session is not None and not hearing.stopping:
            async with hearing.lock:
                if now is not None and self.hearings.get(now) is hearing:
                    await self._enter(hearing, session)

    async def _enter(self, hearing: Hearing, session: LiveParticipant) -> None:
        """Tell ``session`` that its room is recorded, then record its camera and
        microphone (called with the hearing's lock held)."""
        from recorder import RECORDING

        pid = session.participant_id
        if self._where.get(pid) != hearing.key:
            await self._tell(session, hearing.state())  # before anything is recorded
            self._where[pid] = hearing.key
        producers = self._camera(session)
        if not producers:
            return
        current = hearing.active.get(pid)
        wanted = {p.id for p in producers}
        if current is not None and current.status == RECORDING:
            if hearing.recorded.get(pid) == wanted:
                return
        recorder = await hearing.recorder.add_participant(pid, hearing.room_id, producers)
        hearing.active[pid] = recorder
        hearing.recorded[pid] = wanted
        hearing.names[recorder.blob_id] = session.display_name

    @staticmethod
    def _camera(session: LiveParticipant) -> list[Track]:
        """The session's camera and microphone producers (one of each kind at most; a
        shared screen is not recorded)."""
        transport = session.publish
        if transport is None or transport.closed:
            return []
        chosen: dict[str, Track] = {}
        for producer in transport.producers.values():
            if producer.closed or producer.mid in session.screen_mids:
                continue
            chosen.setdefault(producer.kind, producer)
        return list(chosen.values())

    def _sessions_in(self, key: str) -> list[LiveParticipant]:
        return [s for s in self.media.live.values() if s.room_id == key and not s.ending]

    async def _tell(self, session: LiveParticipant, state: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            await self.media.emit("recording.state", state, to=session.sid)

    async def _tell_watchers(self, case_id: str, state: dict[str, Any]) -> None:
        for sid in list(self.watchers.get(case_id, ())):
            with contextlib.suppress(Exception):
                await self.emit("recording.state", state, to=sid)

    # --- endings ------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def left(self, sid: str) -> None:
        for sids in self.watchers.values():
            sids.discard(sid)
        video = self.videos.get(sid)
        if video is not None:  # the recording so far is kept, as if stopped
            await video.recorder.stop("publisher-left")
        for key, held in list(self.held.items()):  # undecided: nobody is left to decide
            if held.video.sid == sid:
                del self.held[key]
                await self._drop(held)

    async def _space_changed(self, change: SpaceEvent) -> None:
        """A closed case takes its recordings in progress with it, unsaved."""
        if change.kind == "space.closed":
            await self.case_closed(change.case_id)

    async def case_closed(self, case_id: str) -> None:
        """Discard the case's recordings in progress (its data is being deleted)."""
        for video in [v for v in self.videos.values() if v.case_id == case_id]:
            video.discard = True
            await video.recorder.stop()
        for key in [k for k in self.held if k[0] == case_id]:
            del self.held[key]  # its blobs go with the case's directory
        for hearing in [h for h in self.hearings.values() if h.case_id == case_id]:
            await self._stop_hearing(hearing, store=False)

    async def close(self) -> None:
        """Finish every recording (the server is stopping): video messages are stored
        (those held for review are deleted: never sent), hearings are stored in their
        spaces."""
        for video in list(self.videos.values()):
            await video.recorder.stop("stopped")
        for hearing in list(self.hearings.values()):
            with contextlib.suppress(Exception):
                await self._stop_hearing(hearing)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for held in list(self.held.values()):
            await self._drop(held)
        self.held.clear()
        with contextlib.suppress(ValueError):
            self.worker.observers.remove(self)
