"""The circuit breaker: alone with a fake clock, and guarding the provider against the stand-in."""

from __future__ import annotations

import pytest

from backend.llm import (
    CircuitBreaker,
    ProviderUnavailable,
    Streaming,
    TextDelta,
    breaker_for,
    reset_breakers,
)
from tests.llm.conftest import ProviderFactory
from tests.llm.helpers import REPLY, FakeClock, chat_request, read_stream
from tests.standins.openai_chat import ChatStandIn


def state(breaker: CircuitBreaker) -> str:
    # A plain str: mypy would otherwise narrow the property's Literal type between reads.
    return breaker.state


def open_breaker(clock: FakeClock, threshold: int = 3, reset: float = 30.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=threshold, reset_seconds=reset, clock=clock)
    for _ in range(threshold):
        breaker.before_call()
        breaker.record_failure()
    return breaker


def test_it_opens_after_the_threshold_of_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_seconds=30.0, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert state(breaker) == "closed"

    breaker.before_call()
    breaker.record_failure()

    assert state(breaker) == "open"
    clock.advance(10)
    with pytest.raises(ProviderUnavailable) as refused:
        breaker.before_call()
    assert refused.value.retry_after == pytest.approx(20.0)
    assert refused.value.retryable is True
    assert refused.value.started is False


def test_a_success_resets_the_count_of_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_seconds=30.0, clock=FakeClock())
    for _ in range(3):
        breaker.record_failure()
        breaker.record_success()

    assert state(breaker) == "closed"
    assert breaker.consecutive_failures == 0


def test_half_open_lets_exactly_one_trial_through_and_its_success_closes() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock)
    clock.advance(30)
    assert state(breaker) == "half_open"

    breaker.before_call()  # the trial
    with pytest.raises(ProviderUnavailable):
        breaker.before_call()  # anyone else, while the trial runs
    breaker.record_success()

    assert state(breaker) == "closed"
    breaker.before_call()
    breaker.before_call()


def test_a_failed_trial_opens_it_for_another_full_period() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock)
    clock.advance(31)
    breaker.before_call()

    breaker.record_failure()

    assert state(breaker) == "open"
    clock.advance(29)
    with pytest.raises(ProviderUnavailable):
        breaker.before_call()
    clock.advance(1)
    breaker.before_call()


def test_a_trial_that_proves_nothing_frees_the_way_for_another() -> None:
    clock = FakeClock()
    breaker = open_breaker(clock)
    clock.advance(30)
    breaker.before_call()

    breaker.release()

    assert state(breaker) == "half_open"
    breaker.before_call()


def test_breakers_are_shared_per_provider_in_the_process() -> None:
    first = breaker_for("https://llm.example.com/v1", 3, 30.0)
    again = breaker_for("https://llm.example.com/v1", 5, 60.0)
    other = breaker_for("https://other.example.com/v1", 3, 30.0)

    assert again is first
    assert (first.failure_threshold, first.reset_seconds) == (5, 60.0)
    assert other is not first
    reset_breakers()
    assert breaker_for("https://llm.example.com/v1", 3, 30.0) is not first


def test_the_refusal_names_the_provider_without_its_credentials() -> None:
    breaker = breaker_for("https://user:s3cret@llm.example.com:8443/v1?key=abc", 1, 30.0)
    breaker.record_failure()

    with pytest.raises(ProviderUnavailable) as refused:
        breaker.before_call()

    assert "https://llm.example.com:8443" in refused.value.reason
    assert "s3cret" not in refused.value.reason
    assert "abc" not in refused.value.reason


async def test_an_open_breaker_refuses_calls_before_they_reach_the_server(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_seconds=30.0, clock=clock)
    provider = make_provider(breaker=breaker, max_retries=0)
    chat_server.fail_with(503, times=2)
    for _ in range(2):
        failed = await read_stream(provider, chat_request())
        assert failed.error is not None
        assert failed.error.status == 503
    assert state(breaker) == "open"

    refused = await read_stream(provider, chat_request())

    assert isinstance(refused.error, ProviderUnavailable)
    assert chat_server.request_count == 2

    clock.advance(30)
    assert state(breaker) == "half_open"
    trial = await read_stream(provider, chat_request())

    assert trial.error is None
    assert trial.text == REPLY
    assert state(breaker) == "closed"
    assert chat_server.request_count == 3


async def test_retries_count_as_failures_and_stop_at_an_open_breaker(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_seconds=30.0, clock=FakeClock())
    chat_server.fail_with(500, times=5)

    outcome = await read_stream(make_provider(breaker=breaker, max_retries=5), chat_request())

    assert isinstance(outcome.error, ProviderUnavailable)
    assert chat_server.request_count == 2


async def test_client_errors_do_not_open_the_breaker(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=30.0, clock=FakeClock())
    chat_server.fail_with(400, times=2)
    provider = make_provider(breaker=breaker)

    for _ in range(2):
        outcome = await read_stream(provider, chat_request())
        assert outcome.error is not None
        assert outcome.error.status == 400

    assert state(breaker) == "closed"
    assert (await read_stream(provider, chat_request())).text == REPLY


async def test_a_timeout_counts_as_a_failure(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=30.0, clock=FakeClock())
    chat_server.hang()

    outcome = await read_stream(
        make_provider(breaker=breaker, timeout=0.2, max_retries=0), chat_request()
    )

    assert outcome.error is not None
    assert state(breaker) == "open"


async def test_an_abandoned_trial_does_not_leave_the_breaker_stuck(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    clock = FakeClock()
    breaker = open_breaker(clock, threshold=1)
    clock.advance(30)
    provider = make_provider(breaker=breaker)

    stream = provider.stream(chat_request())
    assert isinstance(await anext(stream), Streaming)  # the server took the trial call
    assert isinstance(await anext(stream), TextDelta)
    await stream.aclose()

    assert state(breaker) == "half_open"
    assert (await read_stream(provider, chat_request())).text == REPLY
    assert state(breaker) == "closed"
