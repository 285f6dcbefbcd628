"""The dashboard in a real browser against a real Parley: from sign-up to a widget
conversation seen with its feedback, a viewer who can't edit, another workspace's assistant,
and how soon the dashboard is interactive."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from httpx import AsyncClient
from playwright.async_api import Browser, BrowserContext, FilePayload, expect

from backend.config import get_settings
from backend.db import PendingJob
from backend.models import Role
from tests.browser.dashboard import HANDBOOK, log_in, open_from_nav, owner_with_assistant
from tests.factories.accounts import DEFAULT_PASSWORD
from tests.factories.assistants import create_assistant
from tests.factories.knowledge import run_jobs
from tests.factories.tenancy import add_member, make_workspace


@pytest.fixture(scope="module", autouse=True)
def dashboard_built() -> None:
    index = get_settings().resolved_web_dir / "index.html"
    if not index.is_file():
        pytest.fail(f"{index} is missing: build the dashboard with `make web`.")


@pytest.fixture(autouse=True)
def generous_auth_limits() -> Iterator[None]:
    """Every browser signs up and logs in from 127.0.0.1, as the API tests do: per-IP limits
    meant for strangers would trip over the suite itself."""
    settings = get_settings()
    saved = settings.signup_rate_limit, settings.login_rate_limit
    settings.signup_rate_limit = settings.login_rate_limit = 1000
    yield
    settings.signup_rate_limit, settings.login_rate_limit = saved


@pytest.fixture
async def business_site() -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A business's own page on another origin; the test puts the copied snippet in it."""
    content = {"snippet": ""}

    async def page(request: web.Request) -> web.Response:
        html = (
            f"<!doctype html><html><body><h1>Harbour Shoes</h1>{content['snippet']}</body></html>"
        )
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", content
    await runner.cleanup()


