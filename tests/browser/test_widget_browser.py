"""The widget in a real browser: the demo page, streaming, a dropped connection, origins, XSS,
the daily cap and the mobile layout."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from httpx import AsyncClient
from playwright.async_api import BrowserContext, Page, expect

from tests.factories.accounts import Account
from tests.factories.assistants import create_assistant
from tests.standins.openai_chat import ChatStandIn

# Remembers every WebSocket the page opens, so a test can drop one as a bad network would.
TRACK_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.__sockets.push(this); }
  };
})();
"""


async def _open_chat(page: Page) -> None:
    await page.locator("parley-widget button.launcher").click()
    await expect(page.locator("parley-widget .panel")).to_be_visible()


async def _ask(page: Page, question: str) -> None:
    await page.locator("parley-widget textarea").fill(question)
    await page.locator("parley-widget textarea").press("Enter")


def _answers(page: Page) -> Any:
    return page.locator("parley-widget .log .msg.assistant")


async def test_demo_page_answers_with_a_citation(
    context: BrowserContext, parley_url: str, demo: tuple[Account, str]
) -> None:
    page = await context.new_page()
    await page.goto(f"{parley_url}/demo")
    await _open_chat(page)
    await expect(page.locator("parley-widget .panel")).to_contain_text("Harbour Shoes")
    await page.locator("parley-widget .suggestions button").first.click()
    answer = _answers(page).last
    await expect(answer).to_contain_text("10:00", timeout=15_000)
    await expect(answer).to_contain_text("Shop handbook")


async def test_an_answer_cut_mid_stream_completes_after_reconnect(
    context: BrowserContext,
    parley_url: str,
    demo: tuple[Account, str],
    client: AsyncClient,
    chat_server: ChatStandIn,
) -> None:
    words = [f"w{i:02d}" for i in range(40)]
    chat_server.reply = " ".join(words)
    chat_server.delta_count = 40
    chat_server.token_delay = 0.08
    await context.add_init_script(TRACK_SOCKETS)
    page = await context.new_page()
    await page.goto(f"{parley_url}/demo")
    await _open_chat(page)
    await _ask(page, "When are you open on Saturday?")
    answer = _answers(page).last
    await expect(answer).to_contain_text("w05", timeout=15_000)
    await page.evaluate("window.__sockets.forEach((s) => s.close())")  # the network drops
    await expect(answer).to_contain_text("w39", timeout=20_000)
    bubble = (await answer.locator(".bubble").inner_text()).split()
    assert bubble[: len(words)] == words  # every piece once, in order: no gap, no duplicate
    assert await page.evaluate("window.__sockets.length") >= 2  # it really reconnected


async def test_a_disallowed_origin_gets_no_widget(
    context: BrowserContext, parley_url: str, client: AsyncClient, demo: tuple[Account, str]
) -> None:
    owner, _ = demo
    assistant = await create_assistant(client, owner, allowed_origins=["https://shop.example.com"])
    async with _foreign_page(parley_url, assistant["public_key"]) as url:
        page = await context.new_page()
        sockets: list[str] = []
        failed: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        # Refused without CORS headers, the config call fails in the page as a network error.
        page.on("requestfailed", lambda request: failed.append(request.url))
        await page.goto(url)
        await page.wait_for_timeout(1500)
        assert any("/api/widget/config" in u for u in failed), failed
        assert await page.locator("parley-widget button.launcher").count() == 0
        assert sockets == []
        # The same page, once its origin is allowed, gets the widget.
        await client.patch(
            f"/api/v1/assistants/{assistant['id']}",
            json={"allowed_origins": [url.rsplit("/", 1)[0]]},
            headers=owner.headers(),
        )
        await page.reload()
        await expect(page.locator("parley-widget button.launcher")).to_be_visible()


class _foreign_page:
    """A business page on another origin (another port of 127.0.0.1) embedding the widget."""

    def __init__(self, parley_url: str, key: str) -> None:
        self.html = (
            "<!doctype html><html lang='en'><body><h1>Elsewhere</h1>"
            f"<script src='{parley_url}/widget.js' data-assistant='{key}' async></script>"
            "</body></html>"
        )
        self.runner: web.AppRunner | None = None

    async def __aenter__(self) -> str:
        async def page(request: web.Request) -> web.Response:
            return web.Response(text=self.html, content_type="text/html")

        app = web.Application()
        app.router.add_get("/", page)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/"

    async def __aexit__(self, *exc: object) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def test_html_in_an_answer_renders_as_text(
    context: BrowserContext, parley_url: str, demo: tuple[Account, str], chat_server: ChatStandIn
) -> None:
    payload = '<img src=x onerror="window.__xss = 1"> and <script>window.__xss = 2</script>'
    chat_server.reply = f"Careful: {payload} **bold** [1]"
    page = await context.new_page()
    await page.goto(f"{parley_url}/demo")
    await _open_chat(page)
    await _ask(page, "When are you open on Saturday?")
    answer = _answers(page).last
    await expect(answer).to_contain_text("<img src=x onerror=", timeout=15_000)
    await expect(answer.locator(".bubble strong")).to_have_text("bold")
    assert await answer.locator("img, script").count() == 0
    assert await page.evaluate("window.__xss") is None


async def test_the_daily_cap_shows_a_friendly_message(
    context: BrowserContext, parley_url: str, client: AsyncClient, demo: tuple[Account, str]
) -> None:
    owner, key = demo
    assistants = (await client.get("/api/v1/assistants", headers=owner.headers())).json()
    (assistant,) = [a for a in assistants["items"] if a["public_key"] == key]
    await client.patch(
        f"/api/v1/assistants/{assistant['id']}",
        json={"visitor_daily_message_cap": 1},
        headers=owner.headers(),
    )
    page = await context.new_page()
    await page.goto(f"{parley_url}/demo")
    await _open_chat(page)
    await _ask(page, "When are you open on Saturday?")
    await expect(_answers(page).last).to_contain_text("10:00", timeout=15_000)
    await _ask(page, "And do you repair shoes?")
    banner = page.locator("parley-widget .banner")
    await expect(banner).to_contain_text("today's message limit", timeout=10_000)


async def test_mobile_layout_is_full_screen(
    context: BrowserContext, parley_url: str, demo: tuple[Account, str]
) -> None:
    page = await context.new_page()
    await page.set_viewport_size({"width": 375, "height": 667})
    await page.goto(f"{parley_url}/demo")
    await _open_chat(page)
    box = await page.locator("parley-widget .panel").bounding_box()
    assert box is not None
    assert (round(box["x"]), round(box["y"])) == (0, 0)
    assert (round(box["width"]), round(box["height"])) == (375, 667)
    await page.keyboard.press("Escape")
    await expect(page.locator("parley-widget .panel")).to_be_hidden()
    focused = await page.evaluate(
        "document.querySelector('parley-widget').shadowRoot.activeElement?.className"
    )
    assert "launcher" in focused
