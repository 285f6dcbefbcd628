"""Bad input never gets a 500: it gets a 4xx in the one JSON error shape, with a useful detail.

Requests go through a client that turns an unhandled exception into the 500 a real client would
see (instead of raising it into the test), so each case asserts on the status and the body.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from fastapi import FastAPI
from fastapi_users.jwt import generate_jwt
from httpx import ASGITransport, AsyncClient
from sqlalchemy import update

from backend.config import get_settings
from backend.db import PendingJob, unit_of_work
from backend.models import RefreshToken, User
from backend.tenancy.permissions import API_KEY_SCOPES
from tests.conftest import TEST_ADMIN_URL, TEST_APP_URL
from tests.factories.accounts import DEFAULT_PASSWORD, Account, make_account
from tests.factories.responses import assert_error, error_fields
from tests.factories.tenancy import make_workspace
from tests.factories.workspaces import create_api_key, create_invitation, unique_email

JSON = {"content-type": "application/json"}
ACCESS_AUDIENCE = ["fastapi-users:auth"]


def _random_ip() -> str:
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """A client that sees a 500 as a 500, from an address of its own (rate limits are per IP)."""
    transport = ASGITransport(app=app, raise_app_exceptions=False, client=(_random_ip(), 40000))
    async with AsyncClient(transport=transport, base_url="http://parley.test") as client:
        yield client


@pytest.fixture
async def owner() -> Account:
    return await make_workspace()


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _token_from_email(jobs: list[PendingJob], to: str) -> str:
    for job in reversed(jobs):
        if job.function == "send_email" and job.args[0] == to:
            for line in str(job.args[2]).splitlines():
                if "send this token to" in line:
                    return line.rsplit(": ", 1)[1].strip()
    raise AssertionError(f"no email with a token was queued for {to}")


def _access_token(sub: str, secret: str | None = None, audience: Any = None) -> str:
    return generate_jwt(
        {"sub": sub, "aud": audience or ACCESS_AUDIENCE},
        secret or get_settings().secret_key.get_secret_value(),
        lifetime_seconds=600,
    )


# --- Body size -----------------------------------------------------------------------------


def _limit() -> int:
    return get_settings().max_request_body_bytes


async def test_body_over_the_limit_is_refused_by_content_length(
    http: AsyncClient, owner: Account
) -> None:
    body = b'{"name": "' + b"x" * _limit() + b'"}'
    response = await http.patch("/api/v1/tenant", content=body, headers={**owner.headers(), **JSON})
    assert response.request.headers["content-length"] == str(len(body))
    detail = assert_error(response, 413, "payload_too_large")["detail"]
    assert str(_limit()) in detail


async def test_streamed_body_over_the_limit_is_refused(http: AsyncClient, owner: Account) -> None:
    chunk = b"x" * 65536
    chunks = _limit() // len(chunk) + 2

    async def stream() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(chunks):
            yield chunk
        yield b'"}'

    response = await http.patch(
        "/api/v1/tenant", content=stream(), headers={**owner.headers(), **JSON}
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    detail = assert_error(response, 413, "payload_too_large")["detail"]
    assert str(_limit()) in detail
    # Nothing was renamed.
    current = await http.get("/api/v1/tenant", headers=owner.headers())
    assert current.json()["name"].startswith("Workspace ")


async def test_streamed_body_under_the_limit_is_read(http: AsyncClient, owner: Account) -> None:
    async def stream() -> AsyncIterator[bytes]:
        yield b'{"name": '
        yield b'"Streamed name"}'

    response = await http.patch(
        "/api/v1/tenant", content=stream(), headers={**owner.headers(), **JSON}
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Streamed name"


async def test_body_of_exactly_the_limit_reaches_validation(
    http: AsyncClient, owner: Account
) -> None:
    head, tail = b'{"name": "', b'"}'
    body = head + b"x" * (_limit() - len(head) - len(tail)) + tail
    assert len(body) == _limit()
    response = await http.patch("/api/v1/tenant", content=body, headers={**owner.headers(), **JSON})
    assert_error(response, 422, "validation_error")
    assert error_fields(response) == ["body.name"]


# --- Bodies that are not (valid) JSON ------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b'{"email": ', b"{'email': 'a@example.com'}", b'{"email": "a@example.com",}', b"email=a"],
    ids=["truncated", "single-quotes", "trailing-comma", "not-json"],
)
async def test_malformed_json_is_400(http: AsyncClient, content: bytes) -> None:
    response = await http.post("/api/v1/auth/login", content=content, headers=JSON)
    body = assert_error(response, 400, "malformed_json")
    assert "JSON" in body["detail"]


@pytest.mark.parametrize(
    "content",
    [
        b'{"email": "\xff\xfe"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"email": ' + b"9" * 10_000 + b"}",
    ],
    ids=["invalid-utf8", "nested-100k-deep", "10k-digit-number"],
)
async def test_undecodable_json_is_400(http: AsyncClient, content: bytes) -> None:
    response = await http.post("/api/v1/auth/login", content=content, headers=JSON)
    assert_error(response, 400)


@pytest.mark.parametrize(
    ("content", "field"),
    [(b"", "body"), (b"null", "body"), (b"[]", "body"), (b'"a string"', "body")],
    ids=["empty", "null", "list", "string"],
)
async def test_json_that_is_not_an_object_is_422(
    http: AsyncClient, content: bytes, field: str
) -> None:
    response = await http.post("/api/v1/auth/login", content=content, headers=JSON)
    assert_error(response, 422, "validation_error")
    assert error_fields(response) == [field]


# --- Wrong types and extra fields ----------------------------------------------------------

TYPE_CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/api/v1/tenants", {"name": "Acme", "slug": 123}, "body.slug"),
    ("POST", "/api/v1/tenants", {"name": ["Acme"], "slug": "acme"}, "body.name"),
    ("PATCH", "/api/v1/tenant", {"name": None}, "body.name"),
    ("PATCH", "/api/v1/tenant", {"name": "Acme", "plan": "enterprise"}, "body.plan"),
    ("POST", "/api/v1/api-keys", {"name": "k", "scopes": "tenant:read"}, "body.scopes"),
    ("POST", "/api/v1/api-keys", {"name": "k", "scopes": []}, "body.scopes"),
    ("POST", "/api/v1/api-keys", {"name": "k", "scopes": ["root"]}, "body.scopes.0"),
    ("POST", "/api/v1/invitations", {"email": "a@example.com", "role": 1}, "body.role"),
    ("POST", "/api/v1/invitations", {"email": "a@example.com", "role": "god"}, "body.role"),
    ("POST", "/api/v1/invitations", {"email": "not-an-email"}, "body.email"),
    ("PATCH", "/api/v1/members/{random}", {"role": ["admin"]}, "body.role"),
    ("POST", "/api/v1/auth/login", {"email": 42, "password": "x"}, "body.email"),
    ("POST", "/api/v1/auth/login", {"email": "a@example.com", "password": True}, "body.password"),
    (
        "POST",
        "/api/v1/auth/register",
        {"email": "a@example.com", "password": DEFAULT_PASSWORD, "full_name": {"a": 1}},
        "body.full_name",
    ),
    ("POST", "/api/v1/auth/refresh", {"refresh_token": 7}, "body.refresh_token"),
    ("POST", "/api/v1/invitations/accept", {"token": None}, "body.token"),
]


@pytest.mark.parametrize(
    ("method", "path", "payload", "field"),
    TYPE_CASES,
    ids=[f"{m} {p.removeprefix('/api/v1')} {f}" for m, p, _, f in TYPE_CASES],
)
async def test_wrong_types_name_the_field(
    http: AsyncClient, owner: Account, method: str, path: str, payload: dict[str, Any], field: str
) -> None:
    path = path.replace("{random}", str(uuid.uuid4()))
    response = await http.request(method, path, json=payload, headers=owner.headers())
    body = assert_error(response, 422, "validation_error")
    assert field in error_fields(response), body
    assert field in body["detail"]


# --- Huge strings, well within the body limit ----------------------------------------------

HUGE = "x" * 100_000

HUGE_CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/api/v1/tenants", {"name": HUGE, "slug": "huge"}, "body.name"),
    ("POST", "/api/v1/tenants", {"name": "Huge", "slug": HUGE}, "body.slug"),
    ("PATCH", "/api/v1/tenant", {"name": HUGE}, "body.name"),
    ("POST", "/api/v1/api-keys", {"name": HUGE, "scopes": ["tenant:read"]}, "body.name"),
    ("POST", "/api/v1/invitations", {"email": f"{HUGE}@example.com"}, "body.email"),
    ("POST", "/api/v1/invitations/accept", {"token": HUGE}, "body.token"),
    ("POST", "/api/v1/auth/login", {"email": "a@example.com", "password": HUGE}, "body.password"),
    (
        "POST",
        "/api/v1/auth/register",
        {"email": "a@example.com", "password": HUGE},
        "body.password",
    ),
    (
        "POST",
        "/api/v1/auth/register",
        {"email": "a@example.com", "password": DEFAULT_PASSWORD, "full_name": HUGE},
        "body.full_name",
    ),
    ("POST", "/api/v1/auth/refresh", {"refresh_token": HUGE}, "body.refresh_token"),
    ("POST", "/api/v1/auth/verify", {"token": HUGE}, "body.token"),
    ("POST", "/api/v1/auth/reset-password", {"token": HUGE, "password": "x"}, "body.token"),
]


@pytest.mark.parametrize(
    ("method", "path", "payload", "field"),
    HUGE_CASES,
    ids=[f"{m} {p.removeprefix('/api/v1')} {f}" for m, p, _, f in HUGE_CASES],
)
async def test_huge_strings_are_422(
    http: AsyncClient, owner: Account, method: str, path: str, payload: dict[str, Any], field: str
) -> None:
    response = await http.request(method, path, json=payload, headers=owner.headers())
    body = assert_error(response, 422, "validation_error")
    assert field in error_fields(response), body


@pytest.mark.parametrize(
    ("path", "field"),
    [("/api/v1/audit-log?action=", "query.action"), ("/api/v1/api-keys?cursor=", "query.cursor")],
)
async def test_huge_query_parameters_are_422(
    http: AsyncClient, owner: Account, path: str, field: str
) -> None:
    response = await http.get(path + "x" * 4000, headers=owner.headers())
    assert_error(response, 422, "validation_error")
    assert error_fields(response) == [field]


# --- Odd Unicode ---------------------------------------------------------------------------

NUL_CASES = [
    pytest.param(
        "POST",
        "/api/v1/tenants",
        {"name": "Acme\u0000Corp", "slug": "nul-{unique}"},
        id="tenant name",
    ),
    pytest.param("PATCH", "/api/v1/tenant", {"name": "Acme\u0000"}, id="tenant rename"),
    pytest.param(
        "POST",
        "/api/v1/api-keys",
        {"name": "key\u0000", "scopes": ["tenant:read"]},
        id="api key name",
    ),
    pytest.param(
        "POST",
        "/api/v1/auth/register",
        {
            "email": "nul-{unique}@example.com",
            "password": DEFAULT_PASSWORD,
            "full_name": "Ada\u0000",
        },
        id="full name",
    ),
    pytest.param("GET", "/api/v1/audit-log?action=%00", None, id="audit action"),
    pytest.param("POST", "/api/v1/tenants", {"name": "Acme", "slug": "a\u0000b"}, id="slug"),
    pytest.param("POST", "/api/v1/invitations", {"email": "a\u0000b@example.com"}, id="email"),
    pytest.param(
        "POST",
        "/api/v1/auth/login",
        {"email": "nobody@example.com", "password": "pass\u0000word"},
        id="password",
    ),
    pytest.param("POST", "/api/v1/invitations/accept", {"token": "pin_\u0000"}, id="token"),
]


@pytest.mark.parametrize(("method", "path", "payload"), NUL_CASES)
async def test_nul_byte_is_a_client_error(
    http: AsyncClient, owner: Account, method: str, path: str, payload: dict[str, Any] | None
) -> None:
    if payload is not None:
        fresh = uuid.uuid4().hex[:10]
        payload = {
            k: v.replace("{unique}", fresh) if isinstance(v, str) else v for k, v in payload.items()
        }
    response = await http.request(method, path, json=payload, headers=owner.headers())
    assert 400 <= response.status_code < 500, f"{response.status_code}: {response.text}"
    assert_error(response, response.status_code)


@pytest.mark.parametrize(
    "name",
    [
        "\u202eevil.exe\u202c",  # right-to-left override
        "\u05e9\u05dc\u05d5\u05dd \u200fParley\u200e",  # Hebrew with RLM/LRM marks
        "Caf\u0065\u0301 \u00e9",  # combining accent next to a precomposed one
        "\U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f600",  # ZWJ family, 4-byte emoji
        "\u6f22\u5b57 \ufeff\u200b",  # CJK, BOM and zero-width space
    ],
    ids=["rtl-override", "rtl-marks", "combining", "emoji", "cjk-zero-width"],
)
async def test_odd_unicode_round_trips(http: AsyncClient, owner: Account, name: str) -> None:
    renamed = await http.patch("/api/v1/tenant", json={"name": name}, headers=owner.headers())
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == name
    current = await http.get("/api/v1/tenant", headers=owner.headers())
    assert current.json()["name"] == name


async def test_escaped_surrogate_pair_is_one_character(http: AsyncClient, owner: Account) -> None:
    content = b'{"name": "smile \\ud83d\\ude00"}'
    response = await http.patch(
        "/api/v1/tenant", content=content, headers={**owner.headers(), **JSON}
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "smile \U0001f600"


@pytest.mark.parametrize(
    ("method", "path", "content", "field"),
    [
        ("PATCH", "/api/v1/tenant", b'{"name": "a\\ud800b"}', "body.name"),
        ("POST", "/api/v1/tenants", b'{"name": "\\udfff", "slug": "lone"}', "body.name"),
        (
            "POST",
            "/api/v1/api-keys",
            b'{"name": "\\ud800", "scopes": ["tenant:read"]}',
            "body.name",
        ),
        (
            "POST",
            "/api/v1/auth/login",
            b'{"email": "a@example.com", "password": "\\ud800xxxxxxxx"}',
            "body.password",
        ),
        ("POST", "/api/v1/auth/refresh", b'{"refresh_token": "prt_\\ud800"}', "body.refresh_token"),
        (
            "POST",
            "/api/v1/auth/forgot-password",
            b'{"email": "a\\ud800@example.com"}',
            "body.email",
        ),
    ],
    ids=["rename", "create", "api-key", "password", "refresh-token", "email"],
)
async def test_lone_surrogates_are_422(
    http: AsyncClient, owner: Account, method: str, path: str, content: bytes, field: str
) -> None:
    response = await http.request(
        method, path, content=content, headers={**owner.headers(), **JSON}
    )
    assert_error(response, 422, "validation_error")
    assert error_fields(response) == [field]


# --- Ids -----------------------------------------------------------------------------------

ID_ROUTES = [
    ("PATCH", "/api/v1/members/{}", {"role": "viewer"}),
    ("DELETE", "/api/v1/members/{}", None),
    ("DELETE", "/api/v1/invitations/{}", None),
    ("DELETE", "/api/v1/api-keys/{}", None),
]
ID_ROUTE_IDS = [f"{m} {p.removeprefix('/api/v1')}" for m, p, _ in ID_ROUTES]


@pytest.mark.parametrize(
    "object_id", [str(uuid.uuid4()), str(uuid.UUID(int=0))], ids=["random", "nil"]
)
@pytest.mark.parametrize(("method", "path", "payload"), ID_ROUTES, ids=ID_ROUTE_IDS)
async def test_unknown_ids_are_404(
    http: AsyncClient,
    owner: Account,
    method: str,
    path: str,
    payload: dict[str, Any] | None,
    object_id: str,
) -> None:
    response = await http.request(
        method, path.format(object_id), json=payload, headers=owner.headers()
    )
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    "object_id",
    ["abc", "1", "' OR 1=1 --", "%00", "0" * 1000],
    ids=["word", "int", "sql", "nul", "long"],
)
@pytest.mark.parametrize(("method", "path", "payload"), ID_ROUTES, ids=ID_ROUTE_IDS)
async def test_ids_that_are_not_uuids_are_422(
    http: AsyncClient,
    owner: Account,
    method: str,
    path: str,
    payload: dict[str, Any] | None,
    object_id: str,
) -> None:
    response = await http.request(
        method, path.format(object_id), json=payload, headers=owner.headers()
    )
    assert_error(response, 422, "validation_error")
    fields = error_fields(response)
    assert len(fields) == 1
    assert fields[0].startswith("path.")
    assert fields[0].endswith("_id")


# --- Duplicates ----------------------------------------------------------------------------


async def _wait_until_blocked(timeout: float = 10.0) -> None:
    """Wait until a query of the app role waits on a lock (held by the test's transaction)."""
    login = urlsplit(TEST_APP_URL).username
    admin = await asyncpg.connect(TEST_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            waiting = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND usename = $1 AND wait_event_type = 'Lock'",
                login,
            )
            if waiting:
                return
            await asyncio.sleep(0.02)
    finally:
        await admin.close()
    raise AssertionError("the request never waited for the concurrent transaction")


async def _app_connection() -> Any:
    return await asyncpg.connect(TEST_APP_URL.replace("postgresql+asyncpg://", "postgresql://"))


async def test_same_email_registered_twice_at_once_is_a_conflict(http: AsyncClient) -> None:
    """Another sign-up with the same email has inserted but not committed yet."""
    email = unique_email("race")
    other = await _app_connection()
    try:
        transaction = other.transaction()
        await transaction.start()
        await other.execute(
            "INSERT INTO users (id, email, hashed_password, is_active, is_superuser, is_verified) "
            "VALUES ($1, $2, 'not-a-hash', true, false, false)",
            uuid.uuid4(),
            email,
        )
        request = asyncio.create_task(
            http.post("/api/v1/auth/register", json={"email": email, "password": DEFAULT_PASSWORD})
        )
        try:
            await _wait_until_blocked()
        finally:
            await transaction.commit()
        response = await request
    finally:
        await other.close()
    assert_error(response, 409, "conflict")


async def test_invitation_accepted_twice_at_once_is_a_conflict(
    http: AsyncClient, owner: Account
) -> None:
    """A second accept (another tab) has inserted the membership but not committed yet."""
    assert owner.tenant_id is not None
    invitee = await make_account()
    _, token = await create_invitation(http, owner, invitee.email)
    other = await _app_connection()
    try:
        transaction = other.transaction()
        await transaction.start()
        await other.execute("SELECT set_config('app.tenant_id', $1, true)", str(owner.tenant_id))
        await other.execute(
            "INSERT INTO memberships (id, tenant_id, user_id, role) VALUES ($1, $2, $3, 'viewer')",
            uuid.uuid4(),
            owner.tenant_id,
            invitee.user_id,
        )
        request = asyncio.create_task(
            http.post(
                "/api/v1/invitations/accept", json={"token": token}, headers=invitee.headers()
            )
        )
        try:
            await _wait_until_blocked()
        finally:
            await transaction.commit()
        response = await request
    finally:
        await other.close()
    assert_error(response, 409, "conflict")


async def test_accepting_into_a_workspace_already_joined_is_409(
    http: AsyncClient, owner: Account
) -> None:
    invitee = await make_account()
    _, first = await create_invitation(http, owner, invitee.email)
    _, second = await create_invitation(http, owner, invitee.email)
    joined = await http.post(
        "/api/v1/invitations/accept", json={"token": first}, headers=invitee.headers()
    )
    assert joined.status_code == 200, joined.text
    again = await http.post(
        "/api/v1/invitations/accept", json={"token": second}, headers=invitee.headers()
    )
    assert_error(again, 409, "conflict")
    reused = await http.post(
        "/api/v1/invitations/accept", json={"token": first}, headers=invitee.headers()
    )
    assert_error(reused, 410, "gone")


# --- Expired, revoked, reused and forged credentials ---------------------------------------


async def test_expired_refresh_token_is_401(http: AsyncClient) -> None:
    account = await make_account()
    async with unit_of_work() as session:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == account.user_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = await http.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    body = assert_error(response, 401, "not_authenticated")
    assert "expired" in body["detail"]


async def test_deactivated_account_loses_access_and_refresh(http: AsyncClient) -> None:
    account = await make_account()
    assert (await http.get("/api/v1/me", headers=account.headers())).status_code == 200
    async with unit_of_work() as session:
        await session.execute(update(User).filter_by(id=account.user_id).values(is_active=False))
    assert_error(await http.get("/api/v1/me", headers=account.headers()), 401, "not_authenticated")
    refreshed = await http.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert_error(refreshed, 401, "not_authenticated")


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer    ",
        "Bearer not.a.jwt",
        "Bearer prl_" + "a" * 43,
        "Bearer prt_" + "a" * 43,
        "Token abc",
    ],
    ids=["basic", "bare-scheme", "blank-token", "garbage", "unknown-key", "refresh-token", "other"],
)
async def test_malformed_or_unknown_credentials_are_401(
    http: AsyncClient, authorization: str
) -> None:
    for path in ("/api/v1/me", "/api/v1/tenant"):
        response = await http.get(path, headers={"Authorization": authorization})
        assert_error(response, 401, "not_authenticated")


