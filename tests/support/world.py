"""The in-process world of the tests: the HTTPS app on a loopback port, a browser-like API
client, and a small world of users and cases, each signed in through the real HTTP API."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio
from aiohttp import web

from signaling.cookies import SESSION_COOKIE
from signaling.services import Services

PASSWORD = "a sound passphrase 42"

INTAKE = {
    "process": "mediation",
    "title": "Harbor Lane lease dispute",
    "case_type": "commercial lease",
    "description": "Unpaid rent and repairs",
    "parties": [
        {"name": "Ada Tenant", "side": "claimant"},
        {"name": "Bo Landlord", "side": "respondent"},
    ],
    "attorneys": [{"name": "Cy Counsel", "represents": "Ada Tenant"}],
    "filed_in_court": True,
    "cause_number": "2026-CV-0042",
    "jurisdiction": "District Court",
    "requested_dates": ["2026-12-01"],
}


@dataclass
class RunningServer:
    """The whole Caucus app served in the test's process."""

    url: str
    app: web.Application
    services: Services


class ApiClient:
    """A browser-like API client: keeps cookies, sends the CSRF token on writes."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False),
            cookie_jar=aiohttp.CookieJar(unsafe=True),
        )
        self.csrf: str | None = None

    async def session(self) -> dict[str, Any]:
        async with self.http.get(self.base + "/api/session") as response:
            body = await response.json()
        self.csrf = body["csrf_token"]
        return body

    async def request(
        self, method: str, path: str, json: Any = None, *, csrf: bool = True, **kwargs: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = dict(kwargs.pop("headers", {}))
        if csrf and method not in ("GET", "HEAD"):
            if self.csrf is None:
                await self.session()
            headers.setdefault("X-CSRF-Token", self.csrf)
        async with self.http.request(
            method, self.base + path, json=json, headers=headers, **kwargs
        ) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                raw = await response.read()
                try:
                    body = raw.decode()
                except UnicodeDecodeError:
                    body = raw  # a PDF, an image
            return response.status, body, response

    async def get(self, path: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.request("GET", path, **kw)

    async def post(
        self, path: str, json: Any = None, **kw: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.request("POST", path, json if json is not None else {}, **kw)

    def cookie(self, name: str) -> str | None:
        for morsel in self.http.cookie_jar:
            if morsel.key == name:
                return morsel.value
        return None

    async def close(self) -> None:
        await self.http.close()


@dataclass
class World:
    """Users and cases made through the API of ``server``; ``clients`` by user name."""

    server: RunningServer
    make_client: Any
    users: dict[str, Any] = field(default_factory=dict)
    clients: dict[str, ApiClient] = field(default_factory=dict)
    cases: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # other objects tests made, by name

    async def sign_in(self, name: str) -> ApiClient:
        client = self.make_client()
        status, body, _ = await client.post("/api/login", {"username": name, "password": PASSWORD})
        assert status == 200, body
        assert body["stage"] == "active"
        self.clients[name] = client
        return client

    async def add_staff(self, name: str, role: str) -> ApiClient:
        self.users[name] = await self.server.services.accounts.create_user(
            name, PASSWORD, role=role
        )
        return await self.sign_in(name)

    async def open_case(self, neutral: str, title: str) -> str:
        status, body, _ = await self.clients[neutral].post("/api/cases", {**INTAKE, "title": title})
        assert status == 201, body
        self.cases[title] = body["case"]["id"]
        return body["case"]["id"]

    async def invite(
        self, neutral: str, case_id: str, role: str, represents: str | None = None
    ) -> str:
        status, body, _ = await self.clients[neutral].post(
            f"/api/cases/{case_id}/invitations",
            {"role": role, "display_name": f"{role} person", "represents": represents},
        )
        assert status == 201, body
        return body["token"]

    async def accept(self, token: str, name: str) -> ApiClient:
        client = self.make_client()
        status, body, _ = await client.post(
            f"/api/invitations/{token}/accept", {"username": name, "password": PASSWORD}
        )
        assert status == 201, body
        self.clients[name] = client
        self.users[name] = body
        return client


async def build_world(server: RunningServer, make_client: Any) -> World:
    """Admin root; neutrals nina (Case A) and otto (Case B); parties paula (A) and peter
    (B); carl, counsel for paula in Case A."""
    w = World(server, make_client)
    await w.add_staff("root", "admin")
    await w.add_staff("nina", "neutral")
    await w.add_staff("otto", "neutral")
    case_a = await w.open_case("nina", "Case A")
    case_b = await w.open_case("otto", "Case B")
    await w.accept(await w.invite("nina", case_a, "party"), "paula")
    await w.accept(await w.invite("otto", case_b, "party"), "peter")
    paula_id = next(
        m["user_id"]
        for m in (await w.clients["nina"].get(f"/api/cases/{case_a}"))[1]["members"]
        if m["role"] == "party"
    )
    await w.accept(await w.invite("nina", case_a, "counsel", represents=paula_id), "carl")
    return w


async def connect(world: World, client: ApiClient | None, namespace: str) -> socketio.AsyncClient:
    """A socket.io client connected to ``namespace`` with ``client``'s session cookie, or
    with none for ``None``."""
    sio = socketio.AsyncClient(ssl_verify=False, reconnection=False)
    headers = {}
    if client is not None:
        headers["Cookie"] = f"{SESSION_COOKIE}={client.cookie(SESSION_COOKIE)}"
    await sio.connect(
        world.server.url,
        headers=headers,
        namespaces=[namespace],
        transports=["websocket"],
        wait_timeout=10,
    )
    return sio


def tls_context_without_verification() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
