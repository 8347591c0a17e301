"""Payloads of ``/media``: joining a live room, publishing, leaving."""

from __future__ import annotations

from pydantic import Field

from signaling.realtime.events import CasePayload

MEDIA_NAMESPACE = "/media"
MAX_SDP_CHARS = 200_000


class MediaPayload(CasePayload):
    pass


class PublishPayload(CasePayload):
    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS)
    #: The mid of the m-line carrying a shared screen, while the client shares one.
    screen_mid: str | None = Field(default=None, min_length=1, max_length=16)
