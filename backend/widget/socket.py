"""The widget's WebSocket, `/ws/widget?key=PUBLIC_KEY`: see docs/widget-protocol.md.

The socket is thin: it checks who is talking, replays what the visitor missed, forwards the
conversation's events from the process's Hub, and hands messages to replies.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from backend.assistants import service as assistants
from backend.config import get_settings
from backend.db import unit_of_work
from backend.errors import AppError, NotAuthenticated, TooManyRequests
from backend.kit import ratelimit
from backend.kit.text import PlainText
from backend.models import Channel, Conversation, ConversationStatus, Message, Rating
from backend.redis import get_redis
from backend.widget import events, replies
from backend.widget.visitors import (
    Visitor,
    WidgetAssistant,
    assistant_by_key,
    check_origin,
    read_token,
)

log = structlog.get_logger(__name__)
router = APIRouter()

HELLO_TIMEOUT = 10.0
HISTORY_MESSAGES = 50
BAD_FIRST_FRAME = 4400
CLIENT_ID_HOURS = 24


class Hello(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    visitor_token: str = Field(min_length=1, max_length=4000)
    conversation_id: uuid.UUID | None = None
    last_seq: int | None = Field(default=None, ge=0)


class VisitorMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    client_id: str = Field(min_length=1, max_length=100)
    text: PlainText = Field(min_length=1)


class Feedback(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message_id: uuid.UUID
    rating: Rating


@dataclass
class Session:
    socket: WebSocket
    assistant: WidgetAssistant
    visitor: Visitor
    conversation_id: uuid.UUID
    ip: str
    last_sent: int = 0

    async def send(self, frame: dict[str, Any]) -> None:
        seq = frame.get("seq")
        if isinstance(seq, int):
            if seq <= self.last_sent:
                return  # replayed and then heard live: send it once
            self.last_sent = seq
        await self.socket.send_json(frame)


@router.websocket("/ws/widget")
async def widget_socket(socket: WebSocket, key: str = "") -> None:
    try:
        async with unit_of_work() as db:
            assistant = await assistant_by_key(db, key)
        check_origin(assistant, socket.headers.get("origin"))
    except AppError:
        await socket.close(code=1008)  # before accept: the handshake is refused with HTTP 403
        return
    await socket.accept()
    try:
        session = await _greet(socket, assistant)
        if session is not None:
            await _serve(session)
    except WebSocketDisconnect:
        pass


async def _greet(socket: WebSocket, assistant: WidgetAssistant) -> Session | None:
    try:
        raw = await asyncio.wait_for(socket.receive_json(), HELLO_TIMEOUT)
        hello = Hello.model_validate(raw)
        if hello.type != "hello":
            raise ValueError("the first frame must be hello")
    except (TimeoutError, ValueError, ValidationError):
        await socket.close(code=BAD_FIRST_FRAME)
        return None
    try:
        visitor = read_token(assistant, hello.visitor_token, allow_expired=False)
    except NotAuthenticated as exc:
        await socket.send_json({"type": "error", "code": "unauthorized", "message": exc.detail})
        await socket.close(code=4401)
        return None
    conversation_id = await _conversation_for(assistant, visitor, hello.conversation_id)
    ip = socket.client.host if socket.client else "unknown"
    session = Session(socket, assistant, visitor, conversation_id, ip)
    resumed = hello.conversation_id == conversation_id
    await _ready(session, hello.last_seq if resumed else None)
    return session


async def _conversation_for(
    assistant: WidgetAssistant, visitor: Visitor, wanted: uuid.UUID | None
) -> uuid.UUID:
    """The visitor's conversation `wanted`, or a new one."""
    async with unit_of_work(tenant_id=assistant.tenant_id) as db:
        conversation = None
        mine = select(Conversation).where(
            Conversation.assistant_id == assistant.id,
            Conversation.channel == Channel.widget,
            Conversation.external_user_id == visitor.id,
        )
        if wanted is not None:
            conversation = await db.scalar(mine.where(Conversation.id == wanted))
        elif visitor.verified:
            # A verified user on a new device finds their latest open conversation.
            conversation = await db.scalar(
                mine.where(Conversation.status == ConversationStatus.open)
                .order_by(Conversation.created_at.desc())
                .limit(1)
            )
        if conversation is None:
            conversation = Conversation(
                tenant_id=assistant.tenant_id,
                assistant_id=assistant.id,
                channel=Channel.widget,
                external_user_id=visitor.id,
                meta={"verified": visitor.verified},
            )
            db.add(conversation)
            await db.flush()
        return conversation.id


async def _history(session: Session) -> list[dict[str, Any]]:
    async with unit_of_work(tenant_id=session.assistant.tenant_id) as db:
        rows = list(
            await db.scalars(
                select(Message)
                .where(Message.conversation_id == session.conversation_id)
                .order_by(Message.created_at.desc(), Message.id.desc())
                .limit(HISTORY_MESSAGES)
            )
        )
    return [replies.message_frame(m) for m in reversed(rows)]


