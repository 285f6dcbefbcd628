"""Fields to carry on every log line of a request, including the access line written after it.

FastAPI may run dependencies in a child task, whose context-variable changes don't flow back to
the middleware. The middleware therefore owns a mutable dict, and `bind_request_fields` writes
to it as well as to structlog's context.
"""

from __future__ import annotations

import contextvars
from typing import Any

import structlog

_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "parley_request_log_fields", default=None
)


def start_request_fields(**fields: Any) -> dict[str, Any]:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**fields)
    holder = dict(fields)
    _fields.set(holder)
    return holder


def bind_request_fields(**fields: Any) -> None:
    present = {k: v for k, v in fields.items() if v is not None}
    structlog.contextvars.bind_contextvars(**present)
    holder = _fields.get()
    if holder is not None:
        holder.update(present)
