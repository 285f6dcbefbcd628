"""The reply engine end to end: retrieval, prompt, streaming, citations, usage, fallbacks."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select

from backend.config import get_settings
from backend.db import unit_of_work
from backend.models import QuotaCounter, UnansweredQuestion, UsageOutcome, UsageRecord
from backend.usage.quota import PLAN_SCOPE
from tests.assistants.fixtures import KnowledgeMaker
from tests.assistants.sse import parse_events
from tests.factories.accounts import Account
from tests.factories.assistants import ask, create_assistant, open_conversation
from tests.factories.responses import assert_error
from tests.factories.tenancy import make_workspace
from tests.standins.openai_chat import ChatStandIn

SATURDAY = "When does the shop open on Saturdays?"


async def _setup(
    client: AsyncClient, kb: KnowledgeMaker, **fields: Any
) -> tuple[Account, dict[str, Any], uuid.UUID]:
    owner = await make_workspace()
    assistant = await create_assistant(
        client, owner, knowledge_base_ids=[await kb(owner)], **fields
    )
    return owner, assistant, await open_conversation(client, owner, assistant["id"])


async def _usage(owner: Account) -> list[UsageRecord]:
    assert owner.tenant_id is not None
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        return list(await session.scalars(select(UsageRecord).where(UsageRecord.kind == "reply")))


async def _replies_used(owner: Account) -> int:
    assert owner.tenant_id is not None
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        counter = await session.scalar(select(QuotaCounter).where(QuotaCounter.scope == PLAN_SCOPE))
    return counter.replies_used if counter else 0


async def test_offline_default_answers_from_the_document_with_a_citation(
    client: AsyncClient, handbook_kb: KnowledgeMaker
) -> None:
    owner, _, conversation = await _setup(client, handbook_kb)
    reply = await ask(client, owner, conversation, SATURDAY)
    answer = reply["answer"]
    assert answer["status"] == "complete"
    assert answer["metadata"]["generator"] == "extractive"
    assert "quoted" in answer["content"].lower()
    assert "Saturdays it opens at 10:00" in answer["content"]
    assert "[1]" in answer["content"]
    assert answer["citations"][0]["title"] == "Shop handbook"
    assert "Saturdays" in answer["citations"][0]["passage"]
    assert answer["model"] == "parley-extractive"
    usage = await _usage(owner)
    assert [(u.outcome, u.cost_micros, u.message_id) for u in usage] == [
        (UsageOutcome.charged, 0, uuid.UUID(answer["id"]))
    ]
    assert reply["usage_id"] == str(usage[0].id)
    assert await _replies_used(owner) == 1


async def test_streamed_llm_answer_with_citations_and_usage(
    client: AsyncClient, handbook_kb: KnowledgeMaker, chat_server: ChatStandIn
) -> None:
    chat_server.reply = "On Saturdays the shop opens at 10:00 [1]."
    owner, _assistant, conversation = await _setup(
        client, handbook_kb, instructions="You are the shop's helper."
    )
    response = await client.post(
        f"/api/v1/conversations/{conversation}/messages",
        json={"content": SATURDAY, "stream": True},
        headers=owner.headers(),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_events(response.text)
    deltas = [data["text"] for name, data in events if name == "delta"]
    assert len(deltas) > 1
    assert "".join(deltas) == chat_server.reply
    name, done = events[-1]
    assert name == "done"
    answer = done["answer"]
    assert answer["content"] == chat_server.reply
    assert answer["metadata"]["generator"] == "llm"
    assert answer["model"] == get_settings().openai_chat_model
    assert [c["title"] for c in answer["citations"]] == ["Shop handbook"]

    sent = chat_server.requests[-1]
    assert sent["model"] == get_settings().openai_chat_model
    assert sent["stream"] is True
    system, question = sent["messages"][0], sent["messages"][-1]
    assert system["role"] == "system"
    assert system["content"].startswith("You are the shop's helper.")
    assert "Saturdays it opens at 10:00" in system["content"]
    assert question == {"role": "user", "content": SATURDAY}

    (usage,) = await _usage(owner)
    assert usage.outcome is UsageOutcome.charged
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        answer["prompt_tokens"],
        answer["completion_tokens"],
    )
    assert usage.completion_tokens > 0
    price = get_settings().prices[usage.model]
    expected = -(
        -(usage.prompt_tokens * price.prompt + usage.completion_tokens * price.completion)
        // 1_000_000
    )
    assert usage.cost_micros == expected > 0
    assert done["cost_micros"] == expected  # the playground shows it
    assert await _replies_used(owner) == 1


async def test_history_is_sent_and_trimmed_to_its_budget(
    client: AsyncClient, handbook_kb: KnowledgeMaker, chat_server: ChatStandIn
) -> None:
    owner, _, conversation = await _setup(client, handbook_kb)
    chat_server.reply = "Refunds take five working days [1]."
    await ask(client, owner, conversation, "How long do refunds take to reach the card?")
    chat_server.reply = "Yes, within 30 days [1]."
    await ask(client, owner, conversation, "And can I return shoes?")
    roles = [(m["role"], m["content"]) for m in chat_server.requests[-1]["messages"][1:]]
    assert roles == [
        ("user", "How long do refunds take to reach the card?"),
        ("assistant", "Refunds take five working days [1]."),
        ("user", "And can I return shoes?"),
    ]
    settings = get_settings()
    saved = settings.history_token_budget
    settings.history_token_budget = 15  # room for the last answer only
    try:
        await ask(client, owner, conversation, "What about Sundays?")
    finally:
        settings.history_token_budget = saved
    trimmed = [m["role"] for m in chat_server.requests[-1]["messages"][1:]]
    assert trimmed == ["assistant", "user"]


async def test_provider_failure_gives_the_fallback_and_charges_nothing(
    client: AsyncClient, handbook_kb: KnowledgeMaker, chat_server: ChatStandIn
) -> None:
    owner, assistant, conversation = await _setup(client, handbook_kb)
    retries = get_settings().llm_max_retries
    chat_server.fail_with(500, times=retries + 1)
    reply = await ask(client, owner, conversation, SATURDAY)
    answer = reply["answer"]
    assert answer["status"] == "fallback"
    assert answer["content"] == assistant["fallback_message"]
    assert answer["metadata"]["fallback_reason"] == "provider_failed"
    assert "500" in answer["metadata"]["error"] or "error" in answer["metadata"]["error"]
    assert chat_server.request_count == retries + 1  # retried, then gave up
    assert reply["usage_id"] is None
    assert reply["cost_micros"] == 0
    assert await _usage(owner) == []
    assert await _replies_used(owner) == 0
    assert owner.tenant_id is not None
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        recorded = list(await session.scalars(select(UnansweredQuestion)))
    assert [(q.question, q.reason) for q in recorded] == [(SATURDAY, "provider_failed")]


async def test_a_429_is_retried_and_charged_once(
    client: AsyncClient, handbook_kb: KnowledgeMaker, chat_server: ChatStandIn
) -> None:
    owner, _, conversation = await _setup(client, handbook_kb)
    chat_server.reply = "At 10:00 [1]."
    chat_server.fail_with(429, "Rate limit reached", retry_after=0.01)
    reply = await ask(client, owner, conversation, SATURDAY)
    assert reply["answer"]["status"] == "complete"
    assert reply["answer"]["content"] == "At 10:00 [1]."
    assert chat_server.request_count == 2
    usage = await _usage(owner)
    assert [u.outcome for u in usage] == [UsageOutcome.charged]
    assert await _replies_used(owner) == 1


async def test_a_stream_cut_midway_falls_back_and_records_the_tokens_free(
    client: AsyncClient, handbook_kb: KnowledgeMaker, chat_server: ChatStandIn
) -> None:
    owner, assistant, conversation = await _setup(client, handbook_kb)
    chat_server.reply = "On Saturdays the shop opens at ten in the morning [1]."
    chat_server.cut_off(after_deltas=2)
    response = await client.post(
        f"/api/v1/conversations/{conversation}/messages",
        json={"content": SATURDAY, "stream": True},
        headers=owner.headers(),
    )
    events = parse_events(response.text)
    deltas = [data["text"] for name, data in events if name == "delta"]
    assert len(deltas) == 2
    name, done = events[-1]
    assert name == "done"
    assert done["answer"]["status"] == "fallback"
    assert done["answer"]["content"] == assistant["fallback_message"]
    assert chat_server.request_count == 1  # text was already shown: never retried
    (usage,) = await _usage(owner)
    assert usage.outcome is UsageOutcome.free
    assert usage.cost_micros == 0
    assert usage.completion_tokens > 0  # what was consumed stays on record
    assert await _replies_used(owner) == 0


async def test_the_circuit_breaker_stops_calling_a_provider_that_is_down(
    client: AsyncClient, handbook_kb: KnowledgeMaker, chat_server: ChatStandIn
) -> None:
    settings = get_settings()
    settings.llm_max_retries = 0
    settings.llm_breaker_failures = 2
    settings.llm_breaker_reset_seconds = 60
    owner, _, conversation = await _setup(client, handbook_kb)
    chat_server.fail_with(503, times=10)
    for _ in range(4):
        reply = await ask(client, owner, conversation, SATURDAY)
        assert reply["answer"]["status"] == "fallback"
    assert chat_server.request_count == 2  # the breaker opened after two failures
    assert "paused after 2 failures" in reply["answer"]["metadata"]["error"]


async def test_openai_provider_without_a_key_falls_back(
    client: AsyncClient, handbook_kb: KnowledgeMaker
) -> None:
    owner, _assistant, conversation = await _setup(client, handbook_kb, provider="openai")
    reply = await ask(client, owner, conversation, SATURDAY)
    assert reply["answer"]["status"] == "fallback"
    assert "no API key" in reply["answer"]["metadata"]["error"]


async def test_workspace_key_is_used_instead_of_the_platform_one(
    client: AsyncClient, handbook_kb: KnowledgeMaker
) -> None:
    async with ChatStandIn(api_key="sk-tenant-own", reply="Ten o'clock [1].") as server:
        owner, _, conversation = await _setup(client, handbook_kb, provider="openai")
        saved = await client.put(
            "/api/v1/provider-settings",
            json={"openai_base_url": server.base_url, "openai_api_key": "sk-tenant-own"},
            headers=owner.headers(),
        )
        assert saved.status_code == 200, saved.text
        assert "sk-tenant-own" not in saved.text
        reply = await ask(client, owner, conversation, SATURDAY)
    assert reply["answer"]["content"] == "Ten o'clock [1]."
    assert server.request_count == 1


async def test_nothing_relevant_gives_the_fallback_and_records_the_question(
    client: AsyncClient, handbook_kb: KnowledgeMaker, chat_server: ChatStandIn
) -> None:
    owner, assistant, conversation = await _setup(
        client, handbook_kb, fallback_message="I can only help with the shop."
    )
    questions = [
        "Do you sell bicycles?",
        "Do you sell bikes?",
        "Can I buy a bicycle from you?",
        "What is the capital of Mongolia?",
    ]
    for question in questions:
        reply = await ask(client, owner, conversation, question)
        assert reply["answer"]["content"] == "I can only help with the shop."
        assert reply["answer"]["metadata"]["fallback_reason"] == "no_context"
    assert chat_server.request_count == 0  # no model call without knowledge to answer from
    response = await client.get(
        f"/api/v1/assistants/{assistant['id']}/unanswered-questions", headers=owner.headers()
    )
    groups = response.json()
    assert response.status_code == 200, response.text
    assert sum(g["count"] for g in groups) == 4
    biggest = groups[0]
    assert biggest["count"] >= 2
    assert set(biggest["examples"]) <= set(questions[:3])
    assert "What is the capital of Mongolia?" not in biggest["examples"]

    resolved = await client.post(
        f"/api/v1/assistants/{assistant['id']}/unanswered-questions/resolve",
        json={"question_ids": biggest["question_ids"] + [str(uuid.uuid4())]},
        headers=owner.headers(),
    )
    assert resolved.json() == {"resolved": biggest["count"]}
    left = await client.get(
        f"/api/v1/assistants/{assistant['id']}/unanswered-questions", headers=owner.headers()
    )
    assert sum(g["count"] for g in left.json()) == 4 - biggest["count"]


async def test_an_assistant_without_knowledge_just_asks_the_model(
    client: AsyncClient, chat_server: ChatStandIn
) -> None:
    owner = await make_workspace()
    assistant = await create_assistant(client, owner)
    conversation = await open_conversation(client, owner, assistant["id"])
    chat_server.reply = "Hello! How can I help?"
    reply = await ask(client, owner, conversation, "Hi there")
    assert reply["answer"]["content"] == "Hello! How can I help?"
    assert reply["answer"]["citations"] == []
    assert "PASSAGES" not in chat_server.requests[-1]["messages"][0]["content"]


async def test_feedback_on_answers(client: AsyncClient, handbook_kb: KnowledgeMaker) -> None:
    owner, _, conversation = await _setup(client, handbook_kb)
    reply = await ask(client, owner, conversation, SATURDAY)
    url = f"/api/v1/messages/{reply['answer']['id']}/feedback"
    first = await client.put(url, json={"rating": "up"}, headers=owner.headers())
    assert first.status_code == 200, first.text
    second = await client.put(
        url, json={"rating": "down", "comment": "Too long"}, headers=owner.headers()
    )
    assert second.json()["rating"] == "down"
    listed = await client.get(
        f"/api/v1/conversations/{conversation}/messages", headers=owner.headers()
    )
    items = listed.json()["items"]
    assert [m["role"] for m in items] == ["assistant", "user"]
    assert items[0]["feedback"]["rating"] == "down"
    assert items[0]["feedback"]["comment"] == "Too long"
    on_question = await client.put(
        f"/api/v1/messages/{reply['question']['id']}/feedback",
        json={"rating": "up"},
        headers=owner.headers(),
    )
    assert_error(on_question, 422, "validation_error")
    bad = await client.put(url, json={"rating": "meh"}, headers=owner.headers())
    assert_error(bad, 422, "validation_error")


async def test_other_workspaces_cannot_reach_conversations_or_assistants(
    client: AsyncClient, handbook_kb: KnowledgeMaker
) -> None:
    owner, assistant, conversation = await _setup(client, handbook_kb)
    reply = await ask(client, owner, conversation, SATURDAY)
    intruder = await make_workspace()
    for method, url, body in [
        ("POST", f"/api/v1/conversations/{conversation}/messages", {"content": "hi"}),
        ("GET", f"/api/v1/conversations/{conversation}", None),
        ("GET", f"/api/v1/conversations/{conversation}/messages", None),
        ("POST", "/api/v1/conversations", {"assistant_id": assistant["id"]}),
        ("PUT", f"/api/v1/messages/{reply['answer']['id']}/feedback", {"rating": "down"}),
        ("GET", f"/api/v1/assistants/{assistant['id']}", None),
    ]:
        response = await client.request(method, url, json=body, headers=intruder.headers())
        assert_error(response, 404, "not_found")
    listed = await client.get("/api/v1/conversations", headers=intruder.headers())
    assert listed.json()["items"] == []


async def test_oversized_and_hostile_messages_are_refused_cleanly(
    client: AsyncClient, handbook_kb: KnowledgeMaker
) -> None:
    owner, _, conversation = await _setup(client, handbook_kb)
    url = f"/api/v1/conversations/{conversation}/messages"
    for body in (
        {"content": ""},
        {"content": "x" * 8001},
        {"content": "nul \x00 byte"},
        {"content": 42},
        {"content": "hi", "stream": "sometimes"},
        {},
    ):
        response = await client.post(url, json=body, headers=owner.headers())
        assert_error(response, 422, "validation_error")
    malformed = await client.post(
        url,
        content=b'{"content": ',
        headers={**owner.headers(), "Content-Type": "application/json"},
    )
    assert_error(malformed, 400, "malformed_json")
    listed = await client.get(
        f"/api/v1/conversations/{conversation}/messages", headers=owner.headers()
    )
    assert listed.json()["items"] == []  # nothing half-saved
