"""Sitemaps: the pages of a website source of the sitemap kind.

Reads XML sitemaps, sitemap indexes (nested up to MAX_SITEMAP_DEPTH, at most `max_sitemaps`
files), gzip-compressed sitemaps and plain-text ones (one URL a line). The XML parser refuses
any DOCTYPE: sitemaps never need one, and without it no entity can be declared, so neither
entity expansion bombs nor external entities can occur.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.parsers import expat

from backend.knowledge.fetching.errors import FetchError
from backend.knowledge.fetching.fetch import DEFAULT_USER_AGENT, Fetcher, inflate
from backend.knowledge.fetching.guard import check_url
from backend.knowledge.fetching.robots import RobotsCache
from backend.knowledge.fetching.urls import matches_patterns, normalize_url, origin_of

SITEMAP_NAMESPACE = "http://www.sitemaps.org/schemas/sitemap/0.9"
MAX_SITEMAP_DEPTH = 3  # index -> index -> sitemap; the protocol itself allows one level
MAX_SITEMAP_FILES = 50
_GZIP_MAGIC = b"\x1f\x8b"


class SitemapError(FetchError):
    code = "invalid_sitemap"


@dataclass(frozen=True, slots=True)
class SitemapEntry:
    url: str
    lastmod: str | None = None


@dataclass(frozen=True, slots=True)
class Sitemap:
    is_index: bool  # entries are sitemaps, not pages
    entries: list[SitemapEntry]


def parse_sitemap(data: bytes, *, url: str = "The sitemap", max_bytes: int) -> Sitemap:
    """Parse a sitemap file as fetched: gzip or not, XML or text."""
    if data.startswith(_GZIP_MAGIC):
        data = inflate(data, url=url, limit=max_bytes)
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"<"):
        return _parse_text(data)
    return _SitemapReader(url).read(data)


def _parse_text(data: bytes) -> Sitemap:
    lines = (line.strip() for line in data.decode("utf-8", errors="replace").splitlines())
    return Sitemap(
        is_index=False,
        entries=[SitemapEntry(line) for line in lines if line.startswith(("http://", "https://"))],
    )


class _SitemapReader:
    """Collects <loc> and <lastmod> of each <url> or <sitemap> with a bare expat parser."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stack: list[tuple[str, str]] = []  # (namespace, local name)
        self._text: list[str] = []
        self._loc: str | None = None
        self._lastmod: str | None = None
        self.root: str | None = None
        self.entries: list[SitemapEntry] = []

    def read(self, data: bytes) -> Sitemap:
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = self._refuse_doctype
        parser.EntityDeclHandler = self._refuse_entity
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text.append
        try:
            parser.Parse(data, True)
        except expat.ExpatError as exc:
            raise SitemapError(f"{self._url} is not a valid sitemap ({exc}).") from exc
        if self.root not in ("urlset", "sitemapindex"):
            raise SitemapError(f"{self._url} is not a sitemap: it has no <urlset> or index.")
        return Sitemap(is_index=self.root == "sitemapindex", entries=self.entries)

    def _refuse_doctype(self, *_: object) -> None:
        raise SitemapError(
            f"{self._url} declares a DOCTYPE, which sitemaps never need; Parley does not read "
            "XML with one (it could hide entity expansion or external files)."
        )

    def _refuse_entity(self, *_: object) -> None:
        raise SitemapError(f"{self._url} declares XML entities, which Parley does not read.")

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        namespace, _, local = name.rpartition(" ")
        if self.root is None:
            self.root = local if namespace in ("", SITEMAP_NAMESPACE) else "other"
        self._stack.append((namespace, local))
        self._text.clear()

    def _end(self, name: str) -> None:
        namespace, local = self._stack.pop()
        if namespace not in ("", SITEMAP_NAMESPACE) or len(self._stack) not in (1, 2):
            return
        # Depth 2 holds <loc> and <lastmod> of an entry; depth 1 closes the entry itself.
        if len(self._stack) == 2 and local == "loc":
            self._loc = "".join(self._text).strip()
        elif len(self._stack) == 2 and local == "lastmod":
            self._lastmod = "".join(self._text).strip() or None
        elif len(self._stack) == 1 and local in ("url", "sitemap"):
            if self._loc:
                self.entries.append(SitemapEntry(self._loc, self._lastmod))
            self._loc = self._lastmod = None


