"""socket.io ``/case``: presence in a case, who of its members is online now, and word
that its membership changed."""

from __future__ import annotations

from typing import Any

from rooms.cases.roles import CASE_ROLES
from signaling.realtime.events import Caller, CasePayload, EventNamespace, event
from signaling.services import Services

CASE_NAMESPACE = "/case"


def case_room(case_id: str) -> str:
    return f"case:{case_id}"


class CaseNamespace(EventNamespace):
    """Presence in a case: who of its members is online now; tells the case's open pages
    when someone joined it."""

    def __init__(self, services: Services) -> None:
        super().__init__(CASE_NAMESPACE, services)
        self.online: dict[str, dict[str, str]] = {}  # case_id -> sid -> user_id

    def _online(self, case_id: str) -> list[str]:
        return sorted(set(self.online.get(case_id, {}).values()))

    def present(self) -> set[tuple[str, str]]:
        return {(case_id, user) for case_id, sids in self.online.items() for user in sids.values()}

    @event("case.join", CasePayload, "case", CASE_ROLES)
    async def join(self, caller: Caller, payload: CasePayload) -> dict[str, Any]:
        await self.enter_room(caller.sid, case_room(payload.case_id))
        self.online.setdefault(payload.case_id, {})[caller.sid] = caller.user_id
        await self.services.cases.seen([(payload.case_id, caller.user_id)])
        online = self._online(payload.case_id)
        await self.emit(
            "presence",
            {"case_id": payload.case_id, "online": online},
            room=case_room(payload.case_id),
        )
        return {"case_id": payload.case_id, "online": online}

    @event("case.leave", CasePayload, "case", CASE_ROLES)
    async def leave(self, caller: Caller, payload: CasePayload) -> dict[str, Any]:
        await self._leave(caller.sid, payload.case_id)
        return {"case_id": payload.case_id}

    async def _leave(self, sid: str, case_id: str) -> None:
        await self.leave_room(sid, case_room(case_id))
        user_id = self.online.get(case_id, {}).pop(sid, None)
        if user_id is not None:
            await self.services.cases.seen([(case_id, user_id)])  # online until now
            await self.emit(
                "presence",
                {"case_id": case_id, "online": self._online(case_id)},
                room=case_room(case_id),
            )

    async def members_changed(self, case_id: str) -> None:
        """Tell every socket that joined the case (on any node) that its members changed,
        so open case pages fetch them again; the event carries no names."""
        await self.emit("case.members", {"case_id": case_id}, room=case_room(case_id))

    async def closed(self, case_id: str) -> None:
        """Tell every socket that joined the case (on any node) that it was closed: its
        pages go to ``/closed`` (the accounts made for it alone are gone with it)."""
        await self.emit("case.closed", {"case_id": case_id}, room=case_room(case_id))

    async def left(self, sid: str) -> None:
        for case_id in [c for c, sids in self.online.items() if sid in sids]:
            await self._leave(sid, case_id)
