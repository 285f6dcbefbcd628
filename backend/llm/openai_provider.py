"""Replies from OpenAI or any server that speaks the OpenAI chat completions API, streamed.

Goes through the official `openai` SDK: `POST {base_url}/chat/completions` with `stream: true`
and `stream_options: {"include_usage": true}`, so the server reports the tokens it counted. The
SDK's own retries are off: Parley retries here, and only while nothing has been shown to the
user yet. Failures before the first text delta that may pass (429, 5xx, timeouts, broken
connections) are retried with exponential backoff and full jitter, honouring the server's
Retry-After; a failure after it is raised with `started=True`, since repeating the call would
show the user a second, different answer. Every attempt asks the provider's circuit breaker
first, and tells it how the attempt went.

`timeout` bounds connecting and each wait for data, not the whole reply: a long answer that
keeps streaming is not cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import math
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from typing import Any

import httpx2
import openai
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)

from backend.llm.breaker import CircuitBreaker, endpoint_name
from backend.llm.sent import request_sent, until_released
from backend.llm.transport import AiohttpClient
from backend.llm.types import (
    ChatMessage,
    ChatRequest,
    Finished,
    ProviderError,
    StreamEvent,
    Streaming,
    TextDelta,
)

MAX_RETRY_AFTER = 60.0  # seconds; a server asking for longer is not waited for beyond this
NO_KEY = "no-key"  # sent when the server needs no key: the SDK insists on one
_RETRYABLE_CLIENT_STATUSES = frozenset({408, 409, 429})
# How long the rest of a response after `[DONE]` is waited for (see _read_to_the_end).
DRAIN_SECONDS = 0.5
STREAMING = Streaming()


class OpenAIChatProvider:
    """An OpenAI-compatible chat completions endpoint.

    `model` is the model of the latest request: the model is chosen per request.
    """

    name: str = "openai"
    is_llm: bool = True

    def __init__(
        self,
        base_url: str | None,
        api_key: str,
        *,
        timeout: float,
        breaker: CircuitBreaker,
        max_retries: int,
        retry_base_delay: float,
        retry_max_delay: float,
    ) -> None:
        self.model = ""
        self.base_url = base_url
        self._where = endpoint_name(base_url)
        self._api_key = api_key
        self._timeout = timeout
        self._breaker = breaker
        self._max_retries = max(0, max_retries)
        self._retry_base_delay = retry_base_delay
        self._retry_max_delay = retry_max_delay
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or NO_KEY,
            max_retries=0,
            timeout=timeout,
            http_client=AiohttpClient(event_hooks={"request": [_traced]}),
        )
        # The endpoint's absolute URL: the SDK takes it as it is, where a path relative to its
        # base URL is parsed and merged on every call (about 60 us).
        self._completions_url = str(self._client.base_url.join("chat/completions"))

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        self.model = request.model
        attempt = 0
        while True:
            self._breaker.before_call()
            try:
                async with contextlib.aclosing(self._attempt_with_breaker(request)) as events:
                    async for event in events:
                        yield event
                return
            except ProviderError as error:
                if error.started or not error.retryable or attempt >= self._max_retries:
                    raise
                delay = retry_delay(
                    attempt,
                    base=self._retry_base_delay,
                    cap=self._retry_max_delay,
                    retry_after=error.retry_after,
                )
            attempt += 1
            await asyncio.sleep(delay)

    async def _attempt_with_breaker(
        self, request: ChatRequest
    ) -> AsyncGenerator[StreamEvent, None]:
        """One call, whose outcome is told to the breaker however the call ends."""
        settled = False
        try:
            async with contextlib.aclosing(self._attempt(request)) as events:
                async for event in events:
                    if isinstance(event, Finished):
                        # Before handing it over: the consumer may stop at the last event.
                        self._breaker.record_success()
                        settled = True
                    yield event
        except ProviderError as error:
            settled = True
            if error.retryable:
                self._breaker.record_failure()
            else:
                # The server answered (a refused key, a bad request): it is up.
                self._breaker.release()
            raise
        finally:
            if not settled:  # abandoned or cancelled mid-way: no verdict on the provider
                self._breaker.release()

    async def _attempt(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        started = False
        finish_reason: str | None = None
        usage: dict[str, Any] | None = None
        try:
            # The SDK makes the call (auth, base URL, timeouts, HTTP errors) through its
            # documented `post` for a raw response; the chunks are read as JSON. Its typed
            # `chat.completions.create` spent about 1 ms per reply transforming the parameters
            # by their annotations, and its pydantic model of each chunk about 0.6 ms of CPU
            # per chunk (docs/performance.md), more than the rest of the relay together.
            raw = await self._client.post(
                self._completions_url,
                cast_to=httpx2.Response,
                body={
                    "model": request.model,
                    "messages": [_wire_message(message) for message in request.messages],
                    "temperature": request.temperature,
                    "max_tokens": request.max_tokens,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                },
                stream=True,
                stream_cls=None,
            )
            try:
                yield STREAMING
                lines = raw.aiter_lines()
                async for data in sse_data(lines):
                    if data.startswith("[DONE]"):
                        await _read_to_the_end(lines)
                        break
                    chunk = _chunk(data)
                    if "error" in chunk:
                        raise self._stream_error(chunk["error"], started=started)
                    usage = chunk.get("usage") or usage
                    for text, finish in _choice_zero(chunk):
                        if text:
                            started = True
                            yield TextDelta(text)
                        finish_reason = finish or finish_reason
            finally:
                await raw.aclose()
        except openai.APIError as exc:
            raise self._explain(exc, started=started) from exc
        except httpx2.TransportError as exc:  # the connection broke while the body streamed
            raise self._explain(
                openai.APIConnectionError(request=exc.request), started=started
            ) from exc
        except ValueError as exc:  # a chunk that is not JSON, or not a chat completion chunk
            raise ProviderError(
                f"The chat model server at {self._where} sent a stream that could not be read.",
                retryable=True,
                started=started,
            ) from exc
        if finish_reason is None:
            raise ProviderError(
                f"The chat model server at {self._where} ended its answer before finishing it.",
                retryable=True,
                started=started,
            )
        yield Finished(
            prompt_tokens=_token_count(usage, "prompt_tokens"),
            completion_tokens=_token_count(usage, "completion_tokens"),
            finish_reason=finish_reason,
        )

    def _stream_error(self, error: object, *, started: bool) -> ProviderError:
        """An error the server sent as an event of the stream, after the HTTP 200."""
        message = error.get("message") if isinstance(error, dict) else None
        detail = message if isinstance(message, str) and message else str(error)
        return ProviderError(
            f"The chat model server at {self._where} reported an error mid-answer: "
            f"{self._excerpt(detail)}",
            retryable=True,
            started=started,
        )

    def _explain(self, exc: openai.APIError, *, started: bool) -> ProviderError:
        where = self._where
        if isinstance(exc, openai.APITimeoutError):
            return ProviderError(
                f"The chat model server at {where} did not answer within {self._timeout:g} s.",
                retryable=True,
                started=started,
            )
        if isinstance(exc, openai.APIConnectionError):
            broke = "broke off the answer" if started else "could not be reached"
            return ProviderError(
                f"The chat model server at {where} {broke}.", retryable=True, started=started
            )
        if isinstance(exc, openai.APIStatusError):
            return self._explain_status(exc, started=started)
        return ProviderError(
            f"The chat model server at {where} reported an error mid-answer: "
            f"{self._excerpt(_server_message(exc))}",
            retryable=True,
            started=started,
        )

    def _explain_status(self, exc: openai.APIStatusError, *, started: bool) -> ProviderError:
        where, status = self._where, exc.status_code
        detail = self._excerpt(_server_message(exc))
        if status == 401:
            return ProviderError(
                f"The chat model server at {where} refused the API key (HTTP 401); check the "
                "key in the assistant's model settings.",
                retryable=False,
                started=started,
                status=status,
            )
        if status == 404:
            reason = f"does not know the model {self.model!r}, or the base URL is wrong"
            retryable = False
        elif status == 429 and exc.code == "insufficient_quota":
            reason = "says the account is out of quota"
            retryable = False
        elif status == 429:
            reason = "is rate limiting requests"
            retryable = True
        elif status >= 500 or status in _RETRYABLE_CLIENT_STATUSES:
            reason = "failed"
            retryable = True
        else:
            reason = "refused the request"
            retryable = False
        return ProviderError(
            f"The chat model server at {where} {reason} (HTTP {status}): {detail}",
            retryable=retryable,
            started=started,
            status=status,
            retry_after=parse_retry_after(exc.response.headers) if retryable else None,
        )

    def _excerpt(self, text: str, limit: int = 200) -> str:
        # Some servers quote the key they refused; the reason is logged, the key never is.
        text = " ".join(text.split())
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text if len(text) <= limit else text[: limit - 1] + "…"

    async def aclose(self) -> None:
        await self._client.close()


async def _traced(request: httpx2.Request) -> None:
    """A request hook, run once the request is built and before it is sent: it waits for the
    caller's go-ahead (backend.llm.sent), then has the HTTP core report the request's progress
    to `_trace`, whichever transport sends it (a proxy from the environment included)."""
    await until_released()
    request.extensions = {**request.extensions, "trace": _trace}


async def _trace(event: str, info: Mapping[str, Any]) -> None:
    # The body is written to the connection: tell the caller (backend.llm.sent).
    if event.endswith("send_request_body.complete"):
        request_sent()


def _server_message(exc: openai.APIError) -> str:
    """The message of OpenAI's error body, rather than the SDK's dump of the whole body."""
    if isinstance(exc.body, dict):
        message = exc.body.get("message")
        if isinstance(message, str) and message:
            return message
    return exc.message


async def _read_to_the_end(lines: AsyncIterator[str]) -> None:
    """Read what follows `[DONE]` (the end of the chunked body), so the connection goes back to
    the pool: closing a response with unread bytes closes its connection, and the next reply
    would wait for a new TCP and TLS handshake. A server that keeps the stream open after
    `[DONE]` is given up on after DRAIN_SECONDS; its connection is then closed."""
    with contextlib.suppress(TimeoutError, httpx2.HTTPError):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in lines:
                pass


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The data of each server-sent event, from the stream's lines (the event stream format of
    the HTML standard: `data:` lines joined by newlines, comments and other fields skipped)."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _chunk(data: str) -> dict[str, Any]:
    chunk = json.loads(data)
    if not isinstance(chunk, dict):
        raise ValueError("a chunk must be a JSON object")
    return chunk


def _choice_zero(chunk: dict[str, Any]) -> Iterator[tuple[str | None, str | None]]:
    """(text, finish reason) of the first choice's delta in a chat.completion.chunk; raises
    ValueError for a chunk of another shape."""
    choices = chunk.get("choices") or []
    if not isinstance(choices, list):
        raise ValueError("choices must be a list")
    for choice in choices:
        if not isinstance(choice, dict):
            raise ValueError("a choice must be an object")
        if choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise ValueError("a delta must be an object")
        text = delta.get("content") or delta.get("refusal")
        finish = choice.get("finish_reason")
        if not isinstance(text, str | None) or not isinstance(finish, str | None):
            raise ValueError("content and finish_reason must be strings")
        yield text, finish


def _token_count(usage: dict[str, Any] | None, key: str) -> int | None:
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _wire_message(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return ChatCompletionSystemMessageParam(role="system", content=message.content)
    if message.role == "assistant":
        return ChatCompletionAssistantMessageParam(role="assistant", content=message.content)
    return ChatCompletionUserMessageParam(role="user", content=message.content)


def retry_delay(attempt: int, *, base: float, cap: float, retry_after: float | None) -> float:
    """Seconds to wait before retrying after failed attempt number `attempt` (from 0).

    The server's Retry-After when it gave one, else full jitter: a random time up to
    `base * 2**attempt`, so clients that failed together do not retry together. Both are capped.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    ceiling = min(cap, base * 2 ** min(attempt, 32))
    return random.uniform(0.0, ceiling)  # noqa: S311 - jitter, not a secret


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait the server asked for, in seconds, capped at MAX_RETRY_AFTER.

    OpenAI sends `retry-after-ms` and `retry-after` in seconds; HTTP also allows a date.
    """
    seconds: float | None = None
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            seconds = _seconds_until(value)
        if seconds is not None and math.isfinite(seconds):
            break
        seconds = None
    if seconds is None:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _seconds_until(http_date: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()
