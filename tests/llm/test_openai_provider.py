"""The OpenAI-compatible provider, through the official SDK, against the chat stand-in."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator

import pytest

from backend.llm import (
    CircuitBreaker,
    OpenAIChatProvider,
    TextDelta,
    count_message_tokens,
    count_tokens,
)
from backend.llm.openai_provider import (
    MAX_RETRY_AFTER,
    parse_retry_after,
    retry_delay,
    sse_data,
)
from tests.llm.conftest import ProviderFactory
from tests.llm.helpers import REPLY, chat_request, read_stream
from tests.standins.openai_chat import ChatStandIn, split_reply


async def test_deltas_arrive_in_order_and_finish_carries_the_servers_usage(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.delta_count = 5
    request = chat_request()
    provider = make_provider()

    outcome = await read_stream(provider, request)

    assert outcome.error is None
    assert outcome.accepted == 1  # `Streaming` once, before the text
    assert outcome.deltas == split_reply(REPLY, 5)
    assert len(outcome.deltas) > 1
    assert outcome.text == REPLY
    [finished] = outcome.finished
    assert finished.finish_reason == "stop"
    assert finished.prompt_tokens == count_message_tokens(request.messages)
    assert finished.completion_tokens == count_tokens(REPLY)
    assert provider.model == "gpt-4o-mini"
    [sent] = chat_server.requests
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == "gpt-4o-mini"
    assert sent["temperature"] == 0.2
    assert sent["max_tokens"] == 300
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["messages"][1]["content"] == request.question


async def test_a_reply_cut_by_max_tokens_finishes_with_length(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    outcome = await read_stream(make_provider(), chat_request(max_tokens=4))

    assert outcome.error is None
    [finished] = outcome.finished
    assert finished.finish_reason == "length"
    assert finished.completion_tokens == 4
    assert count_tokens(outcome.text) <= 4


async def test_replies_in_a_row_reuse_one_connection(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    # A new connection per reply would cost a TCP (and, to a real provider, a TLS) handshake
    # before every first token.
    provider = make_provider()

    outcomes = [await read_stream(provider, chat_request()) for _ in range(3)]

    assert [o.text for o in outcomes] == [REPLY] * 3
    assert len(chat_server.peers) == 3
    assert len(set(chat_server.peers)) == 1


async def test_a_server_that_keeps_the_stream_open_after_done_does_not_hold_the_reply(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.linger_after_done = 30.0
    started = time.monotonic()

    outcome = await read_stream(make_provider(), chat_request())

    assert outcome.error is None
    assert outcome.text == REPLY
    assert [f.finish_reason for f in outcome.finished] == ["stop"]
    assert time.monotonic() - started < 5.0


async def test_the_first_token_delay_is_observed(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.first_token_delay = 0.3
    chat_server.token_delay = 0.02
    started = time.monotonic()
    first_delta_at: float | None = None

    async for event in make_provider().stream(chat_request()):
        if isinstance(event, TextDelta) and first_delta_at is None:
            first_delta_at = time.monotonic() - started
    total = time.monotonic() - started

    assert first_delta_at is not None
    assert 0.25 <= first_delta_at < 3.0
    assert total >= first_delta_at + 0.02 * (chat_server.delta_count - 1) * 0.8


async def test_a_rate_limit_is_retried_after_the_servers_retry_after(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.fail_with(429, "Rate limit reached.", code="rate_limit_exceeded", retry_after=0.3)
    provider = make_provider(retry_base_delay=0.001, retry_max_delay=2.0)
    started = time.monotonic()

    outcome = await read_stream(provider, chat_request())

    assert outcome.error is None
    assert outcome.text == REPLY  # once: the failed attempt showed nothing
    assert len(outcome.finished) == 1
    assert chat_server.request_count == 2
    assert time.monotonic() - started >= 0.25


async def test_server_errors_are_retried_up_to_max_retries(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.fail_with(500, times=2)

    outcome = await read_stream(make_provider(max_retries=2), chat_request())

    assert outcome.error is None
    assert outcome.text == REPLY
    assert chat_server.request_count == 3


async def test_server_errors_beyond_max_retries_raise_a_retryable_error(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.fail_with(500, times=2)

    outcome = await read_stream(make_provider(max_retries=1), chat_request())

    error = outcome.error
    assert error is not None
    assert (error.retryable, error.started, error.status) == (True, False, 500)
    assert "HTTP 500" in error.reason
    assert outcome.deltas == []
    assert outcome.finished == []
    assert chat_server.request_count == 2


async def test_a_bad_request_is_not_retried(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.fail_with(400, "Invalid 'max_tokens': too large.", code="invalid_value")

    outcome = await read_stream(make_provider(max_retries=3), chat_request())

    error = outcome.error
    assert error is not None
    assert (error.retryable, error.started, error.status) == (False, False, 400)
    assert "too large" in error.reason
    assert chat_server.request_count == 1


async def test_a_refused_api_key_is_named_and_never_logged(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    wrong_key = "sk-wrong-0123456789"

    outcome = await read_stream(make_provider(api_key=wrong_key, max_retries=3), chat_request())

    error = outcome.error
    assert error is not None
    assert (error.retryable, error.status) == (False, 401)
    assert "refused the API key" in error.reason
    assert wrong_key not in error.reason
    assert chat_server.request_count == 1


async def test_an_exhausted_quota_is_not_retried(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.fail_with(429, "You exceeded your current quota.", code="insufficient_quota")

    outcome = await read_stream(make_provider(max_retries=3), chat_request())

    assert outcome.error is not None
    assert (outcome.error.retryable, outcome.error.status) == (False, 429)
    assert "out of quota" in outcome.error.reason
    assert chat_server.request_count == 1


async def test_a_hanging_server_times_out_and_is_retried(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.hang(times=2)
    started = time.monotonic()

    outcome = await read_stream(make_provider(timeout=0.3, max_retries=1), chat_request())

    error = outcome.error
    assert error is not None
    assert (error.retryable, error.started, error.status) == (True, False, None)
    assert "did not answer within 0.3 s" in error.reason
    assert chat_server.request_count == 2
    assert 0.5 <= time.monotonic() - started < 5.0


async def test_a_timeout_then_success_delivers_the_reply(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.hang()

    outcome = await read_stream(make_provider(timeout=0.3, max_retries=1), chat_request())

    assert outcome.error is None
    assert outcome.text == REPLY
    assert chat_server.request_count == 2


async def test_a_malformed_stream_raises_a_provider_error(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.malformed()

    outcome = await read_stream(make_provider(max_retries=0), chat_request())

    error = outcome.error
    assert error is not None
    assert (error.retryable, error.started) == (True, False)
    assert "could not be read" in error.reason
    assert chat_server.request_count == 1


async def test_a_malformed_chunk_after_text_is_not_retried(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.malformed(after_deltas=2)

    outcome = await read_stream(make_provider(max_retries=3), chat_request())

    assert outcome.deltas == split_reply(REPLY, chat_server.delta_count)[:2]
    assert outcome.error is not None
    assert (outcome.error.retryable, outcome.error.started) == (True, True)
    assert chat_server.request_count == 1


async def test_an_error_event_before_any_text_is_retried_and_its_message_kept(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.error_event("The model is overloaded.", after_deltas=0)

    first = await read_stream(make_provider(max_retries=0), chat_request())
    assert first.deltas == []
    assert first.error is not None
    assert (first.error.retryable, first.error.started) == (True, False)
    assert "reported an error mid-answer: The model is overloaded." in first.error.reason

    chat_server.error_event(after_deltas=0)
    retried = await read_stream(make_provider(max_retries=1), chat_request())
    assert retried.error is None
    assert "".join(retried.deltas) == REPLY
    assert retried.accepted == 2  # each accepted attempt began a stream
    assert chat_server.request_count == 3


async def test_an_error_event_after_text_keeps_the_text_and_is_not_retried(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.error_event(after_deltas=2)

    outcome = await read_stream(make_provider(max_retries=3), chat_request())

    assert outcome.deltas == split_reply(REPLY, chat_server.delta_count)[:2]
    assert outcome.error is not None
    assert (outcome.error.retryable, outcome.error.started) == (True, True)
    assert chat_server.request_count == 1


async def test_a_chunk_of_the_wrong_shape_cannot_be_read(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.wrong_shape(after_deltas=1)

    outcome = await read_stream(make_provider(max_retries=3), chat_request())

    assert outcome.deltas == split_reply(REPLY, chat_server.delta_count)[:1]
    assert outcome.error is not None
    assert (outcome.error.retryable, outcome.error.started) == (True, True)
    assert "could not be read" in outcome.error.reason


async def test_a_stream_cut_off_midway_keeps_its_text_and_is_not_retried(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.cut_off(after_deltas=2)

    outcome = await read_stream(make_provider(max_retries=3), chat_request())

    assert outcome.deltas == split_reply(REPLY, chat_server.delta_count)[:2]
    assert outcome.finished == []
    error = outcome.error
    assert error is not None
    assert (error.retryable, error.started) == (True, True)
    assert "broke off" in error.reason
    assert chat_server.request_count == 1


async def test_a_stream_that_ends_without_finishing_is_an_error(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.unfinished(after_deltas=1)

    outcome = await read_stream(make_provider(max_retries=3), chat_request())

    assert outcome.deltas == split_reply(REPLY, chat_server.delta_count)[:1]
    assert outcome.finished == []
    assert outcome.error is not None
    assert outcome.error.started is True
    assert "before finishing" in outcome.error.reason
    assert chat_server.request_count == 1


async def test_an_unreachable_server_is_a_retryable_error() -> None:
    async with ChatStandIn() as server:
        base_url = server.base_url  # a port on which nothing listens any more
    provider = OpenAIChatProvider(
        base_url,
        "test-key",
        timeout=2.0,
        breaker=CircuitBreaker(5, 30.0),
        max_retries=1,
        retry_base_delay=0.001,
        retry_max_delay=0.01,
    )
    try:
        outcome = await read_stream(provider, chat_request())
    finally:
        await provider.aclose()

    assert outcome.error is not None
    assert (outcome.error.retryable, outcome.error.started) == (True, False)
    assert "could not be reached" in outcome.error.reason


@pytest.mark.parametrize("attempt", [0, 1, 2, 5])
def test_backoff_is_full_jitter_below_the_exponential_ceiling(attempt: int) -> None:
    ceiling = min(1.0, 0.1 * 2**attempt)
    delays = [retry_delay(attempt, base=0.1, cap=1.0, retry_after=None) for _ in range(200)]

    assert all(0.0 <= delay <= ceiling for delay in delays)
    assert max(delays) > ceiling / 2  # spread over the range, not pinned to one value


def test_retry_after_is_honoured_and_capped() -> None:
    assert retry_delay(0, base=0.1, cap=5.0, retry_after=2.0) == 2.0
    assert retry_delay(0, base=0.1, cap=5.0, retry_after=30.0) == 5.0
    assert retry_delay(3, base=0.1, cap=5.0, retry_after=-1.0) == 0.0


def test_retry_after_headers_are_read_in_every_form() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "86400"}) == MAX_RETRY_AFTER
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    in_ten_seconds = email.utils.formatdate(time.time() + 10, usegmt=True)
    from_date = parse_retry_after({"retry-after": in_ten_seconds})
    assert from_date is not None
    assert 8.0 <= from_date <= 10.5


async def test_server_sent_events_are_read_as_the_format_defines() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in [
            ": a comment, skipped",
            "event: message",
            'data: {"a":',
            "data:1}",
            "",
            "",
            "id: 7",
            "data: [DONE]",
        ]:
            yield line

    assert [data async for data in sse_data(lines())] == ['{"a":\n1}', "[DONE]"]
