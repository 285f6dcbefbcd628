"""Database engine, the per-request unit of work, and the tenant context of a transaction.

A request gets one session and one transaction. `TransactionMiddleware` (backend/middleware.py)
commits it just before the response starts, or rolls it back on an error status, and only then
sends the jobs queued during the request. Services and repositories only flush.

Row-level security reads `app.tenant_id`, and a few lookup policies read `app.user_id` and
`app.lookup_hash`. They are set with `set_config(..., true)`: they last for the current
transaction only and can never leak into another request through the pool.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any

import asyncpg
import structlog
from fastapi import Depends
from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from backend.config import get_settings
from backend.errors import AppError, InvalidValue, ServiceUnavailable

log = structlog.get_logger(__name__)


@dataclass
class PendingJob:
    function: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class UnitOfWork:
    """What one request or task did: its sessions, the jobs to send once they commit, and
    the hooks to run once they commit (dropping a cache entry the writes made stale)."""

    sessions: list[AsyncSession] = field(default_factory=list)
    jobs: list[PendingJob] = field(default_factory=list)
    after_commit: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    # Set when a request must keep its writes although it answers with an error
    # (e.g. revoking a refresh-token family on reuse, then refusing with 401).
    commit_on_error: bool = False

    async def commit(self) -> None:
        for session in self.sessions:
            await session.commit()
        hooks, self.after_commit = self.after_commit, []
        for hook in hooks:
            try:
                await hook()
            except Exception:
                # The writes are committed; a hook that fails leaves a cache stale until its
                # entry expires, which must at least be loud.
                log.exception("after_commit_hook_failed")

    async def rollback(self) -> None:
        self.jobs.clear()
        self.after_commit.clear()
        for session in self.sessions:
            await session.rollback()

    async def close(self) -> None:
        for session in self.sessions:
            await session.close()
        self.sessions.clear()


_unit_of_work: contextvars.ContextVar[UnitOfWork | None] = contextvars.ContextVar(
    "parley_unit_of_work", default=None
)


def current_unit_of_work() -> UnitOfWork:
    uow = _unit_of_work.get()
    if uow is None:
        raise RuntimeError("no unit of work is open: use TransactionMiddleware or unit_of_work()")
    return uow


def after_commit(hook: Callable[[], Awaitable[object]]) -> None:
    """Run `hook` once the current transaction has committed (never if it rolls back)."""
    current_unit_of_work().after_commit.append(hook)


def commit_despite_error() -> None:
    """Keep this transaction's writes even if the request ends in an error response."""
    current_unit_of_work().commit_on_error = True


@asynccontextmanager
async def bind_unit_of_work(uow: UnitOfWork) -> AsyncIterator[UnitOfWork]:
    token = _unit_of_work.set(uow)
    try:
        yield uow
    finally:
        _unit_of_work.reset(token)


@lru_cache
def get_engine() -> AsyncEngine:
    settings = get_settings()
    if settings.database_url is None:
        raise RuntimeError("PARLEY_DATABASE_URL is not set")
    engine = create_async_engine(
        settings.database_url.get_secret_value(),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_pre_ping=settings.database_pool_pre_ping,
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed_connection)
    return engine


def _discard_closed_connection(
    dbapi_connection: Any, connection_record: object, connection_proxy: object
) -> None:
    """Replace, at checkout, a pooled connection the server has closed (restart, idle
    timeout, terminated backend): asyncpg knows from the socket, so this costs no round trip,
    unlike a pre-ping (three: BEGIN, a ping, ROLLBACK). The pool retries with a new one."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the database server closed this pooled connection")


@lru_cache
def get_sessionmaker() -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(get_engine(), expire_on_commit=False)


async def get_session() -> AsyncSession:
    """The request's session. TransactionMiddleware commits or rolls it back, then closes it.

    Not a yield dependency on purpose: FastAPI unwinds those before the error handlers run,
    which would throw away writes a request keeps on purpose (see commit_despite_error).
    """
    uow = current_unit_of_work()
    session = get_sessionmaker()()
    uow.sessions.append(session)
    return session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def end_request_transaction() -> None:
    """Commit the request's transaction now, before long work that needs no database (a model
    generating an answer), so the request holds no pooled connection meanwhile. The
    middleware's commit at the response start then has nothing left to do."""
    await current_unit_of_work().commit()


