"""What the dashboard's browser tests and `make screenshots` share."""

from __future__ import annotations

from httpx import AsyncClient
from playwright.async_api import BrowserContext, Page, expect

from tests.factories.accounts import Account
from tests.factories.assistants import create_assistant
from tests.factories.tenancy import make_workspace

HANDBOOK = b"""# Harbour Shoes handbook

## Opening hours

The shop opens at 10:00 on Saturdays and closes at 16:00. On Sundays it is closed.

## Returns

Shoes can be returned within 30 days with the receipt.
"""


async def log_in(page: Page, parley_url: str, account: Account, path: str = "/") -> None:
    """Log in through the form; `path` is the dashboard page to land on (under /app)."""
    await page.goto(f"{parley_url}/app/login?next={path}")
    await page.get_by_label("Email", exact=True).fill(account.email)
    await page.get_by_label("Password", exact=True).fill(account.password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{parley_url}/app{path.rstrip('/')}")


async def open_from_nav(page: Page, name: str) -> None:
    """Follow a menu link and wait for the page it opens (headed by the link's name): the
    router keeps the previous page on screen while the next one's code loads, and a form field
    filled meanwhile would be the old page's."""
    await page.get_by_role("navigation").get_by_role("link", name=name, exact=True).click()
    await expect(page.get_by_role("heading", name=name, exact=True, level=1)).to_be_visible()


async def owner_with_assistant(
    context: BrowserContext, parley_url: str, client: AsyncClient, name: str
) -> Page:
    """A new workspace's owner, logged in, on the assistants page listing assistant `name`."""
    owner = await make_workspace()
    await create_assistant(client, owner, name=name)
    page = await context.new_page()
    await log_in(page, parley_url, owner)
    await expect(page.get_by_role("link", name=name)).to_be_visible()
    return page
