"""Payloads of ``/recording``: video messages and hearing recordings."""

from __future__ import annotations

from pydantic import Field

from rooms.cases.live import MAIN
from signaling.realtime.events import CasePayload
from signaling.realtime.schemas.media import MAX_SDP_CHARS
from signaling.realtime.schemas.spaces import SpacePayload

RECORDING_NAMESPACE = "/recording"


class VideoStartPayload(SpacePayload):
    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS)
    #: Hold the finished recording for its author to play back, then send or discard
    #: (``video.decide``), instead of posting it at once.
    review: bool = False


class VideoStopPayload(SpacePayload):
    #: The recording this connection started; when left out, whichever it records.
    recording_id: str | None = Field(default=None, min_length=1, max_length=64)


class VideoDecidePayload(SpacePayload):
    #: The held recording; when left out, whichever the caller holds in this space.
    recording_id: str | None = Field(default=None, min_length=1, max_length=64)
    #: True: post it to the space; False: delete it.
    send: bool


class HearingStartPayload(SpacePayload):
    room_id: str = Field(default=MAIN, min_length=1, max_length=32)


class HearingStopPayload(CasePayload):
    room_id: str = Field(default=MAIN, min_length=1, max_length=32)
