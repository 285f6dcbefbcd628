"""The model is asked as soon as the quota is held: the question is saved while the model server
works on it. A reply whose transaction then fails calls the model off and charges nothing.

The OpenAI-compatible API asks the model once the quota is held (by a lease of its process, or
by a hold of its own), and saves the question with the answer: a failure before asks no model.

A SHARE lock on a table (`messages`, `quota_counters`), held by the test, stops every insert
into it: the reply gets as far as that insert and waits there, so what happened before that
point can be checked."""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from httpx import AsyncClient, Response
from sqlalchemy import event, func, select
from sqlalchemy.exc import DBAPIError

from backend.assistants import engine
from backend.assistants.engine import ModelCall, ReplyRun, prepare_reply
from backend.assistants.providers import chat_provider_for
from backend.db import get_engine, unit_of_work
from backend.llm import ChatRequest, ProviderUnavailable, StreamEvent, Streaming, TextDelta
from backend.llm.sent import notifying as engine_notifying
from backend.models import (
    Message,
    MessageRole,
    ModelProvider,
    QuotaCounter,
    QuotaReservation,
    UsageRecord,
)
from backend.tenancy.permissions import Permission
from backend.usage.leases import close_lease_book
from backend.usage.quota import PLAN_SCOPE
from tests.assistants.fixtures import KnowledgeMaker
from tests.conftest import APP_ROLE_USER, TEST_ADMIN_URL, _plain
from tests.factories.accounts import Account
from tests.factories.assistants import create_assistant, open_conversation
from tests.factories.responses import assert_error
from tests.factories.tenancy import make_workspace
from tests.factories.workspaces import create_api_key
from tests.llm.helpers import chat_request
from tests.standins.openai_chat import ChatStandIn

SATURDAY = "When does the shop open on Saturdays?"
# The app's statements that write to the locked table.
WAITING_INSERT = (
    "SELECT pid FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock' "
    "AND (query LIKE 'INSERT INTO messages %' OR query LIKE 'SELECT parley_%')"
)

NOTHING_KEPT = {
    "questions": 0,
    "holds": 0,
    "reply_usage_rows": 0,
    "replies_used": 0,
    "replies_reserved": 0,
}


async def _send_rest(client: AsyncClient, owner: Account, assistant: dict[str, Any]) -> Response:
    conversation = await open_conversation(client, owner, assistant["id"])
    return await client.post(
        f"/api/v1/conversations/{conversation}/messages",
        json={"content": SATURDAY},
        headers=owner.headers(),
    )


async def _send_openai(client: AsyncClient, owner: Account, assistant: dict[str, Any]) -> Response:
    key = await create_api_key(client, owner, [Permission.chat])
    return await client.post(
        "/v1/chat/completions",
        json={"model": assistant["id"], "messages": [{"role": "user", "content": SATURDAY}]},
        headers={"Authorization": f"Bearer {key.key}"},
    )


@asynccontextmanager
async def _messages_locked(
    table: str = "messages",
) -> AsyncIterator[Callable[[], Awaitable[int | None]]]:
    """Holds the lock; yields a function that finds the reply's insert waiting for it."""
    lock = await asyncpg.connect(_plain(TEST_ADMIN_URL))
    # Outside the lock's transaction: a transaction sees one snapshot of pg_stat_activity.
    watch = await asyncpg.connect(_plain(TEST_ADMIN_URL))

    async def waiting_insert() -> int | None:
        pid: int | None = await watch.fetchval(WAITING_INSERT, APP_ROLE_USER)
        return pid

    try:
        async with lock.transaction():
            await lock.execute(f"LOCK TABLE {table} IN SHARE MODE")
            yield waiting_insert
    finally:
        await lock.close()
        await watch.close()


async def _eventually(check: Callable[[], Awaitable[object]], seconds: float = 5.0) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still {value!r} after {seconds} s")
        await asyncio.sleep(0.01)


