"""Background jobs, queued during a transaction and sent to ARQ only after it commits.

`enqueue()` records the job on the current unit of work. If the transaction rolls back, the job
is dropped: a worker never sees work for rows that do not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from arq import ArqRedis, create_pool

from backend.db import PendingJob, UnitOfWork, current_unit_of_work
from backend.redis import arq_redis_settings

log = structlog.get_logger(__name__)

JobSink = Callable[[PendingJob], Awaitable[None]]

_pool: ArqRedis | None = None
_sink_override: JobSink | None = None


def enqueue(function: str, *args: Any, **kwargs: Any) -> None:
    """Queue `function` to run in the worker once the current transaction commits."""
    current_unit_of_work().jobs.append(PendingJob(function, args, kwargs))


async def get_arq_pool() -> ArqRedis:
    global _pool
    if _pool is None:
        _pool = await create_pool(arq_redis_settings())
    return _pool


async def close_arq_pool() -> None:
    global _pool
    if _pool is not None:
        await _pool.aclose()
        _pool = None


def set_job_sink(sink: JobSink | None) -> None:
    """Send jobs somewhere other than ARQ (tests record them); None restores ARQ."""
    global _sink_override
    _sink_override = sink


async def _send_to_arq(job: PendingJob) -> None:
    pool = await get_arq_pool()
    await pool.enqueue_job(job.function, *job.args, **job.kwargs)


async def enqueue_now(function: str, *args: Any, **kwargs: Any) -> bool:
    """Queue a job at once, outside any transaction (a webhook acknowledges only what is
    durably queued). False when ARQ already holds a job with the same `_job_id`."""
    if _sink_override is not None:
        await _sink_override(PendingJob(function, args, kwargs))
        return True
    pool = await get_arq_pool()
    return await pool.enqueue_job(function, *args, **kwargs) is not None


async def send_pending_jobs(uow: UnitOfWork) -> None:
    jobs, uow.jobs = uow.jobs, []
    sink = _sink_override or _send_to_arq
    for job in jobs:
        try:
            await sink(job)
        except Exception:
            # The transaction is already committed; a lost job must at least be loud.
            log.exception("job_enqueue_failed", function=job.function)
