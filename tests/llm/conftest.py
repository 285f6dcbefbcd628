"""Fixtures of the chat-model tests: the chat stand-in and providers pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from backend.llm import CircuitBreaker, OpenAIChatProvider, reset_breakers
from tests.llm.helpers import REPLY
from tests.standins.openai_chat import ChatStandIn

ProviderFactory = Callable[..., OpenAIChatProvider]


@pytest.fixture(autouse=True)
def fresh_breakers() -> Iterator[None]:
    reset_breakers()
    yield
    reset_breakers()


@pytest.fixture
async def chat_server() -> AsyncIterator[ChatStandIn]:
    async with ChatStandIn(reply=REPLY) as server:
        yield server


@pytest.fixture
async def make_provider(chat_server: ChatStandIn) -> AsyncIterator[ProviderFactory]:
    """Providers for the stand-in: fast retries, a generous timeout, a breaker that stays shut."""
    providers: list[OpenAIChatProvider] = []

    def make(**overrides: Any) -> OpenAIChatProvider:
        options: dict[str, Any] = {
            "timeout": 5.0,
            "breaker": CircuitBreaker(failure_threshold=100, reset_seconds=30.0),
            "max_retries": 2,
            "retry_base_delay": 0.001,
            "retry_max_delay": 0.01,
        }
        options.update(overrides)
        api_key = options.pop("api_key", chat_server.api_key)
        provider = OpenAIChatProvider(chat_server.base_url, api_key, **options)
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        await provider.aclose()
