"""The live room in real browsers: three members of a case join through the page, each
receives the others' audio and video (decoded frames rising in getStats()), the media is
protected with AES-128 SRTP, a member who leaves disappears from the others' grids, and
while the neutral records the room the pages of those in it show the recording notice."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest
import socketio
from playwright.async_api import Browser, BrowserContext, Page, expect

from signaling.cookies import SESSION_COOKIE
from tests.browser.pages import (
    Watch,
    active_admin,
    inbound,
    invited_member,
    new_neutral,
    open_case,
    signed_in_page,
)
from tests.support.world import ApiClient

if TYPE_CHECKING:
    from conftest import RunningServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

AES_128 = {"SRTP_AEAD_AES_128_GCM", "SRTP_AES128_CM_SHA1_80"}
PEOPLE = {
    "nina": ("nadia.brennan", "Nadia Brennan", "cedar-window-compass-7730"),
    "paula": ("maria.lindqvist", "Maria Lindqvist", "orchard-lantern-meadow-5164"),
    "carl": ("cyrus.counsel", "Cyrus Counsel", "pebble-harbour-violet-2287"),
}

# What this page's subscribe connection maps and negotiated, for failure messages.
RECEIVING = """
() => {
  const live = window.caucusLive;
  const pc = live && live.subscribePc;
  return {
    tracks: live ? live.tracks.map((t) => `${t.mid}:${t.kind}:${t.display_name}`) : [],
    transceivers: pc
      ? pc.getTransceivers().map((t) => `${t.mid}:${t.receiver.track.kind}:${t.currentDirection}`)
      : [],
  };
}
"""


async def prepare_case(server: RunningServer) -> tuple[ApiClient, str, list[ApiClient]]:
    """An active admin, and a case with a neutral, a party and the party's counsel."""
    admin = await active_admin(server)
    username, display_name, password = PEOPLE["nina"]
    neutral = await new_neutral(admin, server, username, display_name, password)
    case_id = await open_case(neutral, "Harbor Lane live")
    made = [neutral]
    represents = None
    for name, role in (("paula", "party"), ("carl", "counsel")):
        username, display_name, password = PEOPLE[name]
        member = await invited_member(
            neutral,
            server,
            case_id,
            role=role,
            display_name=display_name,
            username=username,
            password=password,
            represents=represents,
        )
        made.append(member)
        if role == "party":
            _, case, _ = await neutral.get(f"/api/cases/{case_id}")
            represents = next(m["user_id"] for m in case["members"] if m["role"] == "party")
    return admin, case_id, made


async def enter_room(
    browser: Browser, server: RunningServer, case_id: str, name: str, watch: Watch
) -> tuple[BrowserContext, Page]:
    username, _display, password = PEOPLE[name]
    context, page = await signed_in_page(browser, server, username, password, watch)
    await page.goto(f"/cases/{case_id}")
    await page.get_by_test_id("live-link").click()
    await page.wait_for_url(f"**/cases/{case_id}/live")
    join = page.get_by_test_id("join")
    await expect(join).to_be_enabled()
    await expect(page.get_by_test_id("camera")).not_to_have_value("")
    await join.click()
    await expect(page.get_by_test_id("connection-state")).to_have_text("Connected", timeout=30_000)
    return context, page


async def wait_media_rising(
    page: Page, names: list[str], admin: ApiClient, within: float = 45.0
) -> None:
    """Every one of ``names`` reaches ``page`` with decoded video frames and audio packets,
    and both counters keep rising."""
    expected = {(name, kind) for name in names for kind in ("audio", "video")}
    counter = {"video": "frames", "audio": "packets"}
    deadline = time.monotonic() + within
    first: dict[tuple[str, str], dict[str, Any]] | None = None
    last: dict[tuple[str, str], dict[str, Any]] = {}
    while time.monotonic() < deadline:
        last = await inbound(page)
        flowing = set(last) >= expected and all(last[key][counter[key[1]]] > 0 for key in expected)
        if flowing and first is None:
            first = last
        elif flowing and first is not None:
            if all(last[k][counter[k[1]]] > first[k][counter[k[1]]] for k in expected):
                return
        await asyncio.sleep(0.25)
    lines = []
    for name, kind in sorted(expected):
        now = last.get((name, kind))
        if now is None:
            lines.append(f"{name} {kind}: expected {counter[kind]} rising, no inbound stream")
            continue
        then = (first or {}).get((name, kind))
        since = f" (was {then[counter[kind]]} when all first flowed)" if then else ""
        lines.append(
            f"{name} {kind}: expected {counter[kind]} rising, "
            f"frames={now['frames']} packets={now['packets']}{since}"
        )
    lines += [f"unexpected stream: {key}" for key in sorted(set(last) - expected)]
    lines.append(f"this page receives: {await page.evaluate(RECEIVING)}")
    _, stats, _ = await admin.get("/api/admin/media")
    for transport in stats.get("transports", []) if isinstance(stats, dict) else []:
        for item in (*transport["producers"], *transport["consumers"]):
            lines.append(
                f"SFU {transport['direction']} {transport['participant_id']} {transport['state']}: "
                + ", ".join(f"{k}={v}" for k, v in item.items() if k not in ("id", "producer_id"))
            )
    raise AssertionError(f"media from {names} did not keep arriving:\n" + "\n".join(lines))


