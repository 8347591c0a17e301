"""Spaces over HTTP: who manages and who sees them, messages, history pages, unread counts."""

from __future__ import annotations

import pytest

from tests.signaling.spaces_setup import open_spaces, user_id
from tests.support.world import World

pytestmark = pytest.mark.store  # about SQL: runs on every database backend


async def test_members_see_only_their_spaces(world: World) -> None:
    spaces = await open_spaces(world)
    listing = f"/api/cases/{spaces.case_id}/spaces"
    names = {}
    for who in ("nina", "paula", "carl"):
        status, body, _ = await world.clients[who].get(listing)
        assert status == 200, body
        names[who] = sorted(s["name"] for s in body["spaces"])
    assert names["nina"] == names["paula"] == ["Caucus with Paula", "Joint session"]
    assert names["carl"] == ["Joint session"]
    # Another case's party sees nothing of this case.
    status, body, _ = await world.clients["peter"].get(listing)
    assert status == 404 and "Caucus" not in str(body)


async def test_a_space_one_is_not_in_answers_like_a_missing_one(world: World) -> None:
    spaces = await open_spaces(world)
    carl = world.clients["carl"]
    answers = []
    for space_id in (spaces.private, "0" * 32):
        for rest in ("", "/messages", "/files", "/files/" + "1" * 32):
            status, body, _ = await carl.get(spaces.path(space_id, rest))
            answers.append((status, body))
    assert all(status == 404 for status, _ in answers), answers
    assert len({str(body) for _, body in answers}) == 1  # nothing tells them apart
    status, body, _ = await carl.post(spaces.path(spaces.private, "/messages"), {"body": "hi"})
    assert status == 404, body


async def test_only_neutrals_manage_spaces(world: World) -> None:
    spaces = await open_spaces(world)
    paula = world.clients["paula"]
    carl_id = await user_id(world, "carl")
    status, _, _ = await paula.post(f"/api/cases/{spaces.case_id}/spaces", {"name": "Mine"})
    assert status == 403
    status, _, _ = await paula.request("PATCH", spaces.path(spaces.shared), {"name": "Renamed"})
    assert status == 403
    status, _, _ = await paula.post(spaces.path(spaces.private, "/members"), {"user_id": carl_id})
    assert status == 403
    status, _, _ = await paula.request("DELETE", spaces.path(spaces.shared, f"/members/{carl_id}"))
    assert status == 403
    # Members must be people of the case.
    otto_id = await user_id(world, "otto")
    status, body, _ = await world.clients["nina"].post(
        spaces.path(spaces.private, "/members"), {"user_id": otto_id}
    )
    assert status == 400 and body["error"]["code"] == "not_case_member"


async def test_rename_archive_and_membership(world: World) -> None:
    spaces = await open_spaces(world)
    nina, carl = world.clients["nina"], world.clients["carl"]
    carl_id = await user_id(world, "carl")
    status, body, _ = await nina.request(
        "PATCH", spaces.path(spaces.private), {"name": "  Private   caucus "}
    )
    assert status == 200 and body["space"]["name"] == "Private caucus"
    status, body, _ = await nina.post(spaces.path(spaces.private, "/members"), {"user_id": carl_id})
    assert status == 200 and carl_id in [m["user_id"] for m in body["members"]]
    assert (await carl.get(spaces.path(spaces.private)))[0] == 200
    status, body, _ = await nina.request(
        "DELETE", spaces.path(spaces.private, f"/members/{carl_id}")
    )
    assert status == 200 and carl_id not in [m["user_id"] for m in body["members"]]
    assert (await carl.get(spaces.path(spaces.private)))[0] == 404
    # Archived: readable, not writable; reopened: writable again.
    status, body, _ = await nina.request("PATCH", spaces.path(spaces.shared), {"archived": True})
    assert status == 200 and body["space"]["archived"] is True
    status, body, _ = await carl.post(spaces.path(spaces.shared, "/messages"), {"body": "late"})
    assert status == 409, body
    assert (await carl.get(spaces.path(spaces.shared, "/messages")))[0] == 200
    await nina.request("PATCH", spaces.path(spaces.shared), {"archived": False})
    status, _, _ = await carl.post(spaces.path(spaces.shared, "/messages"), {"body": "now"})
    assert status == 201


async def test_history_pages_and_unread_counts(world: World) -> None:
    spaces = await open_spaces(world)
    paula, carl = world.clients["paula"], world.clients["carl"]
    for n in range(1, 8):
        status, body, _ = await paula.post(
            spaces.path(spaces.shared, "/messages"), {"body": f"message {n}"}
        )
        assert status == 201 and body["message"]["seq"] == n
    status, page, _ = await carl.get(spaces.path(spaces.shared, "/messages?limit=3"))
    assert [m["body"] for m in page["messages"]] == ["message 5", "message 6", "message 7"]
    assert page["has_more"] is True
    before = page["messages"][0]["seq"]
    status, page, _ = await carl.get(
        spaces.path(spaces.shared, f"/messages?limit=3&before={before}")
    )
    assert [m["seq"] for m in page["messages"]] == [2, 3, 4] and page["has_more"] is True
    status, page, _ = await carl.get(spaces.path(spaces.shared, "/messages?before=2"))
    assert [m["seq"] for m in page["messages"]] == [1] and page["has_more"] is False
    for bad in ("limit=0", "limit=201", "before=x", "limit=-1"):
        status, body, _ = await carl.get(spaces.path(spaces.shared, f"/messages?{bad}"))
        assert status == 400, (bad, body)

    def unread(listing: dict) -> dict[str, int]:
        return {s["id"]: s["unread"] for s in listing["spaces"]}

    listing = f"/api/cases/{spaces.case_id}/spaces"
    assert unread((await carl.get(listing))[1]) == {spaces.shared: 7}
    assert unread((await paula.get(listing))[1])[spaces.shared] == 0  # own messages
    status, body, _ = await carl.post(spaces.path(spaces.shared, "/read"), {"seq": 5})
    assert body == {"last_read_seq": 5}
    assert unread((await carl.get(listing))[1]) == {spaces.shared: 2}
    status, body, _ = await carl.post(spaces.path(spaces.shared, "/read"), {"seq": 3})
    assert body == {"last_read_seq": 5}  # never backwards
    status, body, _ = await carl.post(spaces.path(spaces.shared, "/read"), {"seq": 999})
    assert body == {"last_read_seq": 7}
    assert unread((await carl.get(listing))[1]) == {spaces.shared: 0}


async def test_bad_bodies_are_refused_clearly(world: World) -> None:
    spaces = await open_spaces(world)
    nina, paula = world.clients["nina"], world.clients["paula"]
    for body in ({}, {"name": ""}, {"name": "x", "member_ids": "all"}, {"name": "x", "extra": 1}):
        status, answer, _ = await nina.post(f"/api/cases/{spaces.case_id}/spaces", body)
        assert status == 400 and answer["error"]["code"] == "invalid_input", (body, answer)
    for body in ({}, {"body": ""}, {"body": "x" * 10_001}, {"body": 5}):
        status, answer, _ = await paula.post(spaces.path(spaces.shared, "/messages"), body)
        assert status == 400, (body, answer)
    status, answer, _ = await paula.post(spaces.path(spaces.shared, "/messages"), {"body": "   "})
    assert status == 400
