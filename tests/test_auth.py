"""Sign-up, login, refresh-token rotation and reuse, logout, verification, password reset."""

from __future__ import annotations

import uuid

from httpx import AsyncClient

from backend.db import PendingJob
from tests.factories.accounts import DEFAULT_PASSWORD, make_account


def _token_from_email(jobs: list[PendingJob], to: str) -> str:
    emails = [j for j in jobs if j.function == "send_email" and j.args[0] == to]
    assert emails, f"no email was queued for {to}"
    body: str = emails[-1].args[2]
    return body.rsplit(": ", 1)[-1].strip().splitlines()[0]


async def test_sign_up_verify_and_login(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    created = await client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": DEFAULT_PASSWORD, "full_name": "Ada"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["is_verified"] is False
    assert "password" not in created.text

    token = _token_from_email(recorded_jobs, email)
    verified = await client.post("/api/v1/auth/verify", json={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json()["is_verified"] is True

    again = await client.post("/api/v1/auth/verify", json={"token": token})
    assert again.status_code == 400

    login = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": DEFAULT_PASSWORD}
    )
    assert login.status_code == 200, login.text
    me = await client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["email"] == email
    assert me.json()["workspaces"] == []


async def test_duplicate_email_is_a_conflict(client: AsyncClient) -> None:
    account = await make_account()
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": account.email.upper(), "password": DEFAULT_PASSWORD},
    )
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"


async def test_wrong_password_is_refused(client: AsyncClient) -> None:
    account = await make_account()
    response = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": "not the password"}
    )
    assert response.status_code == 401
    assert response.json() == {
        "error": "not_authenticated",
        "detail": "The email or password is wrong.",
    }


async def test_short_password_lists_the_field(client: AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register", json={"email": "short@example.com", "password": "abc"}
    )
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "password"


async def test_refresh_rotates_and_reuse_revokes_the_family(client: AsyncClient) -> None:
    account = await make_account()
    first = await client.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert first.status_code == 200, first.text
    second_token = first.json()["refresh_token"]
    assert second_token != account.refresh_token

    reused = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert reused.status_code == 401
    assert "already used" in reused.json()["detail"]

    # The reuse revoked the whole family, including the token issued by the rotation.
    after = await client.post("/api/v1/auth/refresh", json={"refresh_token": second_token})
    assert after.status_code == 401
    assert "revoked" in after.json()["detail"]


async def test_logout_revokes(client: AsyncClient) -> None:
    account = await make_account()
    out = await client.post("/api/v1/auth/logout", json={"refresh_token": account.refresh_token})
    assert out.status_code == 204
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert refreshed.status_code == 401


async def test_unknown_refresh_token_is_refused(client: AsyncClient) -> None:
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": "prt_nope"})
    assert response.status_code == 401


async def test_expired_access_token_is_refused(client: AsyncClient) -> None:
    from datetime import timedelta

    from fastapi_users.jwt import generate_jwt

    from backend.config import get_settings

    account = await make_account()
    expired = generate_jwt(
        {"sub": str(account.user_id), "aud": ["fastapi-users:auth"]},
        get_settings().secret_key.get_secret_value(),
        lifetime_seconds=int(timedelta(seconds=-10).total_seconds()),
    )
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    forged = await client.get("/api/v1/me", headers={"Authorization": "Bearer abc.def.ghi"})
    assert forged.status_code == 401


async def test_password_reset(client: AsyncClient, recorded_jobs: list[PendingJob]) -> None:
    account = await make_account()
    asked = await client.post("/api/v1/auth/forgot-password", json={"email": account.email})
    assert asked.status_code == 202
    token = _token_from_email(recorded_jobs, account.email)

    new_password = "a brand new passphrase"
    reset = await client.post(
        "/api/v1/auth/reset-password", json={"token": token, "password": new_password}
    )
    assert reset.status_code == 204, reset.text
    old = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert old.status_code == 401
    new = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": new_password}
    )
    assert new.status_code == 200

    bad = await client.post(
        "/api/v1/auth/reset-password", json={"token": "garbage", "password": new_password}
    )
    assert bad.status_code == 400


async def test_unknown_email_gets_the_same_answer(
    client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    response = await client.post(
        "/api/v1/auth/forgot-password", json={"email": "nobody-here@example.com"}
    )
    assert response.status_code == 202
    assert not [j for j in recorded_jobs if j.args and j.args[0] == "nobody-here@example.com"]
