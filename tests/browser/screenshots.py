"""`make screenshots`: the dashboard's main pages, in Chromium against a real Parley with a
small shop's data, saved as PNGs in docs/screenshots/. Not part of `make test` (its name does
not start with test_); make runs this file by name."""

from __future__ import annotations

from pathlib import Path

from httpx import AsyncClient
from playwright.async_api import Browser, Page, expect

from backend.db import PendingJob
from tests.browser.dashboard import HANDBOOK, log_in
from tests.factories.assistants import ask, create_assistant, open_conversation
from tests.factories.knowledge import add_text, create_kb, run_jobs
from tests.factories.tenancy import make_workspace

OUT = Path(__file__).resolve().parent.parent.parent / "docs" / "screenshots"


async def _shot(page: Page, name: str, heading: str) -> None:
    await expect(page.get_by_role("heading", name=heading, exact=True).first).to_be_visible()
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=OUT / f"{name}.png", full_page=True)


async def test_take_screenshots(
    browser: Browser, parley_url: str, client: AsyncClient, recorded_jobs: list[PendingJob]
) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    owner = await make_workspace()
    kb = await create_kb(client, owner, name="Shop handbook")
    await add_text(client, owner, kb, HANDBOOK.decode(), title="Harbour Shoes handbook")
    await run_jobs(recorded_jobs)
    assistant = await create_assistant(
        client,
        owner,
        name="Shop helper",
        knowledge_base_ids=[kb],
        suggested_questions=["When do you open on Saturdays?", "Can I return shoes?"],
    )
    conversation = await open_conversation(client, owner, assistant["id"], title="Returns")
    reply = await ask(client, owner, conversation, "Can I return shoes?")
    await client.put(
        f"/api/v1/messages/{reply['answer']['id']}/feedback",
        json={"rating": "up", "comment": "Clear, thanks"},
        headers=owner.headers(),
    )
    await ask(client, owner, conversation, "Do you ship to Iceland?")  # not in the handbook

    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    await page.goto(f"{parley_url}/app/login")
    await _shot(page, "login", "Log in")
    await log_in(page, parley_url, owner)
    await _shot(page, "assistants", "Assistants")

    await page.goto(f"{parley_url}/app/assistants/{assistant['id']}")
    await page.get_by_role("button", name="When do you open on Saturdays?").click()
    await expect(page.get_by_test_id("debug-panel")).to_be_visible(timeout=15_000)
    await _shot(page, "assistant-editor-playground", "Shop helper")

    pages = [
        (f"/knowledge/{kb}", "knowledge-base", "Shop handbook"),
        (f"/channels?assistant={assistant['id']}", "channels", "Channels"),
        ("/conversations", "conversations", "Conversations"),
        (f"/conversations/{conversation}", "transcript", "Returns"),
        ("/unanswered", "unanswered", "Unanswered questions"),
        ("/usage", "usage", "Usage"),
        ("/members", "members", "Members"),
    ]
    for path, name, heading in pages:
        await page.goto(f"{parley_url}/app{path}")
        await _shot(page, name, heading)

    phone = await browser.new_context(viewport={"width": 390, "height": 844})
    mobile = await phone.new_page()
    await log_in(mobile, parley_url, owner, f"/assistants/{assistant['id']}")
    await mobile.evaluate("localStorage.setItem('parley.lang', 'ru')")  # the language choice
    await mobile.reload()
    await _shot(mobile, "phone-assistant-ru", "Shop helper")
    await phone.close()
    await context.close()
