"""Samples of the ``/recording`` socket.io events for the authorization walk: who may send
each, a payload that succeeds for them, and who of the case must be refused."""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from recorder import RecordingResult
from rooms.storage.schema import new_id
from signaling.http.state import RECORDING_NAMESPACE_KEY
from signaling.realtime.namespaces.recording import HeldVideo, VideoMessage
from tests.signaling.spaces_setup import sample_space
from tests.support.world import World

NS = "/recording"


async def _space(w: World) -> dict[str, str]:
    return await sample_space(w)  # the authorization walk's sample space


async def _offer() -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


async def video_start(w: World) -> dict[str, Any]:
    return {**await _space(w), "sdp": await _offer()}


async def hearing_start(w: World) -> dict[str, Any]:
    return {**await _space(w), "room_id": "main"}


async def hearing_stop(w: World) -> dict[str, Any]:
    """The main room of Case A, recorded (started here unless it already is)."""
    where = await _space(w)
    namespace = w.server.app[RECORDING_NAMESPACE_KEY]
    case_id = where["case_id"]
    if f"{case_id}:main" not in namespace.hearings:
        users = await w.server.services.accounts.list_users()
        nina = next(u.id for u in users if u.username == "nina")
        await namespace.start_hearing(case_id, "main", where["space_id"], nina)
    return {"case_id": case_id, "room_id": "main"}


async def video_decide(w: World) -> dict[str, Any]:
    """A finished video message of paula's held for review in the sample space (as if she
    recorded it with ``review``); she discards it."""
    where = await _space(w)
    namespace = w.server.app[RECORDING_NAMESPACE_KEY]
    users = await w.server.services.accounts.list_users()
    paula = next(u.id for u in users if u.username == "paula")
    blob = new_id()
    video = VideoMessage(
        blob,
        "an-earlier-socket",
        where["case_id"],
        where["space_id"],
        paula,
        None,
        None,
        60.0,
        review=True,  # type: ignore[arg-type]  # finished: no media left
    )
    held = HeldVideo(video, RecordingResult(blob, "completed", "stopped", duration_s=3.0))
    namespace.held[(where["case_id"], where["space_id"], paula)] = held
    return {**where, "recording_id": blob, "send": False}


def _case(w: World) -> dict[str, Any]:
    return {"case_id": w.cases["Case A"]}


RECORDING_EVENT_SAMPLES: dict[tuple[str, str], tuple[str, Any]] = {
    (NS, "video.start"): ("paula", video_start),
    (NS, "video.stop"): ("paula", _space),
    (NS, "video.decide"): ("paula", video_decide),
    (NS, "hearing.start"): ("nina", hearing_start),
    (NS, "hearing.stop"): ("nina", hearing_stop),
    (NS, "recording.watch"): ("paula", _case),
}
# Events sent first on the same connection, with the payload the function makes.
RECORDING_EVENT_PRELUDES: dict[tuple[str, str], tuple[tuple[str, Any], ...]] = {
    (NS, "video.stop"): (("video.start", video_start),),
}
RECORDING_WRONG_CALLERS: dict[tuple[str, str], tuple[str, ...]] = {
    (NS, "hearing.start"): ("paula",),
    (NS, "hearing.stop"): ("paula", "carl"),
}
