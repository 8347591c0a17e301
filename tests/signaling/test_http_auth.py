"""Signing in over HTTP, and bad input that must be refused without changing anything."""

from __future__ import annotations

import time
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa

from rooms.storage.schema import case_members, invitations, login_failures, sessions, users
from signaling.cookies import CSRF_COOKIE, SESSION_COOKIE
from tests.support.world import PASSWORD, World

pytestmark = pytest.mark.store  # about SQL: runs on every database backend


async def count(store, table: sa.Table) -> int:
    async with store.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()


async def test_healthz_names_backend(server, clients, backend: str) -> None:
    status, body, _ = await clients().get("/healthz")
    assert status == 200
    assert body["status"] == "ok" and body["database"] == backend


async def test_cookies_are_hostonly_secure_httponly_strict(server, clients) -> None:
    await server.services.accounts.create_user("alice", PASSWORD)
    client = clients()
    async with client.http.get(server.url + "/api/session") as response:
        csrf_header = response.headers["Set-Cookie"]
        client.csrf = (await response.json())["csrf_token"]
    status, _, response = await client.post(
        "/api/login", {"username": "alice", "password": PASSWORD}
    )
    assert status == 200
    session_header = response.headers["Set-Cookie"]
    for name, header in ((CSRF_COOKIE, csrf_header), (SESSION_COOKIE, session_header)):
        lowered = header.lower()
        assert header.startswith(name + "=")
        assert "httponly" in lowered and "secure" in lowered and "samesite=strict" in lowered
        assert "domain" not in lowered and "path=/" in lowered
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


async def test_login_logout_and_session_end(server, clients) -> None:
    await server.services.accounts.create_user("alice", PASSWORD)
    client = clients()
    status, body, _ = await client.post("/api/login", {"username": "alice", "password": PASSWORD})
    assert (status, body["stage"]) == (200, "active")
    token = client.cookie(SESSION_COOKIE)
    assert (await client.get("/api/cases"))[0] == 200
    status, body, _ = await client.post("/api/logout")
    assert status == 200
    assert (await client.get("/api/cases"))[0] == 401
    # The old token is dead on the server, not only forgotten by the browser.
    replay = clients()
    replay.http.cookie_jar.update_cookies({SESSION_COOKIE: token})
    assert (await replay.get("/api/cases"))[0] == 401
    assert await count(server.services.store, sessions) == 0


async def test_wrong_password_and_unknown_user(server, clients) -> None:
    await server.services.accounts.create_user("alice", PASSWORD)
    client = clients()
    s1, wrong, _ = await client.post("/api/login", {"username": "alice", "password": "x" * 12})
    s2, unknown, _ = await client.post("/api/login", {"username": "zed", "password": "x" * 12})
    assert s1 == s2 == 401
    assert (
        wrong
        == unknown
        == {"error": {"code": "invalid_credentials", "message": "Wrong username or password."}}
    )
    assert await count(server.services.store, sessions) == 0


async def test_sixth_wrong_password_is_429(server, clients) -> None:
    await server.services.accounts.create_user("alice", PASSWORD)
    client = clients()
    for _ in range(5):
        status, _, _ = await client.post(
            "/api/login", {"username": "alice", "password": "wrong password"}
        )
        assert status == 401
    status, body, response = await client.post(
        "/api/login", {"username": "alice", "password": PASSWORD}
    )
    assert status == 429 and body["error"]["code"] == "rate_limited"
    assert 0 < int(response.headers["Retry-After"]) <= 900
    assert await count(server.services.store, sessions) == 0
    # charged to the account from this address, the account from unknown clients, the address
    assert await count(server.services.store, login_failures) == 15


