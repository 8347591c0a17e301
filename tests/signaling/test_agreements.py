"""Settlement agreements over HTTP: drafting, signing with a fresh proof of identity,
voiding by an edit, sealing, checking a sealed copy, and closing the case."""

from __future__ import annotations

import hashlib
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
import pytest
import sqlalchemy as sa

from rooms.storage.schema import (
    agreement_seal_log,
    agreement_signatures,
    agreements,
    audit_log,
    outbox,
    users,
)
from tests.signaling.agreements_setup import (
    CLAUSES,
    AgreementSpace,
    age_reauth,
    agreement_space,
    reauth,
)
from tests.signaling.test_case_close import files_holding, pg_dump
from tests.support.eventually import eventually
from tests.support.world import PASSWORD, ApiClient, World

pytestmark = pytest.mark.store  # about SQL: runs on every database backend


async def create(world: World, where: AgreementSpace, title: str = "Harbor Lane settlement"):
    status, body, _ = await world.clients["nina"].post(
        where.path(), {"title": title, "clauses": CLAUSES}
    )
    assert status == 201, body
    return body


async def sign(client: ApiClient, where: AgreementSpace, agreement_id: str, digest: str, name: str):
    return await client.post(
        where.path(f"/{agreement_id}/sign"),
        {"document_sha256": digest, "full_name": name, "confirm": True},
    )


async def verify(client: ApiClient, pdf: bytes, signature: bytes) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("pdf", pdf, filename="a.pdf", content_type="application/pdf")
    form.add_field("signature", signature, filename="a.sig", content_type="text/plain")
    status, body, _ = await client.request("POST", "/api/agreements/verify", data=form)
    assert status == 200, body
    return body


async def test_drafting_versions_proposals_comments_and_comparing(world: World) -> None:
    where = await agreement_space(world)
    nina, carl, paula, quinn = (world.clients[n] for n in ("nina", "carl", "paula", "quinn"))
    body = await create(world, where)
    agreement_id = body["agreement"]["id"]
    assert body["current"]["number"] == 1 and body["agreement"]["status"] == "draft"
    assert body["current"]["clauses"][0]["html"] == (
        "<p>The landlord pays <strong>EUR 4,000</strong> within 30 days.</p>\n"
    )
    path = where.path(f"/{agreement_id}")

    # Only neutrals create and edit; counsel propose; the party neither.
    status, _, _ = await paula.post(where.path(), {"title": "Mine", "clauses": CLAUSES})
    assert status == 403
    changed = [CLAUSES[0], {"heading": "Repairs", "body": "The tenant leaves by 1 April."}]
    status, body, _ = await paula.post(
        path + "/versions", {"title": "T", "clauses": changed, "based_on": 1}
    )
    assert status == 403
    status, body, _ = await carl.post(
        path + "/proposals", {"title": "Harbor Lane settlement", "clauses": changed, "based_on": 1}
    )
    assert status == 201 and body["version"] == 2, body
    assert body["current"]["number"] == 1  # a proposal is not the draft
    status, body, _ = await nina.post(
        path + "/versions",
        {"title": "Harbor Lane settlement", "clauses": changed, "based_on": 1, "adopted_from": 2},
    )
    assert status == 201 and body["version"] == 3 and body["current"]["adopted_from"] == 2
    status, body, _ = await nina.post(
        path + "/versions", {"title": "Stale", "clauses": CLAUSES, "based_on": 1}
    )
    assert status == 409 and body["error"]["code"] == "stale_version"
    status, body, _ = await paula.get(path)
    assert [(v["number"], v["kind"]) for v in body["versions"]] == [
        (1, "edit"),
        (2, "proposal"),
        (3, "edit"),
    ]

    # Comments on a clause of a version, by any member.
    status, body, _ = await paula.post(
        path + "/comments", {"version": 3, "clause": 2, "body": "April is too late."}
    )
    assert status == 201
    status, body, _ = await paula.post(path + "/comments", {"version": 3, "clause": 9, "body": "x"})
    assert status == 400 and body["error"]["code"] == "no_such_clause"
    status, body, _ = await nina.get(path + "/comments")
    assert [c["body"] for c in body["comments"]] == ["April is too late."]

    # Any two versions compare.
    status, body, _ = await nina.get(path + "/diff?from=1&to=3")
    assert status == 200 and body["changed_clauses"] == [2]
    assert {"op": "insert", "text": "The tenant leaves by 1 April."} in body["lines"]
    status, body, _ = await nina.get(path + "/diff?from=1&to=x")
    assert status == 400
    status, body, _ = await nina.get(path + "/versions/2")
    assert status == 200 and body["version"]["kind"] == "proposal"

    # A party of the case outside the space sees nothing of it, as for spaces.
    for rest in ("", "/versions/1", "/comments", "/diff?from=1&to=3"):
        status, body, _ = await quinn.get(path + rest)
        assert status == 404, rest
    status, body, _ = await quinn.get(where.path())
    assert status == 404
    status, body, _ = await world.clients["peter"].get(path)
    assert status == 404


