"""create_app(): routers, middleware, error handlers and lifespan of the Parley API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from backend import metrics
from backend.apikeys.endpoints import router as api_keys_router
from backend.assistants.chat_entries import start_entry_cache, stop_entry_cache
from backend.assistants.conversations import feedback_router
from backend.assistants.conversations import router as conversations_router
from backend.assistants.endpoints import router as assistants_router
from backend.assistants.openai_compat import router as openai_compatible_router
from backend.assistants.providers import close_chat_providers
from backend.audit.endpoints import router as audit_router
from backend.auth.endpoints import me_router
from backend.auth.endpoints import router as auth_router
from backend.config import Environment, get_settings
from backend.dashboard.endpoints import router as dashboard_router
from backend.db import get_engine
from backend.handlers import install_error_handlers
from backend.health.endpoints import router as health_router
from backend.jobs import close_arq_pool
from backend.kit.heap import freeze_startup_objects, unfreeze
from backend.knowledge.endpoints import provider_settings_router, upload_body_limit
from backend.knowledge.endpoints import router as knowledge_router
from backend.logging import configure_logging
from backend.middleware import (
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    TransactionMiddleware,
)
from backend.redis import get_redis
from backend.telegram.client import close_sessions as close_telegram_sessions
from backend.telegram.endpoints import router as telegram_router
from backend.telegram.endpoints import webhook_router as telegram_webhook_router
from backend.tenancy.endpoints import router as tenancy_router
from backend.usage.endpoints import router as usage_router
from backend.usage.leases import close_lease_book
from backend.widget.endpoints import router as widget_router
from backend.widget.events import close_hub
from backend.widget.replies import wait_for_replies
from backend.widget.socket import router as widget_socket_router


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    freeze_startup_objects()
    sharing = asyncio.create_task(metrics.share_pool_gauges()) if metrics.multiprocess() else None
    await start_entry_cache()
    yield
    await stop_entry_cache()
    await close_lease_book()
    if sharing is not None:
        sharing.cancel()
        await asyncio.gather(sharing, return_exceptions=True)
        metrics.process_exiting()
    unfreeze()
    await wait_for_replies()
    await close_hub()
    await close_telegram_sessions()
    await close_chat_providers()
    await close_arq_pool()
    await get_redis().aclose()
    await get_engine().dispose()


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging(
        settings.log_level, settings.log_json, cache=settings.environment is not Environment.test
    )
    app = FastAPI(
        title="Parley API",
        version="0.1.0",
        description=(
            "Multi-tenant AI assistants. Dashboard users authenticate with a bearer access token "
            "and choose the workspace with the `X-Parley-Tenant` header; API keys "
            "(`Authorization: Bearer prl_...`) imply their workspace."
        ),
        lifespan=lifespan,
        # Parley's metrics are Prometheus's (backend.metrics) and its logs structlog's; FastAPI's
        # own OpenTelemetry instrumentation is off, which also spares every request its look-up
        # of the global OpenTelemetry providers.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    install_error_handlers(app)
    # The busiest routes first, as routes are matched in order: Telegram's webhook and the
    # OpenAI-compatible API.
    for router in (
        telegram_webhook_router,
        openai_compatible_router,
        health_router,
        auth_router,
        me_router,
        tenancy_router,
        api_keys_router,
        audit_router,
        knowledge_router,
        assistants_router,
        conversations_router,
        feedback_router,
        usage_router,
        widget_router,
        widget_socket_router,
        telegram_router,
        dashboard_router,
    ):
        app.include_router(router)
    app.include_router(provider_settings_router("/api/v1/provider-settings"))
    app.include_router(provider_settings_router("/api/v1/embedding-settings", deprecated=True))
    # Added last = outermost: request context wraps the size limit, which wraps the transaction.
    app.add_middleware(TransactionMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_request_body_bytes,
        larger_limits=(upload_body_limit(),),
    )
    app.add_middleware(RequestContextMiddleware)
    return app
