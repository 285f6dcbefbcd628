"""Parley's chat-model layer: OpenAI-compatible providers, the offline extractive generator,
the circuit breaker that guards providers, and token counting."""

from backend.llm.breaker import CircuitBreaker, breaker_for, reset_breakers
from backend.llm.extractive import ExtractiveProvider
from backend.llm.openai_provider import OpenAIChatProvider
from backend.llm.tokens import count_message_tokens, count_tokens, truncate_to_tokens
from backend.llm.types import (
    ChatMessage,
    ChatProvider,
    ChatRequest,
    ContextPassage,
    Finished,
    ProviderError,
    ProviderUnavailable,
    StreamEvent,
    Streaming,
    TextDelta,
)

__all__ = [
    "ChatMessage",
    "ChatProvider",
    "ChatRequest",
    "CircuitBreaker",
    "ContextPassage",
    "ExtractiveProvider",
    "Finished",
    "OpenAIChatProvider",
    "ProviderError",
    "ProviderUnavailable",
    "StreamEvent",
    "Streaming",
    "TextDelta",
    "breaker_for",
    "count_message_tokens",
    "count_tokens",
    "reset_breakers",
    "truncate_to_tokens",
]
