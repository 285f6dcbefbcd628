"""Health, readiness, metrics and structured request logs."""

from __future__ import annotations

import structlog
from httpx import AsyncClient
from structlog.testing import capture_logs

from tests.factories.tenancy import make_workspace


async def test_healthz_and_readyz(client: AsyncClient) -> None:
    alive = await client.get("/healthz")
    assert alive.status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "redis": "ok"}


async def test_metrics_by_route_template_and_pool_gauges(client: AsyncClient) -> None:
    owner = await make_workspace()
    await client.get("/api/v1/members", headers=owner.headers())
    await client.get("/api/v1/members/not-a-uuid", headers=owner.headers())
    body = (await client.get("/metrics")).text
    assert 'parley_http_requests_total{method="GET",route="/api/v1/members",status="200"}' in body
    # Route templates, never raw paths: ids must not explode the label set.
    assert "not-a-uuid" not in body
    assert "parley_http_request_duration_seconds_bucket" in body
    assert "parley_db_pool_checked_out" in body


async def test_request_logs_carry_request_tenant_and_user_ids(client: AsyncClient) -> None:
    owner = await make_workspace()
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        response = await client.get(
            "/api/v1/tenant", headers={**owner.headers(), "X-Request-ID": "req-abc-123"}
        )
    assert response.headers["x-request-id"] == "req-abc-123"
    line = next(entry for entry in logs if entry.get("event") == "request")
    assert line["request_id"] == "req-abc-123"
    assert line["tenant_id"] == str(owner.tenant_id)
    assert line["user_id"] == str(owner.user_id)
    assert line["route"] == "/api/v1/tenant"
    assert line["status"] == 200
