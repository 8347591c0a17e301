"""``caucus loadtest --setup``: accounts and cases for a load test, made over the API.

An admin's credentials create one neutral; the neutral opens one case per room and
invites one party per simulated participant; each invitation is accepted with a fresh
username and a random password.  Everything is written to a JSON file (mode 0600) that
``caucus loadtest`` reads::

    {"version": 1, "url": ..., "neutral": {"username", "password"},
     "rooms": [{"case_id", "title", "accounts": [{"username", "password",
                                                  "display_name"}, ...]}, ...]}

The admin's sign-in goes through the stages the server asks for: a TOTP code (give the
code, or the base32 secret to compute it) and, for an account that must change its
one-time password (the first admin of a new server), ``new_password`` is set.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp
import pyotp

FILE_VERSION = 1


class SetupError(Exception):
    """A step of the set-up failed; ``code`` is the server's machine code when it gave one."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message


class ApiSession:
    """A signed-in HTTP client of the Caucus API: keeps the cookies, sends the CSRF token."""

    def __init__(self, base_url: str, *, insecure: bool = False, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False if insecure else True),
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies for an IP address host
            timeout=aiohttp.ClientTimeout(total=timeout),
        )
        self._csrf: str | None = None

    async def __aenter__(self) -> ApiSession:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._http.close()

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        headers = {}
        if method != "GET":
            if self._csrf is None:
                self._csrf = (await self.request("GET", "/api/session"))["csrf_token"]
            headers["X-CSRF-Token"] = self._csrf
        try:
            async with self._http.request(
                method, self.base_url + path, json=body, headers=headers
            ) as response:
                payload = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SetupError("unreachable", f"{method} {path} failed: {exc!r}") from exc
        if response.status >= 400:
            error = payload.get("error", {}) if isinstance(payload, dict) else {}
            raise SetupError(
                error.get("code", f"http_{response.status}"),
                f"{method} {path}: {error.get('message', response.reason)}",
            )
        return payload

    async def text(self, path: str) -> str:
        """``GET path`` as text (e.g. ``/metrics``)."""
        try:
            async with self._http.get(self.base_url + path) as response:
                body = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SetupError("unreachable", f"GET {path} failed: {exc!r}") from exc
        if response.status >= 400:
            raise SetupError(f"http_{response.status}", f"GET {path}: {response.reason}")
        return body

    async def sign_in(
        self,
        username: str,
        password: str,
        *,
        totp: str | None = None,
        new_password: str | None = None,
    ) -> None:
        """Sign in, passing the TOTP and forced-password-change stages when asked."""
        stage = (
            await self.request("POST", "/api/login", {"username": username, "password": password})
        )["stage"]
        if stage == "totp_required":
            if not totp:
                raise SetupError("totp_required", f"{username} needs a TOTP code (--admin-totp)")
            code = totp if totp.isdigit() else pyotp.TOTP(totp).now()
            stage = (await self.request("POST", "/api/login/totp", {"code": code}))["stage"]
        if stage == "password_change_required":
            if not new_password:
                raise SetupError(
                    "password_change_required",
                    f"{username} must choose a new password first: sign in once in a browser, "
                    "or pass --admin-new-password",
                )
            body = {"current_password": password, "new_password": new_password}
            stage = (await self.request("POST", "/api/account/password", body))["stage"]
        if stage != "active":
            raise SetupError("stage_incomplete", f"sign-in of {username} stopped at {stage}")


def _password() -> str:
    return secrets.token_urlsafe(18)


async def create_accounts(
    url: str,
    *,
    rooms: int,
    per_room: int,
    admin_user: str,
    admin_password: str,
    admin_totp: str | None = None,
    admin_new_password: str | None = None,
    insecure: bool = False,
    progress=None,
) -> dict[str, Any]:
    """Create a neutral, ``rooms`` cases and ``per_room`` party accounts in each."""
    run = secrets.token_hex(3)
    say = progress or (lambda _text: None)
    async with ApiSession(url, insecure=insecure) as admin:
        await admin.sign_in(
            admin_user, admin_password, totp=admin_totp, new_password=admin_new_password
        )
        neutral_name = f"lt{run}-neutral"
        created = await admin.request(
            "POST",
            "/api/admin/users",
            {"username": neutral_name, "role": "neutral", "display_name": "Load test neutral"},
        )
    neutral_password = _password()
    result: dict[str, Any] = {
        "version": FILE_VERSION,
        "url": url,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "neutral": {"username": neutral_name, "password": neutral_password},
        "rooms": [],
    }
    async with ApiSession(url, insecure=insecure) as neutral:
        await neutral.sign_in(
            neutral_name, created["one_time_password"], new_password=neutral_password
        )
        for index in range(rooms):
            title = f"Load test room {index + 1} ({run})"
            case = (
                await neutral.request(
                    "POST", "/api/cases", {"process": "mediation", "title": title}
                )
            )["case"]
            accounts = []
            for number in range(per_room):
                display_name = f"Load r{index + 1} p{number + 1}"
                invitation = await neutral.request(
                    "POST",
                    f"/api/cases/{case['id']}/invitations",
                    {"role": "party", "display_name": display_name},
                )
                username, password = f"lt{run}-r{index + 1}-p{number + 1}", _password()
                async with ApiSession(url, insecure=insecure) as guest:
                    await guest.request(
                        "POST",
                        f"/api/invitations/{invitation['token']}/accept",
                        {"username": username, "password": password},
                    )
                accounts.append(
                    {"username": username, "password": password, "display_name": display_name}
                )
            result["rooms"].append({"case_id": case["id"], "title": title, "accounts": accounts})
            say(f"room {index + 1}/{rooms}: case {case['id']}, {per_room} accounts")
    return result


def write_accounts(path: Path, accounts: dict[str, Any]) -> None:
    """Write the file readable by its owner only (it holds passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as f:
        json.dump(accounts, f, indent=2)
        f.write("\n")


def read_accounts(path: Path) -> dict[str, Any]:
    with open(path) as f:
        accounts = json.load(f)
    if accounts.get("version") != FILE_VERSION:
        raise SetupError("bad_file", f"{path} is not a load-test accounts file")
    return accounts
