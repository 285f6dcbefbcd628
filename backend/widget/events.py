"""A conversation's events for the widget: numbered, kept for replay, and fanned out.

Each event gets the conversation's next sequence number, is appended to a Redis stream (the
last `widget_replay_events`, for `widget_replay_hours`) and published on the conversation's
channel, in one Lua script, so the stream's order is the numbers' order whichever API process
publishes. Every API process keeps ONE pub/sub connection (`Hub`) and hands each message to the
sockets of that conversation it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from backend.config import get_settings

log = structlog.get_logger(__name__)

_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
-- ARGV[1] is a JSON object without "seq"; splice it in (cjson would turn [] into {}).
local data = '{"seq":' .. seq .. ',' .. string.sub(ARGV[1], 2)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'seq', seq, 'data', data)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', KEYS[3], data)
return seq
"""


def _keys(conversation_id: uuid.UUID) -> tuple[str, str, str]:
    base = f"widget:conv:{conversation_id}"
    return f"{base}:seq", f"{base}:events", base


async def publish(redis: Redis, conversation_id: uuid.UUID, event: dict[str, Any]) -> int:
    settings = get_settings()
    ttl = settings.widget_replay_hours * 3600
    seq: int = await redis.eval(  # type: ignore[misc]
        _PUBLISH,
        3,
        *_keys(conversation_id),
        json.dumps(event),
        str(settings.widget_replay_events),
        str(ttl),
    )
    return int(seq)


async def current_seq(redis: Redis, conversation_id: uuid.UUID) -> int:
    value = await redis.get(_keys(conversation_id)[0])
    return int(value) if value else 0


async def events_after(
    redis: Redis, conversation_id: uuid.UUID, last_seq: int
) -> list[dict[str, Any]] | None:
    """The kept events after `last_seq`, in order; None when some of them are no longer kept
    (the caller then sends the conversation's history instead)."""
    _, stream, _ = _keys(conversation_id)
    latest = await current_seq(redis, conversation_id)
    if latest <= last_seq:
        return []
    entries = await redis.xrange(stream)
    events = [json.loads(fields["data"]) for _, fields in entries]
    missed = [e for e in events if int(e["seq"]) > last_seq]
    if not missed or int(missed[0]["seq"]) != last_seq + 1:
        return None
    return missed


class Hub:
    """One Redis pub/sub connection per process, shared by every widget socket in it."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pubsub: PubSub | None = None
        self._queues: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def join(self, conversation_id: uuid.UUID) -> asyncio.Queue[dict[str, Any]]:
        channel = _keys(conversation_id)[2]
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        async with self._lock:
            if self._pubsub is None:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            listeners = self._queues.setdefault(channel, set())
            listeners.add(queue)
            if len(listeners) == 1:
                await self._pubsub.subscribe(channel)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read())
        return queue

    async def leave(self, conversation_id: uuid.UUID, queue: asyncio.Queue[Any]) -> None:
        channel = _keys(conversation_id)[2]
        async with self._lock:
            listeners = self._queues.get(channel)
            if listeners is None:
                return
            listeners.discard(queue)
            if not listeners:
                del self._queues[channel]
                if self._pubsub is not None:
                    await self._pubsub.unsubscribe(channel)

    @property
    def channels(self) -> int:
        return len(self._queues)

    async def _read(self) -> None:
        while self._queues:
            pubsub = self._pubsub
            if pubsub is None:
                return
            try:
                message = await pubsub.get_message(timeout=1.0)
            except Exception:
                log.exception("widget_hub_read_failed")
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            listeners = self._queues.get(str(message["channel"]), ())
            event = json.loads(message["data"])
            for queue in listeners:
                queue.put_nowait(event)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        self._queues.clear()
        self._pubsub = None
        self._reader = None


_hub: Hub | None = None


def get_hub(redis: Redis) -> Hub:
    global _hub
    if _hub is None:
        _hub = Hub(redis)
    return _hub


async def close_hub() -> None:
    global _hub
    if _hub is not None:
        await _hub.close()
        _hub = None
