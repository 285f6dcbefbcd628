"""Login and sign-up are limited per IP and per account, in Redis; a limited request gets 429."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from httpx import AsyncClient

from backend.config import get_settings
from tests.factories.accounts import make_account


def _ip() -> str:
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"


async def test_login_is_limited_per_account_across_ips(
    client_from: Callable[[str], AsyncClient],
) -> None:
    account = await make_account()
    limit = get_settings().login_rate_limit
    for _ in range(limit):
        response = await client_from(_ip()).post(
            "/api/v1/auth/login", json={"email": account.email, "password": "wrong password"}
        )
        assert response.status_code == 401
    limited = await client_from(_ip()).post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"] == "rate_limited"


async def test_login_is_limited_per_ip_across_accounts(
    client_from: Callable[[str], AsyncClient],
) -> None:
    client = client_from(_ip())
    limit = get_settings().login_rate_limit
    for i in range(limit):
        response = await client.post(
            "/api/v1/auth/login",
            json={"email": f"x{i}-{uuid.uuid4().hex[:6]}@example.com", "password": "whatever1"},
        )
        assert response.status_code == 401
    limited = await client.post(
        "/api/v1/auth/login", json={"email": "someone-else@example.com", "password": "whatever1"}
    )
    assert limited.status_code == 429
    assert "Retry-After" in limited.headers


async def test_sign_up_is_limited_per_ip(client_from: Callable[[str], AsyncClient]) -> None:
    client = client_from(_ip())
    limit = get_settings().signup_rate_limit
    for _ in range(limit):
        response = await client.post(
            "/api/v1/auth/register",
            json={"email": f"s-{uuid.uuid4().hex[:10]}@example.com", "password": "long enough pw"},
        )
        assert response.status_code == 201, response.text
    limited = await client.post(
        "/api/v1/auth/register",
        json={"email": f"s-{uuid.uuid4().hex[:10]}@example.com", "password": "long enough pw"},
    )
    assert limited.status_code == 429