async def test_forged_access_tokens_are_401(http: AsyncClient) -> None:
    account = await make_account()
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    claims = json.dumps({"sub": str(account.user_id), "aud": ACCESS_AUDIENCE}).encode()
    unsigned = f"{header}.{base64.urlsafe_b64encode(claims).rstrip(b'=').decode()}."
    forged = {
        "other-secret": _access_token(str(account.user_id), secret="s" * 48),
        "alg-none": unsigned,
        "unknown-user": _access_token(str(uuid.uuid4())),
        "sub-not-a-uuid": _access_token("admin"),
        "verify-audience": _access_token(str(account.user_id), audience="fastapi-users:verify"),
        "refresh-token": account.refresh_token,
    }
    for name, token in forged.items():
        response = await http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, f"{name}: {response.status_code} {response.text}"
        assert_error(response, 401, "not_authenticated")
    # The real token of the same account works: the refusals above are about the tokens.
    assert (await http.get("/api/v1/me", headers=account.headers())).status_code == 200


async def test_revoked_api_key_is_401_everywhere(http: AsyncClient, owner: Account) -> None:
    handle = await create_api_key(http, owner, API_KEY_SCOPES)
    for path in ("/api/v1/tenant", "/api/v1/members"):
        assert (await http.get(path, headers=handle.headers())).status_code == 200
    revoked = await http.delete(f"/api/v1/api-keys/{handle.id}", headers=owner.headers())
    assert revoked.status_code == 200, revoked.text
    for path in ("/api/v1/tenant", "/api/v1/members", "/api/v1/api-keys", "/api/v1/audit-log"):
        response = await http.get(path, headers=handle.headers())
        body = assert_error(response, 401, "not_authenticated")
        assert "revoked" in body["detail"]


