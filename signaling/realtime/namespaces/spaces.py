"""socket.io ``/spaces``: live messages of the spaces a user belongs to.

A browser subscribes to a space (``space.subscribe``) and from then on receives what
happens in it: ``message.new``, ``message.edited``, ``message.deleted``, ``file.new``,
``space.updated``. Every event it sends is checked against the space membership at that
moment. When a member is removed (or the case is closed) their sockets leave the space's
room before the removal request returns, and get ``space.removed``: nothing of the space
reaches them afterwards.

The namespace listens to ``Spaces`` (rooms.spaces.facade) for changes, so messages posted over
HTTP and over socket.io reach subscribers the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from rooms.cases.roles import CASE_ROLES, NEUTRAL_ROLES
from rooms.errors import NotFound
from rooms.spaces.events import SpaceEvent
from signaling.realtime.events import Caller, EventNamespace, event
from signaling.realtime.schemas.spaces import (
    SPACES_NAMESPACE,
    DeletePayload,
    EditPayload,
    SendPayload,
    SpacePayload,
)
from signaling.services import Services

log = logging.getLogger(__name__)

FORWARDED = (
    "message.new",
    "message.edited",
    "message.deleted",
    "file.new",
    "space.updated",
    "agreement.changed",
)


class SpaceChannel(Protocol):
    """What carries space changes to every node's sockets
    (``signaling.cluster.node_bus.NodeBus``)."""

    on_space_change: Callable[[SpaceEvent], Awaitable[None]]

    @property
    def distributed(self) -> bool: ...

    async def space_changed(self, change: SpaceEvent) -> None: ...


def space_room(space_id: str) -> str:
    return f"space:{space_id}"


class SpacesNamespace(EventNamespace):
    """Owns the live subscriptions to spaces: which socket listens to which space."""

    def __init__(self, services: Services, bus: SpaceChannel) -> None:
        super().__init__(SPACES_NAMESPACE, services)
        self.subscribers: dict[str, dict[str, str]] = {}  # space_id -> sid -> user_id
        self.space_cases: dict[str, str] = {}  # space_id -> case_id, of subscribed spaces
        #: Carries changes to every node's sockets (signaling.cluster.node_bus).
        self.bus = bus
        bus.on_space_change = self.space_changed
        services.spaces.listen(bus.space_changed)

    def present(self) -> set[tuple[str, str]]:
        return {
            (self.space_cases[space_id], user)
            for space_id, sids in self.subscribers.items()
            if space_id in self.space_cases
            for user in sids.values()
        }

    @event("space.subscribe", SpacePayload, "space", CASE_ROLES)
    async def subscribe(self, caller: Caller, payload: SpacePayload) -> dict[str, Any]:
        await self.enter_room(caller.sid, space_room(payload.space_id))
        self.subscribers.setdefault(payload.space_id, {})[caller.sid] = caller.user_id
        self.space_cases[payload.space_id] = payload.case_id
        await self.services.cases.seen([(payload.case_id, caller.user_id)])
        # A removal that ran between the check and the join must still win.
        if not await self.services.spaces.is_member(payload.space_id, caller.user_id):
            await self._unsubscribe(caller.sid, payload.space_id)
            raise NotFound("No such space.")
        space = await self.services.spaces.get(payload.case_id, payload.space_id)
        return {"space_id": space.id, "last_seq": space.last_seq}

    @event("space.unsubscribe", SpacePayload, "space", CASE_ROLES)
    async def unsubscribe(self, caller: Caller, payload: SpacePayload) -> dict[str, Any]:
        await self._unsubscribe(caller.sid, payload.space_id)
        return {"space_id": payload.space_id}

    @event("message.send", SendPayload, "space", CASE_ROLES)
    async def send(self, caller: Caller, payload: SendPayload) -> dict[str, Any]:
        message = await self.services.spaces.post(
            payload.case_id, payload.space_id, caller.user_id, payload.body
        )
        return {"message": message.public()}

    @event("message.edit", EditPayload, "space", CASE_ROLES)
    async def edit(self, caller: Caller, payload: EditPayload) -> dict[str, Any]:
        message = await self.services.spaces.edit(
            payload.case_id, payload.space_id, payload.message_id, caller.user_id, payload.body
        )
        return {"message": message.public()}

    @event("message.delete", DeletePayload, "space", NEUTRAL_ROLES)
    async def delete(self, caller: Caller, payload: DeletePayload) -> dict[str, Any]:
        assert caller.member is not None
        message = await self.services.spaces.delete(
            payload.case_id, payload.space_id, payload.message_id, caller.member
        )
        return {"message": message.public()}

    async def _unsubscribe(self, sid: str, space_id: str) -> None:
        await self.leave_room(sid, space_room(space_id))
        listeners = self.subscribers.get(space_id)
        if listeners is not None:
            user_id = listeners.pop(sid, None)
            case_id = self.space_cases.get(space_id)
            if user_id is not None and case_id is not None:
                await self.services.cases.seen([(case_id, user_id)])  # online until now
            if not listeners:
                del self.subscribers[space_id]
                self.space_cases.pop(space_id, None)

    async def left(self, sid: str) -> None:
        for space_id in [s for s, sids in self.subscribers.items() if sid in sids]:
            await self._unsubscribe(sid, space_id)

    async def space_changed(self, change: SpaceEvent) -> None:
        """Forward a committed change to this node's subscribers of the space; cut this
        node's sockets of a removed member off."""
        if change.kind in FORWARDED and change.space_id is not None:
            await self.emit(
                change.kind,
                change.data,
                room=space_room(change.space_id),
                ignore_queue=self.bus.distributed,  # every node emits to its own sockets
            )
        elif change.kind == "member.removed" and change.space_id is not None:
            listeners = self.subscribers.get(change.space_id, {})
            for sid in [s for s, user in listeners.items() if user == change.user_id]:
                await self._unsubscribe(sid, change.space_id)
                await self.emit(
                    "space.removed",
                    {"case_id": change.case_id, "space_id": change.space_id, "reason": "removed"},
                    to=sid,
                    ignore_queue=self.bus.distributed,  # a socket of this node
                )
        elif change.kind == "space.closed":
            for space_id in change.space_ids:
                for sid in list(self.subscribers.get(space_id, {})):
                    await self._unsubscribe(sid, space_id)
                    await self.emit(
                        "space.removed",
                        {"case_id": change.case_id, "space_id": space_id, "reason": "case_closed"},
                        to=sid,
                        ignore_queue=self.bus.distributed,
                    )
