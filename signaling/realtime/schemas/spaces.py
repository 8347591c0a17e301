"""Payloads of ``/spaces`` (and of the events that act in a space elsewhere)."""

from __future__ import annotations

from pydantic import Field

from rooms.spaces.messages import MAX_BODY
from signaling.realtime.events import CasePayload

SPACES_NAMESPACE = "/spaces"

Id = Field(min_length=1, max_length=64)


class SpacePayload(CasePayload):
    space_id: str = Id


class SendPayload(SpacePayload):
    body: str = Field(min_length=1, max_length=MAX_BODY)


class EditPayload(SpacePayload):
    message_id: str = Id
    body: str = Field(min_length=1, max_length=MAX_BODY)


class DeletePayload(SpacePayload):
    message_id: str = Id
