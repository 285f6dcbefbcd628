"""Browser tests: Debian's Chromium, driven by Playwright, against a running Parley.

The widget must be built (`make widget`; `make test` builds it first). Chromium is started
with the flags this machine needs: no sandbox as root, no background networking.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from httpx import AsyncClient
from playwright.async_api import Browser, BrowserContext, async_playwright

from backend.config import get_settings
from backend.db import PendingJob, unit_of_work
from backend.widget.demo import seed_demo_assistant
from backend.widget.endpoints import DEMO_FILE
from tests.factories.accounts import Account
from tests.factories.knowledge import run_jobs
from tests.factories.tenancy import make_workspace

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def widget_built() -> None:
    script = get_settings().resolved_widget_dir / "widget.js"
    if not script.is_file():
        pytest.fail(f"{script} is missing: build the widget with `make widget`.")


@pytest.fixture(scope="session")
async def browser(widget_built: None) -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: `scripts/test-services.sh install` installs it.")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    made = await browser.new_context()
    yield made
    await made.close()


@pytest.fixture
def own_origin(parley_url: str) -> Iterator[str]:
    """Parley's public URL is the test server's, as in production: /demo is its own page."""
    settings = get_settings()
    saved = settings.public_url
    settings.public_url = parley_url
    yield parley_url
    settings.public_url = saved


@pytest.fixture
async def demo(
    client: AsyncClient, recorded_jobs: list[PendingJob], own_origin: str
) -> tuple[Account, str]:
    """A workspace with the demo assistant (its handbook ingested); /demo shows its widget."""
    owner = await make_workspace()
    assert owner.tenant_id is not None
    saved = get_settings().data_dir / DEMO_FILE
    saved.unlink(missing_ok=True)
    async with unit_of_work(tenant_id=owner.tenant_id) as session:
        key = await seed_demo_assistant(session, owner.tenant_id, saved)
    await run_jobs(recorded_jobs)
    return owner, key


def unique_question(text: str) -> str:
    return f"{text} ({uuid.uuid4().hex[:6]})"
