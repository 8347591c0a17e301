"""Spaces in the signaling test world: Case A's neutral nina opens one space with the party
paula only and one with paula and her counsel carl."""

from __future__ import annotations

from dataclasses import dataclass

import socketio

from signaling.cookies import SESSION_COOKIE
from tests.support.world import World


async def user_id(world: World, username: str) -> str:
    users = await world.server.services.accounts.list_users()
    return next(u.id for u in users if u.username == username)


async def sample_space(w: World) -> dict[str, str]:
    """Case A's space of nina, paula and the observer sam, holding one file (made once)."""
    if "space" not in w.ids:
        services, case_id = w.server.services, w.cases["Case A"]
        await w.accept(await w.invite("nina", case_id, "observer"), "sam")
        w.ids["user"] = await user_id(w, "sam")
        nina = await services.cases.membership(case_id, await user_id(w, "nina"))
        paula = await user_id(w, "paula")
        space = await services.spaces.create(case_id, nina, "Sample", [paula, w.ids["user"]])
        w.ids["space"] = space.id

        async def text():
            yield b"minutes of the joint session"

        record = await services.spaces.upload(
            case_id, space.id, paula, "minutes.txt", text(), max_bytes=1024
        )
        w.ids["file"] = record.id
    return {"case_id": w.cases["Case A"], "space_id": w.ids["space"]}


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
