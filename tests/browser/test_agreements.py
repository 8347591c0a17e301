"""A settlement agreement in real browsers, from the first draft to the check years later,
with `caucus serve` sending real mail (aiosmtpd): the neutral drafts in a space of two
parties and one party's counsel and publishes version 1; Paula signs it (after being told
she must confirm her identity first); counsel comments and proposes a change; the neutral
compares, takes the proposal over (version 3), which voids Paula's signature in front of
everybody, and publishes version 3; Paula signs again (a confirmation made over five minutes
ago is refused), Pia signs with her password and an authenticator code, and the agreement is
sealed. Paula downloads the sealed PDF and its signature in the browser; `caucus
verify-agreement` and the public check page accept the pair and refuse it with one byte
changed; the neutral closes the case from the close page (confirming that Pia never
downloaded hers), both are mailed their copy, the downloaded copy still verifies, and
nothing of the agreement's text is left in the server's data directory."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pyotp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from rooms.accounts.sessions import token_hash
from signaling.cookies import SESSION_COOKIE
from tests.browser.conftest import RunningServer
from tests.browser.pages import (
    Watch,
    active_admin,
    new_neutral,
    open_case,
    signed_in_page,
    snapshot,
)
from tests.signaling.test_case_close import files_holding
from tests.support.eventually import eventually
from tests.support.server import REPO
from tests.support.smtp import MailServer
from tests.support.world import ApiClient

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

PASSWORDS = {
    "nina": "willow-compass-harbour-2207",
    "paula": "copper-lantern-meadow-5521",
    "pia": "quiet-harbour-orchid-7730",
    "carl": "amber-granite-violin-4419",
}
NAMES = {"paula": "Paula Lindqvist", "pia": "Pia Harbor", "carl": "Carl Counsel"}
TITLE = "Harbor Bakery v. Lindqvist Supplies"
MARKER = "QUINCUNX-7Z3K"


@pytest_asyncio.fixture(loop_scope="session")
async def clients() -> AsyncIterator[dict[str, ApiClient]]:
    """The API clients a test signs in, by username; closed after it."""
    made: dict[str, ApiClient] = {}
    yield made
    for client in made.values():
        await client.close()


async def invite_by_mail(
    server: RunningServer,
    nina: ApiClient,
    case_id: str,
    username: str,
    role: str,
    represents: str | None = None,
) -> ApiClient:
    """An invitation with an address, accepted: the address is verified by the acceptance."""
    status, body, _ = await nina.post(
        f"/api/cases/{case_id}/invitations",
        {
            "role": role,
            "display_name": NAMES[username],
            "email": f"{username}@example.org",
            "represents": represents,
        },
    )
    assert status == 201, body
    member = ApiClient(server.url)
    status, accepted, _ = await member.post(
        f"/api/invitations/{body['token']}/accept",
        {"username": username, "password": PASSWORDS[username]},
    )
    assert status == 201, accepted
    return member


async def user_id(client: ApiClient) -> str:
    _, session, _ = await client.get("/api/session")
    return str(session["user"]["id"])


async def settlement_space(
    server: RunningServer, clients: dict[str, ApiClient]
) -> tuple[str, str, dict[str, str]]:
    """Nina's case with the parties Paula and Pia and Pia's counsel Carl, all in the space
    "Settlement"; answers the case id, the space id and the user ids by username."""
    admin = await active_admin(server)
    clients["nina"] = await new_neutral(admin, server, "nina", "Nina Neutral", PASSWORDS["nina"])
    await admin.close()
    nina = clients["nina"]
    case_id = await open_case(nina, TITLE)
    clients["paula"] = await invite_by_mail(server, nina, case_id, "paula", "party")
    clients["pia"] = await invite_by_mail(server, nina, case_id, "pia", "party")
    ids = {name: await user_id(clients[name]) for name in ("paula", "pia")}
    clients["carl"] = await invite_by_mail(
        server, nina, case_id, "carl", "counsel", represents=ids["pia"]
    )
    ids["carl"] = await user_id(clients["carl"])
    status, body, _ = await nina.post(
        f"/api/cases/{case_id}/spaces",
        {"name": "Settlement", "member_ids": [ids["paula"], ids["pia"], ids["carl"]]},
    )
    assert status == 201, body
    return case_id, body["space"]["id"], ids


async def turn_on_totp(client: ApiClient) -> tuple[pyotp.TOTP, int]:
    """Two-factor sign-in on through the API; the authenticator and the step of the code
    that confirmed it."""
    status, body, _ = await client.post("/api/account/totp/begin")
    assert status == 200, body
    totp = pyotp.TOTP(body["secret"])
    step = totp.timecode(time.time())
    status, body, _ = await client.post(
        "/api/account/totp/confirm", {"code": totp.generate_otp(step)}
    )
    assert status == 200, body
    return totp, step


def age_reauth(data_dir: Path, session_cookie: str, seconds: float) -> None:
    """Make the fresh proof of identity of the session ``seconds`` older, in the server's
    own SQLite database."""
    with sqlite3.connect(data_dir / "caucus.db", timeout=30) as db:
        changed = db.execute(
            "UPDATE sessions SET reauth_at = reauth_at - ? WHERE token_hash = ?",
            (seconds, token_hash(session_cookie)),
        ).rowcount
    assert changed == 1


async def session_cookie(page: Page) -> str:
    for cookie in await page.context.cookies():
        if cookie["name"] == SESSION_COOKIE:
            return cookie["value"]
    raise AssertionError("the page has no session cookie")


def verify_agreement(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signaling.cli", "verify-agreement", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def reauthenticate(page: Page, password: str, code: str | None = None) -> None:
    signing = page.get_by_test_id("signing")
    await signing.get_by_label("Your password").fill(password)
    if code is not None:
        await signing.get_by_label("Code from your authenticator app").fill(code)
    await signing.get_by_role("button", name="Confirm it is me").click()
    await expect(page.get_by_test_id("reauth-status")).to_contain_text("Identity confirmed")


async def sign(page: Page, full_name: str) -> None:
    signing = page.get_by_test_id("signing")
    await signing.get_by_label("Your full name").fill(full_name)
    await signing.get_by_label("I have read the text above and I sign it.").check()
    await signing.get_by_role("button", name="Sign", exact=True).click()


async def check_on_the_public_page(page: Page, pdf: Path, sig: Path) -> None:
    await page.goto("/agreements/verify")
    await page.get_by_label("Sealed PDF").set_input_files(pdf)
    await page.get_by_label("Signature file").set_input_files(sig)
    await page.get_by_role("button", name="Check").click()


async def test_an_agreement_is_drafted_signed_sealed_verified_and_outlives_its_case(
    browser: Browser,
    mail_caucus: RunningServer,
    mail_server: MailServer,
    clients: dict[str, ApiClient],
    tmp_path: Path,
) -> None:
    server = mail_caucus
    data_dir = tmp_path / "data"
    case_id, space_id, ids = await settlement_space(server, clients)
    watch = Watch()
    pages: dict[str, Page] = {}
    for username in ("nina", "paula", "pia", "carl"):
        _context, pages[username] = await signed_in_page(
            browser, server, username, PASSWORDS[username], watch
        )
    nina, paula, pia, carl = pages["nina"], pages["paula"], pages["pia"], pages["carl"]
    totp, totp_step = await turn_on_totp(clients["pia"])

    # -- the neutral drafts in the space ---------------------------------------------------
    await nina.goto(f"/cases/{case_id}/spaces/{space_id}")
    create = nina.locator("#agreement-create-form")
    await create.get_by_label("Title", exact=True).fill(f"Settlement {MARKER}")
    await create.get_by_label("Clause 1 heading (optional)").fill("Payment")
    await create.get_by_label("Clause 1 text").fill(
        f"Lindqvist Supplies pays **EUR 4,000** ({MARKER}) within 30 days. <script>boom()</script>"
    )
    await create.get_by_role("button", name="Add a clause").click()
    await create.get_by_label("Clause 2 heading (optional)").fill("Handover")
    await create.get_by_label("Clause 2 text").fill("Harbor Bakery hands over the keys by 1 March.")
    await create.get_by_role("button", name="Create the agreement").click()
    await expect(nina).to_have_url(re.compile(r"/agreements/[0-9a-f]+$"))
    agreement_url = nina.url
    agreement_id = agreement_url.rsplit("/", 1)[1]
    clauses = nina.get_by_test_id("clause")
    await expect(clauses).to_have_count(2)
    first = clauses.nth(0)
    await expect(first.get_by_test_id("clause-heading")).to_have_text("1. Payment")
    await expect(first.get_by_test_id("clause-body").locator("strong")).to_have_text("EUR 4,000")
    # raw HTML stays text: the API escapes it, the page inserts only the API's HTML
    await expect(first.get_by_test_id("clause-body")).to_contain_text("<script>boom()</script>")
    assert await first.get_by_test_id("clause-body").locator("script").count() == 0

    # -- version 1 out for signature; Paula signs, first without confirming who she is ----
    publish = nina.get_by_test_id("publish")
    await publish.get_by_label("Paula Lindqvist (Party)").check()
    await publish.get_by_label("Pia Harbor (Party)").check()
    await publish.get_by_role("button", name="Publish for signature").click()
    await expect(nina.get_by_test_id("agreement-state")).to_have_text("Out for signature")
    await expect(nina.get_by_test_id("signature")).to_have_count(2)

    await paula.goto(agreement_url)
    await expect(paula.get_by_test_id("final-version")).to_have_text("1")
    await sign(paula, "Paula Lindqvist")
    await expect(paula.get_by_test_id("sign-error")).to_contain_text("Confirm your identity again")
    await reauthenticate(paula, PASSWORDS["paula"])
    await sign(paula, "Paula Lindqvist")
    await expect(paula.get_by_test_id("signed-notice")).to_be_visible()
    paula_row = paula.locator(
        f"[data-testid=signature][data-user-id='{ids['paula']}'][data-version='1']"
    )
    await expect(paula_row).to_have_attribute("data-state", "signed")
    await expect(paula_row).to_contain_text("“Paula Lindqvist”")

    # -- counsel comments and proposes a change --------------------------------------------
    await carl.goto(agreement_url)
    clause_one = carl.get_by_test_id("clause").nth(0)
    await clause_one.get_by_label("Comment on clause 1").fill("45 days, as discussed.")
    await clause_one.get_by_role("button", name="Add comment").click()
    await expect(clause_one.get_by_test_id("comment-text")).to_have_text("45 days, as discussed.")
    proposal = carl.get_by_test_id("edit")
    await expect(proposal.get_by_role("heading")).to_have_text("Propose a change")
    body = proposal.get_by_label("Clause 1 text")
    await body.fill((await body.input_value()).replace("within 30 days", "within 45 days"))
    await proposal.get_by_role("button", name="Send the proposal").click()
    await expect(carl.get_by_test_id("shown-version")).to_have_text("2")
    await expect(carl.get_by_test_id("shown-kind")).to_have_text("Proposal")
    await expect(carl.get_by_test_id("clause").nth(0)).to_contain_text("within 45 days")

    # -- the neutral compares, takes the proposal over and publishes version 3 ------------
    await nina.reload()
    await expect(nina.get_by_test_id("clause").nth(0).get_by_test_id("comment")).to_contain_text(
        "45 days, as discussed."
    )
    await nina.get_by_label("From version").select_option("1")
    await nina.get_by_label("To version").select_option("2")
    await nina.get_by_role("button", name="Compare").click()
    await expect(nina.get_by_test_id("diff-summary")).to_contain_text("clauses changed: 1")
    await expect(nina.locator("[data-testid=diff-line][data-op=delete]")).to_contain_text(
        "within 30 days"
    )
    await expect(nina.locator("[data-testid=diff-line][data-op=insert]")).to_contain_text(
        "within 45 days"
    )
    await nina.get_by_label("Take over a proposal").select_option("2")
    await nina.get_by_role("button", name="Load its text").click()
    await expect(nina.get_by_test_id("adopting")).to_contain_text("proposal 2")
    await expect(nina.get_by_test_id("edit").get_by_label("Clause 1 text")).to_have_value(
        re.compile("within 45 days")
    )
    await nina.get_by_role("button", name="Save as a new version").click()
    await expect(nina.get_by_test_id("shown-version")).to_have_text("3")
    await expect(nina.get_by_test_id("agreement-state")).to_have_text("Draft")
    # Paula's signature on version 1 is void, and everybody sees it
    await carl.reload()
    await pia.goto(agreement_url)
    for page in (nina, carl, pia):
        await expect(page.get_by_test_id("voided-notice")).to_contain_text("Paula Lindqvist")
        voided = page.locator(
            f"[data-testid=signature][data-user-id='{ids['paula']}'][data-version='1']"
        )
        await expect(voided).to_have_attribute("data-state", "voided")
        await expect(voided).to_contain_text("Voided by version 3")
    publish = nina.get_by_test_id("publish")
    await expect(nina.locator("#publish-version")).to_have_text("3")
    await publish.get_by_label("Paula Lindqvist (Party)").check()
    await publish.get_by_label("Pia Harbor (Party)").check()
    await publish.get_by_role("button", name="Publish for signature").click()
    await expect(nina.get_by_test_id("final-version")).to_have_text("3")
    await snapshot(nina, "agreement-neutral")

    # -- Paula signs version 3: a confirmation over five minutes old does not count -------
    await paula.goto(agreement_url)
    await expect(paula.get_by_test_id("final-text")).to_contain_text("within 45 days")
    final_hash = (await paula.get_by_test_id("final-hash").text_content() or "").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", final_hash)
    await reauthenticate(paula, PASSWORDS["paula"])
    age_reauth(data_dir, await session_cookie(paula), 301)
    await sign(paula, "Paula Lindqvist")
    await expect(paula.get_by_test_id("sign-error")).to_contain_text("Confirm your identity again")
    await expect(paula.get_by_test_id("signed-notice")).to_be_hidden()
    await reauthenticate(paula, PASSWORDS["paula"])
    await sign(paula, "Paula Lindqvist")
    await expect(paula.get_by_test_id("signed-notice")).to_be_visible()

    # -- Pia signs with her password and an authenticator code; the agreement is sealed ---
    await pia.goto(agreement_url)
    await expect(pia.get_by_test_id("final-hash")).to_have_text(final_hash)
    await expect(pia.get_by_test_id("final-text")).to_contain_text("within 45 days")
    code = totp.generate_otp(max(totp_step + 1, totp.timecode(time.time())))
    await reauthenticate(pia, PASSWORDS["pia"], code)
    await snapshot(pia, "agreement-signing")
    await sign(pia, "Pia Harbor")
    await expect(pia.get_by_test_id("sealed")).to_be_visible()
    await expect(pia.get_by_test_id("agreement-state")).to_have_text("Signed and sealed")
    pia_row = pia.locator(f"[data-testid=signature][data-user-id='{ids['pia']}'][data-version='3']")
    await expect(pia_row).to_contain_text("password and authenticator code")
    await expect(pia.get_by_test_id("sealed-document-hash")).to_have_text(final_hash)
    await snapshot(pia, "agreement-sealed")

    # -- Paula downloads the sealed PDF and its signature file -----------------------------
    copies = tmp_path / "paula-downloads"
    copies.mkdir()
    await paula.reload()
    await expect(paula.get_by_test_id("sealed")).to_be_visible()
    async with paula.expect_download() as pdf_download:
        await paula.get_by_test_id("download-pdf").click()
    download = await pdf_download.value
    assert download.suggested_filename == f"agreement-{agreement_id}.pdf"
    pdf = copies / download.suggested_filename
    await download.save_as(pdf)
    async with paula.expect_download() as sig_download:
        await paula.get_by_test_id("download-signature").click()
    download = await sig_download.value
    assert download.suggested_filename == f"agreement-{agreement_id}.sig"
    sig = copies / download.suggested_filename
    await download.save_as(sig)
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert f"document-sha256: {final_hash}\n" in sig.read_text()

    # -- the command line accepts the pair and refuses any change ---------------------------
    result = verify_agreement(pdf, sig, "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"VALID: {pdf} is the sealed agreement {agreement_id}")
    changed_pdf = tmp_path / "changed.pdf"
    data = bytearray(pdf.read_bytes())
    data[len(data) // 2] ^= 0x01
    changed_pdf.write_bytes(bytes(data))
    result = verify_agreement(changed_pdf, sig, "--data-dir", data_dir)
    assert result.returncode == 1
    assert result.stderr.startswith("NOT VALID: The PDF does not match the signature")
    changed_sig = tmp_path / "changed.sig"
    text = sig.read_text()
    changed_sig.write_text(text.replace("version: 3\n", "version: 4\n"))
    result = verify_agreement(pdf, changed_sig, "--data-dir", data_dir)
    assert result.returncode == 1
    assert "The signature does not verify" in result.stderr

    # -- the public check page, with no account ---------------------------------------------
    anonymous = await browser.new_context(ignore_https_errors=True, base_url=server.url)
    checker = await anonymous.new_page()
    watch.attach(checker)
    await check_on_the_public_page(checker, pdf, sig)
    await expect(checker.get_by_test_id("verify-valid")).to_be_visible()
    await expect(checker.get_by_test_id("valid-summary")).to_contain_text(agreement_id)
    await expect(checker.get_by_test_id("valid-document-hash")).to_have_text(final_hash)
    await expect(checker.get_by_test_id("valid-signed-at")).not_to_be_empty()
    await snapshot(checker, "agreement-verify")
    await check_on_the_public_page(checker, changed_pdf, sig)
    await expect(checker.get_by_test_id("verify-invalid")).to_be_visible()
    await expect(checker.get_by_test_id("invalid-message")).to_contain_text(
        "The PDF does not match the signature"
    )
    await expect(checker.get_by_test_id("verify-valid")).to_be_hidden()

    # -- the neutral closes the case: Pia never downloaded her copy --------------------------
    await nina.goto(f"/cases/{case_id}/close")
    closing = nina.get_by_test_id("closing-agreement")
    await expect(closing).to_have_count(1)
    await expect(
        closing.locator(f"[data-testid=closing-signatory][data-user-id='{ids['paula']}']")
    ).to_have_attribute("data-downloaded", "true")
    await expect(
        closing.locator(f"[data-testid=closing-signatory][data-user-id='{ids['pia']}']")
    ).to_contain_text("has not downloaded it")
    await nina.get_by_label("Type the case title to confirm").fill(TITLE)
    await nina.get_by_role("button", name="Close and destroy the case").click()
    await expect(nina.get_by_test_id("close-error")).to_be_visible()
    await expect(nina.get_by_test_id("missing-signatory")).to_contain_text("Pia Harbor")
    await nina.get_by_label("Close anyway").check()
    await snapshot(nina, "case-close-agreements")
    await nina.get_by_role("button", name="Close and destroy the case").click()
    await expect(nina.get_by_test_id("case-closed")).to_be_visible()

    # both signatories are mailed the sealed PDF and its signature file
    for address in ("paula@example.org", "pia@example.org"):
        await eventually(
            lambda address=address: any(
                {p.get_filename() for p in m.parsed().iter_attachments()}
                == {f"agreement-{agreement_id}.pdf", f"agreement-{agreement_id}.sig"}
                for m in mail_server.to(address)
            ),
            within=20,
            what=f"the sealed copy mailed to {address}",
        )

    # the downloaded copy still verifies, on the command line and on the public page
    result = verify_agreement(pdf, sig, "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr
    await check_on_the_public_page(checker, pdf, sig)
    await expect(checker.get_by_test_id("verify-valid")).to_be_visible()

    # and nothing of the agreement's text is left in the data directory
    await eventually(
        lambda: files_holding(data_dir, MARKER.encode()) == [],
        within=20,
        what="no file of the data directory holds the agreement's text",
        details=lambda: str(files_holding(data_dir, MARKER.encode())),
    )
    assert watch.problems == []
