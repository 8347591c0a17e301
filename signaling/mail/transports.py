"""Where mail goes: an SMTP server (aiosmtplib), or ``.eml`` files in a directory when no
server is configured.

A transport either returns (the mail was taken), raises ``TemporaryFailure`` (try again
later: the server is down, busy, or answered 4xx) or ``PermanentFailure`` (the server
refused it with 5xx: trying again would not help)."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

log = logging.getLogger(__name__)


class TemporaryFailure(Exception):
    """Delivery may work later."""


class PermanentFailure(Exception):
    """The server refused the mail for good; the message is its answer."""


class Transport(Protocol):
    def describe(self) -> str:
        """Where mail goes, for the log (no password)."""
        ...

    async def send(self, message: EmailMessage, mail_id: str) -> None: ...


@dataclass(frozen=True)
class SmtpConfig:
    """An ``smtp_url`` taken apart."""

    host: str
    port: int
    implicit_tls: bool
    starttls: bool | None  # None: when the server offers it
    username: str | None
    password: str | None
    verify: bool

    @classmethod
    def parse(cls, url: str) -> SmtpConfig:
        parts = urlsplit(url)
        schemes = {"smtp": (False, None, 25), "smtp+starttls": (False, True, 587)}
        schemes["smtps"] = (True, False, 465)
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(
                "smtp_url must be smtp://, smtp+starttls:// or smtps://[user:password@]host[:port]"
            )
        implicit, starttls, default_port = schemes[parts.scheme]
        query = parse_qs(parts.query)
        verify = query.get("verify", ["true"])[0].lower() not in ("0", "false", "no")
        return cls(
            host=parts.hostname,
            port=parts.port or default_port,
            implicit_tls=implicit,
            starttls=starttls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            verify=verify,
        )


def _answer(code: int, text: str) -> str:
    return f"{code} {text}".strip()


class SmtpTransport:
    """Delivers through an SMTP server; one connection per batch is not worth the state
    for the volumes of a mediation practice, so each mail opens its own."""

    def __init__(self, url: str, timeout: float) -> None:
        self.config = SmtpConfig.parse(url)
        self.timeout = timeout

    def describe(self) -> str:
        c = self.config
        tls = "implicit TLS" if c.implicit_tls else "STARTTLS" if c.starttls else "plain/STARTTLS"
        auth = f", AUTH as {c.username}" if c.username else ""
        return f"SMTP server {c.host}:{c.port} ({tls}{auth})"

    async def send(self, message: EmailMessage, mail_id: str) -> None:
        c = self.config
        try:
            _errors, _reply = await aiosmtplib.send(
                message,
                hostname=c.host,
                port=c.port,
                username=c.username,
                password=c.password,
                use_tls=c.implicit_tls,
                start_tls=c.starttls,
                validate_certs=c.verify,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            answers = "; ".join(_answer(r.code, r.message) for r in exc.recipients)
            if all(r.code >= 500 for r in exc.recipients):
                raise PermanentFailure(answers) from None
            raise TemporaryFailure(answers) from None
        except aiosmtplib.SMTPResponseException as exc:
            answer = _answer(exc.code, exc.message)
            if exc.code >= 500:
                raise PermanentFailure(answer) from None
            raise TemporaryFailure(answer) from None
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(f"{type(exc).__name__}: {exc}") from None


class FileTransport:
    """Writes each mail as ``<directory>/<mail id>.eml``: nothing leaves the machine, and
    an operator can read what would have gone out. A retry rewrites the same file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def describe(self) -> str:
        return f"files in {self.directory} (no SMTP server configured)"

    def _write(self, data: bytes, mail_id: str) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self.directory / f"{mail_id}.eml"
        partial = self.directory / f".{mail_id}.eml.partial"
        with open(partial, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, target)

    async def send(self, message: EmailMessage, mail_id: str) -> None:
        try:
            await asyncio.to_thread(self._write, message.as_bytes(), mail_id)
        except OSError as exc:
            raise TemporaryFailure(f"cannot write the mail file: {exc}") from None
