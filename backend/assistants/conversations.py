"""Conversation endpoints of the REST API: open a conversation, send a message and get the
answer (as JSON or as server-sent events), list conversations and messages, give feedback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from backend.assistants import schemas, service
from backend.assistants.engine import ReplyResult, ReplyRun, commit_reply, prepare_reply
from backend.db import SessionDep
from backend.errors import NotFound
from backend.kit.pagination import Page, PageParams, next_cursor_of, page_params
from backend.kit.pagination import paginate_newest_first as newest_first
from backend.kit.sse import SSE_HEADERS, sse_event
from backend.kit.text import PlainText
from backend.models import (
    Channel,
    Conversation,
    Message,
    MessageFeedback,
    Rating,
)
from backend.tenancy.context import TenantContext, require
from backend.tenancy.permissions import Permission

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])
feedback_router = APIRouter(prefix="/api/v1/messages", tags=["conversations"])

Read = Annotated[TenantContext, Depends(require(Permission.conversations_read))]
Chat = Annotated[TenantContext, Depends(require(Permission.chat))]
Paging = Annotated[PageParams, Depends(page_params)]


async def _conversation(
    session: SessionDep, ctx: TenantContext, conversation_id: uuid.UUID
) -> Conversation:
    found = await session.scalar(
        select(Conversation).where(
            Conversation.id == conversation_id, Conversation.tenant_id == ctx.tenant_id
        )
    )
    if found is None:
        raise NotFound("Conversation not found.")
    return found


@router.post("", status_code=status.HTTP_201_CREATED, response_model=schemas.ConversationRead)
async def create_conversation(
    body: schemas.ConversationCreate, ctx: Chat, session: SessionDep
) -> Conversation:
    """Open a conversation with an assistant on the API channel."""
    assistant = await service.get_assistant(session, ctx, body.assistant_id)
    conversation = Conversation(
        tenant_id=ctx.tenant_id,
        assistant_id=assistant.id,
        channel=Channel.api,
        external_user_id=body.external_user_id,
        title=body.title,
        meta={},
    )
    session.add(conversation)
    await session.flush()
    return conversation


@router.get("", response_model=Page[schemas.ConversationRead])
async def list_conversations(
    ctx: Read,
    session: SessionDep,
    page: Paging,
    assistant_id: Annotated[uuid.UUID | None, Query()] = None,
    channel: Annotated[Channel | None, Query()] = None,
    since: Annotated[date | None, Query(description="Started on or after this day (UTC)")] = None,
    until: Annotated[date | None, Query(description="Started on or before this day (UTC)")] = None,
    feedback: Annotated[
        Rating | None, Query(description="Only those with an answer rated so")
    ] = None,
    q: Annotated[
        PlainText | None, Query(max_length=200, description="Words in any of its messages")
    ] = None,
) -> Page[schemas.ConversationRead]:
    """Conversations, newest first, optionally of one assistant, channel, period, rating, or
    with messages containing some words."""
    statement = select(Conversation).where(Conversation.tenant_id == ctx.tenant_id)
    if assistant_id is not None:
        statement = statement.where(Conversation.assistant_id == assistant_id)
    if channel is not None:
        statement = statement.where(Conversation.channel == channel)
    if since is not None:
        statement = statement.where(Conversation.created_at >= _day_start(since))
    if until is not None:
        statement = statement.where(Conversation.created_at < _day_start(until + timedelta(1)))
    if feedback is not None:
        rated = (
            select(MessageFeedback.id)
            .join(Message, Message.id == MessageFeedback.message_id)
            .where(Message.conversation_id == Conversation.id, MessageFeedback.rating == feedback)
        )
        statement = statement.where(rated.exists())
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        said = select(Message.id).where(
            Message.conversation_id == Conversation.id, Message.content.ilike(pattern)
        )
        statement = statement.where(said.exists())
    statement = newest_first(statement, Conversation.created_at, Conversation.id, page)
    rows, cursor = next_cursor_of(list(await session.scalars(statement)), page.limit)
    return Page(
        items=[schemas.ConversationRead.model_validate(r) for r in rows], next_cursor=cursor
    )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@router.get("/{conversation_id}", response_model=schemas.ConversationRead)
async def get_conversation(
    conversation_id: uuid.UUID, ctx: Read, session: SessionDep
) -> Conversation:
    return await _conversation(session, ctx, conversation_id)


@router.get("/{conversation_id}/messages", response_model=Page[schemas.MessageRead])
async def list_messages(
    conversation_id: uuid.UUID, ctx: Read, session: SessionDep, page: Paging
) -> Page[schemas.MessageRead]:
    """The conversation's messages, newest first, with their citations and feedback."""
    await _conversation(session, ctx, conversation_id)
    statement = newest_first(
        select(Message).where(Message.conversation_id == conversation_id),
        Message.created_at,
        Message.id,
        page,
    )
    rows, cursor = next_cursor_of(list(await session.scalars(statement)), page.limit)
    feedback = {
        f.message_id: f
        for f in await session.scalars(
            select(MessageFeedback).where(MessageFeedback.message_id.in_([r.id for r in rows]))
        )
    }
    return Page(items=[message_read(r, feedback.get(r.id)) for r in rows], next_cursor=cursor)


