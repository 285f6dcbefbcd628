"""Accounts for tests: created in the database directly, with tokens minted by the real code."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from backend.auth.service import create_user
from backend.auth.tokens import issue_token_pair
from backend.db import unit_of_work

DEFAULT_PASSWORD = "correct horse battery staple"


@dataclass
class Account:
    user_id: uuid.UUID
    email: str
    password: str
    access_token: str
    refresh_token: str
    tenant_id: uuid.UUID | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)

    def headers(self, tenant_id: uuid.UUID | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.access_token}", **self.extra_headers}
        chosen = tenant_id or self.tenant_id
        if chosen is not None:
            headers["X-Parley-Tenant"] = str(chosen)
        return headers


async def make_account(email: str | None = None, password: str = DEFAULT_PASSWORD) -> Account:
    email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
    async with unit_of_work() as session:
        user = await create_user(session, email=email, password=password, verified=True)
        pair = await issue_token_pair(session, user)
    return Account(user.id, email, password, pair.access_token, pair.refresh_token)
