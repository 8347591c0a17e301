"""socket.io: connections need a signed-in session; malformed events get clear errors."""

from __future__ import annotations

import asyncio

import pytest
import socketio
import sqlalchemy as sa

from rooms.storage.schema import sessions
from signaling.cookies import SESSION_COOKIE
from tests.support.eventually import eventually
from tests.support.world import PASSWORD, World, connect

pytestmark = pytest.mark.store  # about SQL: runs on every database backend


async def test_connect_refused_without_or_with_forged_session(world: World) -> None:
    for cookie in (None, "forged-token"):
        sio = socketio.AsyncClient(ssl_verify=False, reconnection=False)
        refusals: list = []
        sio.on("connect_error", refusals.append, namespace="/case")
        headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"} if cookie else {}
        try:
            await sio.connect(
                world.server.url, headers=headers, namespaces=["/case"], transports=["websocket"]
            )
        except socketio.exceptions.ConnectionError:
            pass
        else:
            raise AssertionError("connection accepted without a session")
        finally:
            await sio.disconnect()
        # what a browser's connect_error handler reads: error.message and error.data.code
        assert refusals == [
            {
                "message": "Sign in first.",
                "data": {"code": "unauthenticated", "message": "Sign in first."},
            }
        ]


async def test_wrong_fields_unknown_event_and_logout(world: World) -> None:
    paula = world.clients["paula"]
    sio = await connect(world, paula, "/case")
    case_a = world.cases["Case A"]
    for payload in ({}, {"case": case_a}, {"case_id": 42}, {"case_id": case_a, "extra": 1}, "x"):
        reply = await sio.call("case.join", payload, namespace="/case", timeout=10)
        assert reply["ok"] is False
        assert reply["error"]["code"] == "invalid_payload", reply
        assert "Traceback" not in reply["error"]["message"]
    reply = await sio.call("case.nonsense", {}, namespace="/case", timeout=10)
    assert reply == {
        "ok": False,
        "error": {"code": "unknown_event", "message": "No event 'case.nonsense'."},
    }
    reply = await sio.call("case.join", {"case_id": case_a}, namespace="/case", timeout=10)
    assert reply["ok"] is True and reply["online"]
    # After logout, the open socket is closed by the server at once.
    disconnected = asyncio.Event()
    sio.on("disconnect", lambda *args: disconnected.set(), namespace="/case")
    await paula.post("/api/logout")
    await asyncio.wait_for(disconnected.wait(), 10)
    await sio.disconnect()


async def test_event_after_session_expiry_is_refused(world: World) -> None:
    paula = world.clients["paula"]
    sio = await connect(world, paula, "/case")
    async with world.server.services.store.begin() as conn:
        await conn.execute(sa.update(sessions).values(expires_at=0))
    reply = await sio.call(
        "case.join", {"case_id": world.cases["Case A"]}, namespace="/case", timeout=10
    )
    assert reply["ok"] is False and reply["error"]["code"] == "unauthenticated"
    await sio.disconnect()


async def test_a_password_change_closes_the_other_sessions_sockets(world: World) -> None:
    """Paula changes her password on one device: her other device's socket is closed at
    once (its session ended), the changing device's stays."""
    here = world.clients["paula"]
    elsewhere = world.make_client()
    status, body, _ = await elsewhere.post(
        "/api/login", {"username": "paula", "password": PASSWORD}
    )
    assert status == 200 and body["stage"] == "active", body
    other = await connect(world, elsewhere, "/case")
    mine = await connect(world, here, "/case")
    closed = asyncio.Event()
    other.on("disconnect", lambda *_: closed.set(), namespace="/case")
    try:
        status, body, _ = await here.post(
            "/api/account/password",
            {"current_password": PASSWORD, "new_password": "a brand new passphrase 7"},
        )
        assert status == 200, body
        async with asyncio.timeout(10):
            await closed.wait()
        reply = await mine.call("case.join", {"case_id": world.cases["Case A"]}, "/case")
        assert reply["ok"], reply
    finally:
        await other.disconnect()
        await mine.disconnect()


async def test_a_case_hears_that_someone_accepted_an_invitation(world: World) -> None:
    """Nina's open case page is told when a new party joins Case A (and only Case A's)."""
    case_a, case_b = world.cases["Case A"], world.cases["Case B"]
    nina = await connect(world, world.clients["nina"], "/case")
    otto = await connect(world, world.clients["otto"], "/case")
    heard: dict[str, list[object]] = {"nina": [], "otto": []}
    nina.on("case.members", heard["nina"].append, namespace="/case")
    otto.on("case.members", heard["otto"].append, namespace="/case")
    try:
        assert (await nina.call("case.join", {"case_id": case_a}, "/case"))["ok"]
        assert (await otto.call("case.join", {"case_id": case_b}, "/case"))["ok"]
        await world.accept(await world.invite("nina", case_a, "party"), "quinn")
        await eventually(lambda: heard["nina"] == [{"case_id": case_a}], what="case.members")
        assert heard["otto"] == []
    finally:
        await nina.disconnect()
        await otto.disconnect()
