"""Crawling a website source: breadth-first from a start URL, on its origin, within limits.

The start page is always fetched (its links are where the crawl begins) and kept if it matches
the patterns. Other pages are fetched only when they are on the start page's origin (after its
redirects), within `max_depth` links of it, match the include/exclude patterns (globs, see
`urls.py`), are allowed by robots.txt and fit in `max_pages`, which counts every page fetched,
the start page included. Pages come out as they arrive, not in a fixed order.

A crawl does not send conditional requests: a page that answered 304 would have no links to
follow. Re-syncs compare the `sha256` of each page with the last one instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Collection, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import structlog

from backend.knowledge.fetching.errors import FetchError
from backend.knowledge.fetching.fetch import DEFAULT_USER_AGENT, Fetcher, FetchResult
from backend.knowledge.fetching.guard import check_url
from backend.knowledge.fetching.links import PageLinks, extract_links
from backend.knowledge.fetching.robots import RobotsCache, RobotsPolicy
from backend.knowledge.fetching.urls import Origin, matches_patterns, normalize_url, origin_of

log = structlog.get_logger(__name__)

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
# What a crawl keeps besides HTML: the formats the knowledge parsers read.
PARSEABLE_TYPES = HTML_TYPES | {"application/pdf", DOCX_TYPE, "text/plain", "text/markdown"}
DEFAULT_CONCURRENCY = 4
# Links to these are not worth a request: no parser reads them.
_UNREAD_SUFFIXES = (
    ".7z", ".avi", ".bmp", ".css", ".dmg", ".exe", ".gif", ".gz", ".ico", ".iso", ".jpeg",
    ".jpg", ".js", ".mov", ".mp3", ".mp4", ".png", ".rar", ".svg", ".tar", ".tgz", ".wav",
    ".webm", ".webp", ".woff", ".woff2", ".ttf", ".zip",
)  # fmt: skip
_OFF_THREAD_HTML = 64 * 1024  # larger pages are parsed in a thread, off the event loop

FailureCallback = Callable[[str, FetchError], object]


class _PageSkipped(FetchError):
    """A redirect leaves the site or lands on a page already seen: not a failure."""


async def crawl(
    start_url: str,
    *,
    max_depth: int,
    max_pages: int,
    max_bytes: int,
    timeout_s: float,
    allow_loopback: bool,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    user_agent: str = DEFAULT_USER_AGENT,
    concurrency: int = DEFAULT_CONCURRENCY,
    accept_types: Collection[str] = PARSEABLE_TYPES,
    on_failure: FailureCallback | None = None,
) -> AsyncGenerator[FetchResult, None]:
    """The pages of a website, breadth-first from `start_url` (see the module docstring).

    The start page failing raises its FetchError; any other page failing is passed to
    `on_failure` and skipped. `timeout_s` and `max_bytes` apply to each page.
    Use it under `contextlib.aclosing` to stop early: closing cancels the fetches under way.
    """
    if max_depth < 0 or max_pages < 1 or concurrency < 1:
        raise ValueError("max_depth must be >= 0, max_pages and concurrency >= 1")
    start = normalize_url(str(check_url(start_url)))
    if start is None:
        raise FetchError(f"{start_url} is not a web address Parley can crawl.")
    async with Fetcher(
        max_bytes=max_bytes,
        timeout_s=timeout_s,
        allow_loopback=allow_loopback,
        user_agent=user_agent,
    ) as fetcher:
        state = _Crawl(
            fetcher=fetcher,
            robots=RobotsCache(fetcher),
            max_depth=max_depth,
            max_pages=max_pages,
            include=include,
            exclude=exclude,
            accept_types=accept_types,
            on_failure=on_failure,
        )
        first = await state.visit_start(start)
        if first is not None:
            yield first
        async for result in state.run(concurrency):
            yield result


@dataclass
class _Crawl:
    fetcher: Fetcher
    robots: RobotsCache
    max_depth: int
    max_pages: int
    include: Sequence[str]
    exclude: Sequence[str]
    accept_types: Collection[str]
    on_failure: FailureCallback | None
    origin: Origin = ("", "", 0)
    policy: RobotsPolicy | None = None
    seen: set[str] = field(default_factory=set)
    scheduled: int = 0
    frontier: asyncio.Queue[tuple[str, int]] = field(default_factory=asyncio.Queue)

    async def visit_start(self, url: str) -> FetchResult | None:
        self.seen.add(url)
        self.scheduled = 1
        policy = await self.robots.policy_for(url)
        if not policy.allows(url):
            raise FetchError(policy.why_refused(url))
        result = await self.fetcher.fetch(
            url, accept_types=self.accept_types, on_redirect=self._check_start_redirect
        )
        final = normalize_url(result.url) or url
        self.seen.add(final)
        self.origin = origin_of(final)
        self.policy = await self.robots.policy_for(final)
        return await self._keep(result, final, depth=0)

    async def run(self, concurrency: int) -> AsyncGenerator[FetchResult, None]:
        # A small result queue makes the fetches wait for the consumer: memory stays bounded.
        results: asyncio.Queue[FetchResult | Exception | None] = asyncio.Queue(concurrency)
        tasks = [asyncio.create_task(self._work(results)) for _ in range(concurrency)]
        tasks.append(asyncio.create_task(self._finish(results)))
        try:
            while (item := await results.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _work(self, results: asyncio.Queue[FetchResult | Exception | None]) -> None:
        while True:
            url, depth = await self.frontier.get()
            outcome: FetchResult | Exception | None = None
            try:
                outcome = await self._visit(url, depth)
            except _PageSkipped:
                pass
            except FetchError as exc:
                self._report(url, exc)
            except Exception as exc:
                outcome = exc  # a bug, not a bad page: the consumer sees it
            try:
                if outcome is not None:
                    await results.put(outcome)
            finally:
                self.frontier.task_done()

    async def _finish(self, results: asyncio.Queue[FetchResult | Exception | None]) -> None:
        await self.frontier.join()
        await results.put(None)

    async def _visit(self, url: str, depth: int) -> FetchResult | None:
        result = await self.fetcher.fetch(
            url, accept_types=self.accept_types, on_redirect=self._check_redirect
        )
        return await self._keep(result, normalize_url(result.url) or url, depth)

    async def _keep(self, result: FetchResult, url: str, depth: int) -> FetchResult | None:
        """Schedule the links of `result` and say whether the page itself is kept."""
        index = True
        if result.content_type in HTML_TYPES:
            links = await _links_of(result)
            index = links.index
            if links.follow and depth < self.max_depth:
                self._schedule(links.links, depth + 1)
        if index and matches_patterns(url, self.include, self.exclude):
            return result
        return None

    def _schedule(self, links: list[str], depth: int) -> None:
        for link in links:
            if self.scheduled >= self.max_pages:
                return
            if link in self.seen or origin_of(link) != self.origin or _unread(link):
                continue
            if not matches_patterns(link, self.include, self.exclude):
                continue
            if self.policy is None or not self.policy.allows(link):
                continue
            self.seen.add(link)
            self.scheduled += 1
            self.frontier.put_nowait((link, depth))

    async def _check_start_redirect(self, target: str) -> None:
        url = normalize_url(target)
        if url is None:
            raise FetchError(f"The start page redirects to {target}, which Parley cannot crawl.")
        policy = await self.robots.policy_for(url)
        if not policy.allows(url):
            raise FetchError(policy.why_refused(url))

    async def _check_redirect(self, target: str) -> None:
        url = normalize_url(target)
        if url is None or origin_of(url) != self.origin:
            raise _PageSkipped(f"The page redirects off the site, to {target}.")
        if url in self.seen:
            raise _PageSkipped(f"The page redirects to {url}, which the crawl already has.")
        if self.policy is not None and not self.policy.allows(url):
            raise _PageSkipped(f"The page redirects to {url}, which robots.txt disallows.")
        self.seen.add(url)

    def _report(self, url: str, error: FetchError) -> None:
        log.info("crawl_page_failed", url=url, reason=error.detail)
        if self.on_failure is not None:
            self.on_failure(url, error)


def _unread(url: str) -> bool:
    return urlsplit(url).path.lower().endswith(_UNREAD_SUFFIXES)


async def _links_of(result: FetchResult) -> PageLinks:
    if len(result.body) > _OFF_THREAD_HTML:
        return await asyncio.to_thread(_parse_links, result)
    return _parse_links(result)


def _parse_links(result: FetchResult) -> PageLinks:
    return extract_links(result.text(), result.url)