async def _saved(owner: Account) -> dict[str, int]:
    assert owner.tenant_id is not None
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        questions = await session.scalar(
            select(func.count()).select_from(Message).where(Message.role == MessageRole.user)
        )
        held = await session.scalar(select(func.count()).select_from(QuotaReservation))
        usage = await session.scalar(
            select(func.count()).select_from(UsageRecord).where(UsageRecord.kind == "reply")
        )
        counter = await session.scalar(select(QuotaCounter).where(QuotaCounter.scope == PLAN_SCOPE))
    return {
        "questions": questions or 0,
        "holds": held or 0,
        "reply_usage_rows": usage or 0,
        "replies_used": counter.replies_used if counter else 0,
        "replies_reserved": counter.replies_reserved if counter else 0,
    }


async def _llm_assistant(client: AsyncClient, kb: KnowledgeMaker) -> tuple[Account, dict[str, Any]]:
    owner = await make_workspace()
    name = f"Shop {uuid.uuid4().hex[:6]}"
    assistant = await create_assistant(
        client, owner, name=name, knowledge_base_ids=[await kb(owner)]
    )
    return owner, assistant


async def test_the_model_has_the_question_before_it_is_saved(
    client: AsyncClient, handbook_kb: KnowledgeMaker, chat_server: ChatStandIn
) -> None:
    owner, assistant = await _llm_assistant(client, handbook_kb)
    chat_server.reply = "At 10:00 [1]."
    async with _messages_locked() as waiting_insert:
        asking = asyncio.ensure_future(_send_rest(client, owner, assistant))
        # The model has the question while the reply still waits to save it.
        assert await _eventually(waiting_insert)
        await _eventually(lambda: _true(chat_server.request_count == 1))
        assert not asking.done()
    response = await asking
    assert response.status_code == 200, response.text
    assert response.json()["answer"]["content"] == "At 10:00 [1]."
    assert await _saved(owner) == ANSWERED


ANSWERED = {
    "questions": 1,
    "holds": 0,
    "reply_usage_rows": 1,
    "replies_used": 1,
    "replies_reserved": 0,
}


async def test_an_openai_reply_asks_the_model_with_its_quota_held_and_saves_it_all_after(
    client: AsyncClient, handbook_kb: KnowledgeMaker, chat_server: ChatStandIn
) -> None:
    owner, assistant = await _llm_assistant(client, handbook_kb)
    chat_server.reply = "At 10:00 [1]."
    async with _messages_locked() as waiting_insert:
        asking = asyncio.ensure_future(_send_openai(client, owner, assistant))
        # The final call waits to save the question and the answer: the model has answered,
        # with the reply held on the plan (this process's lease of 2 replies).
        assert await _eventually(waiting_insert)
        assert chat_server.request_count == 1
        assert await _saved(owner) == {**NOTHING_KEPT, "holds": 1, "replies_reserved": 2}
        assert not asking.done()
    response = await asking
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "At 10:00 [1]."
    assert await _saved(owner) == {**ANSWERED, "holds": 1, "replies_reserved": 1}
    await close_lease_book()  # the lease's unused reply goes back
    assert await _saved(owner) == ANSWERED


@pytest.mark.parametrize("hold", ["lease", "own hold"])
async def test_an_openai_reply_whose_hold_fails_asks_no_model_and_keeps_nothing(
    client: AsyncClient, handbook_kb: KnowledgeMaker, chat_server: ChatStandIn, hold: str
) -> None:
    """A reply held by a lease of its process, and one with a cap per visitor (which holds the
    plan and the visitor's counter for itself)."""
    owner, assistant = await _llm_assistant(client, handbook_kb)
    if hold == "own hold":
        capped = await client.patch(
            f"/api/v1/assistants/{assistant['id']}",
            json={"visitor_daily_message_cap": 5},
            headers=owner.headers(),
        )
        assert capped.status_code == 200, capped.text
    async with _messages_locked("quota_counters") as waiting_insert:
        asking = asyncio.ensure_future(_send_openai(client, owner, assistant))
        await _cancel(await _eventually(waiting_insert))  # the statement fails as a whole
        response = await asking
    assert_error(response, 503, "service_unavailable")
    assert chat_server.request_count == 0
    assert await _saved(owner) == NOTHING_KEPT


