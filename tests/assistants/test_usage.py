"""The usage summary: per day, per assistant and per model, and this month against the plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from httpx import AsyncClient

from backend.config import get_settings
from tests.assistants.fixtures import KnowledgeMaker
from tests.factories.assistants import ask, create_assistant, open_conversation
from tests.factories.responses import assert_error
from tests.factories.tenancy import make_workspace
from tests.standins.openai_chat import ChatStandIn


async def test_summary_adds_up_the_ledger(
    client: AsyncClient, handbook_kb: KnowledgeMaker, chat_server: ChatStandIn
) -> None:
    owner = await make_workspace()
    kb_id = await handbook_kb(owner)
    llm = await create_assistant(client, owner, knowledge_base_ids=[kb_id])
    offline = await create_assistant(client, owner, knowledge_base_ids=[kb_id], provider="offline")
    answers = []
    for assistant, times in ((llm, 2), (offline, 1)):
        conversation = await open_conversation(client, owner, assistant["id"])
        for _ in range(times):
            reply = await ask(client, owner, conversation, "When does the shop open?")
            answers.append(reply["answer"])

    response = await client.get("/api/v1/usage", headers=owner.headers())
    assert response.status_code == 200, response.text
    summary = response.json()
    today = datetime.now(UTC).date().isoformat()
    (day,) = summary["by_day"]
    assert day["key"] == today
    assert day["replies"] == 3
    assert day["embedding_tokens"] > 0  # the handbook's ingestion
    assert day["completion_tokens"] == sum(a["completion_tokens"] for a in answers)
    by_assistant = {b["key"]: b["replies"] for b in summary["by_assistant"]}
    assert by_assistant == {llm["id"]: 2, offline["id"]: 1, "none": 0}
    by_model = {b["key"]: b for b in summary["by_model"]}
    chat_model = get_settings().openai_chat_model
    assert by_model[chat_model]["replies"] == 2
    assert by_model[chat_model]["cost_micros"] > 0
    assert by_model["parley-extractive"]["cost_micros"] == 0
    assert by_model["local:all-MiniLM-L6-v2"]["embedding_tokens"] > 0
    assert sum(b["cost_micros"] for b in summary["by_day"]) == by_model[chat_model]["cost_micros"]
    period = summary["period"]
    assert (period["plan"], period["replies_used"]) == ("free", 3)
    assert period["replies_limit"] == get_settings().plans["free"].monthly_replies
    assert period["tokens_used"] == sum(
        a["prompt_tokens"] + a["completion_tokens"] for a in answers if a["model"] == chat_model
    )


async def test_summary_range_is_checked(client: AsyncClient) -> None:
    owner = await make_workspace()
    today = datetime.now(UTC).date()
    backwards = await client.get(
        f"/api/v1/usage?since={today}&until={today - timedelta(days=1)}", headers=owner.headers()
    )
    assert_error(backwards, 422, "validation_error")
    too_long = await client.get(
        f"/api/v1/usage?since={today - timedelta(days=400)}", headers=owner.headers()
    )
    assert_error(too_long, 422, "validation_error")
    not_a_date = await client.get("/api/v1/usage?since=yesterday", headers=owner.headers())
    assert_error(not_a_date, 422, "validation_error")
    empty = await client.get("/api/v1/usage", headers=owner.headers())
    assert empty.json()["by_day"] == []
