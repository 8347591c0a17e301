"""Breakout rooms in real browsers: a mediator, party A, A's counsel and party B meet in
the main room; in the mediator's console A is dragged onto breakout "A", A's counsel is
moved there with the keyboard alone (select, then "Move to…") and B is dragged onto
breakout "B"; each then receives media only from their room (from getStats() and from
the SFU's own subscription table), the mediator visits the rooms, broadcasts, answers a
request from the queue, sees the timer on the room's card until the room closes by
itself, brings everyone back, and removes B only after confirming it."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

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

PEOPLE = {  # key: (username, display name, password, role)
    "mediator": ("nadia.brennan", "Nadia Brennan", "cedar-window-compass-7730", "neutral"),
    "a": ("maria.lindqvist", "Maria Lindqvist", "orchard-lantern-meadow-5164", "party"),
    "counsel": ("cyrus.counsel", "Cyrus Counsel", "pebble-harbour-violet-2287", "counsel"),
    "b": ("boris.okafor", "Boris Okafor", "thistle-copper-river-6612", "party"),
}
NAME = {key: value[1] for key, value in PEOPLE.items()}

# Four Chromiums share two cores: keep the fake camera small.
SMALL_CAMERA = """
(() => {
  const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (constraints) => {
    if (constraints && constraints.video) {
      const video = typeof constraints.video === "object" ? constraints.video : {};
      constraints = {
        ...constraints,
        video: { ...video, width: { ideal: 240 }, height: { ideal: 136 }, frameRate: 12 },
      };
    }
    return original(constraints);
  };
})();
"""

# packets and frames per receiving mid, with whom the page believes that mid carries
PER_MID = """
async () => {
  const live = window.caucusLive;
  if (!live || !live.subscribePc) return {};
  const owners = new Map(live.tracks.map((track) => [track.mid, track.display_name]));
  const found = {};
  (await live.subscribePc.getStats()).forEach((report) => {
    if (report.type !== "inbound-rtp") return;
    found[report.mid] = {
      kind: report.kind,
      packets: report.packetsReceived || 0,
      owner: owners.get(report.mid) || null,
    };
  });
  return found;
}
"""


async def wait_media_rising(page: Page, names: list[str], within: float) -> None:
    """Every one of ``names`` reaches ``page`` with decoded video frames and audio packets,
    and both counters keep rising."""
    expected = {(name, kind) for name in names for kind in ("audio", "video")}
    counter = {"video": "frames", "audio": "packets"}
    deadline = time.monotonic() + within
    first: dict[tuple[str, str], dict[str, Any]] | None = None
    last: dict[tuple[str, str], dict[str, Any]] = {}
    while time.monotonic() < deadline:
        last = await inbound(page)
        flowing = set(last) >= expected and all(last[k][counter[k[1]]] > 0 for k in expected)
        restarted = first is not None and any(
            k in first and last[k]["packets"] < first[k]["packets"] for k in last
        )
        if flowing and (first is None or restarted):  # a reconnect starts counting anew
            first = last
        elif flowing and first is not None:
            if all(last[k][counter[k[1]]] > first[k][counter[k[1]]] for k in expected):
                return
        await page.wait_for_timeout(250)
    raise AssertionError(f"media from {names} did not keep arriving: {last}")


async def prepare_case(
    server: RunningServer,
) -> tuple[ApiClient, str, dict[str, str], list[ApiClient]]:
    """An active admin and a case with a mediator, party A, A's counsel and party B."""
    admin = await active_admin(server)
    username, display_name, password, _ = PEOPLE["mediator"]
    neutral = await new_neutral(admin, server, username, display_name, password)
    case_id = await open_case(neutral, "Harbor Lane caucus")
    made = [neutral]
    users: dict[str, str] = {}
    for key in ("a", "counsel", "b"):
        username, display_name, password, role = PEOPLE[key]
        member = await invited_member(
            neutral,
            server,
            case_id,
            role=role,
            display_name=display_name,
            username=username,
            password=password,
            represents=users.get("a") if key == "counsel" else None,
        )
        made.append(member)
        _, case, _ = await neutral.get(f"/api/cases/{case_id}")
        users[key] = next(
            m["user_id"] for m in case["members"] if m["display_name"] == display_name
        )
    return admin, case_id, users, made


