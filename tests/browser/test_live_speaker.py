"""The active speaker and connection quality in real browsers: three people in one live
room, their microphones fake but chosen by the test (two Chromiums play a loud voice-like
sound, one plays silence; the page's own mute button silences a loud one).  The server
decides who speaks from the audio levels in the packets (nothing decoded) and says so
(``media.speaker``): the silent person's page in speaker view puts whoever is loud on the
stage, the others' galleries mark that tile, and every tile carries a connection badge."""

from __future__ import annotations

import json
import math
import re
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.pages import Watch
from tests.browser.test_live_rooms import NAME, enter_room, prepare_case

if TYPE_CHECKING:
    from conftest import RunningServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

RATE = 48_000


def write_wav(path: Path, samples: list[float]) -> Path:
    """16-bit mono PCM at 48 kHz (Chromium's fake microphone plays it in a loop)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(
            b"".join(int(s * 32767).to_bytes(2, "little", signed=True) for s in samples)
        )
    return path


def voice_like(seconds: float = 4.0) -> list[float]:
    """A loud voiced sound (harmonics of 150 Hz) in syllables of about 3 per second: loud
    enough for the audio level (-dBov) to say speech, and not so steady that the
    browser's noise suppression takes it for noise."""
    samples = []
    for n in range(int(RATE * seconds)):
        t = n / RATE
        envelope = 0.55 + 0.45 * math.sin(2 * math.pi * 3 * t)
        tone = sum(math.sin(2 * math.pi * 150 * k * t) / k for k in (1, 2, 3, 4, 5))
        samples.append(0.45 * envelope * tone / 2.3)
    return samples


async def launch(browser: Browser, wav: Path) -> Browser:
    """Another Chromium whose fake microphone plays ``wav``."""
    return await browser.browser_type.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}"],
    )


async def participant_id(page: Page) -> str:
    found = await page.evaluate("() => window.caucusLive.participantId")
    assert isinstance(found, str) and found
    return found


async def shows_speaker(page: Page, expected: str, *, told: bool = True) -> None:
    """``page`` holds ``expected`` as the room's active speaker; ``told``: the server's
    latest ``media.speaker`` on it names them (a page that joined after the decision
    learns it from its join reply and views instead)."""
    await page.wait_for_function(
        """([expected, told]) => {
          const live = window.caucusLive;
          const events = live.speakerEvents;
          const last = events.length ? events[events.length - 1].participant_id : null;
          return live.speaker === expected && (!told || last === expected);
        }""",
        arg=[expected, told],
        timeout=30_000,
    )


class SocketTap:
    """A page's socket.io connection routed through Playwright: everything passes both
    ways, and the test can add a message as the server would send it."""

    def __init__(self) -> None:
        self.routes: list[WebSocketRoute] = []

    async def attach(self, page: Page) -> None:
        await page.route_web_socket(re.compile(r"/socket\.io/"), self._route)

    def _route(self, ws: WebSocketRoute) -> None:
        ws.connect_to_server()  # no handlers: messages are passed on as they are
        self.routes.append(ws)

    def push(self, event: str, payload: object) -> None:
        """A socket.io EVENT of ``/media`` (engine.io message "4", socket.io event "2")."""
        assert self.routes, "the page opened no socket"
        self.routes[-1].send("42/media," + json.dumps([event, payload]))


def tile(page: Page, pid: str):
    return page.locator(f'[data-testid=remote-tile][data-participant="{pid}"]')


