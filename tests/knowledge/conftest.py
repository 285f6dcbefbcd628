"""Fixtures of the knowledge-base tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backend.config import get_settings


@pytest.fixture
def loopback_fetching() -> Iterator[None]:
    """Let URL sources fetch from the test sites on 127.0.0.1 (refused in production)."""
    settings = get_settings()
    previous = settings.fetch_allow_loopback
    settings.fetch_allow_loopback = True
    yield
    settings.fetch_allow_loopback = previous
