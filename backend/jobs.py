"""Background jobs, queued during a transaction and sent to ARQ only after it commits.

`enqueue()` records the job on the current unit of work. If the transaction rolls back, the job
is dropped: a worker never sees work for rows that do not exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from arq import ArqRedis, create_pool
from arq.constants import expires_extra_ms, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from redis.commands.core import AsyncScript

from backend.db import PendingJob, UnitOfWork, current_unit_of_work
from backend.redis import arq_redis_settings

log = structlog.get_logger(__name__)

JobSink = Callable[[PendingJob], Awaitable[None]]

_pool: ArqRedis | None = None
_enqueue_script: AsyncScript | None = None
_sink_override: JobSink | None = None

# ARQ's enqueue_job in one round trip: it WATCHes the job key, checks the job and its result
# with EXISTS, then sets the job and queues it in MULTI/EXEC (four round trips). The script does
# the same atomically. KEYS: job, result, queue; ARGV: job id, score, expiry (ms), the job.
ENQUEUE_ONCE = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
"""


def enqueue(function: str, *args: Any, **kwargs: Any) -> None:
    """Queue `function` to run in the worker once the current transaction commits."""
    current_unit_of_work().jobs.append(PendingJob(function, args, kwargs))


async def get_arq_pool() -> ArqRedis:
    global _pool
    if _pool is None:
        _pool = await create_pool(arq_redis_settings())
    return _pool


async def close_arq_pool() -> None:
    global _pool, _enqueue_script
    if _pool is not None:
        await _pool.aclose()
        _pool = None
        _enqueue_script = None


def set_job_sink(sink: JobSink | None) -> None:
    """Send jobs somewhere other than ARQ (tests record them); None restores ARQ."""
    global _sink_override
    _sink_override = sink


async def _send_to_arq(job: PendingJob) -> None:
    pool = await get_arq_pool()
    await pool.enqueue_job(job.function, *job.args, **job.kwargs)


async def enqueue_now(function: str, *args: Any, _job_id: str | None = None, **kwargs: Any) -> bool:
    """Queue a job at once, outside any transaction (a webhook acknowledges only what is
    durably queued), in ARQ's format and queue. False when ARQ already holds a job, or the
    result of one, with the same `_job_id`: as ARQ's own enqueue_job, in one round trip."""
    global _enqueue_script
    if _sink_override is not None:
        recorded = kwargs if _job_id is None else {**kwargs, "_job_id": _job_id}
        await _sink_override(PendingJob(function, args, recorded))
        return True
    pool = await get_arq_pool()
    if _enqueue_script is None:
        _enqueue_script = pool.register_script(ENQUEUE_ONCE)
    job_id = _job_id or uuid.uuid4().hex
    now_ms = timestamp_ms()
    job = serialize_job(function, args, kwargs, None, now_ms, serializer=pool.job_serializer)
    queued = await _enqueue_script(
        keys=[job_key_prefix + job_id, result_key_prefix + job_id, pool.default_queue_name],
        args=[job_id, now_ms, expires_extra_ms, job],
    )
    return bool(queued)


async def send_pending_jobs(uow: UnitOfWork) -> None:
    jobs, uow.jobs = uow.jobs, []
    sink = _sink_override or _send_to_arq
    for job in jobs:
        try:
            await sink(job)
        except Exception:
            # The transaction is already committed; a lost job must at least be loud.
            log.exception("job_enqueue_failed", function=job.function)
