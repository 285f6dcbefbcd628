"""Which chat provider answers for an assistant: OpenAI (or a compatible server) or offline.

The workspace's own endpoint and key (its provider settings) come first, then the platform's.
`auto` means OpenAI when either has a key, else the offline answer quoted from the sources.
"""

from __future__ import annotations

import hashlib

from backend.config import get_settings
from backend.knowledge.providers import OpenAIEndpoint
from backend.llm import ChatProvider, ExtractiveProvider, OpenAIChatProvider, ProviderError
from backend.llm.breaker import breaker_for
from backend.models import ModelProvider

DEFAULT_BREAKER_KEY = "https://api.openai.com/v1"


def chat_provider_for(provider: ModelProvider, endpoint: OpenAIEndpoint | None) -> ChatProvider:
    """A provider for one reply (the caller closes it). Raises ProviderError when the assistant
    asks for OpenAI but no key is configured anywhere."""
    if provider is ModelProvider.offline:
        return ExtractiveProvider()
    settings = get_settings()
    platform_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    if endpoint is not None and (endpoint.api_key or endpoint.base_url):
        base_url, key = endpoint.base_url, endpoint.api_key or platform_key
    else:
        base_url, key = settings.openai_base_url, platform_key
    if key is None:
        if provider is ModelProvider.auto:
            return ExtractiveProvider()
        raise ProviderError(
            "The assistant is set to use OpenAI, but no API key is configured for it.",
            retryable=False,
        )
    return OpenAIChatProvider(
        base_url,
        key,
        timeout=settings.llm_timeout_seconds,
        breaker=breaker_for(
            _breaker_key(base_url, key),
            settings.llm_breaker_failures,
            settings.llm_breaker_reset_seconds,
        ),
        max_retries=settings.llm_max_retries,
        retry_base_delay=settings.llm_retry_base_delay_seconds,
        retry_max_delay=settings.llm_retry_max_delay_seconds,
    )


def _breaker_key(base_url: str | None, key: str) -> str:
    """One breaker per server and key: a workspace whose own key is rate-limited must not
    open the circuit for everyone else on the same server."""
    return f"{base_url or DEFAULT_BREAKER_KEY}#{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def chat_model_for(model: str | None) -> str:
    return model or get_settings().openai_chat_model
