"""The dashboard's cookie session: cookie flags, CSRF refusals, rotation and logout."""

from __future__ import annotations

from http.cookies import SimpleCookie

from httpx import AsyncClient, Response

from backend.auth.cookies import COOKIE_PATH, CSRF_HEADER, REFRESH_COOKIE
from tests.factories.accounts import make_account

CSRF = {CSRF_HEADER: "1"}


def _refresh_cookie(response: Response) -> SimpleCookie:
    cookie = SimpleCookie()
    cookie.load(response.headers["set-cookie"])
    return cookie


def _with_cookie(token: str, **extra: str) -> dict[str, str]:
    return {**CSRF, "Cookie": f"{REFRESH_COOKIE}={token}", **extra}


async def _open(client: AsyncClient) -> Response:
    account = await make_account()
    response = await client.post(
        "/api/v1/auth/session",
        json={"email": account.email, "password": account.password},
        headers=CSRF,
    )
    assert response.status_code == 200, response.text
    return response


async def test_login_sets_an_httponly_secure_strict_cookie_scoped_to_the_session_path(
    client: AsyncClient,
) -> None:
    response = await _open(client)
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}  # no refresh token in JS
    morsel = _refresh_cookie(response)[REFRESH_COOKIE]
    assert morsel.value.startswith("prt_")
    assert morsel["httponly"] is True
    assert morsel["secure"] is True
    assert morsel["samesite"] == "strict"
    assert morsel["path"] == COOKIE_PATH
    assert int(morsel["max-age"]) == 7 * 86_400
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200


async def test_refresh_rotates_the_cookie_and_the_old_one_is_single_use(
    client: AsyncClient,
) -> None:
    first = _refresh_cookie(await _open(client))[REFRESH_COOKIE].value
    rotated = await client.post("/api/v1/auth/session/refresh", headers=_with_cookie(first))
    assert rotated.status_code == 200, rotated.text
    second = _refresh_cookie(rotated)[REFRESH_COOKIE].value
    assert second != first
    assert rotated.json()["access_token"]

    reused = await client.post("/api/v1/auth/session/refresh", headers=_with_cookie(first))
    assert reused.status_code == 401
    assert "already used" in reused.json()["detail"]
    # Reuse revoked the whole login, the newer cookie included.
    after = await client.post("/api/v1/auth/session/refresh", headers=_with_cookie(second))
    assert after.status_code == 401


async def test_refresh_without_the_csrf_header_is_refused(client: AsyncClient) -> None:
    token = _refresh_cookie(await _open(client))[REFRESH_COOKIE].value
    response = await client.post(
        "/api/v1/auth/session/refresh", headers={"Cookie": f"{REFRESH_COOKIE}={token}"}
    )
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "detail": f"The {CSRF_HEADER} header is missing: the session cookie is accepted only "
        "from Parley's dashboard.",
    }
    # The refused request did not use the token up.
    still = await client.post("/api/v1/auth/session/refresh", headers=_with_cookie(token))
    assert still.status_code == 200


async def test_refresh_from_another_origin_is_refused(client: AsyncClient) -> None:
    token = _refresh_cookie(await _open(client))[REFRESH_COOKIE].value
    response = await client.post(
        "/api/v1/auth/session/refresh",
        headers=_with_cookie(token, Origin="https://evil.example"),
    )
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "Requests from https://evil.example may not use the session cookie."
    )
    own = await client.post(
        "/api/v1/auth/session/refresh", headers=_with_cookie(token, Origin="http://parley.test")
    )
    assert own.status_code == 200, own.text


async def test_login_without_the_csrf_header_is_refused(client: AsyncClient) -> None:
    account = await make_account()
    response = await client.post(
        "/api/v1/auth/session", json={"email": account.email, "password": account.password}
    )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


async def test_refresh_without_a_cookie_asks_to_log_in(client: AsyncClient) -> None:
    response = await client.post("/api/v1/auth/session/refresh", headers=CSRF)
    assert response.status_code == 401
    assert response.json()["detail"] == "There is no session cookie. Log in again."


async def test_logout_revokes_the_login_and_clears_the_cookie(client: AsyncClient) -> None:
    token = _refresh_cookie(await _open(client))[REFRESH_COOKIE].value
    out = await client.delete("/api/v1/auth/session", headers=_with_cookie(token))
    assert out.status_code == 204
    cleared = _refresh_cookie(out)[REFRESH_COOKIE]
    assert cleared.value == ""
    assert cleared["max-age"] == "0"
    again = await client.post("/api/v1/auth/session/refresh", headers=_with_cookie(token))
    assert again.status_code == 401
