"""An OpenAI-compatible `POST /v1/chat/completions` where `model` names an assistant.

Any OpenAI SDK app can then talk to a Parley assistant, with its knowledge, metering and
quotas. Authentication is a Parley API key as the SDK's `api_key`. Each call is one exchange:
the last message is the question; earlier user and assistant messages are its history. The
client's system messages are ignored, so the assistant's own instructions stay in charge.
Answers carry two extensions the SDK passes through: `citations` and `parley`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from backend.assistants.engine import ReplyResult, ReplyRun, prepare_chat_reply
from backend.db import SessionDep
from backend.errors import ValidationFailed
from backend.kit.sse import SSE_HEADERS, sse_event
from backend.kit.text import PlainText
from backend.llm import ChatMessage
from backend.models import Assistant
from backend.tenancy.context import TenantContext, TenantHeader, credentials_of, require
from backend.tenancy.permissions import Permission

router = APIRouter(prefix="/v1", tags=["openai-compatible"])
Read = Annotated[TenantContext, Depends(require(Permission.assistants_read))]


class ContentPart(BaseModel):
    type: str
    text: PlainText | None = None


class CompletionMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: PlainText | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: bool = False


class CompletionRequest(BaseModel):
    # SDKs send many optional parameters; those Parley does not use are accepted and ignored.
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200, description="An assistant's id or name")
    messages: list[CompletionMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=16_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=16_000)
    user: PlainText | None = Field(default=None, max_length=200)


def _question_and_history(messages: list[CompletionMessage]) -> tuple[str, list[ChatMessage]]:
    last = messages[-1]
    if last.role != "user" or not last.text().strip():
        raise ValidationFailed(
            "The last message must be the user's question, with text.",
            fields=[{"field": "messages", "message": "the last message must be a user message"}],
        )
    history = [
        ChatMessage(m.role, m.text())
        for m in messages[:-1]
        if m.role in ("user", "assistant") and m.text()
    ]
    return last.text(), history


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: CompletionRequest, request: Request, x_parley_tenant: TenantHeader = None
) -> dict[str, Any] | StreamingResponse:
    """OpenAI's chat completions, answered by the assistant `model` names. Needs the `chat`
    permission: an API key with that scope, or a member's access token and workspace."""
    question, history = _question_and_history(body.messages)
    # Authenticates too: the caller, the assistant and the quota, mostly without a database
    # round trip (the process's entries and quota leases).
    plan = await prepare_chat_reply(
        credentials_of(request, x_parley_tenant),
        request,
        body.model,
        question,
        history=history,
        temperature=body.temperature,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        external_user_id=body.user,
    )
    run = ReplyRun(plan)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _chunks(run, completion_id, body.model, include_usage),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    async for _ in run.deltas():
        pass
    result = await run.finish()
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.answer.content},
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(result),
        "citations": result.answer.citations,
        "parley": _extension(result),
    }


def _usage(result: ReplyResult) -> dict[str, int]:
    prompt, completion = result.answer.prompt_tokens, result.answer.completion_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _extension(result: ReplyResult) -> dict[str, Any]:
    return {
        "conversation_id": str(result.answer.conversation_id),
        "message_id": str(result.answer.id),
        "status": result.answer.status.value,
        "generator": result.answer.meta.get("generator"),
        "usage_id": str(result.usage_id) if result.usage_id else None,
    }


def _chunk(
    completion_id: str, model: str, created: int, delta: dict[str, Any], **extra: Any
) -> bytes:
    body = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": extra.pop("finish", None)}],
        **extra,
    }
    return sse_event(body)


# Text no delta can hold (PlainText refuses NUL), standing for a delta's text in a template.
_TEXT_SLOT = "\x00text\x00"


def _text_chunks(completion_id: str, model: str, created: int) -> Callable[[str], bytes]:
    """The event of a text delta, as `_chunk` writes it, from a template made once per stream:
    the deltas of a stream differ only in their text."""
    slot = json.dumps(_TEXT_SLOT).encode()
    head, tail = _chunk(completion_id, model, created, {"content": _TEXT_SLOT}).split(slot)
    return lambda text: b"".join((head, json.dumps(text).encode(), tail))


async def _chunks(
    run: ReplyRun, completion_id: str, model: str, include_usage: bool
) -> AsyncIterator[bytes]:
    created = int(time.time())
    text_chunk = _text_chunks(completion_id, model, created)
    yield _chunk(completion_id, model, created, {"role": "assistant", "content": ""})
    sent = False
    try:
        async for text in run.deltas():
            sent = True
            yield text_chunk(text)
    except BaseException:
        await run.finish(cancelled=True)
        raise
    result = await run.finish()
    if run.falls_back:
        # The final text is the fallback message; a client that showed partial text gets a
        # line break before it.
        yield text_chunk(("\n\n" if sent else "") + result.answer.content)
    yield _chunk(
        completion_id,
        model,
        created,
        {},
        finish="stop",
        citations=result.answer.citations,
        parley=_extension(result),
    )
    if include_usage:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": _usage(result),
        }
        yield sse_event(body)
    yield sse_event("[DONE]")


@router.get("/models")
async def list_models(ctx: Read, session: SessionDep) -> dict[str, Any]:
    """The workspace's assistants as OpenAI models (`id` is the assistant's id)."""
    assistants = await session.scalars(
        select(Assistant)
        .where(Assistant.tenant_id == ctx.tenant_id)
        .order_by(Assistant.created_at)
        .limit(1000)
    )
    return {
        "object": "list",
        "data": [
            {
                "id": str(a.id),
                "object": "model",
                "created": int(a.created_at.timestamp()),
                "owned_by": "parley",
                "name": a.name,
            }
            for a in assistants
        ],
    }
