"""The reply engine: retrieve, build the prompt, stream the answer, persist it with citations
and usage.

A reply runs in three short transactions, none of them open while the model is generating:
1. `prepare_reply`: retrieval, the quota held, then the model called, then the question saved.
   The model server gets the request as soon as the quota is held: saving the question and the
   commit wait until the request is written (at most SEND_WAIT_SECONDS), then happen while it
   works on its first token. Only the sending, the saves and the commit come after the hold, so
   its row lock lasts a few milliseconds. If the transaction fails after all, the call is
   called off and nothing is charged;
2. the stream itself, on no database connection;
3. `ReplyRun.finish`: the answer saved, the usage ledger row written and the hold settled,
   together, in one SQL function call (`parley_finish_reply`) that commits durably. A client
   that goes away mid-answer still gets this step (shielded from the cancellation), with the
   text generated so far. A fallback's question is then recorded for the workspace.

The OpenAI-compatible API's replies, each in a new conversation, take `prepare_chat_reply`
instead of step 1: the caller and the assistant from this process's entry for them (else one
SQL function call), retrieval, and the quota from this process's lease of the plan (else one
SQL call); only then is the model called, in the request's own task (`ModelCall.streaming`:
no task to wait for), until the model server streams. Their conversation and question are
saved with the answer, in step 3 (`parley_finish_chat_reply`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import Request
from sqlalchemy import DateTime, Enum, Float, Uuid, bindparam, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.assistants import prompt
from backend.assistants.chat_entries import entry_cache
from backend.assistants.providers import chat_model_for, chat_provider_for
from backend.config import PlanLimits, get_settings
from backend.db import end_request_transaction, in_workspace, raw_connection, unit_of_work
from backend.errors import BadRequest, NotFound
from backend.knowledge.providers import OpenAIEndpoint, endpoint_of
from backend.knowledge.retrieval import SearchFailed, search
from backend.knowledge.schemas import SearchHit
from backend.llm import (
    ChatMessage,
    ChatProvider,
    ChatRequest,
    ContextPassage,
    Finished,
    ProviderError,
    StreamEvent,
    TextDelta,
)
from backend.llm.sent import notifying
from backend.llm.tokens import count_message_tokens, count_tokens, message_token_bound
from backend.models import (
    Assistant,
    AssistantKnowledgeBase,
    Channel,
    Conversation,
    KnowledgeBase,
    Message,
    MessageRole,
    MessageStatus,
    UnansweredQuestion,
    UsageOutcome,
)
from backend.tenancy.context import (
    LAST_USED_RESOLUTION,
    Credentials,
    KeyCredentials,
    MemberCredentials,
    context_entered,
)
from backend.tenancy.permissions import Permission
from backend.usage import ledger, quota
from backend.usage.leases import Share, lease_book
from backend.usage.plans import limits_of

log = structlog.get_logger(__name__)

HISTORY_MESSAGES = 20
# How long a reply waits for its model request to be written before it commits anyway (with
# the quota counter's row lock held meanwhile): enough for a kept-alive connection, not for a
# new connection's TCP and TLS handshakes.
SEND_WAIT_SECONDS = 0.005
_CITE = re.compile(r"\[(\d{1,2})\]")


@dataclass
class ReplyPlan:
    tenant_id: uuid.UUID
    assistant_id: uuid.UUID
    conversation_id: uuid.UUID
    question_id: uuid.UUID
    question: str
    fallback_message: str
    request: ChatRequest
    provider: ChatProvider | None
    # Set when the answer must be the fallback without asking a model.
    fallback_reason: str | None
    citations: dict[int, dict[str, Any]]
    reservation: quota.Reservation
    prompt_tokens: int
    meta: dict[str, Any] = field(default_factory=dict)
    question_message: Message | None = None
    # The model call, started by prepare_reply once the quota is held.
    call: ModelCall | None = None
    # A reply of the OpenAI-compatible API (prepare_chat_reply): its conversation and question,
    # saved with the answer; its share of a quota reservation; the API key to mark used.
    new_conversation: NewConversation | None = None
    share: Share | None = None
    mark_key: uuid.UUID | None = None


class ModelCall:
    """A model call begun before the reply's transaction commits. Its first event is awaited
    in a task of its own, so the request reaches the model server while the reply's rows are
    saved; `events()` then hands over the stream from the start."""

    def __init__(
        self,
        provider: ChatProvider,
        request: ChatRequest,
        *,
        gate: asyncio.Event | None = None,
        first: asyncio.Future[StreamEvent | None] | None = None,
    ) -> None:
        """With a `gate`, the request is built at once but sent only once the gate is set. With
        `first`, no task is started: the caller settles it with the call's first event (see
        `streaming`)."""
        self.started = time.perf_counter()
        self._stream = provider.stream(request)
        self._sent = asyncio.Event()
        if first is None:
            first = asyncio.get_running_loop().create_task(
                self._pull(), context=notifying(self._sent.set, gate)
            )
        # A call that ends without sending anything (an offline answer, an open circuit, a
        # failure) ends the wait for its request too.
        first.add_done_callback(lambda _: self._sent.set())
        self._first = first
        self._handed_over = False

    @classmethod
    async def streaming(cls, provider: ChatProvider, request: ChatRequest) -> ModelCall:
        """A call begun in the caller's own task, for a caller with nothing to do meanwhile:
        returns once the model server is streaming its answer (`Streaming`), or with the
        call's first event or failure kept for `events()` (an offline answer, an open circuit,
        a refused request). No task is started, so the request leaves without waiting for one
        to be scheduled."""
        first: asyncio.Future[StreamEvent | None] = asyncio.get_running_loop().create_future()
        call = cls(provider, request, first=first)
        try:
            first.set_result(await call._pull())
        except Exception as exc:  # raised by events(), as a task's would be
            first.set_exception(exc)
        return call

    async def request_sent(self, at_most: float) -> None:
        """Wait until the request is written to the model server's connection, or the call has
        ended (an offline answer, an open circuit), but at most `at_most` seconds (a new
        connection's handshake is not waited for)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                await self._sent.wait()

    async def _pull(self) -> StreamEvent | None:
        try:
            return await anext(self._stream)
        except StopAsyncIteration:
            return None

    async def events(self) -> AsyncIterator[StreamEvent]:
        self._handed_over = True
        async with contextlib.aclosing(self._stream):
            first = await self._first
            if first is None:
                return
            yield first
            async for event in self._stream:
                yield event

    async def call_off(self) -> None:
        """Stop a call whose stream nobody took over: the request failed, or its client left
        first. A call already handed over is closed by its consumer."""
        if self._handed_over:
            return
        self._handed_over = True
        self._first.cancel()
        await asyncio.gather(self._first, return_exceptions=True)
        await self._stream.aclose()


async def commit_reply(plan: ReplyPlan) -> None:
    """Commit the request's transaction that prepared `plan` (a request that passed its
    session to `prepare_reply`): the quota hold is visible to other requests from here. If the
    commit fails, the model call it started is called off."""
    try:
        await end_request_transaction()
    except BaseException:
        if plan.call is not None:
            await plan.call.call_off()
        raise


@dataclass
class ReplyResult:
    question: Message
    answer: Message
    usage_id: uuid.UUID | None
    cost_micros: int = 0


async def prepare_reply(
    tenant_id: uuid.UUID,
    content: str,
    *,
    conversation_id: uuid.UUID,
    question_meta: dict[str, Any] | None = None,
    session: AsyncSession | None = None,
) -> ReplyPlan:
    """Everything before generation of a reply in an existing conversation, committed:
    raises QuotaExceeded (nothing saved) when a limit is reached, NotFound for a conversation
    not in this workspace.

    An endpoint passes its request's `session` (scoped to `tenant_id`) and commits it right
    after, with `commit_reply(plan)`: one transaction and one pooled connection for the whole
    request instead of two, and what the request already loaded is not read again.

    The model call starts here, once the quota is held (`plan.call`); `ReplyRun` takes over
    its stream."""
    call: ModelCall | None = None
    try:
        async with _transaction(tenant_id, session) as session:
            conversation, assistant = await _conversation_and_assistant(
                session, tenant_id, conversation_id
            )
            history = await _history(session, conversation.id)
            workspace = await _workspace(session, tenant_id, assistant.id)
            plan = await _plan(session, assistant, workspace, conversation, content, history)
            question = _question(plan, conversation, content, question_meta)
            plan.reservation = await quota.reserve(
                session,
                assistant.tenant_id,
                _limits(assistant, workspace, conversation),
                replies=1,
                tokens=_tokens_to_hold(plan),
            )
            if plan.provider is not None:
                call = plan.call = ModelCall(plan.provider, plan.request)
            # Saved by the commit, while the model server works on the request.
            conversation.last_message_at = datetime.now(UTC)
            conversation.title = conversation.title or content[:80]
            session.add(question)
            if call is not None:
                # The commit's own work, done on this event loop, would otherwise hold back
                # sending the request: the model server gets it first.
                await call.request_sent(SEND_WAIT_SECONDS)
    except BaseException:
        if call is not None:
            await call.call_off()
        raise
    return plan


_ENTER_CHAT = "SELECT * FROM parley_enter_chat($1, $2, $3, $4, $5, $6)"
# The answer, its usage row and the settled hold, in one durable transaction (migration
# f1c3a8e5d2b7).
_FINISH_REPLY = (
    "SELECT parley_finish_reply("
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
)
# A reply's own hold, where a lease cannot serve it (migration e4a9c2f7b1d3), without waiting
# for the disk, as the reply's final call commits durably.
_HOLD_CHAT_REPLY = in_workspace("parley_hold_quota($1, $2, $3, $4, $5, $6)", wait_for_disk=False)
# The conversation, the question, the answer, its usage row, the reply's share of its quota
# reservation settled and the API key marked used, in one durable transaction (migration
# c5e8b3d1a9f4).
_FINISH_CHAT_REPLY = (
    "SELECT parley_finish_chat_reply($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
    " $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)"
)


async def prepare_chat_reply(
    credentials: Credentials,
    request: Request,
    model: str,
    content: str,
    *,
    history: list[ChatMessage],
    temperature: float | None = None,
    max_tokens: int | None = None,
    external_user_id: str | None = None,
) -> ReplyPlan:
    """`prepare_reply` for the OpenAI-compatible API: a new conversation with the assistant
    `model` names (its id or its name), whose caller is authenticated here too.

    A caller this process knows (an API key and assistant in `chat_entries`), on a plan this
    process holds a lease of (backend/usage/leases.py), reaches the model without a database
    round trip. Otherwise: `parley_enter_chat` authenticates and reads the assistant and its
    workspace; the reply's quota is held by a lease (taken or renewed), or, for an assistant
    with a cap per visitor, by a hold of its own while the SDK builds the request. The
    conversation and the question are saved with the answer, by the reply's final call.
    Raises as `get_tenant_context` does for the credentials, Forbidden without the `chat`
    permission, NotFound or BadRequest for a name that finds no or several assistants, and
    QuotaExceeded (nothing saved) when a limit is reached."""
    assistant, workspace, mark_key = await _enter_chat(credentials, request, model)
    conversation = NewConversation(
        uuid.uuid4(), assistant.tenant_id, assistant.id, external_user_id, content[:80]
    )
    limits = _limits(assistant, workspace, conversation)
    leased = len(limits) == 1 and get_settings().quota_lease_seconds > 0
    # A lease holds the prompt's bound, so the question is tokenized after the request left.
    plan = await _plan(
        None, assistant, workspace, conversation, content, history, count_prompt=not leased
    )
    plan.request = _overridden(plan.request, temperature, max_tokens)
    plan.new_conversation, plan.mark_key = conversation, mark_key
    tokens = _tokens_to_hold(plan)
    if leased:
        book = lease_book()
        plan.share = await book.take(assistant.tenant_id, limits[0], tokens)
        try:
            if plan.provider is not None:
                # Asked right here: the request leaves before the response starts (that work,
                # on this event loop, would otherwise hold it back), and without waiting for a
                # task of its own to be scheduled.
                plan.call = await ModelCall.streaming(plan.provider, plan.request)
        except BaseException:
            if plan.call is not None:
                await plan.call.call_off()
            book.give_back(assistant.tenant_id, plan.share)
            raise
        plan.prompt_tokens = count_message_tokens(plan.request.messages)
        return plan
    hold = quota.hold_for(assistant.tenant_id, limits, replies=1, tokens=tokens)
    # The model request is built while the hold is on its way, and sent once it is held.
    released = asyncio.Event()
    if plan.provider is not None:
        plan.call = ModelCall(plan.provider, plan.request, gate=released)
    try:
        async with raw_connection() as db:
            refused = await db.fetchval(
                _HOLD_CHAT_REPLY,
                assistant.tenant_id,
                hold.reservation.id,
                hold.counters,
                hold.reservation.replies,
                hold.reservation.tokens,
                hold.expires_at,
            )
        if refused:
            raise hold.refused(refused)
    except BaseException:
        if plan.call is not None:
            await plan.call.call_off()  # cancelled at the gate: nothing was sent
        raise
    plan.share = Share(hold.reservation.id, hold.reservation.replies, hold.reservation.tokens)
    released.set()
    return plan


async def _enter_chat(
    credentials: Credentials, request: Request, model: str
) -> tuple[Assistant, _Workspace, uuid.UUID | None]:
    """The assistant `model` names, its workspace, and the API key to mark used with the
    reply (if it is time to): from this process's entry for the key and the assistant, else
    from `parley_enter_chat`."""
    cache = entry_cache()
    key = (credentials.key_hash, model) if isinstance(credentials, KeyCredentials) else None
    entry = cache.get(key) if key is not None else None
    mark_key = None
    if entry is None:
        generation = cache.generation
        member = credentials if isinstance(credentials, MemberCredentials) else None
        assistant_id, name = _assistant_wanted(model)
        async with raw_connection() as db:
            found = await db.fetchrow(
                _ENTER_CHAT,
                key[0] if key is not None else None,
                member.user_id if member else None,
                member.tenant_id if member else None,
                assistant_id,
                name,
                LAST_USED_RESOLUTION,
            )
        if key is not None and found is not None:
            entry = cache.put(key, found, generation)
    else:
        found = entry.row
        now = time.monotonic()
        if now - entry.marked >= LAST_USED_RESOLUTION.total_seconds():
            entry.marked, mark_key = now, found["key_id"]
    context_entered(credentials, found, request).require(Permission.chat)
    assert found is not None  # noqa: S101  (context_entered refuses a missing row)
    if not found["assistant_count"]:
        raise NotFound(f"No assistant is called '{model}'; use an assistant's id or name.")
    if found["assistant_count"] > 1:
        raise BadRequest(f"Several assistants are called '{model}'; use the assistant's id.")
    parsed = entry.parsed if entry is not None else {}
    if not parsed:
        # The engine's connections decode JSON (SQLAlchemy's asyncpg dialect sets the codec).
        parsed["assistant"] = _assistant_of(found["assistant_row"])
        parsed["workspace"] = _Workspace.of(
            found["workspace_plan"],
            found["model_base_url"],
            found["model_api_key_encrypted"],
            found["assistant_knowledge_bases"],
        )
    return parsed["assistant"], parsed["workspace"], mark_key


@dataclass(frozen=True, slots=True)
class NewConversation:
    """A conversation of the OpenAI-compatible API, saved with its first answer: its columns
    (not an ORM object, whose construction costs more than the rest of the reply path)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    assistant_id: uuid.UUID
    external_user_id: str | None
    title: str
    channel: Channel = Channel.api


def _assistant_wanted(model: str) -> tuple[uuid.UUID | None, str | None]:
    """An assistant's id, or else its name."""
    try:
        return uuid.UUID(model), None
    except ValueError:
        return None, model


def _assistant_of(row: dict[str, Any]) -> Assistant:
    """A detached Assistant from its row as JSON (`to_jsonb`)."""
    values = {
        key: None if (value := row.get(name)) is None else convert(value)
        for key, name, convert in _assistant_columns()
    }
    return Assistant(**values)


@functools.cache
def _assistant_columns() -> list[tuple[str, str, Callable[[Any], Any]]]:
    """(attribute, column, how to read its JSON value) for every column of Assistant."""
    columns: list[tuple[str, str, Callable[[Any], Any]]] = []
    for attribute in inspect(Assistant).column_attrs:
        column = attribute.columns[0]
        convert: Callable[[Any], Any] = _as_is
        if isinstance(column.type, Uuid):
            convert = uuid.UUID
        elif isinstance(column.type, DateTime):
            convert = datetime.fromisoformat
        elif isinstance(column.type, Enum) and column.type.enum_class is not None:
            convert = column.type.enum_class
        elif isinstance(column.type, Float):
            convert = float
        columns.append((attribute.key, column.name, convert))
    return columns


def _as_is(value: Any) -> Any:
    return value


@asynccontextmanager
async def _transaction(
    tenant_id: uuid.UUID, session: AsyncSession | None
) -> AsyncIterator[AsyncSession]:
    if session is not None:
        yield session
        return
    async with unit_of_work(tenant_id=tenant_id) as own:
        yield own


async def _conversation_and_assistant(
    session: AsyncSession, tenant_id: uuid.UUID, conversation_id: uuid.UUID
) -> tuple[Conversation, Assistant]:
    found = (
        await session.execute(
            select(Conversation, Assistant)
            .join(Assistant, Assistant.id == Conversation.assistant_id)
            .where(Conversation.id == conversation_id, Conversation.tenant_id == tenant_id)
            .with_for_update(of=Conversation)
        )
    ).first()
    if found is None:
        raise NotFound("Conversation not found.")
    return found[0], found[1]


async def _history(session: AsyncSession, conversation_id: uuid.UUID) -> list[ChatMessage]:
    rows = (
        await session.execute(
            select(Message.role, Message.content)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(HISTORY_MESSAGES)
        )
    ).all()
    return [ChatMessage(role.value, text) for role, text in reversed(rows)]


@dataclass(frozen=True)
class _Workspace:
    """What a reply needs to know of its workspace and assistant, read in one statement."""

    limits: PlanLimits
    endpoint: OpenAIEndpoint | None
    knowledge_bases: int

    @classmethod
    def of(
        cls,
        plan: str | None,
        base_url: str | None,
        api_key_encrypted: str | None,
        knowledge_bases: int,
    ) -> _Workspace:
        """From the columns both reply paths read: the plan's name, the workspace's model
        endpoint (its key encrypted) and the assistant's number of knowledge bases."""
        return cls(limits_of(plan)[1], endpoint_of(base_url, api_key_encrypted), knowledge_bases)


_WORKSPACE = text(
    "SELECT t.plan, s.openai_base_url, s.openai_api_key_encrypted, "
    "(SELECT count(*) FROM assistant_knowledge_bases a WHERE a.assistant_id = :assistant) "
    "FROM tenants t LEFT JOIN tenant_embedding_settings s ON s.tenant_id = t.id "
    "WHERE t.id = :tenant"
).bindparams(bindparam("tenant", type_=Uuid()), bindparam("assistant", type_=Uuid()))


async def _workspace(
    session: AsyncSession, tenant_id: uuid.UUID, assistant_id: uuid.UUID
) -> _Workspace:
    """The plan's limits, the workspace's own model endpoint and the assistant's number of
    knowledge bases (row-level security scopes every part to the workspace)."""
    row = (
        await session.execute(_WORKSPACE, {"tenant": tenant_id, "assistant": assistant_id})
    ).one()
    return _Workspace.of(*row)


async def _plan(
    session: AsyncSession | None,
    assistant: Assistant,
    workspace: _Workspace,
    conversation: Conversation | NewConversation,
    content: str,
    history: list[ChatMessage],
    *,
    count_prompt: bool = True,
) -> ReplyPlan:
    """With `count_prompt=False`, `prompt_tokens` is only a bound (`message_token_bound`): the
    caller counts the prompt once the model call is under way."""
    settings = get_settings()
    started = time.perf_counter()
    hits: list[SearchHit] = []
    kb_count, retrieval_error = 0, None
    if workspace.knowledge_bases:
        async with _transaction(assistant.tenant_id, session) as reading:
            hits, kb_count, retrieval_error = await _retrieve(reading, assistant, content)
    retrieval_ms = round((time.perf_counter() - started) * 1000, 2)
    passages = prompt.fit_passages(
        [_passage(i, hit) for i, hit in enumerate(hits, start=1)],
        settings.context_token_budget,
    )
    citations = {i: _citation(i, hit) for i, hit in enumerate(hits, start=1)}
    fallback_reason = None
    if retrieval_error:
        fallback_reason = "retrieval_failed"
    elif kb_count and not passages:
        fallback_reason = "no_context"
    provider: ChatProvider | None = None
    provider_error = None
    if fallback_reason is None:
        try:
            provider = chat_provider_for(assistant.provider, workspace.endpoint)
        except ProviderError as exc:
            fallback_reason, provider_error = "provider_failed", exc.reason
        if provider is not None and not provider.is_llm and not passages:
            # The offline answer quotes passages; with none there is nothing to say.
            provider, fallback_reason = None, "no_context"
    messages = prompt.build_messages(
        instructions=assistant.instructions,
        passages=passages,
        has_knowledge=kb_count > 0,
        history=history,
        question=content,
        history_budget=settings.history_token_budget,
    )
    request = ChatRequest(
        messages=messages,
        question=content,
        passages=passages,
        model=provider.model
        if provider is not None and not provider.is_llm
        else chat_model_for(assistant.model),
        temperature=assistant.temperature,
        max_tokens=assistant.max_answer_tokens,
        language=assistant.language,
    )
    meta: dict[str, Any] = {
        "retrieval_ms": retrieval_ms,
        "passages": [
            {"number": n, "score": c["score"], "document_id": c["document_id"]}
            for n, c in citations.items()
        ],
    }
    if retrieval_error:
        meta["retrieval_error"] = retrieval_error
    if provider_error:
        meta["error"] = provider_error
    return ReplyPlan(
        tenant_id=assistant.tenant_id,
        assistant_id=assistant.id,
        conversation_id=conversation.id,
        question_id=uuid.uuid4(),  # replaced once the question is saved
        question=content,
        fallback_message=assistant.fallback_message,
        request=request,
        provider=provider,
        fallback_reason=fallback_reason,
        citations={n: citations[n] for n in (p.number for p in passages)},
        reservation=quota.Reservation(uuid.uuid4(), assistant.tenant_id, (), 0, 0),
        prompt_tokens=(count_message_tokens if count_prompt else message_token_bound)(messages),
        meta=meta,
    )


async def _retrieve(
    session: AsyncSession, assistant: Assistant, query: str
) -> tuple[list[SearchHit], int, str | None]:
    """The best passages across the assistant's knowledge bases, by similarity (fusion scores
    of different knowledge bases are not comparable; cosine similarities are)."""
    kbs = list(
        await session.scalars(
            select(KnowledgeBase)
            .join(
                AssistantKnowledgeBase,
                AssistantKnowledgeBase.knowledge_base_id == KnowledgeBase.id,
            )
            .where(AssistantKnowledgeBase.assistant_id == assistant.id)
        )
    )
    hits: list[SearchHit] = []
    for kb in kbs:
        try:
            found = await search(
                session, kb, query, top_k=assistant.top_k, threshold=assistant.threshold
            )
        except SearchFailed as exc:
            return [], len(kbs), exc.reason
        hits.extend(found.hits)
    hits.sort(key=lambda h: -h.similarity)
    return hits[: assistant.top_k], len(kbs), None


def _passage(number: int, hit: SearchHit) -> ContextPassage:
    c = hit.citation
    return ContextPassage(
        number=number,
        text=hit.text,
        title=c.title or c.filename,
        url=c.url,
        heading=" > ".join(c.heading_path) or (f"page {c.page}" if c.page else None),
    )


def _citation(number: int, hit: SearchHit) -> dict[str, Any]:
    c = hit.citation
    return {
        "number": number,
        "document_id": str(c.document_id),
        "title": c.title,
        "url": c.url,
        "filename": c.filename,
        "heading_path": c.heading_path,
        "page": c.page,
        "passage": hit.text,
        "score": round(hit.similarity, 4),
    }


def _overridden(
    request: ChatRequest, temperature: float | None, max_tokens: int | None
) -> ChatRequest:
    """The request with a caller's own temperature, and max_tokens (never above the
    assistant's)."""
    if temperature is None and max_tokens is None:
        return request
    return ChatRequest(
        messages=request.messages,
        question=request.question,
        passages=request.passages,
        model=request.model,
        temperature=request.temperature if temperature is None else temperature,
        max_tokens=min(request.max_tokens, max_tokens or request.max_tokens),
        language=request.language,
    )


def _question(
    plan: ReplyPlan,
    conversation: Conversation,
    content: str,
    meta: dict[str, Any] | None,
) -> Message:
    question = _question_message(uuid.uuid4(), plan.tenant_id, conversation.id, content, meta)
    plan.question_id, plan.question_message = question.id, question
    return question


def _question_message(
    question_id: uuid.UUID,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    content: str,
    meta: dict[str, Any] | None,
) -> Message:
    return Message(
        id=question_id,
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        role=MessageRole.user,
        content=content,
        status=MessageStatus.complete,
        citations=[],
        meta=meta or {},
    )


def _limits(
    assistant: Assistant, workspace: _Workspace, conversation: Conversation | NewConversation
) -> list[quota.Limit]:
    wanted = [quota.month_limit(workspace.limits)]
    if assistant.visitor_daily_message_cap is not None:
        visitor = conversation.external_user_id or f"conversation:{conversation.id}"
        wanted.append(
            quota.visitor_day_limit(assistant.id, visitor, assistant.visitor_daily_message_cap)
        )
    return wanted


def _tokens_to_hold(plan: ReplyPlan) -> int:
    """The most this reply can use: its prompt and a full-length answer. Settled to the
    actual."""
    asks_model = plan.provider is not None and plan.provider.is_llm
    return plan.prompt_tokens + plan.request.max_tokens if asks_model else 0


class ReplyRun:
    """One generation: iterate `deltas()`, then `finish()` (also after a cancellation)."""

    def __init__(self, plan: ReplyPlan) -> None:
        self.plan = plan
        # Known before the answer is saved, so streamed pieces can name their message.
        self.answer_id = uuid.uuid4()
        self.parts: list[str] = []
        self.finished: Finished | None = None
        self.error: ProviderError | None = None
        self.started = plan.call.started if plan.call is not None else time.perf_counter()
        self.first_token_ms: float | None = None
        self._result: ReplyResult | None = None
        self._finishing: asyncio.Task[ReplyResult] | None = None

    @property
    def falls_back(self) -> bool:
        return self.plan.fallback_reason is not None or self.error is not None

    async def deltas(self) -> AsyncIterator[str]:
        """The answer's text as it is generated. Provider failures are not raised: the run
        falls back, and `finish()` returns the fallback message as the answer."""
        provider = self.plan.provider
        if provider is None:
            return
        call = self.plan.call
        events = call.events() if call is not None else provider.stream(self.plan.request)
        try:
            async for event in events:
                if isinstance(event, TextDelta):
                    if self.first_token_ms is None:
                        self.first_token_ms = (time.perf_counter() - self.started) * 1000
                    self.parts.append(event.text)
                    yield event.text
                elif isinstance(event, Finished):
                    self.finished = event
        except ProviderError as exc:
            self.error = exc
            log.warning("reply_provider_failed", reason=exc.reason, started=exc.started)

    async def finish(self, *, cancelled: bool = False) -> ReplyResult:
        """Save the answer, write the ledger row and settle the quota, once. Shielded, so a
        cancelled request still records what was consumed."""
        if self._finishing is None:
            self._finishing = asyncio.ensure_future(self._finish(cancelled))
        return await asyncio.shield(self._finishing)

    async def _finish(self, cancelled: bool) -> ReplyResult:
        plan = self.plan
        if plan.call is not None:
            await plan.call.call_off()  # a call whose stream was never read
        text = "".join(self.parts)
        completion = self._completion_tokens(text)
        prompt_tokens = self._prompt_tokens()
        asked_model = plan.provider is not None
        if self.falls_back:
            status, content, citations = MessageStatus.fallback, plan.fallback_message, []
        elif cancelled:
            status, content, citations = MessageStatus.cancelled, text, self._cited(text)
        else:
            status, content, citations = MessageStatus.complete, text, self._cited(text)
        model = plan.request.model if asked_model else None
        answer = Message(
            id=self.answer_id,
            tenant_id=plan.tenant_id,
            conversation_id=plan.conversation_id,
            role=MessageRole.assistant,
            content=content,
            status=status,
            citations=citations,
            prompt_tokens=prompt_tokens if asked_model else 0,
            completion_tokens=completion if asked_model else 0,
            model=model,
            latency_ms=round((time.perf_counter() - self.started) * 1000),
            meta=self._meta(),
        )
        charged = not self.falls_back
        usage_id, cost = None, 0
        # A failure before any text consumed nothing; one midway is recorded at no cost.
        if asked_model and (charged or completion > 0):
            usage_id = uuid.uuid4()
            if charged:
                cost = ledger.cost_micros(
                    plan.request.model, prompt=prompt_tokens, completion=completion
                )
        counts_tokens = charged and plan.provider is not None and plan.provider.is_llm
        outcome = (UsageOutcome.charged if charged else UsageOutcome.free).value
        answer_values = (
            answer.id,
            answer.content,
            answer.status.value,
            json.dumps(answer.citations),
            answer.prompt_tokens,
            answer.completion_tokens,
            answer.model,
            answer.latency_ms,
            json.dumps(answer.meta),
        )
        used = (1 if charged else 0, prompt_tokens + completion if counts_tokens else 0)
        async with raw_connection() as db:
            if plan.share is None:
                answer.created_at = await db.fetchval(
                    _FINISH_REPLY,
                    plan.tenant_id,
                    plan.conversation_id,
                    *answer_values,
                    usage_id,
                    plan.assistant_id,
                    outcome,
                    cost,
                    plan.reservation.id,
                    *used,
                )
            else:
                answer.created_at = await db.fetchval(
                    _FINISH_CHAT_REPLY,
                    *_chat_values(plan),
                    *answer_values,
                    usage_id,
                    outcome,
                    cost,
                    plan.share.reservation_id,
                    plan.share.replies,
                    plan.share.tokens,
                    *used,
                    plan.mark_key,
                    LAST_USED_RESOLUTION,
                )
        if self.falls_back:
            await _record_unanswered(plan, self._fallback_reason())
        question = plan.question_message
        if question is None and plan.new_conversation is not None:
            question = _question_message(
                plan.question_id, plan.tenant_id, plan.conversation_id, plan.question, None
            )
        if question is None:
            raise RuntimeError("a reply plan must come from prepare_reply")
        self._result = ReplyResult(question, answer, usage_id, cost)
        return self._result

    def _fallback_reason(self) -> str:
        return self.plan.fallback_reason or "provider_failed"

    def _completion_tokens(self, text: str) -> int:
        if self.finished is not None and self.finished.completion_tokens is not None:
            return self.finished.completion_tokens
        return count_tokens(text) if text else 0

    def _prompt_tokens(self) -> int:
        if self.finished is not None and self.finished.prompt_tokens is not None:
            return self.finished.prompt_tokens
        return self.plan.prompt_tokens

    def _cited(self, text: str) -> list[dict[str, Any]]:
        """The passages the answer cites by [n]; all of them when it cites none."""
        numbers = {int(n) for n in _CITE.findall(text)} & set(self.plan.citations)
        chosen = sorted(numbers) if numbers else sorted(self.plan.citations)
        return [self.plan.citations[n] for n in chosen]

    def _meta(self) -> dict[str, Any]:
        provider = self.plan.provider
        meta = dict(self.plan.meta)
        meta["generator"] = "llm" if provider is not None and provider.is_llm else "extractive"
        if provider is not None:
            meta["provider"] = provider.name
        if self.first_token_ms is not None:
            meta["first_token_ms"] = round(self.first_token_ms, 2)
        if self.falls_back:
            meta["fallback_reason"] = self._fallback_reason()
        if self.error is not None:
            meta["error"] = self.error.reason
        return meta


def _chat_values(plan: ReplyPlan) -> tuple[Any, ...]:
    """The conversation and question columns of a reply of the OpenAI-compatible API."""
    conversation = plan.new_conversation
    if conversation is None:
        raise RuntimeError("a chat reply's plan must come from prepare_chat_reply")
    return (
        plan.tenant_id,
        conversation.id,
        conversation.assistant_id,
        conversation.channel.value,
        conversation.external_user_id,
        conversation.title,
        plan.question_id,
        plan.question,
        "{}",
    )


async def _record_unanswered(plan: ReplyPlan, reason: str) -> None:
    """The question of a fallback answer, for the workspace to add what was missing. Its own
    transaction, after the answer's: the local model's vector is computed before it opens."""
    embedding = await _question_vector(plan.question)
    async with unit_of_work(tenant_id=plan.tenant_id) as session:
        session.add(
            UnansweredQuestion(
                tenant_id=plan.tenant_id,
                assistant_id=plan.assistant_id,
                conversation_id=plan.conversation_id,
                question=plan.question,
                reason=reason,
                embedding=embedding,
            )
        )


async def _question_vector(question: str) -> list[float] | None:
    """The local model's vector of a question, for grouping similar ones; None if the model
    is not available (grouping then falls back to exact wording)."""
    from backend.knowledge.providers import embed_texts

    try:
        return (await embed_texts("local:all-MiniLM-L6-v2", [question]))[0]
    except Exception:  # grouping is a convenience; never lose the question over it
        log.warning("unanswered_question_not_embedded", exc_info=True)
        return None
