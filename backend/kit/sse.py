"""Server-sent events: framing of one event, and the response headers a stream needs."""

from __future__ import annotations

import json
from typing import Any

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx buffers responses by default; a stream must reach the client as it is written.
    "X-Accel-Buffering": "no",
}


def sse_event(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    # json.dumps never emits a raw newline, so the payload is one data line.
    return f"{head}data: {payload}\n\n".encode()