async def test_from_sign_up_to_a_widget_conversation_with_its_feedback(
    context: BrowserContext,
    parley_url: str,
    recorded_jobs: list[PendingJob],
    business_site: tuple[str, dict[str, str]],
) -> None:
    site_url, site = business_site
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=parley_url)
    page = await context.new_page()

    # 1. Sign up, and create the first workspace.
    await page.goto(f"{parley_url}/app/signup")
    await page.get_by_label("Full name", exact=True).fill("Ada Harbour")
    await page.get_by_label("Email", exact=True).fill(f"ada-{uuid.uuid4().hex[:8]}@example.com")
    await page.get_by_label("Password", exact=True).fill(DEFAULT_PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Create a workspace")).to_be_visible()
    await page.get_by_label("Name", exact=True).fill(f"Harbour Shoes {uuid.uuid4().hex[:6]}")
    await page.get_by_role("button", name="Create workspace").click()
    await expect(page.get_by_role("heading", name="Assistants", exact=True)).to_be_visible()

    # 3. A knowledge base with an uploaded document, processed until ready.
    await open_from_nav(page, "Knowledge")
    await page.get_by_label("Name", exact=True).fill("Handbook")
    await page.get_by_role("button", name="Create", exact=True).click()
    await expect(page.get_by_role("heading", name="Handbook")).to_be_visible()
    await page.get_by_test_id("upload-input").set_input_files(
        FilePayload(name="handbook.md", mimeType="text/markdown", buffer=HANDBOOK)
    )
    await expect(page.get_by_text("Uploaded. Processing has started.")).to_be_visible()
    row = page.get_by_test_id("document-row")
    await expect(row).to_contain_text("queued")
    await run_jobs(recorded_jobs)
    await expect(row).to_contain_text("ready", timeout=10_000)  # the table polls

    # 2. An assistant that uses it.
    await open_from_nav(page, "Assistants")
    await page.get_by_label("Name", exact=True).fill("Shop helper")
    await page.get_by_role("button", name="Create assistant").click()
    await expect(page.get_by_role("heading", name="Shop helper")).to_be_visible()
    await page.get_by_role("checkbox", name="Handbook").check()
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_text("Saved.")).to_be_visible()

    # 4. The playground streams a cited answer and shows how it was made.
    await page.get_by_label("Ask a question", exact=True).fill("When do you open on Saturdays?")
    await page.get_by_label("Ask a question", exact=True).press("Enter")
    answer = page.locator(".playground-answer").last
    await expect(answer).to_contain_text("10:00", timeout=15_000)
    await expect(answer.locator(".citation")).to_contain_text("handbook")
    debug = page.get_by_test_id("debug-panel")
    await expect(debug).to_contain_text("extractive")
    await expect(page.get_by_text("Retrieved passages")).to_be_visible()
    await expect(page.get_by_text("score 0.", exact=False).first).to_be_visible()

    # 5. The widget snippet, copied, on the business's own page (its origin allowed first).
    await page.get_by_role("link", name="Install on your site").click()
    await page.get_by_label("Allowed sites", exact=True).fill(site_url)
    origins = page.get_by_role("button", name="Save").nth(1)
    await origins.click()
    await expect(page.get_by_text("Saved.")).to_be_visible()
    await page.get_by_role("button", name="Copy snippet").click()
    await expect(page.get_by_role("button", name="Copied")).to_be_visible()
    snippet = await page.evaluate("navigator.clipboard.readText()")
    assert snippet == await page.get_by_test_id("widget-snippet").inner_text()
    assert 'data-assistant="pk_' in snippet
    site["snippet"] = snippet

    # 6. A visitor chats through the widget and finds the answer helpful.
    shop = await context.new_page()
    await shop.goto(site_url)
    await shop.locator("parley-widget button.launcher").click()
    await shop.locator("parley-widget textarea").fill("Can I return shoes?")
    await shop.locator("parley-widget textarea").press("Enter")
    reply = shop.locator("parley-widget .log .msg.assistant").last
    await expect(reply).to_contain_text("30 days", timeout=15_000)
    await reply.locator('button[aria-label="Helpful"]').click()
    await expect(reply.locator('button[aria-label="Helpful"][aria-pressed="true"]')).to_be_visible()

    # 7. The dashboard shows that conversation, with the visitor's feedback.
    await open_from_nav(page, "Conversations")
    await page.get_by_label("Channel", exact=True).select_option("widget")
    await page.get_by_label("Feedback", exact=True).select_option("up")
    rows = page.get_by_test_id("conversation-row")
    await expect(rows).to_have_count(1)
    await rows.get_by_role("link").click()
    await expect(page.get_by_test_id("message-user")).to_contain_text("Can I return shoes?")
    await expect(page.get_by_test_id("message-assistant")).to_contain_text("30 days")
    await expect(page.get_by_test_id("feedback")).to_contain_text("helpful")


async def test_a_viewer_sees_the_settings_but_cannot_change_them(
    context: BrowserContext, parley_url: str, client: AsyncClient
) -> None:
    owner = await make_workspace()
    assistant = await create_assistant(client, owner, name="Read-only helper")
    viewer = await add_member(client, owner, Role.viewer)
    page = await context.new_page()
    await log_in(page, parley_url, viewer, f"/assistants/{assistant['id']}")
    await expect(page.get_by_role("heading", name="Read-only helper")).to_be_visible()
    await expect(page.get_by_label("Name", exact=True)).to_be_disabled()
    await expect(page.get_by_label("Instructions", exact=True)).to_be_disabled()
    await expect(page.get_by_role("button", name="Save")).to_have_count(0)
    await expect(page.get_by_role("button", name="Delete")).to_have_count(0)
    await expect(
        page.get_by_text("Your role can view these settings but not change them.")
    ).to_be_visible()
    await expect(page.get_by_text("Your role cannot talk to assistants.")).to_be_visible()
    await open_from_nav(page, "Assistants")
    await expect(page.get_by_role("link", name="Read-only helper")).to_be_visible()
    await expect(page.get_by_role("button", name="Create assistant")).to_have_count(0)


async def test_another_workspaces_assistant_is_not_found(
    context: BrowserContext, parley_url: str, client: AsyncClient
) -> None:
    theirs = await make_workspace()
    assistant = await create_assistant(client, theirs, name="Not yours")
    mine = await make_workspace()
    page = await context.new_page()
    await log_in(page, parley_url, mine, f"/assistants/{assistant['id']}")
    await expect(page.get_by_role("alert")).to_contain_text(
        "This assistant does not exist in this workspace."
    )
    await expect(page.get_by_text("Not yours")).to_have_count(0)


