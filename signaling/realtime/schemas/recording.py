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


class VideoStopPayload(SpacePayload):
    #: The recording this connection started; when left out, whichever it records.
    recording_id: str | None = Field(default=None, min_length=1, max_length=64)


class HearingStartPayload(SpacePayload):
    room_id: str = Field(default=MAIN, min_length=1, max_length=32)


class HearingStopPayload(CasePayload):
    room_id: str = Field(default=MAIN, min_length=1, max_length=32)
