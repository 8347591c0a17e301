"""Turning an outbox row into a message: Jinja2 templates (autoescaped HTML, plain text),
the operator's sender and public address, a stable Message-ID.

Headers are set through the ``email`` package's default policy, which refuses a CR or LF
in any header value, so no value (a subject, a name) can start a header of its own."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from rooms.billing.money import Money
from rooms.storage.outbox import OutboxMail
from signaling.settings import Settings

TEMPLATES_DIR = Path(__file__).parent / "templates"
_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\x00]+")


def when(epoch: float) -> str:
    """A time in mails: UTC, unambiguous in every reader's zone."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%d %B %Y, %H:%M UTC")


def local(epoch: float, zone: str) -> str:
    """A time in mails in a named zone (the neutral's), with the zone's abbreviation."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return when(epoch)
    return datetime.fromtimestamp(epoch, tz).strftime(f"%A %d %B %Y, %H:%M %Z ({zone})")


def money(amount: int, currency: str) -> str:
    """An amount in minor units as mails show it ("USD 1,234.50")."""
    return Money(int(amount), currency).format()


class UnknownMailKind(Exception):
    """An outbox row names a template this version does not have."""


def one_line(text: str) -> str:
    """A display text fit for a header: line breaks become spaces."""
    return _LINE_BREAKS.sub(" ", text).strip()


class MailComposer:
    """Renders the mails of one Caucus site."""

    def __init__(self, settings: Settings) -> None:
        self.site_name = one_line(settings.site_name)
        self.base_url = settings.effective_public_url
        address = settings.effective_mail_from_address
        username, _, domain = address.rpartition("@")
        self.sender = Address(one_line(settings.mail_from_name), username, domain)
        self.domain = domain
        self.environment = Environment(
            loader=FileSystemLoader(TEMPLATES_DIR),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        self.environment.filters["when"] = when
        self.environment.filters["local"] = local
        self.environment.filters["money"] = money

    def message_id(self, mail_id: str) -> str:
        """The same for every attempt at one mail, so a receiver can tell a retry."""
        return f"<{mail_id}@{self.domain}>"

    def _render(self, name: str, context: dict[str, Any]) -> str:
        return self.environment.get_template(name).render(context)

    def compose(self, mail: OutboxMail) -> EmailMessage:
        if not (TEMPLATES_DIR / f"{mail.kind}.txt").is_file():
            raise UnknownMailKind(f"no template for mail kind {mail.kind!r}")
        context = {
            **mail.params,
            "site_name": self.site_name,
            "base_url": self.base_url,
        }
        subject = one_line(self._render(f"{mail.kind}.subject.txt", context))
        message = EmailMessage(policy=SMTP)
        message["Subject"] = subject
        message["From"] = self.sender
        message["To"] = mail.recipient
        message["Message-ID"] = self.message_id(mail.id)
        message["Date"] = format_datetime(datetime.fromtimestamp(mail.created_at, UTC))
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(self._render(f"{mail.kind}.txt", context))
        message.add_alternative(
            self._render(f"{mail.kind}.html", {**context, "subject": subject}), subtype="html"
        )
        for item in mail.params.get("attachments", []):
            # calendar entries (text/calendar, with the iTIP method), invoices (PDF)
            maintype, _, subtype = str(item["content_type"]).partition("/")
            method = {"method": str(item["method"])} if item.get("method") else {}
            data = (
                base64.b64decode(item["data_base64"])
                if "data_base64" in item
                else str(item["text"]).encode()
            )
            message.add_attachment(
                data,
                maintype=maintype,
                subtype=subtype,
                filename=one_line(str(item["filename"])),
                params=method,
            )
        return message
