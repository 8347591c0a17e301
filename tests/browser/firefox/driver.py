"""Firefox ESR for the browser tests: ``driver.mjs`` (puppeteer-core over WebDriver BiDi)
run as a subprocess and spoken to in JSON lines. Playwright's Firefox needs its own patched
build, which cannot be downloaded here; Debian's firefox-esr is driven as it ships.

`Firefox` owns the subprocess; `FirefoxPage` is one page in its own browser context (its
own cookies), with the few operations the tests use: go to a URL, fill, click, wait for a
selector (and text), run a function in the page, wait until a function answers true,
upload files, take a screenshot."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

DRIVER = Path(__file__).with_name("driver.mjs")
FIREFOX = "/usr/bin/firefox-esr"

#: How long one operation may take unless told otherwise, in milliseconds.
DEFAULT_TIMEOUT_MS = 15_000


class FirefoxError(AssertionError):
    """An operation the driver could not carry out (a selector that never appeared, a
    function that threw): the test fails with the driver's message."""


class Firefox:
    """One headless Firefox ESR behind ``driver.mjs``; `open` gives a fresh page."""

    def __init__(self, process: asyncio.subprocess.Process, version: str) -> None:
        self.version = version
        self.__process = process
        self.__ids = itertools.count(1)
        self.__waiting: dict[int, asyncio.Future[Any]] = {}
        self.__pages: list[FirefoxPage] = []
        self.__reader = asyncio.create_task(self.__read())

    @classmethod
    async def launch(cls) -> Firefox:
        process = await asyncio.create_subprocess_exec(
            "node",
            str(DRIVER),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={"CAUCUS_FIREFOX": FIREFOX, "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
            limit=16 * 1024 * 1024,
        )
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), 90)
        hello = json.loads(first or b"{}")
        if not hello.get("ok"):
            raise FirefoxError(f"Firefox did not start: {first!r}")
        return cls(process, hello["value"])

    async def __read(self) -> None:
        stdout = self.__process.stdout
        assert stdout is not None
        while line := await stdout.readline():
            reply = json.loads(line)
            waiting = self.__waiting.pop(reply.get("id"), None)
            if waiting is None or waiting.done():
                continue
            if reply["ok"]:
                waiting.set_result(reply["value"])
            else:
                waiting.set_exception(FirefoxError(reply["error"]))
        for waiting in self.__waiting.values():
            if not waiting.done():
                waiting.set_exception(FirefoxError("the Firefox driver exited"))

    async def call(self, op: str, **arguments: Any) -> Any:
        """Send one operation and wait for its reply."""
        stdin = self.__process.stdin
        assert stdin is not None
        number = next(self.__ids)
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.__waiting[number] = reply
        stdin.write(json.dumps({"id": number, "op": op, **arguments}).encode() + b"\n")
        await stdin.drain()
        return await reply

    async def open(
        self, base_url: str, *, viewport: tuple[int, int] | None = None, init_script: str = ""
    ) -> FirefoxPage:
        """A page in a fresh browser context; relative URLs are taken from ``base_url``."""
        size = {"width": viewport[0], "height": viewport[1]} if viewport else {}
        page_id = await self.call("open", init_script=init_script or None, **size)
        page = FirefoxPage(self, page_id, base_url)
        self.__pages.append(page)
        return page

    async def close_pages(self) -> None:
        """Close every page still open (each with its browser context)."""
        pages, self.__pages = self.__pages, []
        for page in pages:
            await page.close()

    async def close(self) -> None:
        stdin = self.__process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        try:
            await asyncio.wait_for(self.__process.wait(), 30)
        except TimeoutError:
            self.__process.kill()
            await self.__process.wait()
        await self.__reader


class FirefoxPage:
    """One Firefox page in its own browser context (see `Firefox.open`)."""

    def __init__(self, firefox: Firefox, page_id: str, base_url: str) -> None:
        self.__firefox = firefox
        self.__id = page_id
        self.__base = base_url.rstrip("/")
        self.closed = False

    async def __call(self, op: str, **arguments: Any) -> Any:
        return await self.__firefox.call(op, page=self.__id, **arguments)

    async def goto(self, path: str) -> int | None:
        url = path if "://" in path else self.__base + path
        status: int | None = await self.__call("goto", url=url)
        return status

    async def url(self) -> str:
        url: str = await self.__call("url")
        return url

    async def fill(self, selector: str, value: str, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> None:
        await self.__call("fill", selector=selector, value=value, timeout=timeout_ms)

    async def click(self, selector: str, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> None:
        await self.__call("click", selector=selector, timeout=timeout_ms)

    async def wait(
        self,
        selector: str,
        *,
        text: str | None = None,
        state: str | None = None,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
    ) -> None:
        """Until an element matching ``selector`` exists (``state``: "visible" or
        "hidden"), or, given ``text``, one whose text contains it."""
        await self.__call("wait", selector=selector, text=text, state=state, timeout=timeout_ms)

    async def wait_url(self, part: str, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> str:
        url: str = await self.__call("wait_url", part=part, timeout=timeout_ms)
        return url

    async def evaluate(self, function: str, *args: Any) -> Any:
        """The value of ``function`` (the source of a function, async or not) called in the
        page with ``args`` (JSON values)."""
        return await self.__call("evaluate", function=function, args=list(args))

    async def wait_function(
        self, function: str, *args: Any, timeout_ms: int = DEFAULT_TIMEOUT_MS
    ) -> None:
        await self.__call("wait_function", function=function, args=list(args), timeout=timeout_ms)

    async def upload(
        self, selector: str, paths: list[Path], timeout_ms: int = DEFAULT_TIMEOUT_MS
    ) -> None:
        await self.__call(
            "upload", selector=selector, paths=[str(p) for p in paths], timeout=timeout_ms
        )

    async def screenshot(self, path: Path) -> Path:
        await self.__call("screenshot", path=str(path))
        return path

    async def problems(self) -> list[str]:
        """Uncaught page errors and CSP refusals seen on this page so far."""
        found: list[str] = await self.__call("problems")
        return found

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.__call("close")
