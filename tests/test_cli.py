"""The ``caucus`` command as operators run it: a real process, real TLS, real signals."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.support.server import start_serve_sync
from tests.support.world import tls_context_without_verification

ROOT = Path(__file__).resolve().parent.parent


def caucus(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "signaling.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def test_help_reads_like_a_server() -> None:
    result = caucus("serve", "--help")
    assert result.returncode == 0
    for option in ("--host", "--port", "--data-dir", "--database-url", "--config"):
        assert option in result.stdout


def test_serve_prints_url_and_admin_then_stops_on_sigterm(tmp_path: Path) -> None:
    served = start_serve_sync(tmp_path / "data", workers=None, env={"CAUCUS_LOG_LEVEL": "WARNING"})
    port = served.ready.port
    try:
        # the banner for people, then the ready line for scripts
        lines = served.before
        assert lines[0] == f"Caucus listening on https://127.0.0.1:{port}/"
        assert lines[1] == "Admin user: admin"
        password = lines[2].removeprefix("One-time password: ")
        assert len(password) >= 12
        assert served.ready.admin_password == password
        assert served.url == f"https://127.0.0.1:{port}"
        base = f"https://127.0.0.1:{port}"
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=tls_context_without_verification()),
            urllib.request.HTTPCookieProcessor(jar),
        )
        with opener.open(base + "/healthz", timeout=10) as response:
            assert response.status == 200
            assert json.load(response)["database"] == "sqlite"
        with opener.open(base + "/api/session", timeout=10) as response:
            csrf = json.load(response)["csrf_token"]
        login = urllib.request.Request(
            base + "/api/login",
            data=json.dumps({"username": "admin", "password": password}).encode(),
            headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
        )
        with opener.open(login, timeout=10) as response:
            assert json.load(response)["stage"] == "password_change_required"
        assert (tmp_path / "data" / "certs" / "server.pem").is_file()
        assert (tmp_path / "data" / "certs" / "server.key").stat().st_mode & 0o077 == 0
    finally:
        out, err = served.stop()
    assert served.process.returncode == 0, err
    assert "Caucus stopped." in out

    # A second start reuses the certificate and does not create another admin.
    before = (tmp_path / "data" / "certs" / "server.pem").read_bytes()
    again = start_serve_sync(tmp_path / "data", workers=None, port=port)
    try:
        assert again.before[0].startswith("Caucus listening on")
        assert not any(line.startswith("Admin user") for line in again.before)
        assert again.ready.admin_password is None
    finally:
        again.stop(signal.SIGINT)
    assert again.process.returncode == 0
    assert (tmp_path / "data" / "certs" / "server.pem").read_bytes() == before


def test_user_add_with_password_stdin(tmp_path: Path) -> None:
    args = (
        "user",
        "add",
        "nina",
        "--role",
        "neutral",
        "--password-stdin",
        "--data-dir",
        str(tmp_path / "data"),
    )
    result = caucus(*args, input="a sound passphrase 42\n")
    assert result.returncode == 0, result.stderr
    assert "Created neutral nina." in result.stdout
    again = caucus(*args, input="a sound passphrase 42\n")
    assert again.returncode == 1 and "taken" in again.stderr
    weak = caucus(
        "user",
        "add",
        "olga",
        "--role",
        "neutral",
        "--password-stdin",
        "--data-dir",
        str(tmp_path / "data"),
        input="password\n",
    )
    assert weak.returncode == 1 and "at least 12 characters" in weak.stderr


def test_user_add_takes_an_email_address(tmp_path: Path) -> None:
    base = ("user", "add", "--role", "neutral", "--data-dir", str(tmp_path / "data"))
    result = caucus(*base, "nina", "--email", "Nina@Example.org")
    assert result.returncode == 0, result.stderr
    assert "Created neutral nina <Nina@example.org>." in result.stdout
    assert "A link to verify the address is queued" in result.stdout
    assert asyncio.run(verification_state(tmp_path / "data")) == (
        False,
        [("email_verify", "Nina@example.org")],
        ["verify"],
    )
    bad = caucus(*base, "olga", "--email", "olga at example.org")
    assert bad.returncode == 1 and "not a usable email address" in bad.stderr


async def verification_state(data_dir: Path) -> tuple[bool, list, list]:
    """Whether nina's address is verified, the mails queued, and the links written."""
    import sqlalchemy as sa

    from rooms.storage.schema import email_changes, outbox, users
    from rooms.storage.store import Store
    from signaling.settings import Settings

    store = Store(Settings(data_dir=data_dir).effective_database_url)
    try:
        async with store.connect() as conn:
            verified = (
                await conn.execute(
                    sa.select(users.c.email_verified_at).where(users.c.username == "nina")
                )
            ).scalar_one()
            mails = (await conn.execute(sa.select(outbox.c.kind, outbox.c.recipient))).all()
            links = (await conn.execute(sa.select(email_changes.c.purpose))).scalars().all()
    finally:
        await store.close()
    return verified is not None, [tuple(m) for m in mails], list(links)


def test_invalid_setting_is_reported(tmp_path: Path) -> None:
    result = caucus("serve", "--port", "99999", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and "invalid settings" in result.stderr
