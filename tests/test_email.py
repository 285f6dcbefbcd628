"""Email senders: SMTP against a real SMTP server on loopback; console by default."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from email.header import decode_header, make_header
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from backend.config import EmailBackend, Settings
from backend.email.senders import ConsoleSender, Email, SmtpSender, get_sender
from tests.factories.ports import free_port


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[_Inbox, int]]:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


async def test_smtp_sender_delivers(smtp_server: tuple[_Inbox, int]) -> None:
    inbox, port = smtp_server
    settings = Settings(
        email_backend=EmailBackend.smtp,
        smtp_host="127.0.0.1",
        smtp_port=port,
        email_from="Parley <no-reply@example.com>",
        smtp_password=SecretStr("unused"),
    )
    sender = get_sender(settings)
    assert isinstance(sender, SmtpSender)
    await sender.send(Email(to="ada@example.com", subject="Привет", body="Join us: https://x/y"))

    assert len(inbox.messages) == 1
    mail_from, rcpt, content = inbox.messages[0]
    assert mail_from == "no-reply@example.com"
    assert rcpt == ["ada@example.com"]
    parsed = message_from_bytes(content)
    assert str(make_header(decode_header(parsed["Subject"]))) == "Привет"
    assert "Join us: https://x/y" in parsed.get_payload(decode=True).decode()  # type: ignore[union-attr]


async def test_console_sender_is_the_default() -> None:
    sender = get_sender(Settings())
    assert isinstance(sender, ConsoleSender)
    await sender.send(Email(to="b@example.com", subject="s", body="b"))
    assert sender.sent[-1].to == "b@example.com"