async def test_a_reply_whose_transaction_fails_calls_the_model_off(
    client: AsyncClient, handbook_kb: KnowledgeMaker, chat_server: ChatStandIn
) -> None:
    owner, assistant = await _llm_assistant(client, handbook_kb)
    chat_server.first_token_delay = 2.0
    async with _messages_locked() as waiting_insert:
        asking = asyncio.ensure_future(_send_rest(client, owner, assistant))
        pid = await _eventually(waiting_insert)
        await _eventually(lambda: _true(chat_server.request_count == 1))
        await _cancel(pid)  # the question's insert fails
        response = await asking
    assert_error(response, 503, "service_unavailable")
    # The model server's stream was closed before its first token, and nothing was kept.
    await _eventually(lambda: _true(chat_server.hang_ups == 1))
    assert await _saved(owner) == NOTHING_KEPT


async def test_a_reply_in_a_transaction_of_its_own_calls_the_model_off_too(
    client: AsyncClient, handbook_kb: KnowledgeMaker, chat_server: ChatStandIn
) -> None:
    """The widget's and Telegram's replies: prepare_reply commits its own transaction."""
    owner, assistant = await _llm_assistant(client, handbook_kb)
    assert owner.tenant_id is not None
    conversation = await open_conversation(client, owner, assistant["id"])
    chat_server.first_token_delay = 2.0
    async with _messages_locked() as waiting_insert:
        preparing = asyncio.ensure_future(
            prepare_reply(owner.tenant_id, SATURDAY, conversation_id=conversation)
        )
        pid = await _eventually(waiting_insert)
        await _eventually(lambda: _true(chat_server.request_count == 1))
        await _cancel(pid)
        with pytest.raises(DBAPIError, match="canceling statement"):
            await preparing
    await _eventually(lambda: _true(chat_server.hang_ups == 1))
    assert await _saved(owner) == NOTHING_KEPT


async def _cancel(pid: int) -> None:
    admin = await asyncpg.connect(_plain(TEST_ADMIN_URL))
    try:
        await admin.execute("SELECT pg_cancel_backend($1)", pid)
    finally:
        await admin.close()


async def _true(value: bool) -> bool:
    return value


