"""Agreements in the signaling test world: Case A's neutral nina drafts in a space of
nina, the parties paula and pia and paula's counsel carl; quinn, a party of Case A, is in
none of it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from rooms.accounts.sessions import token_hash
from rooms.storage.schema import sessions
from signaling.cookies import SESSION_COOKIE
from tests.signaling.spaces_setup import user_id
from tests.support.world import PASSWORD, ApiClient, World

CLAUSES = [
    {"heading": "Payment", "body": "The landlord pays **EUR 4,000** within 30 days."},
    {"heading": "Repairs", "body": "The tenant leaves the premises by 1 March."},
]


@dataclass
class AgreementSpace:
    case_id: str
    space_id: str
    ids: dict[str, str]  # user ids by name

    def path(self, rest: str = "") -> str:
        return f"/api/cases/{self.case_id}/spaces/{self.space_id}/agreements{rest}"


async def agreement_space(world: World) -> AgreementSpace:
    case_id = world.cases["Case A"]
    for name in ("pia", "quinn"):
        if name not in world.clients:
            await world.accept(await world.invite("nina", case_id, "party"), name)
    ids = {n: await user_id(world, n) for n in ("nina", "paula", "pia", "carl", "quinn")}
    status, body, _ = await world.clients["nina"].post(
        f"/api/cases/{case_id}/spaces",
        {"name": "Settlement", "member_ids": [ids["paula"], ids["pia"], ids["carl"]]},
    )
    assert status == 201, body
    return AgreementSpace(case_id, body["space"]["id"], ids)


async def reauth(client: ApiClient, **more: Any) -> dict[str, Any]:
    status, body, _ = await client.post("/api/account/reauth", {"password": PASSWORD, **more})
    assert status == 200, body
    return body


async def age_reauth(world: World, client: ApiClient, seconds: float) -> None:
    """Make the client's proof of identity ``seconds`` old."""
    cookie = client.cookie(SESSION_COOKIE)
    assert cookie
    async with world.server.services.store.begin() as conn:
        await conn.execute(
            sa.update(sessions)
            .where(sessions.c.token_hash == token_hash(cookie))
            .values(reauth_at=time.time() - seconds)
        )
