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
_providers: dict[tuple[object, ...], OpenAIChatProvider] = {}


def chat_provider_for(provider: ModelProvider, endpoint: OpenAIEndpoint | None) -> ChatProvider:
    """The provider of a reply; shared, so the caller does not close it. Raises ProviderError
    when the assistant asks for OpenAI but no key is configured anywhere."""
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
    return _shared_provider(base_url, key)


def _shared_provider(base_url: str | None, key: str) -> OpenAIChatProvider:
    """One provider (with its HTTP client and kept-alive connections) per server, key and
    settings, for the life of the process: building an SDK client costs about 20 ms of CPU
    (it loads the CA bundle), too much to pay on every reply."""
    settings = get_settings()
    identity = (
        base_url,
        hashlib.sha256(key.encode()).hexdigest(),
        settings.llm_timeout_seconds,
        settings.llm_max_retries,
        settings.llm_retry_base_delay_seconds,
        settings.llm_retry_max_delay_seconds,
        settings.llm_breaker_failures,
        settings.llm_breaker_reset_seconds,
    )
    provider = _providers.get(identity)
    if provider is None:
        provider = _providers[identity] = OpenAIChatProvider(
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
    return provider


async def close_chat_providers() -> None:
    while _providers:
        _, provider = _providers.popitem()
        await provider.aclose()


def _breaker_key(base_url: str | None, key: str) -> str:
    """One breaker per server and key: a workspace whose own key is rate-limited must not
    open the circuit for everyone else on the same server."""
    return f"{base_url or DEFAULT_BREAKER_KEY}#{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def chat_model_for(model: str | None) -> str:
    return model or get_settings().openai_chat_model
