"""The provider tells whoever started a call once its request is written to the model server,
so a reply can commit after the model has the question instead of while the request is built."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from backend.llm import StreamEvent, TextDelta
from backend.llm.sent import notifying, request_sent
from tests.llm.conftest import ProviderFactory
from tests.llm.helpers import REPLY, chat_request
from tests.standins.openai_chat import ChatStandIn


async def _read_noting_sends(
    provider_stream: AsyncIterator[StreamEvent], notices: list[float]
) -> list[float]:
    """Read a stream in a context that notes each notice's time; returns the deltas' times."""
    loop = asyncio.get_running_loop()
    deltas: list[float] = []

    async def read() -> None:
        async for event in provider_stream:
            if isinstance(event, TextDelta):
                deltas.append(loop.time())

    await loop.create_task(read(), context=notifying(lambda: notices.append(loop.time())))
    return deltas


async def test_the_provider_tells_its_caller_when_the_request_is_written(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.first_token_delay = 0.3
    notices: list[float] = []

    deltas = await _read_noting_sends(make_provider().stream(chat_request()), notices)

    assert len(notices) == 1
    assert chat_server.request_count == 1
    # Told when the request left, not when the answer began: the server waited 0.3 s before it.
    assert deltas
    assert deltas[0] - notices[0] >= 0.25


async def test_each_attempt_tells_again(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.fail_with(503)
    notices: list[float] = []

    deltas = await _read_noting_sends(make_provider().stream(chat_request()), notices)

    assert chat_server.request_count == 2
    assert len(notices) == 2
    assert deltas
    assert notices[1] <= deltas[0]


async def test_a_call_outside_a_notifying_context_tells_nobody(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    request_sent()  # no caller asked: nothing happens
    text = ""
    async for event in make_provider().stream(chat_request()):
        if isinstance(event, TextDelta):
            text += event.text
    assert text == REPLY
