"""`/healthz` (alive), `/readyz` (PostgreSQL and Redis answer) and `/metrics` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from backend.db import check_database
from backend.metrics import latest
from backend.redis import check_redis

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz() -> dict[str, str]:
    await check_database()
    await check_redis()
    return {"status": "ready", "database": "ok", "redis": "ok"}


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(latest(), media_type=CONTENT_TYPE_LATEST)