async def discover_sitemap_urls(
    sitemap_url: str,
    *,
    max_urls: int,
    max_bytes: int,
    timeout_s: float,
    allow_loopback: bool,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    user_agent: str = DEFAULT_USER_AGENT,
    max_sitemaps: int = MAX_SITEMAP_FILES,
    on_failure: Callable[[str, FetchError], object] | None = None,
) -> list[SitemapEntry]:
    """The pages a sitemap (or sitemap index) lists, up to `max_urls`.

    Keeps pages on the sitemap's own origin (after redirects) that match the patterns and that
    robots.txt allows. A sitemap the root one leads to that fails is reported to `on_failure`
    and skipped; the root one failing raises.
    """
    start = normalize_url(str(check_url(sitemap_url)))
    if start is None:
        raise FetchError(f"{sitemap_url} is not a web address Parley can read.")
    async with Fetcher(
        max_bytes=max_bytes,
        timeout_s=timeout_s,
        allow_loopback=allow_loopback,
        user_agent=user_agent,
    ) as fetcher:
        walk = _SitemapWalk(fetcher, max_urls, max_bytes, include, exclude)
        await walk.read_root(start)
        await walk.read_children(max_sitemaps - 1, on_failure)
        return list(walk.pages.values())


class _SitemapWalk:
    def __init__(
        self,
        fetcher: Fetcher,
        max_urls: int,
        max_bytes: int,
        include: Sequence[str],
        exclude: Sequence[str],
    ) -> None:
        self.fetcher = fetcher
        self.robots = RobotsCache(fetcher)
        self.max_urls = max_urls
        self.max_bytes = max_bytes
        self.include = include
        self.exclude = exclude
        self.origin: tuple[str, str, int] = ("", "", 0)
        self.queue: deque[tuple[str, int]] = deque()
        self.seen_sitemaps: set[str] = set()
        self.pages: dict[str, SitemapEntry] = {}

    async def read_root(self, url: str) -> None:
        self.seen_sitemaps.add(url)
        result = await self.fetcher.fetch(url)
        final = normalize_url(result.url) or url
        self.origin = origin_of(final)
        policy = await self.robots.policy_for(final)
        if policy.refusal is not None:
            raise FetchError(policy.refusal)
        sitemap = parse_sitemap(result.body, url=url, max_bytes=self.max_bytes)
        await self._take(sitemap, depth=0)

    async def read_children(
        self, budget: int, on_failure: Callable[[str, FetchError], object] | None
    ) -> None:
        while self.queue and budget > 0 and len(self.pages) < self.max_urls:
            url, depth = self.queue.popleft()
            budget -= 1
            try:
                result = await self.fetcher.fetch(url)
                sitemap = parse_sitemap(result.body, url=url, max_bytes=self.max_bytes)
            except FetchError as exc:
                if on_failure is not None:
                    on_failure(url, exc)
                continue
            await self._take(sitemap, depth)

    async def _take(self, sitemap: Sitemap, depth: int) -> None:
        for entry in sitemap.entries:
            url = normalize_url(entry.url)
            if url is None or origin_of(url) != self.origin:
                continue
            if sitemap.is_index:
                if depth + 1 < MAX_SITEMAP_DEPTH and url not in self.seen_sitemaps:
                    self.seen_sitemaps.add(url)
                    self.queue.append((url, depth + 1))
                continue
            if len(self.pages) >= self.max_urls:
                return
            if url in self.pages or not matches_patterns(url, self.include, self.exclude):
                continue
            if await self.robots.allows(url):
                self.pages[url] = SitemapEntry(url, entry.lastmod)
