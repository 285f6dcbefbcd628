"""Worker task that sends one email. Sending is idempotent enough: a duplicate is harmless."""

from __future__ import annotations

from typing import Any

from backend.config import get_settings
from backend.email.senders import Email, get_sender


async def send_email(ctx: dict[str, Any], to: str, subject: str, body: str) -> None:
    await get_sender(get_settings()).send(Email(to=to, subject=subject, body=body))
