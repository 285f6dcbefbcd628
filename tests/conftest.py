"""Test fixtures: a fresh database on the real PostgreSQL + pgvector, real Redis, the real app.

`make test` starts the services and exports PARLEY_TEST_ADMIN_DATABASE_URL (a superuser on the
`postgres` database) and PARLEY_TEST_REDIS_URL. The session creates its own database, builds the
schema with the migrations, and connects the app as a login role that owns nothing.

Requests commit for real, as in production: the unit of work, the RLS context per transaction
and the jobs sent after commit are what is under test. Tests stay independent by creating their
own users and workspaces with unique names.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from httpx import ASGITransport, AsyncClient

pytest_plugins = ["tests.assistants.fixtures", "tests.telegram.fixtures"]

ADMIN_URL = os.environ.get("PARLEY_TEST_ADMIN_DATABASE_URL")
REDIS_URL = os.environ.get("PARLEY_TEST_REDIS_URL")
DB_NAME = f"parley_test_{os.getpid()}"
APP_ROLE_USER = "parley_test_app"
APP_ROLE_PASSWORD = "parley-test-app-password"

if not ADMIN_URL or not REDIS_URL:
    raise pytest.UsageError(
        "PARLEY_TEST_ADMIN_DATABASE_URL and PARLEY_TEST_REDIS_URL are not set: run `make test`."
    )
ADMIN_SERVER_URL: str = ADMIN_URL


def _with_database(url: str, database: str, userinfo: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if userinfo is not None:
        netloc = f"{userinfo}@{netloc.rpartition('@')[2]}"
    return urlunsplit((parts.scheme, netloc, f"/{database}", parts.query, parts.fragment))


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


TEST_ADMIN_URL = _with_database(ADMIN_URL, DB_NAME)
TEST_APP_URL = _with_database(ADMIN_URL, DB_NAME, f"{APP_ROLE_USER}:{APP_ROLE_PASSWORD}")

os.environ.update(
    {
        "PARLEY_ENVIRONMENT": "test",
        "PARLEY_DATABASE_URL": TEST_APP_URL,
        "PARLEY_DATABASE_ADMIN_URL": TEST_ADMIN_URL,
        "PARLEY_REDIS_URL": REDIS_URL,
        "PARLEY_LOG_JSON": "false",
        "PARLEY_LOG_LEVEL": "INFO",
        "PARLEY_DATA_DIR": tempfile.mkdtemp(prefix="parley-test-data-"),
        # A fixed test key; production keys come from the operator.
        "PARLEY_ENCRYPTION_KEYS": "q4ObxzOb5hYAlHzq8X8Vtu6Qc1eS2hN2o7oYxQBY_dY=",
    }
)


async def _recreate_database(name: str = DB_NAME) -> None:
    conn = await asyncpg.connect(_plain(ADMIN_SERVER_URL))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_database() -> None:
    conn = await asyncpg.connect(_plain(ADMIN_SERVER_URL))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session", autouse=True)
def database() -> Iterator[None]:
    from backend.migrate import ensure_app_role, run_migrations

    asyncio.run(_recreate_database())
    run_migrations(TEST_ADMIN_URL)
    asyncio.run(ensure_app_role(TEST_ADMIN_URL, TEST_APP_URL))
    yield
    asyncio.run(_drop_database())


@pytest.fixture(scope="session")
async def app(database: None) -> AsyncIterator[object]:
    from backend.db import get_engine
    from backend.main import create_app
    from backend.redis import get_redis

    await get_redis().flushdb()
    application = create_app()
    yield application
    await get_engine().dispose()


@pytest.fixture
async def client(app: object) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=app, client=("127.0.0.1", 40000))  # type: ignore[arg-type]
    async with AsyncClient(transport=transport, base_url="http://parley.test") as http:
        yield http


@pytest.fixture
async def client_from() -> AsyncIterator[object]:
    """A factory of clients coming from a given IP address (for per-IP rate limits)."""
    from backend.main import create_app

    clients: list[AsyncClient] = []
    application = create_app()

    def make(ip: str) -> AsyncClient:
        transport = ASGITransport(app=application, client=(ip, 40000))
        http = AsyncClient(transport=transport, base_url="http://parley.test")
        clients.append(http)
        return http

    yield make
    for http in clients:
        await http.aclose()


@pytest.fixture(autouse=True)
def recorded_jobs() -> Iterator[list[object]]:
    """Jobs queued by requests land here instead of ARQ (the worker tests use real ARQ)."""
    from backend.db import PendingJob
    from backend.jobs import set_job_sink

    jobs: list[PendingJob] = []

    async def record(job: PendingJob) -> None:
        jobs.append(job)

    set_job_sink(record)
    yield jobs  # type: ignore[misc]
    set_job_sink(None)


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
async def parley_url(app: object) -> AsyncIterator[str]:
    """A Parley API served by uvicorn on a free loopback port, in the tests' event loop, for
    real clients: the OpenAI SDK, WebSockets, browsers."""
    import socket

    import uvicorn

    from backend.main import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # No lifespan: its shutdown would dispose the engine the other tests share.
    config = uvicorn.Config(
        create_app(), host="127.0.0.1", port=port, lifespan="off", ws_per_message_deflate=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task
