"""The raw baseline: a bare FastAPI app with one GET endpoint and nothing else.

It answers with a page shaped exactly like GET /api/v1/api-keys (the same response model, so the
same validation and JSON encoding), built once at start-up: no authentication, no middleware, no
database. What Parley's list endpoint costs on top of this is the price of the platform.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from backend.apikeys.schemas import ApiKeyRead
from backend.kit.pagination import Page

PATH = "/items"
# How many items the page holds; the benchmark sets it to the seeded keys per workspace.
ITEMS_ENV = "PARLEY_BENCH_BARE_ITEMS"


def sample_page(count: int) -> Page[ApiKeyRead]:
    now = datetime.now(UTC)
    owner = uuid.uuid4()
    items = [
        ApiKeyRead(
            id=uuid.uuid4(),
            name=f"bench key {i}",
            prefix=f"prl_{uuid.uuid4().hex[:8]}",
            scopes=["members:read", "tenant:read"],
            created_by_id=owner,
            last_used_at=None,
            revoked_at=None,
            created_at=now - timedelta(seconds=i),
        )
        for i in range(count)
    ]
    return Page[ApiKeyRead](items=items, next_cursor=None)


def create_app() -> FastAPI:
    page = sample_page(int(os.environ.get(ITEMS_ENV, "20")))
    app = FastAPI(title="Bare baseline")

    @app.get(PATH, response_model=Page[ApiKeyRead])
    async def items() -> Page[ApiKeyRead]:
        return page

    return app
