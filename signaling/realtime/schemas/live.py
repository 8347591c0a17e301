"""Payloads of the live-room events of ``/media``: the mediator's controls, timers,
questions, whiteboards."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from rooms.cases.live import MAIN
from signaling.realtime.events import CasePayload

ROOM_ID = Field(min_length=1, max_length=32)
USER_ID = Field(min_length=1, max_length=64)
#: Points a stroke payload may carry at all (the ``whiteboard_max_stroke_points`` setting
#: is the limit in force; this bounds the work of validating a payload).
MAX_STROKE_POINTS = 5000


class RoomPayload(CasePayload):
    room_id: str = ROOM_ID


class CreateRoomPayload(CasePayload):
    name: str = Field(min_length=1, max_length=80)


class RenameRoomPayload(RoomPayload):
    name: str = Field(min_length=1, max_length=80)


class MovePayload(CasePayload):
    user_id: str = USER_ID
    room_id: str = ROOM_ID


class MoveManyPayload(CasePayload):
    moves: dict[str, str] = Field(min_length=1, max_length=200)

    @field_validator("moves")
    @classmethod
    def _short(cls, moves: dict[str, str]) -> dict[str, str]:
        for user_id, room_id in moves.items():
            if not 0 < len(user_id) <= 64 or not 0 < len(room_id) <= 32:
                raise ValueError("user and room ids have 1 to 64 and 1 to 32 characters")
        return moves


class SwapPayload(CasePayload):
    first: str = USER_ID
    second: str = USER_ID


class UserPayload(CasePayload):
    user_id: str = USER_ID


class AdmitPayload(UserPayload):
    room_id: str = Field(default=MAIN, min_length=1, max_length=32)


class BroadcastPayload(CasePayload):
    text: str = Field(min_length=1, max_length=1000)


class TimerPayload(RoomPayload):
    seconds: float = Field(ge=1, le=24 * 3600)


class LockPayload(RoomPayload):
    locked: bool


class SharingPayload(RoomPayload):
    allowed: bool


class AskPayload(CasePayload):
    text: str = Field(default="", max_length=500)


Point = Annotated[list[float], Field(min_length=2, max_length=2)]


class StrokePayload(CasePayload):
    """One pen stroke: points ``[x, y]`` in the board's unit square, a colour, a width in
    pixels of a 1000-pixel-wide board."""

    points: list[Point] = Field(min_length=1, max_length=MAX_STROKE_POINTS)
    color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")
    width: float = Field(ge=0.5, le=40)

    @field_validator("points")
    @classmethod
    def _inside(cls, points: list[list[float]]) -> list[list[float]]:
        for x, y in points:
            if not (0 <= x <= 1 and 0 <= y <= 1):
                raise ValueError("points lie in the unit square")
        return points


class StatusPayload(CasePayload):
    """What a participant shows of themselves: microphone muted, camera off, speaking.
    ``hand: false`` lowers the caller's raised hand; a hand goes up only through
    ``live.ask`` (which tells the neutrals), so ``true`` or no ``hand`` leave it as it is:
    a status sent while a request is on its way never takes the request back."""

    muted: bool = False
    camera_off: bool = False
    speaking: bool = False
    hand: bool | None = None