async def enter_room(
    browser: Browser,
    server: RunningServer,
    case_id: str,
    key: str,
    watch: Watch,
    before_join: Callable[[Page], Awaitable[None]] | None = None,
) -> tuple[BrowserContext, Page]:
    """``key``'s page in the case's live room (``before_join``: run on the page first)."""
    username, _display, password, _ = PEOPLE[key]
    context, page = await signed_in_page(
        browser,
        server,
        username,
        password,
        watch,
        timeout_ms=20_000,
        init_script=SMALL_CAMERA,
        viewport=(1280, 800),  # the size the mediator's console is laid out for
    )
    if before_join is not None:
        await before_join(page)
    await page.goto(f"/cases/{case_id}/live")
    join = page.get_by_test_id("join")
    await expect(join).to_be_enabled()
    await expect(page.get_by_test_id("camera")).not_to_have_value("")
    await join.click()
    await expect(page.get_by_test_id("connection-state")).to_have_text("Connected", timeout=40_000)
    return context, page


async def receives_only(page: Page, allowed: set[str], within: float = 30.0) -> None:
    """Over one second, only mids carrying ``allowed`` people gain packets, and each of
    ``allowed`` gains video and audio packets."""
    deadline = time.monotonic() + within
    problem = ""
    while time.monotonic() < deadline:
        first: dict[str, Any] = await page.evaluate(PER_MID)
        await page.wait_for_timeout(1000)  # the counting window itself
        second: dict[str, Any] = await page.evaluate(PER_MID)
        rising = {
            (stats["owner"], stats["kind"])
            for mid, stats in second.items()
            if stats["packets"] > first.get(mid, {}).get("packets", 0)
        }
        strangers = {item for item in rising if item[0] not in allowed}
        expected = {(name, kind) for name in allowed for kind in ("audio", "video")}
        if not strangers and rising == expected:
            return
        problem = f"rising {sorted(rising, key=str)}, expected {sorted(expected)}"
        # A mid can still carry the last packets of a move that just happened; the page
        # learns the new owner from media.tracks: look again.
    raise AssertionError(problem)


async def sfu_pairs(admin: ApiClient) -> set[tuple[str, str]]:
    status, stats, _ = await admin.get("/api/admin/media")
    assert status == 200, stats
    names = {p["participant_id"]: p["display_name"] for p in stats["participants"]}
    return {
        (names[row["subscriber"]], names[row["publisher"]])
        for row in stats["subscriptions"]
        if row["kind"] == "video"
    }


def pairs(groups: list[set[str]]) -> set[tuple[str, str]]:
    return {(a, b) for group in groups for a in group for b in group if a != b}


async def wait_sfu(admin: ApiClient, groups: list[set[str]]) -> None:
    expected = pairs(groups)
    async with asyncio.timeout(15):
        while (found := await sfu_pairs(admin)) != expected:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    assert found == expected


def room_card(page: Page, name: str) -> Locator:
    """The panel's card of the room called ``name`` (its heading also shows lock and timer
    marks, so the card is found by the name alone)."""
    named = page.get_by_test_id("room-card-name").and_(page.get_by_text(name, exact=True))
    return page.get_by_test_id("room-card").filter(has=named)


async def drag_person(page: Page, user_id: str, room: str) -> None:
    """Drag ``user_id``'s row in the console onto the card of ``room`` (both in view first:
    a scroll in the middle of a drag would move the rows under the pointer)."""
    card = room_card(page, room)
    await card.scroll_into_view_if_needed()
    await person_row(page, user_id).drag_to(card)


def person_row(page: Page, user_id: str) -> Locator:
    """A person's row in the console's room cards."""
    return page.locator(f'[data-testid=panel-occupant][data-user="{user_id}"]')


async def keyboard_move(page: Page, user_id: str, room: str) -> None:
    """Select ``user_id`` in the console and move them to ``room`` with the keyboard only."""
    pick = person_row(page, user_id).get_by_test_id("pick-person")
    await pick.focus()  # where keyboard navigation starts
    await page.keyboard.press("Space")
    await expect(pick).to_have_attribute("aria-pressed", "true")
    await expect(page.get_by_test_id("selection-bar")).to_be_visible()
    target = page.get_by_test_id("move-target")
    for _ in range(40):  # back through the controls before it, as a keyboard user would
        if await target.evaluate("(node) => node === document.activeElement"):
            break
        await page.keyboard.press("Shift+Tab")
    else:
        raise AssertionError("the keyboard never reached Move to…")
    await page.keyboard.type(room)  # selects the option starting with that name
    await expect(target.locator("option:checked")).to_have_text(room)
    await page.keyboard.press("Tab")
    await expect(page.get_by_test_id("move-selected")).to_be_focused()
    await page.keyboard.press("Enter")