async def test_totp_login_and_replayed_code(server, clients) -> None:
    await server.services.accounts.create_user("alice", PASSWORD)
    client = clients()
    await client.post("/api/login", {"username": "alice", "password": PASSWORD})
    status, begin, _ = await client.post("/api/account/totp/begin")
    assert status == 200 and begin["qr_svg"].startswith("data:image/svg+xml;base64,")
    totp = pyotp.TOTP(begin["secret"])
    status, confirm, _ = await client.post("/api/account/totp/confirm", {"code": totp.now()})
    assert status == 200 and len(confirm["recovery_codes"]) == 10
    await client.post("/api/logout")

    status, body, _ = await client.post("/api/login", {"username": "alice", "password": PASSWORD})
    assert body["stage"] == "totp_required"
    # Not signed in until the second factor: other routes refuse.
    status, body, _ = await client.get("/api/cases")
    assert (status, body["error"]["code"]) == (403, "stage_incomplete")
    # The code spent at confirmation is refused (replay) ...
    status, body, _ = await client.post("/api/login/totp", {"code": totp.now()})
    if status == 401:
        assert body["error"]["code"] in ("code_reused", "invalid_code")
    # ... a recovery code signs in, once.
    status, body, _ = await client.post("/api/login/totp", {"code": confirm["recovery_codes"][0]})
    assert (status, body["stage"]) == (200, "active")


async def test_expired_and_used_invitations(world: World) -> None:
    store = world.server.services.store
    case_a = world.cases["Case A"]
    token = await world.invite("nina", case_a, "observer")
    async with store.begin() as conn:
        await conn.execute(
            sa.update(invitations)
            .values(expires_at=time.time() - 1)
            .where(invitations.c.role == "observer")
        )
    before_users, before_members = await count(store, users), await count(store, case_members)
    client = world.make_client()
    status, body, _ = await client.get(f"/api/invitations/{token}")
    assert (status, body["error"]["code"]) == (410, "invitation_invalid")
    status, body, _ = await client.post(
        f"/api/invitations/{token}/accept", {"username": "olga", "password": PASSWORD}
    )
    assert status == 410
    # A used one: accept twice.
    token = await world.invite("nina", case_a, "observer")
    await world.accept(token, "olga")
    status, body, _ = await world.make_client().post(
        f"/api/invitations/{token}/accept", {"username": "olga2", "password": PASSWORD}
    )
    assert (status, body["error"]["code"]) == (410, "invitation_invalid")
    assert await count(store, users) == before_users + 1
    assert await count(store, case_members) == before_members + 1


async def test_bad_json_and_missing_csrf_change_nothing(world: World) -> None:
    store = world.server.services.store
    nina = world.clients["nina"]
    baseline = await count(store, sa.table("cases"))
    cases_url = world.server.url + "/api/cases"

    async def raw(data: bytes, content_type: str = "application/json", **headers: Any):
        async with nina.http.post(
            cases_url,
            data=data,
            headers={"Content-Type": content_type, "X-CSRF-Token": nina.csrf, **headers},
        ) as response:
            return response.status, await response.json()

    status, body = await raw(b"{not json")
    assert (status, body["error"]["code"]) == (400, "invalid_json")
    status, body = await raw(b'{"title": "' + b"x" * 70_000 + b'"}')
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    status, body = await raw(b'{"process": "duel", "title": "t"}')
    assert (status, body["error"]["code"]) == (400, "invalid_input")
    assert "process" in body["error"]["message"]
    status, body = await raw(b"title=x", content_type="application/x-www-form-urlencoded")
    assert status == 400
    # Without the CSRF header, and with a wrong one.
    status, body, _ = await nina.post(
        "/api/cases", {"process": "mediation", "title": "t"}, csrf=False
    )
    assert (status, body["error"]["code"]) == (403, "csrf_failed")
    status, body, _ = await nina.post(
        "/api/cases", {"process": "mediation", "title": "t"}, headers={"X-CSRF-Token": "forged"}
    )
    assert (status, body["error"]["code"]) == (403, "csrf_failed")
    # A cross-site origin is refused even with the token.
    status, body, _ = await nina.post(
        "/api/cases",
        {"process": "mediation", "title": "t"},
        headers={"Origin": "https://evil.example"},
    )
    assert status == 403
    assert await count(store, sa.table("cases")) == baseline


async def test_party_sees_only_own_case(world: World) -> None:
    paula = world.clients["paula"]
    status, body, _ = await paula.get("/api/cases")
    assert [c["title"] for c in body["cases"]] == ["Case A"]
    status, body, _ = await paula.get(f"/api/cases/{world.cases['Case B']}")
    assert status == 404
