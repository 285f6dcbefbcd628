"""Email senders. The console sender logs the message, for development and tests."""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import structlog

from backend.config import EmailBackend, Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    body: str


class EmailSender(Protocol):
    async def send(self, email: Email) -> None: ...


class ConsoleSender:
    """Writes emails to the log instead of sending them; keeps the last ones for inspection."""

    def __init__(self, keep: int = 100) -> None:
        self.sent: list[Email] = []
        self._keep = keep

    async def send(self, email: Email) -> None:
        self.sent = [*self.sent[-(self._keep - 1) :], email]
        log.info("email_console", to=email.to, subject=email.subject, body=email.body)


class SmtpSender:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def send(self, email: Email) -> None:
        await asyncio.to_thread(self._send_blocking, email)

    def _send_blocking(self, email: Email) -> None:
        s = self._settings
        message = EmailMessage()
        message["From"] = s.email_from
        message["To"] = email.to
        message["Subject"] = email.subject
        message.set_content(email.body)
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=30) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_username and s.smtp_password:
                smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
            smtp.send_message(message)


_console = ConsoleSender()


def get_sender(settings: Settings) -> EmailSender:
    if settings.email_backend is EmailBackend.smtp:
        return SmtpSender(settings)
    return _console


def console_outbox() -> ConsoleSender:
    return _console