async def in_room(page: Page, room: str, occupants: list[str], within: float = 10) -> None:
    await expect(page.get_by_test_id("room-name")).to_have_text(room, timeout=within * 1000)
    people = page.get_by_test_id("room-occupant")
    await expect(people).to_have_count(len(occupants))
    for name in occupants:
        await expect(people.filter(has_text=name)).to_have_count(1)


async def test_breakout_rooms_in_four_browsers(
    media_browser: Browser, caucus_server: RunningServer
) -> None:
    admin, case_id, users, clients = await prepare_case(caucus_server)
    watch = Watch()
    contexts: list[BrowserContext] = []
    pages: dict[str, Page] = {}
    try:
        for key in PEOPLE:
            context, pages[key] = await enter_room(
                media_browser, caucus_server, case_id, key, watch
            )
            contexts.append(context)
        everyone = set(NAME.values())
        try:
            await asyncio.gather(
                *(
                    wait_media_rising(page, sorted(everyone - {NAME[key]}), 60)
                    for key, page in pages.items()
                )
            )
        except AssertionError:  # shown by pytest with the failure
            _, stats, _ = await admin.get("/api/admin/media")
            print("SFU statistics:", json.dumps(stats, indent=1))
            for key, page in pages.items():
                print(key, "receives", await page.evaluate(PER_MID))
            raise
        await wait_sfu(admin, [everyone])
        for key in ("a", "b", "counsel"):
            await expect(pages[key].get_by_test_id("panel")).to_be_hidden()
            await in_room(pages[key], "Main room", sorted(everyone))

        # the mediator's panel: two breakout rooms
        mediator = pages["mediator"]
        await expect(mediator.get_by_test_id("panel")).to_be_visible()
        # The live.state with a new room reaches the page before the reply to its creation,
        # so the next name is typed while that reply is on its way: it must not erase it.
        for room in ("A", "B"):
            await mediator.get_by_test_id("new-room-name").fill(room)
            await mediator.get_by_test_id("create-room").click()
            await expect(room_card(mediator, room)).to_have_count(1)
            await expect(mediator.get_by_test_id("new-room-name")).to_have_value("")

        # the mediator's own row has no "Remove"; everyone else's has
        me = await mediator.evaluate("window.caucusLive.rooms.you.user_id")
        await expect(person_row(mediator, me).get_by_test_id("remove-person")).to_have_count(0)
        await expect(
            person_row(mediator, users["b"]).get_by_test_id("remove-person")
        ).to_have_count(1)

        # A dragged onto breakout A, A's counsel moved there by keyboard, B dragged onto B
        await drag_person(mediator, users["a"], "A")
        await in_room(pages["a"], "A", [NAME["a"]])
        await expect(room_card(mediator, "A").get_by_test_id("panel-occupant")).to_have_count(1)
        await keyboard_move(mediator, users["counsel"], "A")
        await in_room(pages["a"], "A", [NAME["a"], NAME["counsel"]])
        await expect(mediator.get_by_test_id("selection-bar")).to_be_hidden()
        await drag_person(mediator, users["b"], "B")
        await in_room(pages["b"], "B", [NAME["b"]])
        await expect(room_card(mediator, "B").get_by_test_id("panel-occupant")).to_have_count(1)
        room_a = {NAME["a"], NAME["counsel"]}
        await wait_sfu(admin, [room_a, {NAME["b"]}, {NAME["mediator"]}])
        await receives_only(pages["a"], {NAME["counsel"]})
        await receives_only(pages["counsel"], {NAME["a"]})
        await receives_only(pages["b"], set())
        await receives_only(mediator, set())
        await expect(pages["b"].get_by_test_id("alone")).to_be_visible()

        # the mediator visits room A, then room B (from each card's "Visit room")
        await room_card(mediator, "A").get_by_test_id("visit-room").click()
        await in_room(pages["a"], "A", sorted(room_a | {NAME["mediator"]}))
        await wait_sfu(admin, [room_a | {NAME["mediator"]}, {NAME["b"]}])
        await receives_only(pages["a"], {NAME["counsel"], NAME["mediator"]})
        await receives_only(pages["b"], set())
        await expect(room_card(mediator, "A").get_by_test_id("you-are-here")).to_be_visible()
        await room_card(mediator, "B").get_by_test_id("visit-room").click()
        await in_room(pages["b"], "B", sorted({NAME["b"], NAME["mediator"]}))
        await wait_sfu(admin, [room_a, {NAME["b"], NAME["mediator"]}])
        await receives_only(pages["b"], {NAME["mediator"]})
        await receives_only(pages["a"], {NAME["counsel"]})

        # a message to every room
        await mediator.get_by_test_id("broadcast-text").fill("Ten minutes, then we meet again.")
        await mediator.get_by_test_id("send-broadcast").click()
        for key in ("a", "b", "counsel"):
            await expect(pages[key].get_by_test_id("broadcast")).to_contain_text("Ten minutes")

        # "ask the mediator" from room A reaches the mediator in room B: a notice, and the
        # queue of requests says who asked from which room; A's row shows the raised hand
        await pages["a"].get_by_test_id("ask").click()
        await expect(mediator.get_by_test_id("asked")).to_contain_text(NAME["a"])
        request = mediator.get_by_test_id("request")
        await expect(request).to_have_count(1)
        await expect(request).to_contain_text(NAME["a"])
        await expect(request).to_contain_text("in A")
        await expect(mediator.get_by_test_id("request-count")).to_have_text("1")
        await expect(person_row(mediator, users["a"]).locator("[data-state=hand]")).to_be_visible()
        await expect(pages["a"].get_by_test_id("ask")).to_have_text("Lower hand")
        await request.get_by_test_id("request-done").click()
        await expect(request).to_have_count(0)
        await expect(person_row(mediator, users["a"]).locator("[data-state=hand]")).to_have_count(0)
        await expect(pages["a"].get_by_test_id("ask")).to_have_text("Ask the mediator")

        # closing a room with people in it asks first; cancelled, nothing changes
        card_b = room_card(mediator, "B")
        await card_b.get_by_text("Room settings").click()
        await card_b.get_by_role("button", name="Close room").click()
        dialog = mediator.get_by_test_id("confirm-dialog")
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text("return to the main room")
        await dialog.get_by_test_id("confirm-no").click()
        await expect(dialog).to_be_hidden()
        await expect(mediator.get_by_test_id("room-card")).to_have_count(3)
        await in_room(pages["b"], "B", sorted({NAME["b"], NAME["mediator"]}))

        # a short timer on room A: the warning, then the room closes by itself
        card = room_card(mediator, "A")
        await card.locator(".minutes").fill("0.1")  # six seconds: time to see the warning
        await card.get_by_role("button", name="Start timer").click()
        await expect(pages["a"].get_by_test_id("room-timer")).to_contain_text("Time left")
        await expect(card.get_by_test_id("card-timer")).to_have_text(re.compile(r"^0:0\d left$"))
        await expect(pages["a"].get_by_test_id("timer-warning")).to_be_visible()
        await in_room(pages["a"], "Main room", sorted(room_a), within=30)
        await expect(mediator.get_by_test_id("room-card")).to_have_count(2)

        # everyone back: all four see each other again
        await mediator.get_by_test_id("bring-back").click()
        await in_room(pages["b"], "Main room", sorted(everyone))
        await wait_sfu(admin, [everyone])
        await asyncio.gather(
            *(
                wait_media_rising(page, sorted(everyone - {NAME[key]}), 60)
                for key, page in pages.items()
            )
        )

        # removing B asks first: cancelled, B stays; confirmed, B waits outside
        remove = person_row(mediator, users["b"]).get_by_test_id("remove-person")
        await remove.click()
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text(NAME["b"])
        await dialog.get_by_test_id("confirm-no").click()
        await expect(dialog).to_be_hidden()
        await expect(person_row(mediator, users["b"])).to_have_count(1)
        await remove.click()
        await dialog.get_by_test_id("confirm-yes").click()
        await expect(pages["b"].get_by_test_id("connection-state")).to_have_text(
            "The mediator removed you from the session"
        )
        await expect(mediator.get_by_test_id("waiting-person")).to_contain_text(NAME["b"])
        assert watch.problems == []
    finally:
        for context in contexts:
            await context.close()
        for client in (admin, *clients):
            await client.close()
