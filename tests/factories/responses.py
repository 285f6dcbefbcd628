"""Checks on Parley's one JSON error shape: {"error", "detail", "fields"?}."""

from __future__ import annotations

from typing import Any

from httpx import Response

ERROR_KEYS = {"error", "detail", "fields"}


def assert_error(response: Response, status: int, error: str | None = None) -> dict[str, Any]:
    """Assert `response` is a `status` answer in the error shape; return its body."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url.path}: expected {status}, "
        f"got {response.status_code}: {response.text[:500]}"
    )
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert {"error", "detail"} <= set(body) <= ERROR_KEYS, body
    assert isinstance(body["error"], str), body
    assert body["error"], body
    assert isinstance(body["detail"], str), body
    assert body["detail"].strip(), body
    if "fields" in body:
        assert isinstance(body["fields"], list), body
        assert body["fields"], body
        for item in body["fields"]:
            assert set(item) == {"field", "message"}, item
            assert item["field"], item
            assert item["message"], item
    if error is not None:
        assert body["error"] == error, body
    return body


def error_fields(response: Response) -> list[str]:
    """The field names listed by a validation error."""
    return [item["field"] for item in response.json().get("fields", [])]
