"""An OpenAI-compatible `POST /v1/chat/completions` where `model` names an assistant.

Any OpenAI SDK app can then talk to a Parley assistant, with its knowledge, metering and
quotas. Authentication is a Parley API key as the SDK's `api_key`. Each call is one exchange:
the last message is the question; earlier user and assistant messages are its history. The
client's system messages are ignored, so the assistant's own instructions stay in charge.
Answers carry two extensions the SDK passes through: `citations` and `parley`.

`POST /v1/chat/completions` is served by a plain ASGI endpoint (`ChatCompletions`), matched
ahead of its FastAPI declaration, which stays for the OpenAPI schema. It answers as FastAPI
would, with the same body model, errors and handlers, but skips FastAPI's per-request work
(dependency resolution, content-type parsing, the route's exception wrapper): this endpoint's
time to first token is measured against the model server's own (docs/performance.md).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from starlette.types import Receive, Scope, Send

from backend.assistants.engine import ReplyResult, ReplyRun, prepare_chat_reply
from backend.db import SessionDep
from backend.errors import ValidationFailed
from backend.kit.sse import SSE_HEADERS, sse_event
from backend.kit.text import PlainText
from backend.llm import ChatMessage
from backend.models import Assistant
from backend.tenancy.context import (
    TENANT_HEADER,
    TenantContext,
    TenantHeader,
    credentials_of,
    require,
)
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


class ChatCompletions:
    """The ASGI endpoint of `POST /v1/chat/completions`: the body read and validated as
    FastAPI reads a body of `CompletionRequest` (a JSON content type, or 422; malformed JSON
    400; errors located under `body`), then `answer`. Errors raise to the app's handlers."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = _completion_request(await request.body(), request.headers.get("content-type"))
        response = await answer(body, request, request.headers.get(TENANT_HEADER))
        await response(scope, receive, send)


def _completion_request(raw: bytes, content_type: str | None) -> CompletionRequest:
    if not raw:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    try:
        if _is_json(content_type):
            return CompletionRequest.model_validate_json(raw)
        # Like FastAPI's strict content type: a body not declared JSON is not an object.
        return CompletionRequest.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        for error in errors:
            error["loc"] = ("body", *error["loc"])
        raise RequestValidationError(errors) from None


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").partition(";")[0].strip().lower()
    kind, _, subtype = media_type.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


# Ahead of the operation's FastAPI declaration that follows, so that it serves the requests.
# An APIRouter's prefix applies to its API routes only. Starlette's routes take an ASGI app as
# their endpoint; FastAPI's annotation names only request handlers.
router.add_route(
    f"{router.prefix}/chat/completions",
    ChatCompletions(),  # type: ignore[arg-type]
    methods=["POST"],
    include_in_schema=False,
)


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: CompletionRequest, request: Request, x_parley_tenant: TenantHeader = None
) -> Response:
    """OpenAI's chat completions, answered by the assistant `model` names. Needs the `chat`
    permission: an API key with that scope, or a member's access token and workspace."""
    # The declaration of the operation for the OpenAPI schema; requests reach `ChatCompletions`.
    return await answer(body, request, x_parley_tenant)


async def answer(body: CompletionRequest, request: Request, tenant_header: str | None) -> Response:
    """The answer to a validated completion request: JSON, or a stream of chunks."""
    question, history = _question_and_history(body.messages)
    # Authenticates too: the caller, the assistant and the quota, mostly without a database
    # round trip (the process's entries and quota leases).
    plan = await prepare_chat_reply(
        credentials_of(request, tenant_header),
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
    return JSONResponse(
        {
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
    )


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
