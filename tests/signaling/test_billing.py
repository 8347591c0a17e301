"""Fees, invoices and offline payments through the HTTP API: terms and their acceptance,
invoices per party that always add up to the fee, gapless numbers under concurrency,
who sees and pays what, credit notes, the ledger (its CSV gives a spreadsheet no formula),
and invoices outliving a closed case with only what an invoice must hold."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from rooms.storage.schema import invoices, payments, users
from rooms.storage.store import Store
from signaling.http.api.billing import _cell
from signaling.services import Services
from tests.signaling.test_case_close import files_holding, pg_dump
from tests.support.world import World

pytestmark = pytest.mark.store  # about SQL: runs on every database backend


async def user_id(world: World, username: str) -> str:
    return next(
        u.id for u in await world.server.services.accounts.list_users() if u.username == username
    )


async def second_party(world: World) -> str:
    """Pia joins Case A as its second party."""
    await world.accept(await world.invite("nina", world.cases["Case A"], "party"), "pia")
    return await user_id(world, "pia")


def terms(paula: str, pia: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "currency": "USD",
        "rate_kind": "hourly",
        "rate": 30_000,  # USD 300.00 an hour
        "deposit": 0,
        "cancellation_hours": 48,
        "cancellation_terms": "Sessions cancelled 48 hours ahead are not charged.",
        "tax_basis_points": 825,
        "payment_days": 14,
        "seller_name": "Nina Neutral Mediation",
        "seller_address": "1 Court Square\nSpringfield",
        "shares": [
            {"user_id": paula, "basis_points": 6667},
            {"user_id": pia, "basis_points": 3333},
        ],
        "remainder_to": paula,
    }
    body.update(overrides)
    return body


async def agreed(world: World) -> tuple[str, str, str]:
    """Case A with terms both parties accepted; answers (case id, paula's id, pia's id)."""
    case_id = world.cases["Case A"]
    paula, pia = await user_id(world, "paula"), await second_party(world)
    status, body, _ = await world.clients["nina"].request(
        "PUT", f"/api/cases/{case_id}/fees", terms(paula, pia)
    )
    assert status == 200, body
    for who, name in (("paula", "Paula Party"), ("pia", "Pia Party")):
        status, body, _ = await world.clients[who].get(f"/api/cases/{case_id}/fees")
        agreement = body["agreement"]
        status, body, _ = await world.clients[who].post(
            f"/api/cases/{case_id}/fees/accept",
            {
                "version": agreement["version"],
                "digest": agreement["digest"],
                "billing_name": name,
                "billing_address": f"{name}\n2 Elm Street",
            },
        )
        assert status == 200, body
    return case_id, paula, pia


LINES = [
    {
        "description": "Session of 1 March 2027 (90 minutes)",
        "quantity_thousandths": 1500,
        "unit_amount": 30_000,
    },
    {"description": "Document review", "quantity_thousandths": 1000, "unit_amount": 1},
]


async def test_terms_are_validated_and_accepted_per_version(world: World) -> None:
    case_id = world.cases["Case A"]
    nina = world.clients["nina"]
    paula, pia = await user_id(world, "paula"), await second_party(world)
    path = f"/api/cases/{case_id}/fees"
    bad = [
        terms(
            paula,
            pia,
            shares=[
                {"user_id": paula, "basis_points": 6000},
                {"user_id": pia, "basis_points": 3000},
            ],
        ),
        terms(paula, pia, rate=-100),
        terms(paula, pia, rate=12.5),
        terms(paula, pia, currency="XXX"),
        terms(paula, pia, remainder_to=await user_id(world, "carl")),
        terms(
            paula,
            pia,
            shares=[
                {"user_id": paula, "basis_points": 10000},
                {"user_id": await user_id(world, "carl"), "basis_points": 0},
            ],
        ),
        terms(paula, pia, tax_basis_points=9000),
    ]
    for body in bad:
        status, got, _ = await nina.request("PUT", path, body)
        assert status == 400, (body, got)
    status, got, _ = await world.clients["paula"].request("PUT", path, terms(paula, pia))
    assert status == 403
    status, got, _ = await nina.request("PUT", path, terms(paula, pia))
    assert status == 200 and got["agreement"]["version"] == 1
    first = got["agreement"]
    # The neutral changes the terms: an acceptance of what was shown before is refused.
    status, got, _ = await nina.request("PUT", path, terms(paula, pia, rate=35_000))
    assert got["agreement"]["version"] == 2
    status, got, _ = await world.clients["paula"].post(
        f"{path}/accept",
        {"version": 1, "digest": first["digest"], "billing_name": "Paula"},
    )
    assert status == 409 and got["error"]["code"] == "terms_changed"
    status, got, _ = await world.clients["paula"].post(
        f"{path}/accept",
        {"version": 2, "digest": "0" * 64, "billing_name": "Paula"},
    )
    assert status == 409 and got["error"]["code"] == "terms_changed"
    status, got, _ = await world.clients["carl"].post(
        f"{path}/accept", {"version": 2, "digest": first["digest"], "billing_name": "Carl"}
    )
    assert status == 403  # counsel does not accept for the party
    # No invoice before every party accepted.
    status, got, _ = await nina.post(f"/api/cases/{case_id}/invoices", {"lines": LINES})
    assert status == 409 and got["error"]["code"] == "terms_not_accepted"


async def test_invoices_per_party_add_up_to_the_fee_and_are_paid(world: World) -> None:
    case_id, paula, pia = await agreed(world)
    nina = world.clients["nina"]
    bad_lines = [
        [{**LINES[0], "unit_amount": -1}],
        [{**LINES[0], "unit_amount": 100.5}],
        [{**LINES[0], "quantity_thousandths": 0}],
        [],
    ]
    for lines in bad_lines:
        status, got, _ = await nina.post(f"/api/cases/{case_id}/invoices", {"lines": lines})
        assert status == 400, (lines, got)
    status, got, _ = await nina.post(f"/api/cases/{case_id}/invoices", {"lines": LINES})
    assert status == 201, got
    issued = {i["payer_id"]: i for i in got["invoices"]}
    fee = 45_000 + 1  # 1.5 h at 300.00, and 0.01
    fee_tax = (fee * 825 + 5000) // 10000  # half-up: 37.13
    assert sum(i["subtotal"] for i in issued.values()) == fee
    assert sum(i["tax_amount"] for i in issued.values()) == fee_tax
    # 66.67 % of 45,001 is 30,001.1667: paula gets the floor plus the leftover cent.
    assert issued[pia]["subtotal"] == 45_001 * 3333 // 10000
    assert issued[paula]["subtotal"] == fee - issued[pia]["subtotal"]
    numbers = sorted(i["number"] for i in issued.values())
    assert numbers == ["NINA-00001", "NINA-00002"]

    # Each party sees their own; counsel sees the client's; the neutral sees both.
    seen = {}
    for who in ("paula", "pia", "carl", "nina"):
        status, got, _ = await world.clients[who].get(f"/api/cases/{case_id}/invoices")
        seen[who] = {i["payer_id"] for i in got["invoices"]}
    assert seen == {"paula": {paula}, "pia": {pia}, "carl": {paula}, "nina": {paula, pia}}
    status, _, _ = await world.clients["pia"].get(f"/api/invoices/{issued[paula]['id']}")
    assert status == 404
    status, _, _ = await world.clients["peter"].get(f"/api/invoices/{issued[paula]['id']}/pdf")
    assert status == 404

    # The PDF holds the right total.
    async with world.clients["paula"].http.get(
        world.server.url + f"/api/invoices/{issued[paula]['id']}/pdf"
    ) as response:
        assert response.status == 200 and response.content_type == "application/pdf"
        text = "".join(
            page.extract_text() for page in PdfReader(io.BytesIO(await response.read())).pages
        )
    total = issued[paula]["total"]
    assert issued[paula]["number"] in text
    assert f"{total // 100:,}.{total % 100:02d}" in text

    # Offline payment by the neutral: only of what is due, only of this case's invoices.
    path = f"/api/cases/{case_id}/invoices/{issued[pia]['id']}/payments"
    for amount in (0, -5, issued[pia]["total"] + 1):
        status, got, _ = await nina.post(path, {"amount": amount, "note": "cheque"})
        assert status == 400, (amount, got)
    status, got, _ = await world.clients["otto"].post(
        f"/api/cases/{world.cases['Case B']}/invoices/{issued[pia]['id']}/payments",
        {"amount": 100, "note": "x"},
    )
    assert status == 404
    status, got, _ = await nina.post(path, {"amount": 1000, "note": "cheque 1041"})
    assert status == 201 and got["invoice"]["status"] == "open"
    status, got, _ = await nina.post(
        path, {"amount": issued[pia]["total"] - 1000, "note": "cheque 1042"}
    )
    assert status == 201 and got["invoice"]["status"] == "paid", got
    assert got["invoice"]["paid"] == issued[pia]["total"]
    # Card payment is off here: paying by card is refused, never half-made.
    status, got, _ = await world.clients["paula"].post(f"/api/invoices/{issued[paula]['id']}/pay")
    assert status == 409 and got["error"]["code"] == "card_payments_off"

    # A credit note reverses an open invoice; the invoice itself never changes.
    status, got, _ = await nina.post(f"/api/cases/{case_id}/invoices/{issued[paula]['id']}/credit")
    assert status == 201, got
    credit = got["invoice"]
    assert credit["kind"] == "credit_note" and credit["total"] == -issued[paula]["total"]
    assert credit["number"] == "NINA-00003" and credit["credits_invoice"] == issued[paula]["id"]
    status, got, _ = await nina.post(f"/api/cases/{case_id}/invoices/{issued[pia]['id']}/credit")
    assert status == 409  # paid: refund first

    # The ledger across cases, also as CSV (names cannot become formulas).
    status, got, _ = await nina.get("/api/billing/ledger")
    assert [i["number"] for i in got["invoices"]] == ["NINA-00001", "NINA-00002", "NINA-00003"]
    async with nina.http.get(world.server.url + "/api/billing/ledger?format=csv") as response:
        csv_text = await response.text()
    assert response.content_type == "text/csv" and "NINA-00003" in csv_text
    status, _, _ = await world.clients["paula"].get("/api/billing/ledger")
    assert status == 403


async def test_invoice_numbers_have_no_gaps_under_concurrency(
    world: World, database_url: tuple[str, str | None]
) -> None:
    case_id, _paula, _pia = await agreed(world)
    services = world.server.services
    member = await services.cases.membership(case_id, world.users["nina"].id)
    assert member is not None
    url, schema = database_url
    nodes = [services] + [
        Services.build(services.settings, store=Store(url, schema=schema)) for _ in range(2)
    ]
    try:
        await asyncio.gather(
            *(node.invoices.issue(case_id, member, LINES) for node in nodes for _ in range(3))
        )
    finally:
        for node in nodes[1:]:
            await node.store.close()
    async with services.store.connect() as conn:
        sequences = sorted((await conn.execute(sa.select(invoices.c.sequence))).scalars())
    assert sequences == list(range(1, 19))  # 9 issues x 2 parties, no gap, no repeat


async def test_closing_the_case_keeps_the_invoices_with_their_fields_only(
    world: World, tmp_path: Path, database_url: tuple[str, str | None]
) -> None:
    case_id, _paula, _pia = await agreed(world)
    nina = world.clients["nina"]
    marker = "OBSIDIAN-FACTS-4471"
    await nina.post(f"/api/cases/{case_id}/spaces", {"name": f"Talks {marker}"})
    status, got, _ = await nina.post(f"/api/cases/{case_id}/invoices", {"lines": LINES})
    assert status == 201
    paid_id = got["invoices"][0]["id"]
    await nina.post(
        f"/api/cases/{case_id}/invoices/{paid_id}/payments",
        {"amount": got["invoices"][0]["total"], "note": "bank transfer"},
    )
    status, got, _ = await nina.post(f"/api/cases/{case_id}/close", {"confirm_title": "Case A"})
    assert status == 200, got
    services = world.server.services
    async with services.store.connect() as conn:
        kept = (await conn.execute(sa.select(invoices))).all()
        paid = (await conn.execute(sa.select(payments))).all()
    assert len(kept) == 2 and len(paid) == 1
    allowed = {
        "id",
        "neutral_id",
        "number",
        "sequence",
        "kind",
        "credits_invoice",
        "case_id",
        "case_reference",
        "payer_id",
        "payer_name",
        "payer_address",
        "seller_name",
        "seller_address",
        "currency",
        "lines",
        "share_basis_points",
        "subtotal",
        "tax_basis_points",
        "tax_amount",
        "total",
        "paid",
        "status",
        "issued_at",
        "due_at",
        "retain_until",
    }
    for row in kept:
        assert set(row._mapping) == allowed
        text = str(row._asdict())
        assert "Case A" not in text and marker not in text  # no title, no content
        assert row.case_reference.startswith("CASE-")
        assert row.retain_until - row.issued_at > 9.9 * 365 * 86400
    # The no-footprint scan: nothing of the case's content on disk or in a dump.
    assert files_holding(tmp_path, marker.encode()) == []
    _url, schema = database_url
    if schema is not None:
        assert marker.encode() not in await pg_dump(schema)
    # The neutral still has the ledger; the parties' accounts went with the case.
    status, got, _ = await nina.get("/api/billing/ledger")
    assert len(got["invoices"]) == 2
    async with services.store.connect() as conn:
        names = set((await conn.execute(sa.select(users.c.username))).scalars())
    assert "paula" not in names
    # After the retention period they go too.
    services.invoices.clock = lambda: time.time() + 11 * 365.25 * 86400
    assert await services.invoices.purge_expired() == 2


async def test_the_draft_offers_the_deposit_and_the_sessions_held(world: World) -> None:
    case_id = world.cases["Case A"]
    services = world.server.services
    paula, pia = await user_id(world, "paula"), await second_party(world)
    nina = world.clients["nina"]
    status, body, _ = await nina.request(
        "PUT", f"/api/cases/{case_id}/fees", terms(paula, pia, deposit=50_000)
    )
    assert status == 200, body
    member = await services.cases.membership(case_id, world.users["nina"].id)
    assert member is not None
    start = float(int(time.time()) // 60 * 60 + 2 * 86400)
    await services.case_sessions.schedule(case_id, member, start, 90)
    status, body, _ = await nina.get(f"/api/cases/{case_id}/invoices/draft")
    assert [line["description"] for line in body["lines"]] == [
        "Deposit due before the first session"
    ]
    services.invoices.clock = lambda: start + 3 * 3600  # the session took place
    status, body, _ = await nina.get(f"/api/cases/{case_id}/invoices/draft")
    deposit, session = body["lines"]
    assert deposit["amount"] == 50_000
    assert session["quantity_thousandths"] == 1500 and session["amount"] == 45_000
    status, _, _ = await world.clients["paula"].get(f"/api/cases/{case_id}/invoices/draft")
    assert status == 403


async def accepted_as(world: World, case_id: str, names: dict[str, str], rate: int) -> None:
    """New fee terms for Case A (``rate`` makes them a new version), accepted by each party
    under the billing name given for them (``names``: username to name)."""
    paula, pia = await user_id(world, "paula"), await user_id(world, "pia")
    status, body, _ = await world.clients["nina"].request(
        "PUT", f"/api/cases/{case_id}/fees", terms(paula, pia, rate=rate)
    )
    assert status == 200, body
    for who, name in names.items():
        status, body, _ = await world.clients[who].get(f"/api/cases/{case_id}/fees")
        agreement = body["agreement"]
        status, body, _ = await world.clients[who].post(
            f"/api/cases/{case_id}/fees/accept",
            {"version": agreement["version"], "digest": agreement["digest"], "billing_name": name},
        )
        assert status == 200, (name, body)


def guarded(text: str) -> str:
    """``text`` as a spreadsheet must be given it: with a quote in front if it could be
    taken for a formula."""
    starts = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
    return "'" + text if text.startswith(starts) else text


async def test_the_ledger_csv_gives_a_spreadsheet_no_formula(world: World) -> None:
    """OWASP's rule for CSV injection: a text cell beginning with ``=``, ``+``, ``-``, ``@``,
    a tab or a carriage return is written with a single quote in front, so a spreadsheet
    shows it as text; every text cell is quoted. The numbers Caucus writes itself (amounts
    in minor units, the time of issue) are written bare, so a spreadsheet adds them up: a
    credit note's total stays the negative number it is."""
    case_id = world.cases["Case A"]
    nina = world.clients["nina"]
    await second_party(world)
    hostile = ['=HYPERLINK("http://x","y")', "+1+1", "-2", "@SUM(A1)", "\t=1", "\r=1"]
    # full-width signs, read as the signs by a spreadsheet set up for CJK input
    hostile += ['\uff1dHYPERLINK("http://x","y")', "\uff20SUM(A1)"]
    ordinary = ["Pia Party", 'Smith, "Junior"\nHoldings']
    names = hostile + ordinary
    for round_, (paula_name, pia_name) in enumerate(zip(names[::2], names[1::2], strict=True)):
        await accepted_as(
            world, case_id, {"paula": paula_name, "pia": pia_name}, rate=30_000 + round_
        )
        status, got, _ = await nina.post(f"/api/cases/{case_id}/invoices", {"lines": LINES})
        assert status == 201, got
    # The neutral names the case in mails after a reference that could be a formula too.
    status, got, _ = await nina.post(
        f"/api/cases/{case_id}/mail-naming", {"reference": "-A1+B1", "title_in_mail": False}
    )
    assert status == 200, got
    status, got, _ = await nina.post(f"/api/cases/{case_id}/invoices", {"lines": LINES})
    assert status == 201, got
    status, got, _ = await nina.post(
        f"/api/cases/{case_id}/invoices/{got['invoices'][0]['id']}/credit"
    )
    assert status == 201 and got["invoice"]["total"] < 0, got

    status, got, _ = await nina.get("/api/billing/ledger")
    invoices = {i["number"]: i for i in got["invoices"]}
    async with nina.http.get(world.server.url + "/api/billing/ledger?format=csv") as response:
        assert response.status == 200 and response.content_type == "text/csv"
        text = await response.text()
    header, *rows = list(csv.reader(io.StringIO(text, newline="")))
    assert header[3:5] == ["case_reference", "payer"]
    assert len(rows) == len(invoices) == len(names) + 3
    for number, _kind, issued_at, reference, payer, currency, total, paid, status_ in rows:
        invoice = invoices[number]
        # A name the party typed: guarded when a spreadsheet would take it for a formula
        # (a leading tab or carriage return is trimmed as surrounding space when the name
        # is given, and what is left is guarded), unchanged otherwise.
        assert payer == guarded(invoice["payer_name"])
        assert reference == guarded(invoice["case_reference"])
        assert (currency, status_) == (invoice["currency"], invoice["status"])
        # amounts in the currency's units, exact; the time of issue in UTC, to the second
        assert (Decimal(total), Decimal(paid)) == (
            Decimal(invoice["total"]) / 100,
            Decimal(invoice["paid"]) / 100,
        )
        issued = datetime.strptime(issued_at, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        assert abs(issued.timestamp() - invoice["issued_at"]) < 1
    assert {row[3] for row in rows} == {"'-A1+B1", f"CASE-{case_id[:8].upper()}"}
    payers = {row[4] for row in rows}
    assert {
        '\'=HYPERLINK("http://x","y")',
        "'+1+1",
        "'-2",
        "'@SUM(A1)",
        "'=1",
        "Pia Party",
        'Smith, "Junior"\nHoldings',
    } <= payers
    # On the wire: each guarded cell quoted with its quote in front; the credit note's
    # total a bare negative number, as the product wrote it.
    for cell in ('"\'=HYPERLINK(""http://x"",""y"")"', '"\'+1+1"', '"\'-2"', '"\'@SUM(A1)"'):
        assert cell in text
    assert '"\'-A1+B1"' in text
    credit = next(i for i in invoices.values() if i["kind"] == "credit_note")
    credit_total = Decimal(credit["total"]) / 100
    assert f",{credit_total:.2f},0.00," in text and credit["total"] < 0
    # Read the way a spreadsheet is told to: quoted cells are text, bare ones numbers;
    # every text cell is quoted, every number Caucus writes is bare.
    typed_rows = list(csv.reader(io.StringIO(text, newline=""), quoting=csv.QUOTE_NONNUMERIC))
    for row in typed_rows[1:]:
        kinds = [type(cell) for cell in row]
        assert kinds == [str, str, str, str, str, str, float, float, str], row
    # The guard itself also covers a leading tab or carriage return (which no name
    # reaches the ledger with).
    assert [_cell(t) for t in ("\t=1", "\r=1", "x=1", "")] == ["'\t=1", "'\r=1", "x=1", ""]
    # a line feed, and the full-width signs a spreadsheet set up for CJK input reads as
    # the signs; other full-width text and a sign later in the cell stay as they are
    for sign in ("\n", "\uff1d", "\uff0b", "\uff0d", "\uff20"):
        assert _cell(sign + "SUM(A1)") == "'" + sign + "SUM(A1)"
    assert [_cell(t) for t in ("\uff21=1", "a\n=1")] == ["\uff21=1", "a\n=1"]
