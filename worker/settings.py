"""ARQ WorkerSettings. Tasks live next to their domain in backend/; this module only wires them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from arq.connections import RedisSettings
from arq.cron import CronJob
from arq.typing import StartupShutdown, WorkerCoroutine
from arq.worker import Function

from backend.config import get_settings
from backend.email.tasks import send_email
from backend.logging import configure_logging
from backend.redis import arq_redis_settings

_settings = get_settings()


async def startup(ctx: dict[str, Any]) -> None:
    configure_logging(_settings.log_level, _settings.log_json)


async def shutdown(ctx: dict[str, Any]) -> None:
    from backend.db import get_engine

    await get_engine().dispose()


class WorkerSettings:
    functions: Sequence[WorkerCoroutine | Function] = [send_email]
    cron_jobs: Sequence[CronJob] | None = None
    on_startup: StartupShutdown | None = startup
    on_shutdown: StartupShutdown | None = shutdown
    redis_settings: RedisSettings = arq_redis_settings() if _settings.redis_url else RedisSettings()
    # ARQ polls every 0.5 s by default; chat work needs faster pick-up.
    poll_delay: float = _settings.worker_poll_delay_seconds
    max_jobs: int = _settings.worker_max_jobs
    # On SIGTERM, running jobs get this long to finish before they are cancelled.
    job_completion_wait: int = _settings.worker_shutdown_grace_seconds
    job_timeout: int = 300