async def expect_grid(page: Page, names: list[str]) -> None:
    tiles = page.get_by_test_id("remote-tile")
    await expect(tiles).to_have_count(len(names), timeout=20_000)
    for name in names:
        await expect(tiles.filter(has_text=name)).to_have_count(1)


async def test_three_members_see_and_hear_each_other(
    media_browser: Browser, caucus_server: RunningServer
) -> None:
    admin, case_id, clients = await prepare_case(caucus_server)
    watch = Watch()
    contexts: list[BrowserContext] = []
    try:
        name_of = {key: value[1] for key, value in PEOPLE.items()}
        pages: dict[str, Page] = {}
        for key in ("nina", "paula"):
            context, pages[key] = await enter_room(
                media_browser, caucus_server, case_id, key, watch
            )
            contexts.append(context)
        for key, page in pages.items():
            others = [name_of[k] for k in pages if k != key]
            await expect_grid(page, others)
            await wait_media_rising(page, others, admin)

        context, pages["carl"] = await enter_room(
            media_browser, caucus_server, case_id, "carl", watch
        )
        contexts.append(context)
        for key, page in pages.items():
            others = [name_of[k] for k in pages if k != key]
            await expect_grid(page, others)
            await wait_media_rising(page, others, admin)

        status, stats, _ = await admin.get("/api/admin/media")
        assert status == 200, stats
        connected = [t for t in stats["transports"] if t["state"] == "connected"]
        assert len(connected) == 6, [
            (t["direction"], t["participant_id"], t["state"]) for t in stats["transports"]
        ]
        assert {t["srtp_profile"] for t in connected} <= AES_128, connected
        assert all(t["packets_sent"] > 0 for t in connected if t["direction"] == "subscribe")
        assert all(t["packets_received"] > 0 for t in connected if t["direction"] == "publish")

        await pages["carl"].get_by_test_id("leave").click()
        await expect(pages["carl"].get_by_test_id("connection-state")).to_have_text(
            "You left the room"
        )
        for key in ("nina", "paula"):
            other = name_of["paula" if key == "nina" else "nina"]
            await expect_grid(pages[key], [other])
            await expect(pages[key].get_by_test_id("remote-tile")).not_to_contain_text(
                name_of["carl"]
            )

        # the neutral records the room: the pages of the people in it say so until it stops
        for page in pages.values():
            await expect(page.get_by_test_id("recording-indicator")).to_be_hidden()
        neutral = clients[0]
        _, case, _ = await neutral.get(f"/api/cases/{case_id}")
        others = [m["user_id"] for m in case["members"] if m["role"] != "neutral"]
        status, body, _ = await neutral.post(
            f"/api/cases/{case_id}/spaces", {"name": "Hearing record", "member_ids": others}
        )
        assert status == 201, body
        hearing = {"case_id": case_id, "space_id": body["space"]["id"], "room_id": "main"}
        recording = socketio.AsyncClient(ssl_verify=False, reconnection=False)
        await recording.connect(
            caucus_server.url,
            headers={"Cookie": f"{SESSION_COOKIE}={neutral.cookie(SESSION_COOKIE)}"},
            namespaces=["/recording"],
            transports=["websocket"],
            wait_timeout=10,
        )
        try:
            reply = await recording.call("hearing.start", hearing, namespace="/recording")
            assert reply["ok"], reply
            for key in ("nina", "paula"):
                indicator = pages[key].get_by_test_id("recording-indicator")
                await expect(indicator).to_be_visible()
                await expect(indicator).to_contain_text("This room is being recorded.")
            await expect(pages["carl"].get_by_test_id("recording-indicator")).to_be_hidden()
            reply = await recording.call(
                "hearing.stop",
                {"case_id": case_id, "room_id": "main"},
                namespace="/recording",
                timeout=60,
            )
            assert reply["ok"], reply
            for page in pages.values():
                await expect(page.get_by_test_id("recording-indicator")).to_be_hidden()
        finally:
            await recording.disconnect()
        assert watch.problems == []
    finally:
        for context in contexts:
            await context.close()
        for client in (admin, *clients):
            await client.close()