async def _ready(session: Session, last_seq: int | None) -> None:
    """Join the conversation's events first, then read where it stands: an event published
    meanwhile is either in what is read or arrives through the queue (and is sent once)."""
    redis = get_redis()
    queue = await events.get_hub(redis).join(session.conversation_id)
    session.socket.state.queue = queue
    missed = None
    if last_seq:
        missed = await events.events_after(redis, session.conversation_id, last_seq)
    if missed is not None:
        session.last_sent = last_seq or 0
        await session.socket.send_json(
            {
                "type": "ready",
                "conversation_id": str(session.conversation_id),
                "visitor_id": session.visitor.id,
                "last_seq": session.last_sent,
            }
        )
        for event in missed:
            await session.send(event)
        return
    # A fresh start, or missed events no longer kept: the history replaces what the client has.
    # Events are published after their rows commit, so the history read after the sequence
    # number holds everything numbered up to it.
    session.last_sent = await events.current_seq(redis, session.conversation_id)
    history = await _history(session)
    await session.socket.send_json(
        {
            "type": "ready",
            "conversation_id": str(session.conversation_id),
            "visitor_id": session.visitor.id,
            "last_seq": session.last_sent,
            "history": history,
        }
    )


async def _serve(session: Session) -> None:
    queue: asyncio.Queue[dict[str, Any]] = session.socket.state.queue
    forward = asyncio.create_task(_forward(session, queue))
    try:
        while True:
            frame = await session.socket.receive_json()
            await _handle(session, frame)
    finally:
        forward.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await forward
        await events.get_hub(get_redis()).leave(session.conversation_id, queue)


async def _forward(session: Session, queue: asyncio.Queue[dict[str, Any]]) -> None:
    heartbeat = get_settings().widget_heartbeat_seconds
    while True:
        try:
            event = await asyncio.wait_for(queue.get(), heartbeat)
        except TimeoutError:
            await session.socket.send_json({"type": "heartbeat"})
            continue
        await session.send(event)


async def _handle(session: Session, frame: Any) -> None:
    kind = frame.get("type") if isinstance(frame, dict) else None
    if kind == "ping":
        await session.socket.send_json({"type": "pong"})
    elif kind == "message":
        await _on_message(session, frame)
    elif kind == "feedback":
        await _on_feedback(session, frame)
    else:
        await _error(session, "invalid", f"Unknown frame type: {kind!r}.")


async def _error(session: Session, code: str, message: str, **extra: Any) -> None:
    await session.socket.send_json({"type": "error", "code": code, "message": message, **extra})


async def _on_message(session: Session, frame: dict[str, Any]) -> None:
    settings = get_settings()
    try:
        message = VisitorMessage.model_validate(frame)
    except ValidationError:
        await _error(session, "invalid", "A message needs a client_id and some text.")
        return
    if len(message.text) > settings.widget_max_message_chars:
        await _error(
            session,
            "too_long",
            f"A message can have at most {settings.widget_max_message_chars} characters.",
            client_id=message.client_id,
        )
        return
    redis = get_redis()
    first = await redis.set(
        f"widget:client:{session.conversation_id}:{message.client_id}",
        1,
        nx=True,
        ex=CLIENT_ID_HOURS * 3600,
    )
    if not first:
        return  # a re-send after a reconnect: the first one is already being answered
    try:
        await _check_rate(session)
    except TooManyRequests as exc:
        await redis.delete(f"widget:client:{session.conversation_id}:{message.client_id}")
        await _error(session, "rate_limited", exc.detail, client_id=message.client_id)
        return
    replies.start_reply(
        redis,
        session.assistant.tenant_id,
        session.conversation_id,
        message.text,
        message.client_id,
        session.assistant.language,
    )


async def _check_rate(session: Session) -> None:
    settings = get_settings()
    redis = get_redis()
    await ratelimit.hit(
        redis,
        f"widget:visitor:{session.assistant.id}:{session.visitor.id}",
        limit=settings.widget_visitor_messages_per_minute,
        window_seconds=60,
    )
    await ratelimit.hit(
        redis,
        f"widget:ip:{session.ip}",
        limit=settings.widget_ip_messages_per_minute,
        window_seconds=60,
    )


async def _on_feedback(session: Session, frame: dict[str, Any]) -> None:
    try:
        feedback = Feedback.model_validate(frame)
        async with unit_of_work(tenant_id=session.assistant.tenant_id) as db:
            await assistants.set_feedback(
                db,
                session.assistant.tenant_id,
                feedback.message_id,
                feedback.rating,
                conversation_id=session.conversation_id,
            )
    except ValidationError:
        await _error(session, "invalid", "Feedback needs a message_id and a rating (up or down).")
    except AppError as exc:
        await _error(session, exc.code, exc.detail)