async def test_the_question_is_saved_after_the_request_is_written(
    client: AsyncClient,
    handbook_kb: KnowledgeMaker,
    chat_server: ChatStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The commit's own work runs on the same event loop as the model call: the reply waits for
    the request to be written before it saves the question and commits."""
    owner, assistant = await _llm_assistant(client, handbook_kb)
    assert owner.tenant_id is not None
    conversation = await open_conversation(client, owner, assistant["id"])
    monkeypatch.setattr(engine, "SEND_WAIT_SECONDS", 5.0)  # no time limit can decide it here
    chat_server.first_token_delay = 0.3
    chat_server.reply = "At 10:00 [1]."
    order: list[str] = []

    def noting(
        callback: Callable[[], None], gate: asyncio.Event | None = None
    ) -> contextvars.Context:
        def sent() -> None:
            order.append("request written")
            callback()

        return engine_notifying(sent, gate)

    def before_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO messages"):
            order.append("question saved")

    monkeypatch.setattr(engine, "notifying", noting)
    sync_engine = get_engine().sync_engine
    event.listen(sync_engine, "before_cursor_execute", before_execute)
    try:
        plan = await prepare_reply(owner.tenant_id, SATURDAY, conversation_id=conversation)
    finally:
        event.remove(sync_engine, "before_cursor_execute", before_execute)
    assert order == ["request written", "question saved"]
    run = ReplyRun(plan)
    text = "".join([delta async for delta in run.deltas()])
    await run.finish()
    assert text == "At 10:00 [1]."


class _Silent:
    """A provider whose request never leaves: its stream waits until it is closed."""

    name = "silent"
    is_llm = True
    model = "silent"

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        await asyncio.Event().wait()
        yield TextDelta("never")

    async def aclose(self) -> None:
        return None


class _Refusing(_Silent):
    """A provider that fails before sending anything, as an open circuit does."""

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        raise ProviderUnavailable("The circuit is open.")
        yield TextDelta("never")


async def test_waiting_for_a_request_that_never_leaves_is_bounded() -> None:
    call = ModelCall(_Silent(), chat_request())
    loop = asyncio.get_running_loop()
    started = loop.time()
    await call.request_sent(0.05)
    assert 0.04 <= loop.time() - started < 2.0
    await call.call_off()


async def test_a_call_that_ends_without_sending_is_not_waited_for() -> None:
    call = ModelCall(_Refusing(), chat_request())
    loop = asyncio.get_running_loop()
    started = loop.time()
    await call.request_sent(5.0)
    assert loop.time() - started < 2.0
    with pytest.raises(ProviderUnavailable):
        async for _ in call.events():
            pass


async def test_an_openai_reply_cancelled_mid_statement_leaves_no_busy_connection(
    client: AsyncClient, chat_server: ChatStandIn
) -> None:
    """A request task cancelled while its statement waits (a server shutting down): the pool
    stays usable, every connection it hands out next answers."""
    owner = await make_workspace()
    assistant = await create_assistant(client, owner)
    key = await create_api_key(client, owner, [Permission.chat])
    body = {"model": assistant["id"], "messages": [{"role": "user", "content": SATURDAY}]}
    headers = {"Authorization": f"Bearer {key.key}"}
    async with _messages_locked("quota_counters") as waiting_insert:
        asking = asyncio.ensure_future(
            client.post("/v1/chat/completions", json=body, headers=headers)
        )
        await _eventually(waiting_insert)
        asking.cancel()
        await asyncio.gather(asking, return_exceptions=True)
    pool_size = get_engine().pool.size()  # type: ignore[attr-defined]
    for _ in range(pool_size + 2):  # every pooled connection is handed out at least once
        answered = await client.post("/v1/chat/completions", json=body, headers=headers)
        assert answered.status_code == 200, answered.text


async def test_a_gated_call_sends_its_request_only_once_released(chat_server: ChatStandIn) -> None:
    provider = chat_provider_for(ModelProvider.openai, None)
    chat_server.reply = "Held, then sent."
    released = asyncio.Event()
    call = ModelCall(provider, chat_request(), gate=released)
    await asyncio.sleep(0.2)
    assert chat_server.request_count == 0  # built, and held back
    released.set()
    events = [event async for event in call.events()]
    assert chat_server.request_count == 1
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Held, then sent."

    refused = ModelCall(provider, chat_request(), gate=asyncio.Event())
    await asyncio.sleep(0.2)
    await refused.call_off()
    await asyncio.sleep(0.1)
    assert chat_server.request_count == 1  # the call never left


async def test_a_call_begun_in_its_callers_task_returns_once_the_server_streams(
    chat_server: ChatStandIn,
) -> None:
    provider = chat_provider_for(ModelProvider.openai, None)
    chat_server.reply = "Asked inline."
    chat_server.first_token_delay = 0.5
    loop = asyncio.get_running_loop()
    started = loop.time()

    call = await ModelCall.streaming(provider, chat_request())

    # Back before the first token, with the request at the server, and no task of its own.
    assert loop.time() - started < 0.4
    assert chat_server.request_count == 1
    pulling = [t for t in asyncio.all_tasks() if "ModelCall" in repr(t.get_coro())]
    assert pulling == []
    events = [event async for event in call.events()]
    assert isinstance(events[0], Streaming)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Asked inline."

    # A call that fails before anything streams keeps its failure for events(), as a
    # reply's fallback expects.
    refused = await ModelCall.streaming(_Refusing(), chat_request())
    with pytest.raises(ProviderUnavailable):
        async for _ in refused.events():
            pass
    cancelled = await ModelCall.streaming(_Refusing(), chat_request())
    await cancelled.call_off()  # its failure is taken, not left unretrieved
