"""``caucus verify-agreement``: a real process checks a sealed agreement against the
installation's public seal key in the data directory, or one given as a file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rooms.agreements.seal_key import public_key_path
from rooms.agreements.text import agreement_text
from signaling.services import Services
from signaling.settings import Settings
from tests.support.world import INTAKE, PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def verify_agreement(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "signaling.cli", "verify-agreement", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def sealed_copy(services: Services, directory: Path) -> tuple[Path, Path, str]:
    """A case whose agreement the party signed and so sealed; its PDF and signature
    written to ``directory``."""
    accounts, cases = services.accounts, services.cases
    neutral = await accounts.create_user("nora", PASSWORD, role="neutral")
    case = await cases.open_case(neutral, {**INTAKE, "title": "Verify"})
    nora = await cases.membership(case.id, neutral.id)
    assert nora is not None
    _, token = await cases.invite(
        case.id, nora, role="party", display_name="Pat", represents=None, expires_in_hours=1
    )
    party, _ = await cases.accept_invitation(token, "pat", PASSWORD)
    pat = await cases.membership(case.id, party.id)
    assert pat is not None
    space = await services.spaces.create(case.id, nora, "Settlement", [party.id])
    agreements = services.agreements
    text = agreement_text("Settlement", [("Payment", "Nora's client pays EUR 10.")])
    agreement_id = await agreements.create(case.id, space.id, nora, text)
    await agreements.publish(case.id, space.id, agreement_id, nora, 1, [party.id])
    session = await services.sessions.find(await services.sessions.create(party.id, "active"))
    assert session is not None
    await services.sessions.record_reauth(session, "password")
    assert await agreements.sign(
        case.id,
        space.id,
        agreement_id,
        pat,
        session.token_hash,
        document_sha256=text.sha256(),
        full_name="Pat Party",
        client_address="192.0.2.1",
    )
    pdf, sig = directory / "agreement.pdf", directory / "agreement.sig"
    pdf.write_bytes(await agreements.sealed_pdf(case.id, space.id, agreement_id, pat))
    sig.write_text(await agreements.signature_file(case.id, space.id, agreement_id))
    return pdf, sig, agreement_id


@pytest.mark.timeout(300)
async def test_verify_agreement_accepts_a_sealed_copy_and_refuses_any_change(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    pdf, sig, agreement_id = await sealed_copy(services, tmp_path)
    data_dir = ("--data-dir", settings.data_dir)

    result = verify_agreement(pdf, sig, *data_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"VALID: {pdf} is the sealed agreement {agreement_id}")

    # With only the public key, as anyone holding the copy would check it.
    public = public_key_path(settings.agreement_seal_key_path)
    result = verify_agreement(pdf, sig, "--public-key", public)
    assert result.returncode == 0, result.stderr

    changed = tmp_path / "changed.pdf"
    data = bytearray(pdf.read_bytes())
    data[len(data) // 3] ^= 0x20
    changed.write_bytes(bytes(data))
    result = verify_agreement(changed, sig, *data_dir)
    assert result.returncode == 1
    assert result.stderr.startswith("NOT VALID: The PDF does not match the signature")

    forged = tmp_path / "forged.sig"
    text = sig.read_text()
    forged.write_text(text.replace("version: 1\n", "version: 2\n"))
    result = verify_agreement(pdf, forged, *data_dir)
    assert result.returncode == 1
    assert "The signature does not verify" in result.stderr

    result = verify_agreement(pdf, tmp_path / "missing.sig", *data_dir)
    assert result.returncode == 2 and "cannot read" in result.stderr
