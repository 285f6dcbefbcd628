"""Helpers of the chat-model tests: requests, a fake clock, and reading a provider's stream."""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.llm import (
    ChatMessage,
    ChatProvider,
    ChatRequest,
    ContextPassage,
    Finished,
    ProviderError,
    Streaming,
    TextDelta,
)

QUESTION = "How long do refunds take?"
REPLY = "Refunds are paid back within five working days, to the card that paid. [1]"


def chat_request(
    question: str = QUESTION,
    passages: list[ContextPassage] | None = None,
    *,
    language: str = "en",
    max_tokens: int = 300,
) -> ChatRequest:
    messages = [
        ChatMessage("system", "You answer questions about Parley from the sources."),
        ChatMessage("user", question),
    ]
    return ChatRequest(
        messages=messages,
        question=question,
        passages=passages or [],
        model="gpt-4o-mini",
        temperature=0.2,
        max_tokens=max_tokens,
        language=language,
    )


def passage(number: int, text: str, title: str | None = "Help centre") -> ContextPassage:
    return ContextPassage(number=number, text=text, title=title, url=None, heading=None)


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Outcome:
    """What a stream yielded, and the error that ended it, if any."""

    deltas: list[str] = field(default_factory=list)
    finished: list[Finished] = field(default_factory=list)
    error: ProviderError | None = None
    # How many times the server accepted the request and began streaming (retries included).
    accepted: int = 0

    @property
    def text(self) -> str:
        return "".join(self.deltas)


async def read_stream(provider: ChatProvider, request: ChatRequest) -> Outcome:
    outcome = Outcome()
    try:
        async for event in provider.stream(request):
            if isinstance(event, Streaming):
                assert not outcome.deltas, "Streaming after text"
                assert not outcome.finished, "Streaming after Finished"
                outcome.accepted += 1
            elif isinstance(event, TextDelta):
                assert not outcome.finished, "text after Finished"
                outcome.deltas.append(event.text)
            else:
                outcome.finished.append(event)
    except ProviderError as error:
        outcome.error = error
    return outcome
