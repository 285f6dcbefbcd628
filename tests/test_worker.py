"""Jobs reach the real ARQ worker only after their transaction commits; SIGTERM lets them finish."""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

import pytest
from arq.jobs import Job
from arq.worker import Worker, create_worker
from httpx import AsyncClient

from backend.db import PendingJob, unit_of_work
from backend.email.senders import console_outbox
from backend.jobs import close_arq_pool, enqueue, enqueue_now, get_arq_pool, set_job_sink
from backend.redis import get_redis
from tests.factories.accounts import make_account
from worker.settings import WorkerSettings


def _worker(**overrides: Any) -> Worker:
    return create_worker(WorkerSettings, burst=True, handle_signals=False, **overrides)


@pytest.fixture
def real_arq(recorded_jobs: list[PendingJob]) -> None:
    set_job_sink(None)


@pytest.mark.usefixtures("real_arq")
async def test_email_job_runs_in_the_worker_after_commit(client: AsyncClient) -> None:
    account = await make_account()
    response = await client.post("/api/v1/auth/forgot-password", json={"email": account.email})
    assert response.status_code == 202

    worker = _worker()
    await worker.main()
    await worker.close()
    assert worker.jobs_complete >= 1
    assert any(email.to == account.email for email in console_outbox().sent)


@pytest.mark.usefixtures("real_arq")
async def test_rolled_back_transaction_sends_no_job() -> None:
    marker = f"never-{uuid.uuid4().hex}@example.com"

    async def failing_request() -> None:
        async with unit_of_work():
            enqueue("send_email", marker, "subject", "body")
            raise RuntimeError("the transaction fails after queueing")

    with pytest.raises(RuntimeError):
        await failing_request()
    pool = await get_arq_pool()
    queued = await pool.queued_jobs()
    assert not [job for job in queued if job.args and job.args[0] == marker]


async def _note_job(ctx: dict[str, Any], key: str, value: str) -> None:
    await get_redis().set(key, value, ex=60)  # a second run would leave its own value


@pytest.mark.usefixtures("real_arq")
async def test_an_immediate_job_is_queued_once_per_id_and_runs_in_arq() -> None:
    key = f"noted-{uuid.uuid4().hex}"
    job_id = f"once-{uuid.uuid4().hex}"
    assert await enqueue_now("_note_job", key, "first", _job_id=job_id)
    assert not await enqueue_now("_note_job", key, "second", _job_id=job_id)
    queued = [job for job in await (await get_arq_pool()).queued_jobs() if job.job_id == job_id]
    assert [(job.function, job.args) for job in queued] == [("_note_job", (key, "first"))]
    # No cron jobs: Parley's run-at-startup cron would count among the completed jobs.
    worker = _worker(functions=[_note_job], cron_jobs=[], poll_delay=0.01)
    await worker.main()
    await worker.close()
    info = await Job(job_id, await get_arq_pool()).result_info()
    assert info is not None
    assert info.success
    assert info.args == (key, "first")
    assert await get_redis().get(key) == "first"
    # ARQ keeps the result: the id stays taken after the job has run.
    assert not await enqueue_now("_note_job", key, "third", _job_id=job_id)
    assert await enqueue_now("_note_job", key, "other", _job_id=f"{job_id}-2")


async def _slow_job(ctx: dict[str, Any], key: str) -> None:
    await asyncio.sleep(1.0)
    await get_redis().set(key, "finished", ex=60)


@pytest.mark.usefixtures("real_arq")
async def test_sigterm_lets_running_jobs_finish() -> None:
    key = f"slow-job-{uuid.uuid4().hex}"
    worker = create_worker(
        WorkerSettings, functions=[_slow_job], burst=False, handle_signals=False, poll_delay=0.01
    )
    assert worker._job_completion_wait > 1  # the grace period comes from Parley's settings
    pool = await get_arq_pool()
    await pool.enqueue_job("_slow_job", key)
    running = asyncio.create_task(worker.async_run())
    for _ in range(200):
        if worker.tasks:
            break
        await asyncio.sleep(0.01)
    assert worker.tasks, "the worker did not pick up the job"
    worker.handle_sig_wait_for_completion(signal.SIGTERM)
    with pytest.raises(asyncio.CancelledError):
        await running
    assert await get_redis().get(key) == "finished"
    await worker.close()
    await close_arq_pool()
