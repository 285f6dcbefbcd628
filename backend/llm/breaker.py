"""A circuit breaker per chat provider, so a failing provider is not called by every request.

Closed: calls go through and consecutive failures are counted. After `failure_threshold` of them
the breaker opens: calls are refused at once with `ProviderUnavailable`, and the engine answers
from its fallback instead of making each user wait for timeouts. After `reset_seconds` it is
half-open: exactly one trial call goes through while others are still refused; its success
closes the breaker, its failure opens it again for another `reset_seconds`.

The state lives in the process on purpose: each API process protects itself, and needs neither
Redis nor a network round trip to decide whether to call a provider that may be down. Breakers
come from `breaker_for`, one per provider key, shared by all requests of the process.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Literal
from urllib.parse import urlsplit

from backend.llm.types import ProviderUnavailable

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """The state of one provider's breaker. Not thread-safe: use it from one event loop."""

    def __init__(
        self,
        failure_threshold: int,
        reset_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        name: str = "the chat provider",
    ) -> None:
        self.failure_threshold = max(1, failure_threshold)
        self.reset_seconds = reset_seconds
        self.name = name
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._trial_running or self._clock() - self._opened_at >= self.reset_seconds:
            return "half_open"
        return "open"

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def before_call(self) -> None:
        """Let a call through, or raise `ProviderUnavailable` while the breaker is open."""
        if self._opened_at is None:
            return
        waited = self._clock() - self._opened_at
        if self._trial_running or waited < self.reset_seconds:
            retry_after = max(0.0, self.reset_seconds - waited)
            raise ProviderUnavailable(
                f"Calls to {self.name} are paused after {self._failures} failures in a row; "
                f"the next trial call is due in {math.ceil(retry_after)} s.",
                retry_after=retry_after,
            )
        self._trial_running = True

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._trial_running or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
        self._trial_running = False

    def release(self) -> None:
        """End a call that proved nothing either way (a refused request, an abandoned stream).

        A half-open breaker then lets the next call be the trial.
        """
        self._trial_running = False


_registry_lock = threading.Lock()
_breakers: dict[str, CircuitBreaker] = {}


def breaker_for(key: str, failure_threshold: int, reset_seconds: float) -> CircuitBreaker:
    """The process-wide breaker of the provider `key` names (its base URL).

    The thresholds of an existing breaker follow the latest settings; its state is kept.
    """
    with _registry_lock:
        breaker = _breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(failure_threshold, reset_seconds, name=_display_name(key))
            _breakers[key] = breaker
        else:
            breaker.failure_threshold = max(1, failure_threshold)
            breaker.reset_seconds = reset_seconds
        return breaker


def reset_breakers() -> None:
    """Forget every breaker (for tests)."""
    with _registry_lock:
        _breakers.clear()


def endpoint_name(base_url: str | None) -> str:
    """Where a provider is, for messages: scheme, host and port of its base URL.

    Only those: a base URL may carry credentials in its user part or its query.
    """
    if not base_url:
        return "api.openai.com"
    parts = urlsplit(base_url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.scheme or not parts.hostname:
        return "the configured base URL"
    return f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else "")


def _display_name(key: str) -> str:
    return f"the chat provider at {endpoint_name(key)}"
