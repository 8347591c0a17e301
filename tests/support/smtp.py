"""A real SMTP server for the tests: aiosmtpd on a loopback port, keeping every message
it accepts as raw bytes. It can refuse recipients with 550, and be stopped and started
again on the same port (the mail server going down and coming back)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from signaling.settings import Settings

from .server import free_port


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # the message as the server received it

    def parsed(self) -> EmailMessage:
        message = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message

    @property
    def message_id(self) -> str:
        return str(self.parsed()["Message-ID"])

    @property
    def subject(self) -> str:
        return str(self.parsed()["Subject"])

    def text(self) -> str:
        part = self.parsed().get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())

    def html(self) -> str:
        part = self.parsed().get_body(preferencelist=("html",))
        assert part is not None
        return str(part.get_content())


class _Handler:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: Any
    ) -> str:
        if address.lower() in self.server.refused:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        self.server.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), data))
        return "250 2.0.0 Message accepted"


class MailServer:
    """aiosmtpd in a thread of its own, on one loopback port for its whole life."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[Received] = []
        self.refused: set[str] = set()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self._controller is None
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]

    def message_ids(self) -> list[str]:
        return [m.message_id for m in self.messages]


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    yield server
    server.stop()


#: Settings that make the sender quick to notice and retry, and a known public address.
FAST_MAIL = {
    "mail_poll_seconds": 0.05,
    "mail_retry_seconds": 0.1,
    "mail_retry_max_seconds": 0.4,
    "public_url": "https://caucus.example",
    "mail_from_address": "notices@caucus.example",
}


def mail_settings(tmp_path: Path, mail_server: MailServer, **overrides: Any) -> Settings:
    """A test server's settings sending through ``mail_server``, quickly."""
    from tests.support.plugin import make_settings

    return make_settings(tmp_path, smtp_url=mail_server.url, **{**FAST_MAIL, **overrides})


def link_in(received: Received, prefix: str) -> str:
    """The path of the one link starting with ``https://caucus.example<prefix>`` in the text
    part, checked to be in the HTML part too."""
    import re

    found = re.findall(
        r"https://caucus\.example(" + re.escape(prefix) + r"[A-Za-z0-9_-]+)", received.text()
    )
    assert len(set(found)) == 1, found
    assert f"https://caucus.example{found[0]}" in received.html()
    return found[0]
