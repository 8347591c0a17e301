"""Changes of spaces, announced to listeners (the socket.io namespace) after commit."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpaceEvent:
    """Something that changed in a space, announced after commit.

    kind: ``message.new`` / ``message.edited`` / ``message.deleted`` (data: the message),
    ``file.new`` (data: the file), ``space.updated`` (data: the space),
    ``member.added`` / ``member.removed`` (``user_id``), ``space.closed`` (the case was
    closed; ``space_ids`` lists every space it had), ``agreement.changed`` (data: the
    agreement's ids and what changed: ``rooms.agreements.facade``).
    """

    kind: str
    case_id: str
    space_id: str | None
    data: dict[str, Any] = field(default_factory=dict)
    user_id: str | None = None
    space_ids: tuple[str, ...] = ()


Listener = Callable[[SpaceEvent], Awaitable[None]]


class SpaceEvents:
    """Owns the listeners of space changes; a failing listener does not stop the others."""

    def __init__(self) -> None:
        self.__listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        self.__listeners.append(listener)

    async def publish(self, event: SpaceEvent) -> None:
        for listener in list(self.__listeners):
            try:
                await listener(event)
            except Exception:
                log.exception("space event listener failed", extra={"kind": event.kind})
