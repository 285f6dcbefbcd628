"""Assistant configuration: create, read, change, delete, rotate the public key.

Every change is written to the audit log in the same transaction.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.assistants import schemas
from backend.audit.service import record
from backend.errors import NotFound, ValidationFailed
from backend.models import (
    Assistant,
    AssistantKnowledgeBase,
    KnowledgeBase,
    Message,
    MessageFeedback,
    MessageRole,
    Rating,
)
from backend.tenancy.context import TenantContext

PUBLIC_KEY_PREFIX = "pk_"
_SCALAR_FIELDS = (
    "name",
    "instructions",
    "provider",
    "model",
    "temperature",
    "max_answer_tokens",
    "top_k",
    "threshold",
    "welcome_message",
    "suggested_questions",
    "fallback_message",
    "language",
    "visitor_daily_message_cap",
    "allowed_origins",
    "allow_all_origins",
    "appearance",
)
# Fields a PATCH may set back to null.
_NULLABLE = {"model", "threshold", "welcome_message", "visitor_daily_message_cap", "appearance"}


def new_public_key() -> str:
    return PUBLIC_KEY_PREFIX + secrets.token_urlsafe(18)


async def get_assistant(
    session: AsyncSession, ctx: TenantContext, assistant_id: uuid.UUID
) -> Assistant:
    assistant = await session.scalar(
        select(Assistant).where(Assistant.id == assistant_id, Assistant.tenant_id == ctx.tenant_id)
    )
    if assistant is None:
        raise NotFound("Assistant not found.")
    return assistant


async def knowledge_base_ids(
    session: AsyncSession, assistant_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    rows = await session.execute(
        select(AssistantKnowledgeBase.assistant_id, AssistantKnowledgeBase.knowledge_base_id)
        .where(AssistantKnowledgeBase.assistant_id.in_(assistant_ids))
        .order_by(AssistantKnowledgeBase.knowledge_base_id)
    )
    found: dict[uuid.UUID, list[uuid.UUID]] = {a: [] for a in assistant_ids}
    for assistant_id, kb_id in rows:
        found[assistant_id].append(kb_id)
    return found


async def create_assistant(
    session: AsyncSession, ctx: TenantContext, body: schemas.AssistantCreate
) -> Assistant:
    assistant = Assistant(
        tenant_id=ctx.tenant_id,
        public_key=new_public_key(),
        fallback_message=body.fallback_message or schemas.DEFAULT_FALLBACK,
        suggested_questions=[],
        allowed_origins=[],
        allow_all_origins=False,
        appearance={},
        identity_secret_version=1,
    )
    _apply_fields(assistant, body.model_dump(exclude_unset=True, exclude={"knowledge_base_ids"}))
    session.add(assistant)
    await session.flush()
    await _attach(session, ctx, assistant, body.knowledge_base_ids or [])
    await record(session, ctx, "assistant.created", "assistant", assistant.id, {"name": body.name})
    return assistant


async def update_assistant(
    session: AsyncSession,
    ctx: TenantContext,
    assistant_id: uuid.UUID,
    body: schemas.AssistantUpdate,
) -> Assistant:
    assistant = await get_assistant(session, ctx, assistant_id)
    changes = body.model_dump(exclude_unset=True, exclude={"knowledge_base_ids"})
    refused = [k for k, v in changes.items() if v is None and k not in _NULLABLE]
    if refused:
        raise ValidationFailed(
            "These settings cannot be null: " + ", ".join(refused),
            fields=[{"field": k, "message": "may not be null"} for k in refused],
        )
    _apply_fields(assistant, changes)
    if body.knowledge_base_ids is not None:
        await _attach(session, ctx, assistant, body.knowledge_base_ids)
        changes["knowledge_base_ids"] = [str(k) for k in body.knowledge_base_ids]
    await session.flush()
    await record(
        session, ctx, "assistant.updated", "assistant", assistant.id, {"changed": sorted(changes)}
    )
    return assistant


def _apply_fields(assistant: Assistant, values: dict[str, Any]) -> None:
    for name in _SCALAR_FIELDS:
        if name in values:
            value = values[name]
            if name == "appearance":
                value = schemas.Appearance.model_validate(value or {}).model_dump(
                    mode="json", exclude_none=True
                )
            setattr(assistant, name, value)


async def _attach(
    session: AsyncSession, ctx: TenantContext, assistant: Assistant, kb_ids: list[uuid.UUID]
) -> None:
    wanted = list(dict.fromkeys(kb_ids))
    found = set(
        await session.scalars(
            select(KnowledgeBase.id).where(
                KnowledgeBase.id.in_(wanted), KnowledgeBase.tenant_id == ctx.tenant_id
            )
        )
    )
    missing = [str(k) for k in wanted if k not in found]
    if missing:
        raise ValidationFailed(
            "Unknown knowledge base: " + ", ".join(missing),
            fields=[{"field": "knowledge_base_ids", "message": f"not found: {m}"} for m in missing],
        )
    await session.execute(
        delete(AssistantKnowledgeBase).where(AssistantKnowledgeBase.assistant_id == assistant.id)
    )
    session.add_all(
        AssistantKnowledgeBase(
            tenant_id=ctx.tenant_id, assistant_id=assistant.id, knowledge_base_id=kb_id
        )
        for kb_id in wanted
    )
    await session.flush()


async def delete_assistant(
    session: AsyncSession, ctx: TenantContext, assistant_id: uuid.UUID
) -> None:
    assistant = await get_assistant(session, ctx, assistant_id)
    await session.delete(assistant)
    await record(session, ctx, "assistant.deleted", "assistant", assistant_id)


async def rotate_public_key(
    session: AsyncSession, ctx: TenantContext, assistant_id: uuid.UUID
) -> Assistant:
    """A new public key; the old one stops working for channels at once."""
    assistant = await get_assistant(session, ctx, assistant_id)
    assistant.public_key = new_public_key()
    await session.flush()
    await record(session, ctx, "assistant.public_key_rotated", "assistant", assistant.id)
    return assistant


async def rotate_identity_secret(
    session: AsyncSession, ctx: TenantContext, assistant_id: uuid.UUID
) -> Assistant:
    assistant = await get_assistant(session, ctx, assistant_id)
    assistant.identity_secret_version += 1
    await session.flush()
    await record(session, ctx, "assistant.identity_secret_rotated", "assistant", assistant.id)
    return assistant


async def set_feedback(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    message_id: uuid.UUID,
    rating: Rating,
    comment: str | None = None,
    *,
    conversation_id: uuid.UUID | None = None,
) -> MessageFeedback:
    """Record (or replace) feedback on an answer; `conversation_id` confines it to one
    conversation (a widget visitor may rate only their own)."""
    statement = select(Message).where(Message.id == message_id, Message.tenant_id == tenant_id)
    if conversation_id is not None:
        statement = statement.where(Message.conversation_id == conversation_id)
    message = await session.scalar(statement)
    if message is None:
        raise NotFound("Message not found.")
    if message.role is not MessageRole.assistant:
        raise ValidationFailed(
            "Feedback is given on the assistant's answers, not on questions.",
            fields=[{"field": "message_id", "message": "not an answer"}],
        )
    feedback = await session.scalar(
        select(MessageFeedback).where(MessageFeedback.message_id == message.id)
    )
    if feedback is None:
        feedback = MessageFeedback(tenant_id=tenant_id, message_id=message.id)
        session.add(feedback)
    feedback.rating = rating
    feedback.comment = comment
    await session.flush()
    return feedback
