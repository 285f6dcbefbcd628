"""Reading server-sent events from a response body, for tests."""

from __future__ import annotations

import json
from typing import Any


def parse_events(text: str) -> list[tuple[str | None, Any]]:
    """(event name, data) of each event; data is decoded JSON, or the raw text ([DONE])."""
    events: list[tuple[str | None, Any]] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data.append(line.removeprefix("data: "))
        raw = "\n".join(data)
        try:
            events.append((name, json.loads(raw)))
        except ValueError:
            events.append((name, raw))
    return events
