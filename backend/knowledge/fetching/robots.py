"""robots.txt: read once per origin and crawl, and asked before every page a crawl fetches.

What an answer means follows RFC 9309: a robots.txt that is missing or refused (HTTP 4xx) allows
everything; one that cannot be read (HTTP 5xx, 429, a timeout, a network error) disallows the
whole site, since Parley cannot know what the owner asked for; try again later. Only the first
500 KB are read, as the RFC allows.

Rules are matched by the standard library's parser, which takes the first matching rule of a
group rather than the longest one; sites that order Allow before Disallow read as intended.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.robotparser import RobotFileParser

from backend.knowledge.fetching.errors import AddressRefused, FetchError
from backend.knowledge.fetching.fetch import Fetcher
from backend.knowledge.fetching.urls import root_url

ROBOTS_AGENT = "ParleyBot"
ROBOTS_MAX_BYTES = 500 * 1024


@dataclass(frozen=True, slots=True)
class RobotsPolicy:
    robots_url: str
    rules: RobotFileParser | None  # None: no robots.txt, everything allowed
    refusal: str | None = None  # set when robots.txt could not be read: nothing allowed

    def allows(self, url: str) -> bool:
        if self.refusal is not None:
            return False
        return self.rules is None or self.rules.can_fetch(ROBOTS_AGENT, url)

    def sitemaps(self) -> list[str]:
        return list((self.rules.site_maps() if self.rules else None) or [])

    def why_refused(self, url: str) -> str:
        """A sentence for a person on why `url` may not be fetched."""
        return self.refusal or (
            f"The site's robots.txt ({self.robots_url}) does not allow {ROBOTS_AGENT} "
            f"to read {url}."
        )


async def fetch_robots(fetcher: Fetcher, url: str) -> RobotsPolicy:
    """The robots.txt policy of the origin of `url`."""
    robots_url = root_url(url) + "robots.txt"
    try:
        result = await fetcher.fetch(robots_url, max_bytes=ROBOTS_MAX_BYTES, truncate=True)
    except AddressRefused:
        raise  # the site itself is refused, not just its robots.txt
    except FetchError as exc:
        status = exc.http_status
        if status is not None and 400 <= status < 500 and status != 429:
            return RobotsPolicy(robots_url, rules=None)
        reason = f"HTTP {status}" if status is not None else exc.detail.rstrip(".")
        return RobotsPolicy(
            robots_url,
            rules=None,
            refusal=(
                f"Parley could not read {robots_url} ({reason}), so it does not crawl that site "
                "for now; try again later."
            ),
        )
    rules = RobotFileParser(robots_url)
    rules.parse(result.text().lstrip("\ufeff").splitlines())
    return RobotsPolicy(robots_url, rules=rules)


@dataclass
class RobotsCache:
    """robots.txt policies by origin, each fetched once for the life of the cache (one crawl)."""

    fetcher: Fetcher
    _policies: dict[str, RobotsPolicy] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def policy_for(self, url: str) -> RobotsPolicy:
        origin = root_url(url)
        lock = self._locks.setdefault(origin, asyncio.Lock())
        async with lock:
            if origin not in self._policies:
                self._policies[origin] = await fetch_robots(self.fetcher, origin)
        return self._policies[origin]

    async def allows(self, url: str) -> bool:
        return (await self.policy_for(url)).allows(url)
