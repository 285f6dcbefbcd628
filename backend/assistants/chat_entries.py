"""What `parley_enter_chat` answered for an API key and an assistant, kept by each API process,
so that an OpenAI-compatible reply to a known caller starts without a database round trip.

An entry holds the key's workspace, id and scopes, the assistant, the workspace's plan and
model endpoint, and the assistant's number of knowledge bases. It is dropped as soon as any of
them may have changed: triggers (migration c5e8b3d1a9f4) notify the channel `parley_entries`
with the workspace's id when a change commits, and each process listens on a connection of
its own. A revoked key therefore stops working as soon as the notification arrives, within
milliseconds of the commit.

The cache is used only while that connection listens. When it is lost, every entry is dropped
and each reply reads the database again until the listener is back. An entry read from the
database while a notification arrived is not kept (`generation`), and entries expire after
`chat_entry_cache_seconds` in any case. Unknown and revoked keys are never kept, and an
account's access token (rather than an API key) is always checked in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from sqlalchemy.engine import make_url

from backend.config import get_settings

log = structlog.get_logger(__name__)

CHANNEL = "parley_entries"
LIMIT = 10_000
_SYNC = "sync:"


@dataclass(eq=False)
class Entry:
    row: Mapping[str, Any]
    tenant_id: uuid.UUID
    stored: float  # time.monotonic()
    # When this process last marked the key used (or read it marked): see `key_to_mark`.
    marked: float
    # Derived from `row` once, by the reply path.
    parsed: dict[str, Any] = field(default_factory=dict)


class EntryCache:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.generation = 0
        self.hits = self.misses = 0
        self._entries: OrderedDict[tuple[str, str], Entry] = OrderedDict()
        self._listening = False
        self._task: asyncio.Task[None] | None = None
        self._syncs: dict[str, asyncio.Future[None]] = {}

    @property
    def listening(self) -> bool:
        return self._listening

    def get(self, key: tuple[str, str]) -> Entry | None:
        entry = self._entries.get(key) if self._listening else None
        if entry is not None and time.monotonic() - entry.stored >= self.ttl:
            del self._entries[key]
            entry = None
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def put(self, key: tuple[str, str], row: Mapping[str, Any], generation: int) -> Entry | None:
        """Keep `row`, read while the cache was at `generation`, unless something may have
        changed since (None then)."""
        if not self._listening or generation != self.generation or self.ttl <= 0:
            return None
        now = time.monotonic()
        entry = Entry(row, row["workspace_id"], now, now)
        self._entries[key] = entry
        while len(self._entries) > LIMIT:
            self._entries.popitem(last=False)
        return entry

    def _changed(self, payload: str) -> None:
        self.generation += 1
        if payload.startswith(_SYNC):
            waiter = self._syncs.pop(payload, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        try:
            tenant_id = uuid.UUID(payload)
        except ValueError:
            self._entries.clear()
            return
        for key in [k for k, e in self._entries.items() if e.tenant_id == tenant_id]:
            del self._entries[key]

    def _set_listening(self, listening: bool) -> None:
        self.generation += 1
        self._entries.clear()
        self._listening = listening

    async def start(self) -> None:
        """Listen, and keep listening until `stop()`; returns once listening (or after a
        first failed attempt, retrying meanwhile)."""
        if self._task is not None or self.ttl <= 0:
            return
        first = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._listen(first))
        await first

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _listen(self, first: asyncio.Future[None]) -> None:
        delay = 0.2
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(_dsn())
                lost = asyncio.Event()
                connection.add_termination_listener(_setter(lost))
                await connection.add_listener(CHANNEL, self._notified)
                self._set_listening(True)
                log.info("chat_entries_listening")
                delay = 0.2
                if not first.done():
                    first.set_result(None)
                await lost.wait()
                log.warning("chat_entries_listener_lost")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.warning("chat_entries_listener_failed", exc_info=True)
            finally:
                self._set_listening(False)
                if not first.done():
                    first.set_result(None)
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(connection.close(timeout=1))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _notified(self, connection: object, pid: int, channel: str, payload: str) -> None:
        self._changed(payload)

    async def caught_up(self, seconds: float = 5.0) -> None:
        """Wait until every change committed before this call has reached this process's
        listener (notifications arrive in commit order)."""
        token = f"{_SYNC}{uuid.uuid4()}"
        waiter = self._syncs[token] = asyncio.get_running_loop().create_future()
        try:
            connection = await asyncpg.connect(_dsn())
            try:
                await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, token)
            finally:
                await connection.close()
            await asyncio.wait_for(waiter, seconds)
        finally:
            self._syncs.pop(token, None)


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _: event.set()


def _dsn() -> str:
    url = get_settings().database_url
    if url is None:
        raise RuntimeError("PARLEY_DATABASE_URL is not set")
    return make_url(url.get_secret_value()).set(drivername="postgresql").render_as_string(False)


_cache: EntryCache | None = None


def entry_cache() -> EntryCache:
    global _cache
    if _cache is None:
        _cache = EntryCache(get_settings().chat_entry_cache_seconds)
    return _cache


async def start_entry_cache() -> None:
    await entry_cache().start()


async def stop_entry_cache() -> None:
    global _cache
    if _cache is not None:
        cache, _cache = _cache, None
        await cache.stop()
