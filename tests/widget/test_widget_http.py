"""The widget's public HTTP side: config, visitor sessions, origins, identity, the script."""

from __future__ import annotations

import hashlib
import hmac

from httpx import AsyncClient

from tests.factories.responses import assert_error
from tests.widget.conftest import WidgetSetup, session_token

SHOP = "https://shop.example.com"


async def test_config_shows_the_assistant_and_its_looks(
    client: AsyncClient, widget: WidgetSetup
) -> None:
    response = await client.get(f"/api/widget/config?key={widget.key}", headers={"Origin": SHOP})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == SHOP
    body = response.json()
    assert body["assistant"]["name"] == widget.assistant["name"]
    assert body["assistant"]["welcome_message"] == "Hi! Ask me anything."
    assert body["appearance"]["title"] == widget.assistant["name"]
    assert body["appearance"]["position"] == "right"
    assert body["max_message_chars"] > 0
    assert "public_key" not in response.text
    assert "instructions" not in body["assistant"]


async def test_a_config_without_origin_still_varies_by_origin(
    client: AsyncClient, widget: WidgetSetup
) -> None:
    """A same-origin fetch (the dashboard's preview) sends no Origin; if the browser cached
    that answer for a business's page, the page would get no CORS header and no widget."""
    response = await client.get(f"/api/widget/config?key={widget.key}")
    assert response.status_code == 200
    assert response.headers["vary"] == "Origin"
    assert "access-control-allow-origin" not in response.headers


async def test_appearance_set_through_the_api_reaches_the_widget(
    client: AsyncClient, widget: WidgetSetup
) -> None:
    changed = await client.patch(
        f"/api/v1/assistants/{widget.assistant['id']}",
        json={"appearance": {"primary_color": "#112233", "position": "left", "greeting": "Hey"}},
        headers=widget.owner.headers(),
    )
    assert changed.status_code == 200, changed.text
    body = (await client.get(f"/api/widget/config?key={widget.key}")).json()
    assert body["appearance"]["primary_color"] == "#112233"
    assert body["appearance"]["position"] == "left"
    assert body["appearance"]["greeting"] == "Hey"
    bad = await client.patch(
        f"/api/v1/assistants/{widget.assistant['id']}",
        json={"appearance": {"primary_color": "red; background: url(x)"}},
        headers=widget.owner.headers(),
    )
    assert_error(bad, 422, "validation_error")


async def test_origins_are_checked(client: AsyncClient, widget: WidgetSetup) -> None:
    url = f"/api/widget/config?key={widget.key}"
    refused = await client.get(url, headers={"Origin": "https://evil.example.net"})
    body = assert_error(refused, 403, "origin_not_allowed")
    assert "allowed_origins" in body["detail"]
    own = await client.get(url, headers={"Origin": "http://127.0.0.1:8000"})
    assert own.status_code == 200  # Parley's own pages (/demo) are always allowed
    session = await client.post(
        "/api/widget/session",
        json={"key": widget.key},
        headers={"Origin": "https://evil.example.net"},
    )
    assert_error(session, 403, "origin_not_allowed")
    opened = await client.patch(
        f"/api/v1/assistants/{widget.assistant['id']}",
        json={"allow_all_origins": True},
        headers=widget.owner.headers(),
    )
    assert opened.json()["allow_all_origins"] is True
    anywhere = await client.get(url, headers={"Origin": "https://evil.example.net"})
    assert anywhere.status_code == 200


async def test_unknown_or_rotated_keys_find_nothing(
    client: AsyncClient, widget: WidgetSetup
) -> None:
    assert_error(await client.get("/api/widget/config?key=pk_nothing_here"), 404, "not_found")
    await client.post(
        f"/api/v1/assistants/{widget.assistant['id']}/rotate-public-key",
        headers=widget.owner.headers(),
    )
    old = await client.get(f"/api/widget/config?key={widget.key}")
    assert_error(old, 404, "not_found")


async def test_visitor_tokens_are_refreshed_with_the_same_visitor(
    client: AsyncClient, widget: WidgetSetup
) -> None:
    first = await session_token(client, widget.key)
    assert first["visitor_id"].startswith("v_")
    again = await session_token(client, widget.key, visitor_token=first["visitor_token"])
    assert again["visitor_id"] == first["visitor_id"]
    forged = await session_token(client, widget.key, visitor_token=first["visitor_token"] + "x")
    assert forged["visitor_id"] != first["visitor_id"]


async def test_identity_verification(client: AsyncClient, widget: WidgetSetup) -> None:
    url = f"/api/v1/assistants/{widget.assistant['id']}/identity-secret"
    secret = (await client.get(url, headers=widget.owner.headers())).json()["identity_secret"]
    user_hash = hmac.new(secret.encode(), b"customer-42", hashlib.sha256).hexdigest()
    verified = await session_token(client, widget.key, user_id="customer-42", user_hash=user_hash)
    assert verified["visitor_id"] == "user:customer-42"
    wrong = await client.post(
        "/api/widget/session",
        json={"key": widget.key, "user_id": "customer-43", "user_hash": user_hash},
    )
    assert_error(wrong, 401, "not_authenticated")
    half = await client.post("/api/widget/session", json={"key": widget.key, "user_id": "x"})
    assert_error(half, 401, "not_authenticated")
    rotated = await client.post(
        f"/api/v1/assistants/{widget.assistant['id']}/rotate-identity-secret",
        headers=widget.owner.headers(),
    )
    assert rotated.json()["identity_secret"] != secret
    stale = await client.post(
        "/api/widget/session",
        json={"key": widget.key, "user_id": "customer-42", "user_hash": user_hash},
    )
    assert_error(stale, 401, "not_authenticated")


async def test_a_token_of_another_assistant_is_not_honoured(
    client: AsyncClient, widget: WidgetSetup, handbook_kb: object
) -> None:
    from tests.factories.assistants import create_assistant

    other = await create_assistant(client, widget.owner)
    theirs = await session_token(client, other["public_key"])
    mine = await session_token(client, widget.key, visitor_token=theirs["visitor_token"])
    assert mine["visitor_id"] != theirs["visitor_id"]


async def test_preflight_and_bad_bodies(client: AsyncClient, widget: WidgetSetup) -> None:
    preflight = await client.options(
        "/api/widget/session",
        headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == SHOP
    for body in ({}, {"key": widget.key, "extra": 1}, {"key": "x" * 65}):
        assert_error(await client.post("/api/widget/session", json=body), 422, "validation_error")
    assert_error(await client.get("/api/widget/config"), 422, "validation_error")
