"""URL normalisation, origins and the include/exclude patterns of website sources.

Patterns are globs (Python's `fnmatch`, case-sensitive): `*` matches any run of characters,
`/` included, `?` one character and `[abc]` one of a set. A pattern is matched against the
path and query of a URL (`/docs/*`, `*.pdf`, `/blog/2023/*`), or against the whole URL when it
contains `://` (`https://example.com/docs/*`). Globs, not regular expressions: they are what
people write without thinking about escaping, and they cannot be made to backtrack for minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from backend.knowledge.fetching.guard import ALLOWED_SCHEMES, DEFAULT_PORTS

Origin = tuple[str, str, int]

# Characters left as they are when re-quoting: reserved ones, and "%" so escapes stay escapes.
_SAFE_PATH = "/%:@!$&'()*+,;=-._~"
_SAFE_QUERY = _SAFE_PATH + "?"


def normalize_url(url: str, base: str | None = None) -> str | None:
    """The form Parley keys pages by, or None for a link it does not follow.

    Resolves `url` against `base`, keeps http(s) links without credentials, lower-cases scheme
    and host, drops the default port and the fragment, and keeps the query (re-quoted only).
    """
    raw = url.strip()
    if base is not None:
        raw = urljoin(base, raw)
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ALLOWED_SCHEMES or not host or parts.username or parts.password:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = quote(parts.path or "/", safe=_SAFE_PATH)
    query = quote(parts.query, safe=_SAFE_QUERY)
    return urlunsplit((scheme, netloc, path, query, ""))


def origin_of(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme, 0)


def root_url(url: str) -> str:
    """Scheme and authority of `url`, with a "/" path."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/", "", ""))


def matches_patterns(url: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether `url` is kept: it matches an include pattern (or there are none) and no exclude."""
    if any(_matches(url, pattern) for pattern in exclude):
        return False
    return not include or any(_matches(url, pattern) for pattern in include)


def _matches(url: str, pattern: str) -> bool:
    if "://" in pattern:
        return fnmatchcase(url, pattern)
    parts = urlsplit(url)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    return fnmatchcase(target, pattern)
