"""Pure ASGI middleware: request context and metrics, body-size limit, one transaction per request.

Pure ASGI (not BaseHTTPMiddleware) so streaming responses and context variables behave.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.db import UnitOfWork, bind_unit_of_work
from backend.jobs import send_pending_jobs
from backend.kit.logcontext import start_request_fields
from backend.metrics import LATENCY, REQUESTS

log = structlog.get_logger("parley.http")

REQUEST_ID_HEADER = b"x-request-id"


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def _error_body(status: int, code: str, detail: str) -> tuple[list[Message], bytes]:
    body = json.dumps({"error": code, "detail": detail}).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return [start, {"type": "http.response.body", "body": body}], body


class RequestContextMiddleware:
    """Request id in and out, structured access logs, and Prometheus counters."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(REQUEST_ID_HEADER, b"").decode("latin-1")
        request_id = incoming[:64] if incoming.isprintable() and incoming else uuid.uuid4().hex
        fields = start_request_fields(request_id=request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(elapsed)
            if route not in ("/metrics", "/healthz", "/readyz"):
                log.info(
                    "request",
                    **fields,
                    method=scope["method"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )


class BodySizeLimitMiddleware:
    """Refuses bodies over `max_bytes` with 413: at once by Content-Length, else while streaming."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        larger_limits: tuple[tuple[re.Pattern[str], int], ...] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # (path pattern, limit) for endpoints that take big bodies, such as file uploads.
        self.larger_limits = larger_limits

    def _limit_for(self, path: str) -> int:
        for pattern, limit in self.larger_limits:
            if pattern.fullmatch(path):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self._limit_for(scope["path"])
        detail = f"The request body is larger than the limit of {max_bytes} bytes."
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await self._refuse(send, detail)
            return
        received = 0
        too_large = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    too_large = True
                    # The app sees a disconnect and stops reading; we answer 413 below.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if too_large:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not response_started:
            await self._refuse(send, detail)

    @staticmethod
    async def _refuse(send: Send, detail: str) -> None:
        messages, _ = _error_body(413, "payload_too_large", detail)
        for message in messages:
            await send(message)


class TransactionMiddleware:
    """One request = one transaction: commit just before the response starts, then send jobs.

    An error status (>= 400) rolls back, unless the request asked to keep its writes. A commit
    that fails turns the response into a 503, so a client never sees success for lost data.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        uow = UnitOfWork()
        replaced = False

        async def send_after_commit(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                try:
                    await self._finish(uow, ok=message["status"] < 400)
                except Exception:
                    log.exception("commit_failed")
                    replaced = True
                    messages, _ = _error_body(
                        503, "service_unavailable", "The change could not be saved; try again."
                    )
                    for m in messages:
                        await send(m)
                    return
            await send(message)

        async with bind_unit_of_work(uow):
            try:
                await self.app(scope, receive, send_after_commit)
            except BaseException:
                await uow.rollback()
                raise
            finally:
                await uow.close()
        await send_pending_jobs(uow)

    @staticmethod
    async def _finish(uow: UnitOfWork, *, ok: bool) -> None:
        if ok or uow.commit_on_error:
            await uow.commit()
        else:
            await uow.rollback()
