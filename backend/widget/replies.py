"""Widget replies: the engine's answer, published as numbered events of the conversation.

Generation runs as a task of its own, not as part of a socket: when the visitor's connection
drops, the answer goes on, and the reconnected widget replays what it missed.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import structlog
from redis.asyncio import Redis

from backend.assistants.engine import ReplyRun, prepare_reply
from backend.errors import NotFound
from backend.kit.background import run_in_background
from backend.kit.logcontext import bind_request_fields
from backend.models import Message
from backend.usage.quota import QuotaExceeded, VisitorCapReached
from backend.widget import events

log = structlog.get_logger(__name__)

LIMIT_TEXT = {
    "en": {
        "visitor": "You've reached today's message limit. Please come back tomorrow.",
        "plan": "This assistant can't take more questions right now. Please try again later.",
    },
    "ru": {
        "visitor": "Вы исчерпали лимит сообщений на сегодня. Возвращайтесь завтра.",
        "plan": "Сейчас ассистент не может принять новые вопросы. Попробуйте позже.",
    },
}

_running: set[asyncio.Task[None]] = set()


def message_frame(message: Message) -> dict[str, Any]:
    """A message as the widget sees it: no tokens, scores or internal metadata."""
    frame: dict[str, Any] = {
        "id": str(message.id),
        "role": message.role.value,
        "text": message.content,
        "status": message.status.value,
        "citations": [
            {
                "number": c.get("number"),
                "title": c.get("title") or c.get("filename"),
                "url": c.get("url"),
                "heading_path": c.get("heading_path", []),
            }
            for c in message.citations
        ],
        "created_at": message.created_at.isoformat() if message.created_at else None,
    }
    if message.meta.get("client_id"):
        frame["client_id"] = message.meta["client_id"]
    return frame


def start_reply(
    redis: Redis,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    text: str,
    client_id: str,
    language: str,
) -> None:
    run_in_background(
        _reply(redis, tenant_id, conversation_id, text, client_id, language), _running
    )


async def wait_for_replies() -> None:
    """Let replies in flight finish (shutdown, tests)."""
    while _running:
        await asyncio.gather(*list(_running), return_exceptions=True)


async def _reply(
    redis: Redis,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    text: str,
    client_id: str,
    language: str,
) -> None:
    bind_request_fields(tenant_id=str(tenant_id))
    try:
        plan = await prepare_reply(
            tenant_id,
            text,
            conversation_id=conversation_id,
            question_meta={"client_id": client_id},
        )
    except QuotaExceeded as exc:
        kind = "visitor" if isinstance(exc, VisitorCapReached) else "plan"
        words = LIMIT_TEXT.get(language, LIMIT_TEXT["en"])[kind]
        await events.publish(
            redis,
            conversation_id,
            {"type": "error", "code": "limit_reached", "message": words, "client_id": client_id},
        )
        return
    except NotFound:
        return  # the conversation was deleted meanwhile
    except Exception:
        log.exception("widget_reply_failed")
        await events.publish(
            redis,
            conversation_id,
            {"type": "error", "code": "error", "message": "", "client_id": client_id},
        )
        return
    if plan.question_message is not None:
        await events.publish(
            redis,
            conversation_id,
            {"type": "message", "message": message_frame(plan.question_message)},
        )
    await _stream(redis, ReplyRun(plan))


async def _stream(redis: Redis, run: ReplyRun) -> None:
    conversation_id = run.plan.conversation_id
    await events.publish(
        redis, conversation_id, {"type": "typing", "message_id": str(run.answer_id)}
    )
    try:
        async for piece in run.deltas():
            await events.publish(
                redis,
                conversation_id,
                {"type": "delta", "message_id": str(run.answer_id), "text": piece},
            )
    except BaseException:
        await run.finish(cancelled=True)
        raise
    result = await run.finish()
    await events.publish(
        redis, conversation_id, {"type": "complete", "message": message_frame(result.answer)}
    )
