"""socket.io /spaces: live messages for members only, cut off at once when removed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import socketio

from tests.signaling.spaces_setup import connect_spaces, open_spaces, user_id
from tests.support.world import World

pytestmark = pytest.mark.store  # about SQL: runs on every database backend

NS = "/spaces"


class Inbox:
    """Collects what one socket receives, and waits for a matching event."""

    def __init__(self, sio: socketio.AsyncClient) -> None:
        self.events: list[tuple[str, Any]] = []
        self.changed = asyncio.Condition()
        for name in (
            "message.new",
            "message.edited",
            "message.deleted",
            "file.new",
            "space.updated",
            "space.removed",
            "agreement.changed",
        ):
            sio.on(name, self._handler(name), namespace=NS)

    def _handler(self, name: str):
        async def receive(data: Any) -> None:
            async with self.changed:
                self.events.append((name, data))
                self.changed.notify_all()

        return receive

    async def wait(self, name: str, where=lambda _d: True, seconds: float = 10.0) -> Any:
        def found() -> Any:
            return next((d for n, d in self.events if n == name and where(d)), None)

        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: found() is not None), seconds)
            return found()

    def bodies(self) -> list[str]:
        return [d["body"] for n, d in self.events if n == "message.new"]


async def test_members_get_messages_live_and_edits_and_deletes(world: World) -> None:
    spaces = await open_spaces(world)
    sockets = {name: await connect_spaces(world, name) for name in ("nina", "paula", "carl")}
    inboxes = {name: Inbox(sio) for name, sio in sockets.items()}
    for sio in sockets.values():
        reply = await sio.call(
            "space.subscribe",
            {"case_id": spaces.case_id, "space_id": spaces.shared},
            namespace=NS,
            timeout=10,
        )
        assert reply["ok"] is True and reply["last_seq"] == 0, reply
    where = {"case_id": spaces.case_id, "space_id": spaces.shared}
    reply = await sockets["paula"].call(
        "message.send", {**where, "body": "Proposal: 40k"}, namespace=NS, timeout=10
    )
    assert reply["ok"] is True and reply["message"]["seq"] == 1
    message_id = reply["message"]["id"]
    for name in ("nina", "carl", "paula"):
        got = await inboxes[name].wait("message.new")
        assert got["body"] == "Proposal: 40k" and got["edited"] is False

    reply = await sockets["carl"].call(
        "message.edit", {**where, "message_id": message_id, "body": "x"}, namespace=NS, timeout=10
    )
    assert reply["ok"] is False and reply["error"]["code"] == "forbidden"
    reply = await sockets["paula"].call(
        "message.edit",
        {**where, "message_id": message_id, "body": "Proposal: 45k"},
        namespace=NS,
        timeout=10,
    )
    assert reply["ok"] is True and reply["message"]["edited"] is True
    got = await inboxes["carl"].wait("message.edited")
    assert got["body"] == "Proposal: 45k" and got["edited"] is True

    # Nobody but a neutral deletes a message for others, not even its author.
    for name in ("paula", "carl"):
        reply = await sockets[name].call(
            "message.delete", {**where, "message_id": message_id}, namespace=NS, timeout=10
        )
        assert reply["ok"] is False and reply["error"]["code"] == "forbidden", reply
    reply = await sockets["nina"].call(
        "message.delete", {**where, "message_id": message_id}, namespace=NS, timeout=10
    )
    assert reply["ok"] is True
    got = await inboxes["carl"].wait("message.deleted")
    assert got["deleted"] is True and got["body"] is None
    _status, history, _ = await world.clients["carl"].get(spaces.path(spaces.shared, "/messages"))
    assert history["messages"][0]["deleted"] is True and history["messages"][0]["body"] is None

    # Messages posted over HTTP reach the subscribers too.
    await world.clients["nina"].post(spaces.path(spaces.shared, "/messages"), {"body": "via HTTP"})
    assert (await inboxes["paula"].wait("message.new", lambda d: d["seq"] == 2))["body"] == (
        "via HTTP"
    )
    for sio in sockets.values():
        await sio.disconnect()


async def test_non_members_cannot_subscribe_or_send(world: World) -> None:
    spaces = await open_spaces(world)
    carl = await connect_spaces(world, "carl")
    for event, extra in (("space.subscribe", {}), ("message.send", {"body": "hello"})):
        for space_id in (spaces.private, "f" * 32):
            reply = await carl.call(
                event,
                {"case_id": spaces.case_id, "space_id": space_id, **extra},
                namespace=NS,
                timeout=10,
            )
            assert reply["ok"] is False and reply["error"]["code"] == "not_found", reply
    peter = await connect_spaces(world, "peter")
    reply = await peter.call(
        "space.subscribe",
        {"case_id": spaces.case_id, "space_id": spaces.shared},
        namespace=NS,
        timeout=10,
    )
    assert reply["ok"] is False and reply["error"]["code"] == "not_found"
    await carl.disconnect()
    await peter.disconnect()


async def test_removed_member_stops_receiving_at_once(world: World) -> None:
    spaces = await open_spaces(world)
    where = {"case_id": spaces.case_id, "space_id": spaces.shared}
    sockets = {name: await connect_spaces(world, name) for name in ("nina", "paula", "carl")}
    inboxes = {name: Inbox(sio) for name, sio in sockets.items()}
    for sio in sockets.values():
        assert (await sio.call("space.subscribe", where, namespace=NS, timeout=10))["ok"]
    await sockets["paula"].call("message.send", {**where, "body": "before"}, namespace=NS)
    await inboxes["carl"].wait("message.new", lambda d: d["body"] == "before")

    carl_id = await user_id(world, "carl")
    status, _, _ = await world.clients["nina"].request(
        "DELETE", spaces.path(spaces.shared, f"/members/{carl_id}")
    )
    assert status == 200
    # Right after the removal answered, the next message reaches the others but not carl.
    await sockets["paula"].call("message.send", {**where, "body": "after"}, namespace=NS)
    await inboxes["nina"].wait("message.new", lambda d: d["body"] == "after")
    await inboxes["paula"].wait("message.new", lambda d: d["body"] == "after")
    removed = await inboxes["carl"].wait("space.removed")
    assert removed == {**where, "reason": "removed"}
    assert inboxes["carl"].bodies() == ["before"]
    # The open socket cannot act in the space any more either.
    for event, extra in (("message.send", {"body": "still here?"}), ("space.subscribe", {})):
        reply = await sockets["carl"].call(event, {**where, **extra}, namespace=NS, timeout=10)
        assert reply["ok"] is False and reply["error"]["code"] == "not_found"
    for sio in sockets.values():
        await sio.disconnect()


async def test_wrong_fields_answer_invalid_payload(world: World) -> None:
    spaces = await open_spaces(world)
    paula = await connect_spaces(world, "paula")
    where = {"case_id": spaces.case_id, "space_id": spaces.shared}
    bad = {
        "space.subscribe": [{}, {"case_id": spaces.case_id}, {**where, "extra": 1}, "x", None],
        "message.send": [
            where,
            {**where, "body": ""},
            {**where, "body": 7},
            {**where, "body": "x" * 10_001},
            {**where, "text": "hello"},
            {**where, "space_id": "s" * 65, "body": "hi"},
        ],
        "message.edit": [{**where, "body": "x"}, {**where, "message_id": "m"}],
        "message.delete": [where, {**where, "message_id": ""}],
    }
    for event, payloads in bad.items():
        for payload in payloads:
            reply = await paula.call(event, payload, namespace=NS, timeout=10)
            assert reply["ok"] is False, (event, payload, reply)
            assert reply["error"]["code"] == "invalid_payload", (event, payload, reply)
            assert "Traceback" not in reply["error"]["message"]
    await paula.disconnect()


async def test_agreement_changes_reach_the_members_of_its_space_only_as_ids(
    world: World,
) -> None:
    """A new agreement, a version and a comment are announced to the subscribers of the
    agreement's space (its page reloads it over HTTP, which checks access); the event
    carries ids and what changed, never its text; a member of another space hears
    nothing of it."""
    spaces = await open_spaces(world)
    sockets = {name: await connect_spaces(world, name) for name in ("nina", "paula", "carl")}
    inboxes = {name: Inbox(sio) for name, sio in sockets.items()}
    subscriptions = {"nina": spaces.private, "paula": spaces.private, "carl": spaces.shared}
    for name, space_id in subscriptions.items():
        reply = await sockets[name].call(
            "space.subscribe",
            {"case_id": spaces.case_id, "space_id": space_id},
            namespace=NS,
            timeout=10,
        )
        assert reply["ok"] is True, reply
    secret = "Paula pays EUR 31,337 by Friday"
    text = {"title": f"Settlement {secret}", "clauses": [{"heading": "", "body": secret}]}
    status, body, _ = await world.clients["nina"].post(
        spaces.path(spaces.private, "/agreements"), text
    )
    assert status == 201, body
    agreement_id = body["agreement"]["id"]
    expected = {"case_id": spaces.case_id, "space_id": spaces.private, "agreement_id": agreement_id}
    got = await inboxes["paula"].wait("agreement.changed")
    assert got == {**expected, "change": "created"}

    status, body, _ = await world.clients["paula"].post(
        spaces.path(spaces.private, f"/agreements/{agreement_id}/comments"),
        {"version": 1, "clause": 1, "body": "Friday is too soon"},
    )
    assert status == 201, body
    status, body, _ = await world.clients["nina"].post(
        spaces.path(spaces.private, f"/agreements/{agreement_id}/versions"),
        {**text, "clauses": [{"heading": "", "body": "Monday"}], "based_on": 1},
    )
    assert status == 201, body
    for name in ("nina", "paula"):
        await inboxes[name].wait("agreement.changed", lambda d: d["change"] == "version")
        changes = [d for n, d in inboxes[name].events if n == "agreement.changed"]
        assert [d["change"] for d in changes] == ["created", "comment", "version"]
        assert all(set(d) == {*expected, "change"} for d in changes)
        assert secret not in str(changes) and "Friday" not in str(changes)
    # a refused change announces nothing
    status, body, _ = await world.clients["nina"].post(
        spaces.path(spaces.private, f"/agreements/{agreement_id}/versions"),
        {**text, "based_on": 1},  # stale: version 2 exists
    )
    assert status == 409, body
    # Carl, subscribed to the other space, heard nothing; a message there still reaches
    # him (so his socket was listening all along)
    await world.clients["nina"].post(spaces.path(spaces.shared, "/messages"), {"body": "later"})
    await inboxes["carl"].wait("message.new")
    assert not [n for n, _ in inboxes["carl"].events if n == "agreement.changed"]
    assert len([n for n, _ in inboxes["paula"].events if n == "agreement.changed"]) == 3
    for sio in sockets.values():
        await sio.disconnect()