async def test_reset_token_works_once(http: AsyncClient, recorded_jobs: list[PendingJob]) -> None:
    account = await make_account()
    asked = await http.post("/api/v1/auth/forgot-password", json={"email": account.email})
    assert asked.status_code == 202, asked.text
    token = _token_from_email(recorded_jobs, account.email)
    first = await http.post(
        "/api/v1/auth/reset-password", json={"token": token, "password": "first new passphrase"}
    )
    assert first.status_code == 204, first.text
    again = await http.post(
        "/api/v1/auth/reset-password", json={"token": token, "password": "second new passphrase"}
    )
    assert_error(again, 400, "bad_request")
    login = await http.post(
        "/api/v1/auth/login", json={"email": account.email, "password": "first new passphrase"}
    )
    assert login.status_code == 200, login.text


@pytest.mark.parametrize(
    ("value", "status"), [("", 400), ("x" * 10_000, 400), (str(uuid.uuid4()), 404)]
)
async def test_bad_tenant_header(
    http: AsyncClient, owner: Account, value: str, status: int
) -> None:
    headers = {**owner.headers(), "X-Parley-Tenant": value}
    assert_error(await http.get("/api/v1/tenant", headers=headers), status)


# --- Content types, routes, methods --------------------------------------------------------


async def test_form_data_to_a_json_endpoint_is_422(http: AsyncClient) -> None:
    response = await http.post(
        "/api/v1/auth/login", data={"email": "a@example.com", "password": DEFAULT_PASSWORD}
    )
    assert_error(response, 422, "validation_error")
    assert error_fields(response) == ["body"]


