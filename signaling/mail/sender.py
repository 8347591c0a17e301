"""The outbox sender: a task that claims due mail, composes and delivers it, and records
the outcome.

Temporary failures (server down, 4xx) are tried again after a delay doubling from
``mail_retry_seconds`` up to ``mail_retry_max_seconds``, and given up after
``mail_max_attempts``; a permanent refusal (5xx) fails the mail at once with the server's
answer. Several processes may run a sender over one PostgreSQL database
(``rooms.storage.outbox`` claims with ``FOR UPDATE SKIP LOCKED``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from rooms.storage.outbox import Outbox, OutboxMail
from signaling.mail.compose import MailComposer, UnknownMailKind
from signaling.mail.transports import (
    FileTransport,
    PermanentFailure,
    SmtpTransport,
    TemporaryFailure,
    Transport,
)
from signaling.settings import Settings

log = logging.getLogger(__name__)
BATCH = 20


def transport_for(settings: Settings) -> Transport:
    if settings.smtp_url:
        return SmtpTransport(settings.smtp_url, settings.smtp_timeout_seconds)
    return FileTransport(settings.mail_path)


class MailSender:
    """Owns the sending task of one process (``start`` / ``stop``)."""

    def __init__(
        self,
        outbox: Outbox,
        settings: Settings,
        transport: Transport | None = None,
        composer: MailComposer | None = None,
    ) -> None:
        self.outbox = outbox
        self.settings = settings
        self.transport = transport or transport_for(settings)
        self.composer = composer or MailComposer(settings)
        self.__wake = asyncio.Event()
        self.__task: asyncio.Task[None] | None = None

    def start(self) -> None:
        log.info("mail goes to %s", self.transport.describe())
        self.__task = asyncio.create_task(self.__run(), name="mail-sender")

    async def stop(self) -> None:
        if self.__task is not None:
            self.__task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.__task
            self.__task = None

    def wake(self) -> None:
        """Look for due mail now (a mail was just written by this process)."""
        self.__wake.set()

    def backoff(self, attempts: int) -> float:
        delay = self.settings.mail_retry_seconds * 2 ** max(0, attempts - 1)
        return float(min(delay, self.settings.mail_retry_max_seconds))

    async def __run(self) -> None:
        while True:
            try:
                while await self.send_due():
                    pass
            except Exception:
                log.exception("the mail sender failed; it tries again")
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as its timeout fires, and stop() then waits forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.mail_poll_seconds):
                    await self.__wake.wait()
            self.__wake.clear()

    async def send_due(self) -> int:
        """Deliver one batch of due mail; answers how many were claimed."""
        mails = await self.outbox.claim(BATCH, self.settings.mail_lease_seconds)
        for mail in mails:
            await self.deliver(mail)
        return len(mails)

    async def deliver(self, mail: OutboxMail) -> None:
        try:
            message = self.composer.compose(mail)
        except (UnknownMailKind, ValueError) as exc:
            log.error("mail %s cannot be composed: %s", mail.id, exc)
            await self.outbox.failed(mail.id, f"cannot be composed: {exc}")
            return
        try:
            await self.transport.send(message, mail.id)
        except PermanentFailure as exc:
            log.warning("mail %s (%s) refused: %s", mail.id, mail.kind, exc)
            await self.outbox.failed(mail.id, str(exc))
            return
        except TemporaryFailure as exc:
            if mail.attempts >= self.settings.mail_max_attempts:
                log.warning("mail %s (%s) given up: %s", mail.id, mail.kind, exc)
                await self.outbox.failed(mail.id, f"gave up after {mail.attempts} attempts: {exc}")
                return
            delay = self.backoff(mail.attempts)
            log.info("mail %s (%s) waits %.0f s: %s", mail.id, mail.kind, delay, exc)
            await self.outbox.retry_later(mail.id, str(exc), delay)
            return
        await self.outbox.delivered(mail.id)
        log.info("mail %s (%s) delivered", mail.id, mail.kind)
