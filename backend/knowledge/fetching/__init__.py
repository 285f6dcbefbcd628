"""Fetching web pages for URL and website sources: SSRF guard, limits, robots, sitemaps, crawl.

The package re-exports the `fetch` and `crawl` functions, which hide the modules of the same
names as attributes; `from backend.knowledge.fetching.fetch import ...` still reaches the module.
"""

from backend.knowledge.fetching.crawl import HTML_TYPES, PARSEABLE_TYPES, crawl
from backend.knowledge.fetching.errors import (
    AddressRefused,
    FetchError,
    PageTooLarge,
    UnsupportedContent,
)
from backend.knowledge.fetching.fetch import DEFAULT_USER_AGENT, Fetcher, FetchResult, fetch
from backend.knowledge.fetching.sitemap import SitemapEntry, SitemapError, discover_sitemap_urls

__all__ = [
    "DEFAULT_USER_AGENT",
    "HTML_TYPES",
    "PARSEABLE_TYPES",
    "AddressRefused",
    "FetchError",
    "FetchResult",
    "Fetcher",
    "PageTooLarge",
    "SitemapEntry",
    "SitemapError",
    "UnsupportedContent",
    "crawl",
    "discover_sitemap_urls",
    "fetch",
]
