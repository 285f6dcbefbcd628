"""The chat stand-in speaks OpenAI's wire format: checked with the official SDK and raw HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionUserMessageParam

from backend.llm import ChatMessage, count_message_tokens, count_tokens
from tests.standins.openai_chat import ChatStandIn, split_reply

SYSTEM_TEXT = "You are Parley's test assistant."
USER_TEXT = "What does the stand-in say back to this question?"
USER_MESSAGE: ChatCompletionUserMessageParam = {"role": "user", "content": USER_TEXT}
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": SYSTEM_TEXT},
    USER_MESSAGE,
]


@pytest.fixture
async def server() -> AsyncIterator[ChatStandIn]:
    async with ChatStandIn(delta_count=3) as server:
        yield server


@pytest.fixture
async def client(server: ChatStandIn) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    yield client
    await client.close()


async def raw_events(server: ChatStandIn, body: dict[str, Any]) -> list[str]:
    """The `data:` payloads of a streamed answer, as sent."""
    headers = {"Authorization": f"Bearer {server.api_key}"}
    url = f"{server.base_url}/chat/completions"
    async with (
        httpx.AsyncClient() as http,
        http.stream("POST", url, json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line async for line in response.aiter_lines()]
    assert all(line.startswith("data: ") for line in lines if line)
    return [line.removeprefix("data: ") for line in lines if line]


async def test_the_sdk_gets_a_whole_completion_with_usage(
    server: ChatStandIn, client: openai.AsyncOpenAI
) -> None:
    completion = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
    )

    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    [choice] = completion.choices
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    text = choice.message.content
    assert text is not None
    assert "What does the stand-in say back" in text  # the default reply quotes the question
    assert completion.usage is not None
    expected_prompt = count_message_tokens(
        [ChatMessage("system", SYSTEM_TEXT), ChatMessage("user", USER_TEXT)]
    )
    assert completion.usage.prompt_tokens == expected_prompt
    assert completion.usage.completion_tokens == count_tokens(text)
    assert completion.usage.total_tokens == expected_prompt + count_tokens(text)
    assert server.request_count == 1
    assert server.requests[0]["messages"] == MESSAGES


async def test_a_wrong_key_gets_openais_401(server: ChatStandIn) -> None:
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0)
    try:
        with pytest.raises(openai.AuthenticationError) as refused:
            await client.chat.completions.create(model="gpt-4o-mini", messages=[USER_MESSAGE])
    finally:
        await client.close()

    assert refused.value.code == "invalid_api_key"
    assert refused.value.type == "invalid_request_error"
    assert isinstance(refused.value.body, dict)
    assert set(refused.value.body) == {"message", "type", "param", "code"}


async def test_an_injected_error_has_openais_body_and_retry_after(
    server: ChatStandIn, client: openai.AsyncOpenAI
) -> None:
    server.fail_with(429, "Slow down.", code="rate_limit_exceeded", retry_after=2)

    with pytest.raises(openai.RateLimitError) as limited:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[USER_MESSAGE])

    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.message.endswith("Slow down.")
    assert limited.value.response.headers["retry-after"] == "2"
    # The next request is served again.
    await client.chat.completions.create(model="gpt-4o-mini", messages=[USER_MESSAGE])
    assert server.request_count == 2


async def test_the_stream_is_openais_chunk_sequence(server: ChatStandIn) -> None:
    server.reply = "One two three four five six."
    body = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    events = await raw_events(server, body)

    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    contents = [chunk["choices"][0]["delta"]["content"] for chunk in chunks[1:-2]]
    assert contents == split_reply("One two three four five six.", 3)
    assert "".join(contents) == "One two three four five six."
    finish = chunks[-2]["choices"][0]
    assert (finish["delta"], finish["finish_reason"]) == ({}, "stop")
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == count_tokens("One two three four five six.")


async def test_without_include_usage_no_usage_chunk_is_sent(server: ChatStandIn) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True}

    events = await raw_events(server, body)

    chunks = [json.loads(event) for event in events[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(chunk["usage"] is None for chunk in chunks)


async def test_the_reply_can_be_a_function_of_the_request(
    server: ChatStandIn, client: openai.AsyncOpenAI
) -> None:
    server.reply = lambda body: f"{len(body['messages'])} messages, model {body['model']}."

    completion = await client.chat.completions.create(model="m-1", messages=[USER_MESSAGE])

    assert completion.choices[0].message.content == "1 messages, model m-1."


async def test_a_bad_request_body_is_refused_like_openai(server: ChatStandIn) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{server.base_url}/chat/completions",
            json={"model": "m", "messages": []},
            headers=headers,
        )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


async def test_stopping_does_not_wait_for_hanging_or_slow_requests() -> None:
    server = ChatStandIn(first_token_delay=60.0)
    await server.start()
    server.hang()
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    hanging = asyncio.create_task(
        client.chat.completions.create(model="m", messages=[USER_MESSAGE])
    )
    slow = asyncio.create_task(client.chat.completions.create(model="m", messages=[USER_MESSAGE]))
    while server.request_count < 2:
        await asyncio.sleep(0.01)
    started = time.monotonic()

    await server.stop()

    assert time.monotonic() - started < 3.0
    for task in (hanging, slow):
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await client.close()