async def test_the_loud_person_is_the_speaker_everyone_sees(
    media_browser: Browser, caucus_server: RunningServer, tmp_path: Path
) -> None:
    admin, case_id, _users, clients = await prepare_case(caucus_server)
    loud_wav = write_wav(tmp_path / "voice.wav", voice_like())
    silent_wav = write_wav(tmp_path / "silence.wav", [0.0] * RATE)
    loud = await launch(media_browser, loud_wav)
    silent = await launch(media_browser, silent_wav)
    watch = Watch()
    try:
        # Nadia (loud) and Boris (silent) first: Nadia speaks
        _, nadia = await enter_room(loud, caucus_server, case_id, "mediator", watch)
        tap = SocketTap()
        _, boris = await enter_room(
            silent, caucus_server, case_id, "b", watch, before_join=tap.attach
        )
        nadia_id, boris_id = await participant_id(nadia), await participant_id(boris)
        await boris.get_by_test_id("view-toggle").click()
        await expect(boris.get_by_test_id("view-toggle")).to_have_attribute("aria-pressed", "true")
        await shows_speaker(nadia, nadia_id)
        await shows_speaker(boris, nadia_id, told=False)  # decided before Boris came
        await expect(boris.get_by_test_id("stage").get_by_test_id("remote-tile")).to_have_attribute(
            "data-participant", nadia_id
        )
        await expect(tile(boris, nadia_id)).to_have_attribute("data-active-speaker", "true")
        await expect(nadia.get_by_test_id("self-tile")).to_have_attribute(
            "data-active-speaker", "true"
        )

        # Nadia mutes with the page's button; Maria joins from the loud Chromium: she speaks
        await nadia.get_by_test_id("mute").click()
        await expect(nadia.get_by_test_id("mute")).to_have_attribute("aria-pressed", "true")
        _, maria = await enter_room(loud, caucus_server, case_id, "a", watch)
        maria_id = await participant_id(maria)
        for page in (nadia, boris, maria):
            await shows_speaker(page, maria_id)
        await expect(boris.get_by_test_id("stage").get_by_test_id("remote-tile")).to_have_attribute(
            "data-participant", maria_id
        )
        await expect(tile(nadia, maria_id)).to_have_attribute("data-active-speaker", "true")
        await expect(tile(nadia, boris_id)).to_have_attribute("data-active-speaker", "false")
        await expect(tile(boris, nadia_id)).to_have_attribute("data-active-speaker", "false")

        # Maria mutes and Nadia speaks again: the stage and the galleries follow
        await maria.get_by_test_id("mute").click()
        await nadia.get_by_test_id("mute").click()
        await expect(nadia.get_by_test_id("mute")).to_have_attribute("aria-pressed", "false")
        for page in (nadia, boris, maria):
            await shows_speaker(page, nadia_id)
        await expect(boris.get_by_test_id("stage").get_by_test_id("remote-tile")).to_have_attribute(
            "data-participant", nadia_id
        )
        await expect(tile(maria, nadia_id)).to_have_attribute("data-active-speaker", "true")
        await expect(tile(maria, nadia_id)).to_contain_text("speaking now")
        # the server said so in order, each change once and numbered: Nadia, Maria, Nadia
        # to Nadia, there from the start; Maria and Nadia to Boris, who came after the first
        for page, expected in (
            (nadia, [nadia_id, maria_id, nadia_id]),
            (boris, [maria_id, nadia_id]),
        ):
            told = await page.evaluate("() => window.caucusLive.speakerEvents")
            assert [event["participant_id"] for event in told] == expected, told
            seqs = [event["seq"] for event in told]
            assert seqs == sorted(set(seqs)), told

        # every tile shows how well that person's connection carries the call
        for page, others in ((boris, (nadia_id, maria_id)), (nadia, (maria_id, boris_id))):
            for pid in others:
                badge = tile(page, pid).get_by_test_id("quality")
                await expect(badge).to_have_count(1, timeout=20_000)
                await expect(badge).to_contain_text("Connection:")
                assert await badge.get_attribute("data-quality") in ("good", "fair", "poor")
                assert (await badge.get_attribute("title") or "").startswith("Connection: ")
            await expect(page.get_by_test_id("self-tile").get_by_test_id("quality")).to_have_count(
                1
            )
        # the tiles' heights reached the server: one per received video, in device pixels
        await boris.wait_for_function(
            """() => {
              const sent = window.caucusLive.sentTiles;
              return sent && sent.length === 2 && sent.every((tile) => tile.height > 0);
            }"""
        )
        # nothing is withheld on this link: pictures, not names in their place
        await expect(tile(boris, nadia_id)).to_have_attribute("data-paused", "false")
        await expect(tile(boris, nadia_id)).to_contain_text(NAME["mediator"])

        # a video the server withholds from Boris for bandwidth (as media.quality says,
        # here written into his socket): his page shows her name and "Poor connection"
        # instead of a frozen picture, and her picture again when it is sent again
        camera = await boris.evaluate(
            """(owner) => window.caucusLive.tracks.find((track) =>
                 track.participant_id === owner && track.kind === "video").producer_id""",
            nadia_id,
        )
        quality = await boris.evaluate("() => window.caucusLive.quality")
        withheld = tile(boris, nadia_id)
        tap.push("media.quality", {"participants": quality, "paused": [camera]})
        await expect(withheld).to_have_attribute("data-paused", "true")
        await expect(withheld.locator("[data-state=paused]")).to_have_text("Poor connection")
        await expect(withheld.locator("video")).to_be_hidden()
        await expect(withheld.get_by_test_id("tile-name")).to_have_text(NAME["mediator"])
        await expect(withheld.get_by_test_id("tile-name")).to_be_visible()
        tap.push("media.quality", {"participants": quality, "paused": []})
        await expect(withheld).to_have_attribute("data-paused", "false")
        await expect(withheld.locator("video")).to_be_visible()
        await expect(withheld.locator("[data-state=paused]")).to_have_count(0)
        assert watch.problems == []
    finally:
        await loud.close()
        await silent.close()
        for client in [admin, *clients]:
            await client.close()