@asynccontextmanager
async def unit_of_work(
    tenant_id: uuid.UUID | None = None,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
) -> AsyncIterator[AsyncSession]:
    """A session for work outside a request (tasks, CLI): commit on success, then send jobs.

    Tasks pass the tenant id they were given, so row-level security scopes them like a request.
    """
    from backend.jobs import send_pending_jobs  # jobs imports db; keep the cycle lazy

    uow = UnitOfWork()
    session = (sessionmaker or get_sessionmaker())()
    uow.sessions.append(session)
    async with bind_unit_of_work(uow):
        try:
            if tenant_id is not None:
                await set_tenant_context(session, tenant_id)
            yield session
            await uow.commit()
        except BaseException:
            await uow.rollback()
            raise
        finally:
            await uow.close()
    await send_pending_jobs(uow)


async def set_tenant_context(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    await _set_config(session, "app.tenant_id", str(tenant_id))


async def set_user_context(session: AsyncSession, user_id: uuid.UUID) -> None:
    await _set_config(session, "app.user_id", str(user_id))


async def set_lookup_context(session: AsyncSession, lookup_hash: str) -> None:
    """Lets RLS reveal the one row whose secret hash the caller already knows."""
    await _set_config(session, "app.lookup_hash", lookup_hash)


async def set_bot_context(session: AsyncSession, bot_id: uuid.UUID) -> None:
    """Lets RLS reveal the one Telegram bot a webhook's path names."""
    await _set_config(session, "app.bot_id", str(bot_id))


async def set_public_key_context(session: AsyncSession, public_key: str) -> None:
    """Lets RLS reveal the one assistant whose public key a widget presented."""
    await _set_config(session, "app.public_key", public_key)


async def _set_config(session: AsyncSession, name: str, value: str) -> None:
    await session.execute(
        text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value}
    )


# SQLSTATE class 22 (data exception): the input could not be stored as given, e.g. a NUL byte.
_DATA_EXCEPTION_CLASS = "22"
# Classes 40 (transaction rollback: a serialization failure, a deadlock) and 57 (operator
# intervention: a cancelled statement, a server shutting down): the request may succeed if sent
# again. The transaction that failed was rolled back.
_TRY_AGAIN_CLASSES = ("40", "57")


def database_failure(sqlstate: str | None, *, connection_lost: bool = False) -> AppError | None:
    """What a failed statement means for the client, or None for a defect (a 500)."""
    if connection_lost:
        # Nothing was committed; the pool replaces the connection.
        log.warning("database_connection_lost")
        return ServiceUnavailable(
            "The connection to the database was lost; try again.", headers={"Retry-After": "1"}
        )
    if sqlstate is not None and sqlstate.startswith(_TRY_AGAIN_CLASSES):
        log.warning("database_request_interrupted", sqlstate=sqlstate)
        return ServiceUnavailable(
            "The database could not finish the request; try again.", headers={"Retry-After": "1"}
        )
    if sqlstate is not None and sqlstate.startswith(_DATA_EXCEPTION_CLASS):
        return InvalidValue("A value in the request cannot be stored as given.")
    return None


class RawConnection:
    """A pooled connection's asyncpg connection, in autocommit: each statement is a
    transaction of its own. For hot paths whose work is one SQL function call, where the ORM's
    session, BEGIN and COMMIT would cost more than the work. Errors come out as
    `database_failure` describes them, as the handlers do for the ORM's."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection
        self.lost = False

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self._connection.fetchrow(query, *args)
        except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as exc:
            self.lost = True
            failure = database_failure(None, connection_lost=True)
            raise (failure or exc) from exc
        except asyncpg.PostgresError as exc:
            failure = database_failure(exc.sqlstate)
            if failure is None:
                raise
            raise failure from exc

    async def fetchval(self, query: str, *args: Any) -> Any:
        row = await self.fetchrow(query, *args)
        return None if row is None else row[0]


def in_workspace(call: str, *, wait_for_disk: bool = True) -> str:
    """A `RawConnection` statement that runs `call` (a SQL function call) in the workspace its
    parameter $1 names, which row-level security reads; without waiting for the disk at commit
    if `wait_for_disk` is false. The settings last for that statement's transaction only."""
    settings = ["set_config('app.tenant_id', CAST($1::uuid AS text), true)"]
    if not wait_for_disk:
        settings.append("set_config('synchronous_commit', 'off', true)")
    # FROM runs first: the settings are in place when `call` runs.
    return f"SELECT {call} FROM (SELECT {', '.join(settings)}) AS entered"  # noqa: S608


@asynccontextmanager
async def raw_connection() -> AsyncIterator[RawConnection]:
    """A `RawConnection` from the engine's pool, given back (or discarded, if it broke) at
    the end."""
    async with get_engine().connect() as connection:
        fairy = await connection.get_raw_connection()
        raw = RawConnection(fairy.driver_connection)
        try:
            yield raw
        finally:
            if raw.lost:
                await connection.invalidate()


async def check_database() -> None:
    try:
        async with get_engine().connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceUnavailable("database is unreachable") from exc
