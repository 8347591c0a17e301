"""Closing a case: nothing of its content is readable on disk while it is open, and after
it is closed its rows, blobs and data key are gone for good; only an audit line stays."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from rooms.storage.schema import (
    audit_log,
    case_keys,
    case_members,
    cases,
    invitations,
    messages,
    space_files,
    space_members,
    spaces,
    users,
)
from tests.samples import pdf_bytes
from tests.signaling.spaces_setup import connect_spaces, open_spaces
from tests.signaling.test_spaces_events import NS, Inbox
from tests.support.databases import PG_URL
from tests.support.world import PASSWORD, ApiClient, World

pytestmark = pytest.mark.store  # about SQL: runs on every database backend


def files_holding(root: Path, needle: bytes) -> list[str]:
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and needle in path.read_bytes()
    )


async def pg_dump(schema: str) -> bytes:
    assert PG_URL and shutil.which("pg_dump"), "pg_dump and the PostgreSQL URL are needed"
    result = await asyncio.to_thread(
        subprocess.run,
        ["pg_dump", "--no-owner", f"--schema={schema}", PG_URL],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return result.stdout


async def upload(client: ApiClient, path: str, name: str, data: bytes) -> dict:
    if client.csrf is None:
        await client.session()
    status, body, _ = await client.request(
        "POST", path, None, data=data, headers={"X-File-Name": quote(name)}
    )
    assert status == 201, body
    return body["file"]


async def test_no_footprint_open_or_closed(
    world: World, tmp_path: Path, database_url: tuple[str, str | None]
) -> None:
    _url, schema = database_url
    marker = f"QUIXOTIC-{secrets.token_hex(8)}"
    spaces_ = await open_spaces(world)
    case_id = spaces_.case_id
    nina, paula = world.clients["nina"], world.clients["paula"]
    services = world.server.services

    # Content with the marker everywhere a user can put it.
    await nina.request("PATCH", spaces_.path(spaces_.shared), {"name": f"Talks {marker}"})
    files_path = spaces_.path(spaces_.shared, "/files")
    text = await upload(paula, files_path, f"notes {marker}.txt", f"{marker}\n".encode() * 50)
    await upload(paula, files_path, f"offer-{marker}.pdf", pdf_bytes(marker))
    status, body, _ = await paula.post(
        spaces_.path(spaces_.private, "/messages"), {"body": f"my limit is {marker}"}
    )
    assert status == 201
    sio = await connect_spaces(world, "paula")
    inbox = Inbox(sio)
    where = {"case_id": case_id, "space_id": spaces_.shared}
    assert (await sio.call("space.subscribe", where, namespace=NS, timeout=10))["ok"]
    reply = await sio.call("message.send", {**where, "body": "draft"}, namespace=NS, timeout=10)
    edit = {**where, "message_id": reply["message"]["id"], "body": f"edited {marker}"}
    assert (await sio.call("message.edit", edit, namespace=NS, timeout=10))["ok"]

    # The members read it back...
    status, listing, _ = await paula.get(files_path)
    assert {f["name"] for f in listing["files"]} == {f"notes {marker}.txt", f"offer-{marker}.pdf"}
    async with paula.http.get(paula.base + f"{files_path}/{text['id']}") as response:
        assert marker.encode() in await response.read()
    # ...but nothing on disk or in the database shows it.
    needle = marker.encode()
    assert files_holding(tmp_path, needle) == []
    if schema is not None:
        assert needle not in await pg_dump(schema)

    async with services.store.connect() as conn:
        wrapped = (
            await conn.execute(
                sa.select(case_keys.c.wrapped_key).where(case_keys.c.case_id == case_id)
            )
        ).scalar_one()
    wrapped = bytes(wrapped)
    case_dir = services.vault.case_dir(case_id)
    assert len(list(case_dir.iterdir())) == 2

    # Only the case's neutral closes it, and only with the title typed again.
    status, body, _ = await nina.post(f"/api/cases/{case_id}/close", {"confirm_title": "Case B"})
    assert status == 400 and body["error"]["code"] == "confirmation_mismatch"
    await world.accept(await world.invite("nina", case_id, "co_neutral"), "cora")
    for who in ("paula", "cora"):
        status, _, _ = await world.clients[who].post(
            f"/api/cases/{case_id}/close", {"confirm_title": "Case A"}
        )
        assert status == 403, who
    # Carl is also an observer of Case B: his account outlives Case A.
    async with services.store.begin() as conn:
        carl_id = (
            await conn.execute(sa.select(users.c.id).where(users.c.username == "carl"))
        ).scalar_one()
        await conn.execute(
            sa.insert(case_members).values(
                case_id=world.cases["Case B"],
                user_id=carl_id,
                role="observer",
                display_name="Carl",
                joined_at=0.0,
            )
        )
    status, body, _ = await nina.post(f"/api/cases/{case_id}/close", {"confirm_title": " Case A "})
    assert status == 200 and body == {"closed": True, "case_id": case_id}

    # Open subscriptions end; the case answers like one that never existed.
    removed = await inbox.wait("space.removed")
    assert removed == {**where, "reason": "case_closed"}
    for who in ("nina", "carl"):
        status, _, _ = await world.clients[who].get(f"/api/cases/{case_id}")
        assert status == 404
        status, body, _ = await world.clients[who].get("/api/cases")
        assert status == 200 and case_id not in str(body)
    # Paula and Cora had accounts only for this case: they are gone, sessions and all.
    # Their browsers are told why, once: Paula's by an API call, Cora's by the session.
    status, body, _ = await paula.get("/api/cases")
    assert status == 401 and body["error"]["code"] == "account_removed", body
    status, body, _ = await world.clients["cora"].get("/api/session")
    assert status == 200 and body["stage"] == "anonymous", body
    assert body["ended"] == "account_removed"
    status, body, _ = await world.clients["cora"].get("/api/session")
    assert body["ended"] is None
    for who in ("paula", "cora"):
        status, body, _ = await world.clients[who].get("/api/cases")
        assert status == 401 and body["error"]["code"] == "unauthenticated", body
        status, body, _ = await world.make_client().post(
            "/api/login", {"username": who, "password": PASSWORD}
        )
        assert status == 401 and body["error"]["code"] == "invalid_credentials", body
    await sio.disconnect()

    # Rows, blobs and the data key are gone.
    assert not case_dir.exists()
    async with services.store.connect() as conn:
        names = set((await conn.execute(sa.select(users.c.username))).scalars())
        assert {"nina", "carl", "otto"} <= names and not {"paula", "cora"} & names
        for table, column in (
            (cases, cases.c.id),
            (case_members, case_members.c.case_id),
            (invitations, invitations.c.case_id),
            (case_keys, case_keys.c.case_id),
            (spaces, spaces.c.case_id),
        ):
            count = await conn.execute(sa.select(sa.func.count()).where(column == case_id))
            assert count.scalar() == 0, table.name
        for table in (messages, space_files, space_members):
            assert (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar() == 0
        trail = (
            await conn.execute(sa.select(audit_log).where(audit_log.c.case_id == case_id))
        ).all()
    closing = [row for row in trail if row.action == "case.close"]
    assert len(closing) == 1 and closing[0].detail == {"accounts_deleted": 2}
    assert closing[0].actor_id == world.users["nina"].id
    assert all(marker not in str(row.detail) for row in trail)

    # Nothing left on disk: not the content, not the wrapped key (SQLite after VACUUM).
    assert files_holding(tmp_path, needle) == []
    assert files_holding(tmp_path, wrapped) == []
    if schema is not None:
        dump = await pg_dump(schema)
        assert needle not in dump
        assert wrapped.hex().encode() not in dump
    # Case B is untouched.
    status, _, _ = await world.clients["otto"].get(f"/api/cases/{world.cases['Case B']}")
    assert status == 200


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_vacuum_leaves_no_deleted_rows_in_the_database_files(
    world: World, tmp_path: Path
) -> None:
    marker = f"VESTIGE-{secrets.token_hex(8)}".encode()
    services = world.server.services
    async with services.store.begin() as conn:
        await conn.execute(
            sa.insert(audit_log).values(
                at=0, action="note", case_id=None, detail={"x": marker.decode()}
            )
        )
    assert files_holding(tmp_path, marker) != []
    async with services.store.begin() as conn:
        await conn.execute(sa.delete(audit_log).where(audit_log.c.action == "note"))
    await services.store.vacuum()
    assert files_holding(tmp_path, marker) == []
