"""The links of an HTML page a crawl follows, and what its robots meta tags allow."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin

from backend.knowledge.fetching.urls import normalize_url

# Meta tags addressed to every robot or to Parley's.
_ROBOTS_META_NAMES = frozenset({"robots", "parleybot"})


@dataclass(frozen=True, slots=True)
class PageLinks:
    links: list[str]  # normalised, in page order, without duplicates
    follow: bool  # false under <meta name="robots" content="nofollow">
    index: bool  # false under <meta name="robots" content="noindex">


class _LinkCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.base: str | None = None
        self.follow = True
        self.index = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        rel = values.get("rel", "").lower().split()
        href = values.get("href", "")
        followed = (tag in ("a", "area") and "nofollow" not in rel) or (
            tag == "link" and "canonical" in rel
        )
        if followed and href:
            self.hrefs.append(href)
        elif tag == "base" and href and self.base is None:
            self.base = href
        elif tag == "meta" and values.get("name", "").lower() in _ROBOTS_META_NAMES:
            directives = {part.strip() for part in values.get("content", "").lower().split(",")}
            if directives & {"nofollow", "none"}:
                self.follow = False
            if directives & {"noindex", "none"}:
                self.index = False


def extract_links(html: str, page_url: str) -> PageLinks:
    """The http(s) links of `html`, resolved against its <base href> or `page_url`."""
    collector = _LinkCollector()
    try:
        collector.feed(html)
        collector.close()
    except (AssertionError, ValueError):
        pass  # html.parser gives up on some broken markup; keep what it found before that
    base = urljoin(page_url, collector.base) if collector.base else page_url
    links: dict[str, None] = {}
    for href in collector.hrefs:
        link = normalize_url(href, base)
        if link is not None:
            links.setdefault(link)
    return PageLinks(links=list(links), follow=collector.follow, index=collector.index)