def message_read(message: Message, feedback: MessageFeedback | None = None) -> schemas.MessageRead:
    read = schemas.MessageRead.model_validate(message)
    if feedback is not None:
        read.feedback = schemas.FeedbackRead.model_validate(feedback)
    return read


def reply_read(result: ReplyResult) -> schemas.ReplyRead:
    return schemas.ReplyRead(
        question=message_read(result.question),
        answer=message_read(result.answer),
        usage_id=result.usage_id,
        cost_micros=result.cost_micros,
    )


@router.post(
    "/{conversation_id}/messages",
    response_model=schemas.ReplyRead,
    responses={
        200: {"content": {"text/event-stream": {}}},
        402: {"description": "The plan's monthly quota is used up"},
        429: {"description": "The visitor's daily cap is reached"},
    },
)
async def send_message(
    conversation_id: uuid.UUID, body: schemas.MessageCreate, ctx: Chat, session: SessionDep
) -> schemas.ReplyRead | StreamingResponse:
    """Ask the assistant. With `stream: true` the answer comes as server-sent events: `delta`
    events ({"text"}) as it is generated, then one `done` event with the same body as the JSON
    answer. `done` carries the authoritative final text: after a provider failure it is the
    assistant's fallback message, whatever deltas came before."""
    await _conversation(session, ctx, conversation_id)
    plan = await prepare_reply(
        ctx.tenant_id, body.content, conversation_id=conversation_id, session=session
    )
    await commit_reply(plan)
    run = ReplyRun(plan)
    if body.stream:
        return StreamingResponse(_stream(run), media_type="text/event-stream", headers=SSE_HEADERS)
    async for _ in run.deltas():
        pass
    return reply_read(await run.finish())


async def _stream(run: ReplyRun) -> AsyncIterator[bytes]:
    try:
        async for text in run.deltas():
            yield sse_event({"text": text}, "delta")
    except BaseException:
        # The client went away (the server cancels the stream): keep what was generated.
        await run.finish(cancelled=True)
        raise
    result = await run.finish()
    yield sse_event(reply_read(result).model_dump(mode="json"), "done")


@feedback_router.put("/{message_id}/feedback", response_model=schemas.FeedbackRead)
async def give_feedback(
    message_id: uuid.UUID, body: schemas.FeedbackCreate, ctx: Chat, session: SessionDep
) -> MessageFeedback:
    """Thumbs up or down, with an optional comment, on an answer. Sending again replaces it."""
    return await service.set_feedback(session, ctx.tenant_id, message_id, body.rating, body.comment)