# Notes the moment a link with the given text is in the page (React has committed it, so it
# handles input): measured in the page, not by how often the test polls.
WATCH_FOR_LINK = """
((text) => {
  const seen = () => [...document.querySelectorAll("a")].some((a) => a.textContent === text);
  new MutationObserver((_, observer) => {
    if (window.__readyAt === undefined && seen()) {
      window.__readyAt = performance.now();
      observer.disconnect();
    }
  }).observe(document, { subtree: true, childList: true });
})("Quick helper");
"""


async def test_the_dashboard_is_interactive_within_a_second(
    context: BrowserContext, parley_url: str, client: AsyncClient
) -> None:
    await owner_with_assistant(context, parley_url, client, "Quick helper")
    # A fresh load with the session cookie: scripts, token refresh, account, the first list.
    fresh = await context.new_page()
    await fresh.add_init_script(WATCH_FOR_LINK)
    await fresh.goto(f"{parley_url}/app/")
    link = fresh.get_by_role("link", name="Quick helper")
    await expect(link).to_be_visible()
    ready_ms = await fresh.evaluate("window.__readyAt")
    assert ready_ms <= 1000, f"interactive after {ready_ms:.0f} ms"
    await link.press("Enter")
    await expect(fresh.get_by_role("heading", name="Quick helper")).to_be_visible()


FOCUS_STYLE = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  return { text: el.textContent, outline: style.outlineStyle, width: parseFloat(style.outlineWidth),
           visible: box.width > 1 && box.height > 1 };
}"""


async def test_the_dashboard_works_by_keyboard_with_visible_focus(
    context: BrowserContext, parley_url: str, client: AsyncClient
) -> None:
    page = await owner_with_assistant(context, parley_url, client, "Keyboard helper")
    await page.goto(f"{parley_url}/app/")
    await expect(page.get_by_role("link", name="Keyboard helper")).to_be_visible()

    # The first Tab reaches "skip to content", shown while it has the focus, with a ring.
    await page.keyboard.press("Tab")
    focused = await page.evaluate(FOCUS_STYLE)
    assert focused["text"] == "Skip to content", focused
    assert focused["visible"], focused
    assert (focused["outline"], focused["width"]) == ("solid", 3), focused

    # Every later stop shows the ring too; the menu is reached and followed by keyboard.
    for _ in range(30):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(FOCUS_STYLE)
        assert (focused["outline"], focused["width"]) == ("solid", 3), focused
        if focused["text"] == "Knowledge":
            break
    else:
        raise AssertionError("the Knowledge link was not reached by Tab")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Knowledge", exact=True)).to_be_visible()


NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"


async def test_on_a_phone_the_menu_folds_and_pages_fit_the_width(
    browser: Browser, parley_url: str, client: AsyncClient
) -> None:
    owner = await make_workspace()
    assistant = await create_assistant(client, owner, name="Pocket helper")
    phone = await browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    try:
        page = await phone.new_page()
        await log_in(page, parley_url, owner)
        menu = page.get_by_role("button", name="Menu")
        nav_link = page.get_by_role("navigation").get_by_role("link", name="Usage", exact=True)
        await expect(menu).to_be_visible()
        await expect(menu).to_have_attribute("aria-expanded", "false")
        await expect(nav_link).to_be_hidden()
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)

        await menu.click()
        await expect(menu).to_have_attribute("aria-expanded", "true")
        await nav_link.click()
        await expect(page.get_by_role("heading", name="Usage", exact=True)).to_be_visible()
        await expect(nav_link).to_be_hidden()  # the menu folds again after choosing

        for path in (f"/assistants/{assistant['id']}", "/knowledge", "/conversations"):
            await page.goto(f"{parley_url}/app{path}")
            await expect(page.get_by_role("button", name="Menu")).to_be_visible()
            await page.wait_for_load_state("networkidle")
            assert await page.evaluate(NO_SIDEWAYS_SCROLL), path
    finally:
        await phone.close()
