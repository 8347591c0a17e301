"""Spaces in the signaling test world: Case A's neutral nina opens one space with the party
paula only and one with paula and her counsel carl."""

from __future__ import annotations

from dataclasses import dataclass

import socketio

from signaling.access import SESSION_COOKIE
from tests.signaling.conftest import World


async def user_id(world: World, username: str) -> str:
    users = await world.server.services.accounts.list_users()
    return next(u.id for u in users if u.username == username)


@dataclass
class CaseSpaces:
    case_id: str
    private: str  # nina + paula
    shared: str  # nina + paula + carl

    def path(self, space_id: str, rest: str = "") -> str:
        return f"/api/cases/{self.case_id}/spaces/{space_id}{rest}"


async def open_spaces(world: World) -> CaseSpaces:
    case_id = world.cases["Case A"]
    nina = world.clients["nina"]
    paula, carl = await user_id(world, "paula"), await user_id(world, "carl")
    ids = []
    for name, members in (("Caucus with Paula", [paula]), ("Joint session", [paula, carl])):
        status, body, _ = await nina.post(
            f"/api/cases/{case_id}/spaces", {"name": name, "member_ids": members}
        )
        assert status == 201, body
        ids.append(body["space"]["id"])
    return CaseSpaces(case_id, ids[0], ids[1])


async def connect_spaces(world: World, name: str) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(ssl_verify=False, reconnection=False)
    await sio.connect(
        world.server.url,
        headers={"Cookie": f"{SESSION_COOKIE}={world.clients[name].cookie(SESSION_COOKIE)}"},
        namespaces=["/spaces"],
        transports=["websocket"],
        wait_timeout=10,
    )
    return sio
