"""Hostile HTTP input: absurd Range headers, loosely typed bodies and payloads, malformed
requests that used to log a traceback each."""

from __future__ import annotations

import os
import re
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
import socketio

from signaling.http.api.spaces import RangeNotSatisfiable, byte_range
from tests.signaling.spaces_setup import open_spaces
from tests.signaling.test_space_files import upload
from tests.support.server import start_serve_sync
from tests.support.world import World, connect, tls_context_without_verification

ROOT = Path(__file__).resolve().parents[2]
HUGE = "9" * 5000


def refusals(metrics_text: str, limit: str) -> float:
    match = re.search(rf'^caucus_refusals_total{{limit="{limit}"}} (\S+)$', metrics_text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_absurd_ranges_answer_416_or_the_file_never_500(world: World) -> None:
    spaces = await open_spaces(world)
    paula, root = world.clients["paula"], world.clients["root"]
    data = os.urandom(35_000).hex().encode()
    status, body = await upload(paula, spaces, spaces.private, "notes.txt", data)
    assert status == 201, body
    url = paula.base + spaces.path(spaces.private, f"/files/{body['file']['id']}")
    before = refusals((await root.get("/metrics"))[1], "range")
    for header in (f"bytes={HUGE}-", f"bytes={HUGE}-{HUGE[:3000]}", f"bytes= {HUGE} - 1"):
        async with paula.http.get(url, headers={"Range": header}) as r:
            assert r.status == 416, header[:20]
            assert r.headers["Content-Range"] == f"bytes */{len(data)}"
            assert (await r.json())["error"]["code"] == "range_not_satisfiable"
    # A huge end or suffix covers the whole file.
    for header in (f"bytes=0-{HUGE}", f"bytes=-{HUGE}"):
        async with paula.http.get(url, headers={"Range": header}) as r:
            assert r.status == 206 and await r.read() == data
            assert r.headers["Content-Range"] == f"bytes 0-{len(data) - 1}/{len(data)}"
    # Garbage is ignored: the whole file.
    garbage = ("bytes=\u0663-\u0665", "bytes=0x10-", "bytes=--5", "bytes=" + "-" * 3000, "b\u00ff")
    for header in garbage:
        async with paula.http.get(url, headers={"Range": header}) as r:
            assert r.status == 200 and await r.read() == data, header[:20]
    after = refusals((await root.get("/metrics"))[1], "range")
    assert after - before == 3


@pytest.mark.parametrize(
    "header",
    [
        f"bytes={HUGE}-",
        f"bytes=0-{HUGE}",
        f"bytes=-{HUGE}",
        "bytes=" + "0" * 5000 + "1-2",
        "bytes=1-" + "0" * 5000 + "2",
        "bytes=\u0663-\u0665",
        "bytes=\x00-1",
        "",
        "bytes",
        "bytes=-",
        "bytes=5-3",
    ],
)
def test_the_range_parser_answers_every_header(header: str) -> None:
    try:
        answer = byte_range(header, 1000)
    except RangeNotSatisfiable:
        return
    assert answer is None or (0 <= answer[0] <= answer[1] <= 999)


async def test_loosely_typed_bodies_are_refused(world: World) -> None:
    """``{"archived": "yes"}`` used to archive a space: every body is strictly typed."""
    spaces = await open_spaces(world)
    nina, paula = world.clients["nina"], world.clients["paula"]
    case_id = spaces.case_id
    space = spaces.path(spaces.private)
    for change in ({"archived": "yes"}, {"archived": 1}, {"archived": "true"}, {"name": 5}):
        status, body, _ = await nina.request("PATCH", space, change)
        assert (status, body["error"]["code"]) == (400, "invalid_input"), change
        assert "Input should be" in body["error"]["message"]
    status, body, _ = await nina.get(space)
    assert body["space"]["archived"] is False
    refused: list[tuple[Any, str, dict[str, Any]]] = [
        (paula, spaces.path(spaces.private, "/read"), {"seq": "3"}),
        (paula, spaces.path(spaces.private, "/read"), {"seq": 3.5}),
        (paula, spaces.path(spaces.private, "/messages"), {"body": ["hello"]}),
        (nina, f"/api/cases/{case_id}/invitations", {"role": "party", "display_name": 7}),
        (
            nina,
            f"/api/cases/{case_id}/invitations",
            {"role": "party", "display_name": "Pat", "expires_in_hours": "24"},
        ),
        (nina, "/api/cases", {"process": "mediation", "title": "T", "filed_in_court": "no"}),
        (nina, f"/api/cases/{case_id}/spaces", {"name": "S", "member_ids": "everyone"}),
        (world.clients["root"], "/api/admin/users", {"username": 12345, "role": "neutral"}),
        (paula, "/api/account/password", {"current_password": 1, "new_password": 2}),
        (world.make_client(), "/api/login", {"username": "nina", "password": 123456789012}),
        (world.make_client(), "/api/login", {"username": ["nina"], "password": "x" * 12}),
    ]
    for client, path, payload in refused:
        status, body, _ = await client.post(path, payload)
        assert (status, body["error"]["code"]) == (400, "invalid_input"), (path, payload, body)


async def test_loosely_typed_socket_payloads_are_refused(world: World) -> None:
    case_id = world.cases["Case A"]
    media = await connect(world, world.clients["nina"], "/media")
    presence = await connect(world, world.clients["paula"], "/case")

    async def call(sio: socketio.AsyncClient, namespace: str, event: str, payload: Any) -> Any:
        return await sio.call(event, payload, namespace=namespace, timeout=15)

    try:
        for event, payload in (
            ("live.room.lock", {"case_id": case_id, "room_id": "main", "locked": "yes"}),
            ("live.room.sharing", {"case_id": case_id, "room_id": "main", "allowed": 0}),
            ("live.timer.start", {"case_id": case_id, "room_id": "main", "seconds": "60"}),
            ("live.board.stroke", {"case_id": case_id, "points": [["0.1", "0.2"]]}),
            ("media.join", {"case_id": 12345}),
        ):
            reply = await call(media, "/media", event, payload)
            assert reply["ok"] is False and reply["error"]["code"] == "invalid_payload", event
        reply = await call(presence, "/case", "case.join", {"case_id": ["x"]})
        assert reply["error"]["code"] == "invalid_payload"
        reply = await call(presence, "/case", "case.join", {"case_id": case_id})
        assert reply["ok"] is True
    finally:
        await media.disconnect()
        await presence.disconnect()


MALFORMED = {
    "header without a colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
    "request line too long": b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad content length": b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "bad chunk size": (
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    ),
}


def send_raw(port: int, data: bytes) -> bytes:
    context: ssl.SSLContext = tls_context_without_verification()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(data)
            answer = b""
            try:
                while chunk := tls.recv(65536):
                    answer += chunk
            except (ConnectionError, ssl.SSLError, TimeoutError):
                pass
            return answer


def test_a_malformed_request_logs_one_warning_line_without_traceback(tmp_path: Path) -> None:
    served = start_serve_sync(
        tmp_path / "data", workers=0, env={"CAUCUS_LOG_LEVEL": "INFO", "PYTHONPATH": str(ROOT)}
    )
    port = served.ready.port
    try:
        for data in MALFORMED.values():
            assert send_raw(port, data).split(b"\r\n")[0].endswith(b" 400 Bad Request")
        assert send_raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    finally:
        _, err = served.stop()
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if "malformed HTTP request" in line]
    assert len(lines) == len(MALFORMED), err[-3000:]
    for line in lines:
        assert " WARNING aiohttp.server: malformed HTTP request refused " in line
        assert "client='127.0.0.1'" in line and "reason=" in line and "status=400" in line
        assert len(line) < 400
