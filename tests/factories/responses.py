"""Checks on Parley's one JSON error shape: {"error", "detail", "fields"?}, plus "limit" and
"resets_at" on quota refusals. The OpenAI-compatible API (/v1/...) answers in OpenAI's shape,
{"error": {"message", "type", "param", "code"}}, checked here as the same information."""

from __future__ import annotations

from typing import Any

from httpx import Response

ERROR_KEYS = {"error", "detail", "fields", "limit", "resets_at"}
OPENAI_ERROR_KEYS = {"message", "type", "param", "code"}


def assert_error(response: Response, status: int, error: str | None = None) -> dict[str, Any]:
    """Assert `response` is a `status` answer in the error shape; return its body."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url.path}: expected {status}, "
        f"got {response.status_code}: {response.text[:500]}"
    )
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    assert isinstance(body, dict), body
    if response.request.url.path.startswith("/v1/"):
        body = _from_openai_shape(body)
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


def _from_openai_shape(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    assert OPENAI_ERROR_KEYS <= set(error) <= OPENAI_ERROR_KEYS | {"limit", "resets_at"}, body
    assert error["type"] in ("invalid_request_error", "server_error"), body
    extra = {key: error[key] for key in ("limit", "resets_at") if key in error}
    return {"error": error["code"], "detail": error["message"], **extra}


def error_fields(response: Response) -> list[str]:
    """The field names listed by a validation error."""
    return [item["field"] for item in response.json().get("fields", [])]
