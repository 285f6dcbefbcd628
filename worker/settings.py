"""ARQ WorkerSettings. Tasks live next to their domain in backend/; this module only wires them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from arq.connections import RedisSettings
from arq.cron import CronJob, cron
from arq.typing import StartupShutdown, WorkerCoroutine
from arq.worker import Function, func

from backend.config import TelegramMode, get_settings
from backend.email.tasks import send_email
from backend.kit.heap import freeze_startup_objects, unfreeze
from backend.knowledge import tasks as knowledge
from backend.logging import configure_logging
from backend.redis import arq_redis_settings
from backend.telegram import tasks as telegram
from backend.usage.tasks import release_stale_reservations

_settings = get_settings()


def _polling_jobs() -> list[CronJob]:
    """In polling mode, a long poll of every active bot, started again every few seconds
    (ARQ's unique cron keeps one at a time)."""
    if _settings.telegram_mode is not TelegramMode.polling:
        return []
    return [
        cron(
            telegram.poll_telegram_updates,
            second=set(range(0, 60, 5)),
            unique=True,
            run_at_startup=True,
            timeout=_settings.telegram_poll_timeout_seconds + 15,
        )
    ]


async def startup(ctx: dict[str, Any]) -> None:
    configure_logging(_settings.log_level, _settings.log_json)
    freeze_startup_objects()


async def shutdown(ctx: dict[str, Any]) -> None:
    from backend.assistants.providers import close_chat_providers
    from backend.db import get_engine
    from backend.telegram.client import close_sessions

    await get_engine().dispose()
    await close_sessions()
    await close_chat_providers()
    unfreeze()


class WorkerSettings:
    functions: Sequence[WorkerCoroutine | Function] = [
        send_email,
        func(
            knowledge.ingest_document,
            timeout=_settings.ingest_job_timeout_seconds,
            max_tries=knowledge.INGEST_TRIES,
        ),
        func(knowledge.sync_source, timeout=_settings.ingest_job_timeout_seconds),
        func(knowledge.reembed_knowledge_base, timeout=_settings.ingest_job_timeout_seconds),
        knowledge.delete_originals,
        knowledge.schedule_due_syncs,
        release_stale_reservations,
        func(telegram.process_telegram_update, max_tries=3),
        func(telegram.poll_telegram_updates, timeout=_settings.telegram_poll_timeout_seconds + 15),
    ]
    cron_jobs: Sequence[CronJob] | None = [
        # Every minute; unique so that several workers don't all run it.
        cron(knowledge.schedule_due_syncs, second=0, unique=True, run_at_startup=True),
        cron(release_stale_reservations, second=30, unique=True),
        *_polling_jobs(),
    ]
    on_startup: StartupShutdown | None = startup
    on_shutdown: StartupShutdown | None = shutdown
    redis_settings: RedisSettings = arq_redis_settings() if _settings.redis_url else RedisSettings()
    # ARQ polls every 0.5 s by default; chat work needs faster pick-up.
    poll_delay: float = _settings.worker_poll_delay_seconds
    max_jobs: int = _settings.worker_max_jobs
    # On SIGTERM, running jobs get this long to finish before they are cancelled.
    job_completion_wait: int = _settings.worker_shutdown_grace_seconds
    # ARQ retries a job lost in a crash once the longest timeout here (+10 s) has passed, so no
    # function may have a longer one than ingestion's.
    job_timeout: int = min(60, _settings.ingest_job_timeout_seconds)
