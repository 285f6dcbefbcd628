"""What a chat provider takes, what it streams back, and the errors it raises.

A reply is a stream of `TextDelta`s ended by exactly one `Finished`. Providers raise
`ProviderError` when a call fails; the engine decides whether to fall back to the offline
extractive provider.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class ContextPassage:
    """A retrieved passage that the answer may cite."""

    number: int  # 1-based, as cited in the prompt: [1], [2]...
    text: str
    title: str | None
    url: str | None  # None for uploaded files
    heading: str | None  # heading path or page, for display


@dataclass(frozen=True)
class ChatRequest:
    messages: list[ChatMessage]  # the full prompt (system + history + user), built by the engine
    question: str  # the end user's latest message, raw
    passages: list[ContextPassage]
    model: str
    temperature: float
    max_tokens: int
    language: str = "en"  # "en", "ru"...: the offline generator's wording


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Finished:
    prompt_tokens: int | None  # as the server reported them; None if it reported nothing
    completion_tokens: int | None
    finish_reason: str | None


@dataclass(frozen=True)
class Streaming:
    """The model server has accepted the request and is streaming its answer (its response
    headers are in); no text yet. Yielded before the first delta by providers that send a
    request, again after each retry; consumers of the text skip it."""


StreamEvent = TextDelta | Finished | Streaming


class ProviderError(Exception):
    """A provider call failed.

    `retryable` says whether the same call may succeed if made again (429, 5xx, timeouts,
    connection errors) or will fail again until something is changed. `started` is True when
    some text had already been streamed before the failure, so the call cannot be repeated
    unseen. `reason` is a short sentence that is safe to log: it never contains an API key.
    `status` is the HTTP status when the server answered one; `retry_after` is how long the
    server asked to wait, in seconds, when it said so.
    """

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        started: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.started = started
        self.status = status
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """The circuit breaker for this provider is open: no call was made.

    It is retryable (the provider may be back later) and `retry_after` says when the breaker
    lets the next trial call through.
    """

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason, retryable=True, started=False, retry_after=retry_after)


@runtime_checkable
class ChatProvider(Protocol):
    """A chat model, or the offline extractive generator that stands in for one."""

    name: str  # "openai" or "extractive"
    is_llm: bool  # False for the offline extractive generator
    model: str  # the model actually used: "gpt-4o-mini", "parley-extractive"

    def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """The reply as text deltas, then exactly one `Finished`; a provider that sends a
        request yields `Streaming` once the server has accepted it."""
        ...

    async def aclose(self) -> None: ...