async def test_json_with_a_text_content_type_is_422(http: AsyncClient) -> None:
    content = json.dumps({"email": "a@example.com", "password": DEFAULT_PASSWORD}).encode()
    response = await http.post(
        "/api/v1/auth/login", content=content, headers={"content-type": "text/plain"}
    )
    assert_error(response, 422, "validation_error")


async def test_json_to_the_form_endpoint_names_the_form_fields(http: AsyncClient) -> None:
    response = await http.post(
        "/api/v1/auth/token", json={"username": "a@example.com", "password": DEFAULT_PASSWORD}
    )
    assert_error(response, 422, "validation_error")
    assert sorted(error_fields(response)) == ["body.password", "body.username"]


@pytest.mark.parametrize(
    "path", ["/api/v1/nope", "/api/v2/tenant", "/api/v1/tenant/extra", "/api/v1/Members"]
)
async def test_unknown_route_is_404(http: AsyncClient, owner: Account, path: str) -> None:
    assert_error(await http.get(path, headers=owner.headers()), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/v1/tenant", {"GET", "PATCH"}),
        ("DELETE", "/api/v1/tenant", {"GET", "PATCH"}),
        ("GET", "/api/v1/auth/login", {"POST"}),
        ("POST", "/api/v1/me", {"GET"}),
        ("GET", "/api/v1/api-keys/{id}", {"DELETE"}),
    ],
)
async def test_wrong_method_is_405(
    http: AsyncClient, owner: Account, method: str, path: str, allowed: set[str]
) -> None:
    path = path.replace("{id}", str(uuid.uuid4()))
    response = await http.request(method, path, headers=owner.headers())
    assert_error(response, 405, "method_not_allowed")
    # Starlette names the methods of the first route matching the path, so a path served by
    # several routes (GET and PATCH /tenant) lists only some of its methods.
    listed = {m.strip() for m in response.headers["allow"].split(",")}
    assert listed, response.headers
    assert listed <= allowed, listed


