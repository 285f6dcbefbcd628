"""Exception handlers: every error leaves Parley in the one JSON shape of backend/errors.py.

The OpenAI-compatible API (/v1/...) answers errors in OpenAI's shape instead,
{"error": {"message", "type", "param", "code"}}, so OpenAI SDKs report them properly.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.db import database_failure
from backend.errors import AppError, ServiceUnavailable

log = structlog.get_logger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)  # noqa: S101  (registered for AppError only)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse(
            {"error": "malformed_json", "detail": "The request body is not valid JSON."},
            status_code=400,
        )
    fields = [
        {"field": _field_name(tuple(e.get("loc", ()))), "message": e.get("msg", "")} for e in errors
    ]
    names = ", ".join(f["field"] for f in fields)
    return JSONResponse(
        {
            "error": "validation_error",
            "detail": f"Some fields are not valid: {names}.",
            "fields": fields,
        },
        status_code=422,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    detail = exc.detail if isinstance(exc.detail, str) else "The request could not be processed."
    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        detail = "Authentication is required."
        headers.setdefault("WWW-Authenticate", "Bearer")
    code = _STATUS_CODES.get(exc.status_code, "error")
    return JSONResponse(
        {"error": code, "detail": detail}, status_code=exc.status_code, headers=headers
    )


def _sqlstate(exc: DBAPIError) -> str | None:
    original = exc.orig
    for attribute in ("sqlstate", "pgcode"):
        value = getattr(original, attribute, None)
        if isinstance(value, str):
            return value
    return None


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)  # noqa: S101
    failure = database_failure(_sqlstate(exc), connection_lost=exc.connection_invalidated)
    if failure is None:
        return await _unexpected_error(request, exc)
    return await _app_error(request, failure)


async def _pool_exhausted(request: Request, exc: Exception) -> JSONResponse:
    # Every pooled connection stayed busy for the pool's whole timeout: an overload.
    log.warning("database_pool_exhausted")
    busy = ServiceUnavailable(
        "The database is busy; try again shortly.", headers={"Retry-After": "1"}
    )
    return await _app_error(request, busy)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", exc_type=type(exc).__name__)
    return JSONResponse(
        {"error": "internal_error", "detail": "Something went wrong on our side. It was logged."},
        status_code=500,
    )


OPENAI_COMPATIBLE_PREFIX = "/v1/"
Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def _openai_shaped(handler: Handler) -> Handler:
    async def shaped(request: Request, exc: Exception) -> JSONResponse:
        response = await handler(request, exc)
        if not request.url.path.startswith(OPENAI_COMPATIBLE_PREFIX):
            return response
        body = json.loads(bytes(response.body))
        error = {
            "message": body.get("detail", ""),
            "type": "invalid_request_error" if response.status_code < 500 else "server_error",
            "param": (body.get("fields") or [{}])[0].get("field"),
            "code": body.get("error"),
            # A quota refusal's limit and when it resets, as the rest of the API answers them.
            **{key: body[key] for key in ("limit", "resets_at") if key in body},
        }
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "content-type")
        }
        return JSONResponse({"error": error}, status_code=response.status_code, headers=headers)

    return shaped


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _openai_shaped(_app_error))
    app.add_exception_handler(RequestValidationError, _openai_shaped(_validation_error))
    app.add_exception_handler(StarletteHTTPException, _openai_shaped(_http_error))
    app.add_exception_handler(DBAPIError, _openai_shaped(_database_error))
    app.add_exception_handler(PoolTimeout, _openai_shaped(_pool_exhausted))
    app.add_exception_handler(Exception, _openai_shaped(_unexpected_error))