async def test_signing_voiding_sealing_and_checking(
    world: World, tmp_path: Path, database_url: tuple[str, str | None]
) -> None:
    _url, schema = database_url
    marker = f"QUIRKSOME-{secrets.token_hex(8)}"
    where = await agreement_space(world)
    nina, paula, pia, carl = (world.clients[n] for n in ("nina", "paula", "pia", "carl"))
    services = world.server.services
    clauses = [*CLAUSES, {"heading": "Secret", "body": f"The sum stays between us: {marker}."}]
    body = await create(world, where, title=f"Settlement {marker}")
    agreement_id = body["agreement"]["id"]
    path = where.path(f"/{agreement_id}")
    status, body, _ = await paula.post(
        path + "/comments", {"version": 1, "clause": 2, "body": f"agreed {marker}"}
    )
    assert status == 201

    signatories = [where.ids["paula"], where.ids["pia"]]
    status, body, _ = await nina.post(
        path + "/publish", {"version": 1, "signatory_ids": [where.ids["quinn"]]}
    )
    assert status == 400 and body["error"]["code"] == "invalid_signatories"
    status, body, _ = await nina.post(
        path + "/versions", {"title": f"Settlement {marker}", "clauses": clauses, "based_on": 1}
    )
    assert status == 201
    status, body, _ = await nina.post(
        path + "/publish", {"version": 2, "signatory_ids": signatories}
    )
    assert status == 200 and body["agreement"]["status"] == "final", body
    digest = body["final"]["document_sha256"]
    assert body["final"]["canonical_text"].startswith(f"Settlement {marker}\n\n1. Payment\n")

    # Without a proof of identity, or with one older than 5 minutes: refused.
    status, body, _ = await sign(paula, where, agreement_id, digest, "Paula Party")
    assert status == 403 and body["error"]["code"] == "reauth_required", body
    status, body, _ = await paula.post("/api/account/reauth", {"password": "wrong one"})
    assert status == 401 and body["error"]["code"] == "invalid_credentials"
    await reauth(paula)
    await age_reauth(world, paula, 301)
    status, body, _ = await sign(paula, where, agreement_id, digest, "Paula Party")
    assert status == 403 and body["error"]["code"] == "reauth_required"
    assert body["error"]["max_age_seconds"] == 300

    # A member of the space who is not a signatory cannot sign, proof or not.
    await reauth(carl)
    status, body, _ = await sign(carl, where, agreement_id, digest, "Carl Counsel")
    assert status == 403 and body["error"]["code"] == "not_signatory"
    status, body, _ = await sign(nina, where, agreement_id, digest, "Nina")
    assert status == 403
    # The text reviewed must be the text published.
    await reauth(paula)
    status, body, _ = await sign(paula, where, agreement_id, "0" * 64, "Paula Party")
    assert status == 409 and body["error"]["code"] == "text_changed"
    status, body, _ = await sign(paula, where, agreement_id, digest, "Paula Party")
    assert status == 200 and body["sealed"] is False, body
    # The proof is used up by the signature.
    mine = next(s for s in body["signatures"] if s["user_id"] == where.ids["paula"])
    assert mine["signed"] and mine["auth_method"] == "password"
    assert mine["typed_name"] == "Paula Party" and mine["document_sha256"] == digest
    assert mine["client_address"] == "127.0.0.1"
    status, body, _ = await sign(paula, where, agreement_id, digest, "Paula Party")
    assert status == 409 and body["error"]["code"] == "already_signed"

    # An edit after the first signature voids it, and both parties see that.
    edited = [*clauses[:2], {"heading": "Secret", "body": f"Changed: {marker}."}]
    status, body, _ = await nina.post(
        path + "/versions", {"title": f"Settlement {marker}", "clauses": edited, "based_on": 2}
    )
    assert status == 201 and body["voided_signatures"] == [where.ids["paula"]]
    for party in (paula, pia):
        status, body, _ = await party.get(path)
        assert body["agreement"]["status"] == "draft" and body["final"] is None
        voided = [s for s in body["signatures"] if s["voided"]]
        assert {s["user_id"] for s in voided} == set(signatories)
        assert [s["user_id"] for s in voided if s["signed"]] == [where.ids["paula"]]
        assert all(s["voided_by_version"] == 3 for s in voided)
        event = next(e for e in body["events"] if e["kind"] == "signatures_voided")
        assert event["detail"] == {
            "version": 2,
            "by_version": 3,
            "user_ids": [where.ids["paula"]],
        }
        status, messages, _ = await party.get(
            f"/api/cases/{where.case_id}/spaces/{where.space_id}/messages"
        )
        assert "signatures of version 2" in messages["messages"][-1]["body"]
    await reauth(pia)
    status, body, _ = await sign(pia, where, agreement_id, digest, "Pia Party")
    assert status == 409 and body["error"]["code"] == "not_final"

    # Published again; both sign (pia with two-factor sign-in on); the last one seals.
    status, body, _ = await nina.post(
        path + "/publish", {"version": 3, "signatory_ids": signatories}
    )
    digest = body["final"]["document_sha256"]
    accounts = services.accounts
    secret, _ = await accounts.totp_begin(where.ids["pia"])
    await accounts.totp_confirm(where.ids["pia"], pyotp.TOTP(secret).now())
    status, body, _ = await pia.post("/api/account/reauth", {"password": PASSWORD})
    assert status == 400 and body["error"]["code"] == "code_required"
    assert (await reauth(pia, code=next_totp(secret)))["method"] == "password+totp"
    await reauth(paula)
    status, body, _ = await sign(paula, where, agreement_id, digest, "Paula Party")
    assert status == 200 and body["sealed"] is False
    status, body, _ = await sign(pia, where, agreement_id, digest, "  Pia   Party ")
    assert status == 200 and body["sealed"] is True, body
    assert body["agreement"]["status"] == "sealed"
    pias = next(
        s
        for s in body["signatures"]
        if s["user_id"] == where.ids["pia"] and s["signed"] and not s["voided"]
    )
    assert pias["auth_method"] == "password+totp" and pias["typed_name"] == "Pia Party"
    status, body, _ = await nina.post(
        path + "/versions", {"title": "Late", "clauses": CLAUSES, "based_on": 3}
    )
    assert status == 409 and body["error"]["code"] == "agreement_sealed"

    # The sealed copy: its PDF and signature check out; one changed byte does not.
    status, pdf, response = await paula.get(path + "/sealed.pdf")
    assert status == 200 and response.headers["Content-Type"] == "application/pdf"
    assert pdf.startswith(b"%PDF")
    status, signature, _ = await paula.get(path + "/sealed.sig")
    assert status == 200 and signature.startswith("Caucus sealed agreement signature v1\n")
    signature = signature.encode()
    anyone = world.make_client()
    result = await verify(anyone, pdf, signature)
    assert result["valid"] and result["agreement_id"] == agreement_id and result["version"] == 3
    assert result["document_sha256"] == digest and result["logged"] is True
    assert len(result["signed_at"]) == 2
    broken = bytearray(pdf)
    broken[len(broken) // 2] ^= 0x01
    result = await verify(anyone, bytes(broken), signature)
    assert result == {
        "valid": False,
        "error": {"code": "pdf_mismatch", "message": result["error"]["message"]},
    }
    broken_sig = bytearray(signature)
    broken_sig[-10] = ord("0") if broken_sig[-10] != ord("0") else ord("1")
    result = await verify(anyone, pdf, bytes(broken_sig))
    assert not result["valid"] and result["error"]["code"] == "bad_signature"
    status, key, _ = await anyone.get("/api/agreements/seal-key")
    assert status == 200 and key["algorithm"] == "Ed25519"
    assert key["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")

    # Nothing of the agreement's text is readable on disk while the case is open.
    needle = marker.encode()
    assert files_holding(tmp_path, needle) == []
    if schema is not None:
        assert needle not in await pg_dump(schema)

    # Closing: the list, the download check, the neutral's confirmation, mailed copies.
    async with services.store.begin() as conn:
        await conn.execute(
            sa.update(users)
            .where(users.c.id.in_(signatories))
            .values(email=sa.func.lower(users.c.username) + "@example.org", email_verified_at=1.0)
        )
    case_path = f"/api/cases/{where.case_id}"
    status, listing, _ = await nina.get(case_path + "/agreements/closing")
    assert status == 200 and listing["all_downloaded"] is False
    (sealed,) = listing["agreements"]
    downloads = {s["user_id"]: s["downloaded"] for s in sealed["signatories"]}
    assert downloads == {where.ids["paula"]: True, where.ids["pia"]: False}
    status, _, _ = await paula.get(case_path + "/agreements/closing")
    assert status == 403
    status, body, _ = await nina.post(case_path + "/close", {"confirm_title": "Case A"})
    assert status == 409 and body["error"]["code"] == "agreements_not_downloaded"
    assert body["error"]["missing"][0]["user_id"] == where.ids["pia"]
    status, body, _ = await nina.post(
        case_path + "/close", {"confirm_title": "Case A", "confirm_undownloaded_agreements": True}
    )
    assert status == 200, body

    # Each signatory was mailed the sealed copy; the case's agreement rows are gone, the
    # hash-only log line stays.
    async with services.store.connect() as conn:
        mails = (
            await conn.execute(sa.select(outbox).where(outbox.c.kind == "agreement_sealed_copy"))
        ).all()
        assert sorted(m.recipient for m in mails) == ["paula@example.org", "pia@example.org"]
        for table in (agreements, agreement_signatures):
            count = (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar()
            assert count == 0, table.name
        log_line = (await conn.execute(sa.select(agreement_seal_log))).one()
        trail = (await conn.execute(sa.select(audit_log))).all()
    assert log_line.agreement_id == agreement_id and log_line.pdf_sha256 == result_pdf_hash(pdf)
    assert all(marker not in str(row.detail) for row in trail)

    # The copy downloaded before still checks out, without the case; nothing of its text
    # is left (the mailed copies went out; their parameters are emptied once delivered).
    async def delivered() -> bool:
        async with services.store.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(outbox.c.status).where(outbox.c.kind == "agreement_sealed_copy")
                )
            ).all()
        return all(row.status == "sent" for row in rows)

    await eventually(delivered)
    result = await verify(world.make_client(), pdf, signature)
    assert result["valid"] and result["logged"] is True
    assert files_holding(tmp_path, needle) == []
    if schema is not None:
        assert needle not in await pg_dump(schema)


def result_pdf_hash(pdf: bytes) -> str:
    return hashlib.sha256(pdf).hexdigest()


def next_totp(secret: str) -> str:
    """The code of the next 30-s step (one step of drift is accepted): enrolment used the
    current one, and a code is accepted once."""
    return pyotp.TOTP(secret).at(time.time() + 30)