# --- Pagination ----------------------------------------------------------------------------

CURSORS = [
    pytest.param("!!!", id="not-base64"),
    pytest.param(base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(), id="not-utf8"),
    pytest.param(_cursor({"created_at": "2024-01-01T00:00:00+00:00"}), id="object"),
    pytest.param(_cursor(["2024-01-01T00:00:00+00:00"]), id="one-item"),
    pytest.param(_cursor(["2024-01-01T00:00:00+00:00", str(uuid.uuid4()), 3]), id="three-items"),
    pytest.param(_cursor(["yesterday", str(uuid.uuid4())]), id="bad-date"),
    pytest.param(_cursor(["2024-01-01T00:00:00+00:00", "nope"]), id="bad-id"),
    pytest.param(_cursor([20240101, str(uuid.uuid4())]), id="date-a-number"),
    pytest.param(_cursor(["2024-01-01T00:00:00+00:00", None]), id="id-null"),
    pytest.param(
        _cursor(["2024-01-01T00:00:00+00:00", 12345]),
        id="id-a-number",
    ),
    pytest.param(_cursor(["2024-01-01T00:00:00+00:00", ["a"]]), id="id-a-list"),
]


@pytest.mark.parametrize("cursor", CURSORS)
@pytest.mark.parametrize("path", ["/api/v1/audit-log", "/api/v1/api-keys"])
async def test_invalid_cursor_is_400(
    http: AsyncClient, owner: Account, path: str, cursor: str
) -> None:
    response = await http.get(path, params={"cursor": cursor}, headers=owner.headers())
    body = assert_error(response, 400, "bad_request")
    assert "cursor" in body["detail"]


@pytest.mark.parametrize("limit", ["0", "-1", "201", "ten", "1e3", "99999999999999999999999"])
async def test_invalid_limit_is_422(http: AsyncClient, owner: Account, limit: str) -> None:
    response = await http.get("/api/v1/audit-log", params={"limit": limit}, headers=owner.headers())
    assert_error(response, 422, "validation_error")
    assert error_fields(response) == ["query.limit"]
