"""Fetching one URL within limits: guarded redirects, conditional GET and a bounded body.

The body is read as it arrives and decompressed here (not by httpx), a bounded amount at a
time, so neither a huge page nor a small compressed bomb can take more memory than the limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import ssl
import zlib
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import urlsplit

import httpx

from backend.knowledge.fetching.errors import FetchError, PageTooLarge, UnsupportedContent
from backend.knowledge.fetching.guard import GuardedTransport, check_url

DEFAULT_USER_AGENT = "ParleyBot/1.0"
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"

# Called with each redirect target before it is requested; raises to stop following.
RedirectCheck = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class FetchResult:
    url: str  # after redirects
    requested_url: str
    status: int
    content_type: str  # media type only, lower case: "text/html"
    charset: str | None
    etag: str | None
    last_modified: str | None
    body: bytes  # empty when not modified
    sha256: str | None  # hex digest of body; None when not modified

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    def text(self) -> str:
        try:
            return self.body.decode(self.charset or "utf-8", errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


class Fetcher:
    """A guarded HTTP client with Parley's limits, shared by the requests of one fetch or crawl."""

    def __init__(
        self,
        *,
        max_bytes: int,
        timeout_s: float,
        allow_loopback: bool,
        user_agent: str = DEFAULT_USER_AGENT,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(allow_loopback=allow_loopback, verify=verify),
            timeout=timeout_s,
            follow_redirects=False,
            # Proxies from the environment would bypass the guarded transport.
            trust_env=False,
            headers={
                "User-Agent": user_agent,
                "Accept": _ACCEPT,
                "Accept-Encoding": "gzip, deflate",
            },
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept_types: Collection[str] | None = None,
        on_redirect: RedirectCheck | None = None,
        max_bytes: int | None = None,
        truncate: bool = False,
    ) -> FetchResult:
        """GET `url`, following up to MAX_REDIRECTS redirects, each one checked by the guard.

        `accept_types` (media types) refuses other content before its body is read.
        `truncate` keeps the first `max_bytes` of a larger body instead of failing.
        """
        request = _Request(
            url=url,
            headers=_conditional_headers(etag, last_modified),
            accept_types=accept_types,
            on_redirect=on_redirect,
            max_bytes=self.max_bytes if max_bytes is None else max_bytes,
            truncate=truncate,
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await self._follow(request)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise FetchError(f"{url} did not answer within {self.timeout_s:g} seconds.") from exc
        except httpx.HTTPError as exc:
            raise FetchError(f"Parley could not fetch {url}: {_describe(exc)}.") from exc
        if result.not_modified:
            return _with_validators(result, etag, last_modified)
        return result

    async def _follow(self, request: _Request) -> FetchResult:
        current = request.url
        for _ in range(MAX_REDIRECTS + 1):
            check_url(current)
            response = await self._client.send(
                self._client.build_request("GET", current, headers=request.headers),
                stream=True,
            )
            try:
                target = _redirect_target(response, current)
                if target is None:
                    return await _complete(request, current, response)
            finally:
                await response.aclose()
            if request.on_redirect is not None:
                await request.on_redirect(target)
            current = target
        raise FetchError(
            f"{request.url} redirects more than {MAX_REDIRECTS} times; "
            "use the address it finally leads to."
        )


async def fetch(
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int,
    timeout_s: float,
    allow_loopback: bool,
    user_agent: str = DEFAULT_USER_AGENT,
    accept_types: Collection[str] | None = None,
) -> FetchResult:
    """Fetch one URL (conditionally, given the validators of the last fetch)."""
    async with Fetcher(
        max_bytes=max_bytes,
        timeout_s=timeout_s,
        allow_loopback=allow_loopback,
        user_agent=user_agent,
    ) as fetcher:
        return await fetcher.fetch(
            url, etag=etag, last_modified=last_modified, accept_types=accept_types
        )


@dataclass(frozen=True, slots=True)
class _Request:
    url: str
    headers: dict[str, str]
    accept_types: Collection[str] | None
    on_redirect: RedirectCheck | None
    max_bytes: int
    truncate: bool


def _conditional_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def _redirect_target(response: httpx.Response, current: str) -> str | None:
    location = response.headers.get("location")
    if response.status_code not in REDIRECT_STATUSES or not location:
        return None
    try:
        target = httpx.URL(current).join(location.strip()).copy_with(fragment=None)
    except httpx.InvalidURL as exc:
        raise FetchError(f"{current} redirects to an invalid address ({location}).") from exc
    return str(target)


async def _complete(request: _Request, url: str, response: httpx.Response) -> FetchResult:
    status = response.status_code
    if status >= 400:
        raise FetchError(_status_message(url, response), http_status=status)
    if status != 304 and not 200 <= status < 300:
        raise FetchError(f"{url} answered HTTP {status} without a page.", http_status=status)
    content_type, charset = _content_type(response, url)
    body = b""
    if status != 304:
        if request.accept_types is not None and content_type not in request.accept_types:
            raise UnsupportedContent(
                f"{url} is a {content_type} file, which Parley does not read.", http_status=status
            )
        body = await read_body(
            response, url=url, limit=request.max_bytes, truncate=request.truncate
        )
    return FetchResult(
        url=url,
        requested_url=request.url,
        status=status,
        content_type=content_type,
        charset=charset,
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
        body=body,
        sha256=None if status == 304 else hashlib.sha256(body).hexdigest(),
    )


def _with_validators(
    result: FetchResult, etag: str | None, last_modified: str | None
) -> FetchResult:
    """A 304 may omit its validators; the ones sent are still the current ones then."""
    return FetchResult(
        url=result.url,
        requested_url=result.requested_url,
        status=result.status,
        content_type=result.content_type,
        charset=result.charset,
        etag=result.etag or etag,
        last_modified=result.last_modified or last_modified,
        body=result.body,
        sha256=result.sha256,
    )


def _status_message(url: str, response: httpx.Response) -> str:
    status = response.status_code
    if status in (404, 410):
        return f"The page {url} was not found (HTTP {status}); check the address."
    if status in (401, 403):
        return (
            f"{url} requires a login or refuses access (HTTP {status}); "
            "Parley can only read public pages."
        )
    if status == 429:
        return f"{url} is limiting how often it can be read (HTTP 429); try again later."
    if status >= 500:
        return f"The site had a server error (HTTP {status}) answering {url}; try again later."
    return f"{url} answered HTTP {status} ({response.reason_phrase})."


def _content_type(response: httpx.Response, url: str) -> tuple[str, str | None]:
    media, _, params = response.headers.get("content-type", "").partition(";")
    media = media.strip().lower()
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'").lower() or None
    if not media:
        media = mimetypes.guess_type(urlsplit(url).path)[0] or "application/octet-stream"
    return media, charset


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


class _Decoder(Protocol):
    def feed(self, data: bytes, room: int) -> bytes: ...

    def finished(self) -> bool: ...


class _Identity:
    def feed(self, data: bytes, room: int) -> bytes:
        return data

    def finished(self) -> bool:
        return True


class _Inflater:
    """gzip or zlib data, decompressed at most `room` bytes at a time."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)  # either header, detected

    def feed(self, data: bytes, room: int) -> bytes:
        # `room` is at least 1 (zero would mean "no limit" to zlib).
        return self._inflate.decompress(data, room)

    def finished(self) -> bool:
        return self._inflate.eof


def _decoder_for(content_encoding: str, url: str) -> _Decoder:
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return _Identity()
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _Inflater()
    raise FetchError(f"{url} is sent with {encoding} compression, which Parley does not read.")


async def read_body(response: httpx.Response, *, url: str, limit: int, truncate: bool) -> bytes:
    """The decoded body of a streamed response, never holding more than `limit` (+ one chunk)."""
    decoder = _decoder_for(response.headers.get("content-encoding", ""), url)
    declared = response.headers.get("content-length", "")
    identity = isinstance(decoder, _Identity)
    if identity and not truncate and declared.isdigit() and int(declared) > limit:
        raise too_large(url, limit)
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            body += decoder.feed(chunk, limit - len(body) + 1)
            if len(body) > limit:
                if truncate:
                    return bytes(body[:limit])
                raise too_large(url, limit)
    except zlib.error as exc:
        raise FetchError(f"{url} sent compressed data that Parley could not decompress.") from exc
    if not decoder.finished():
        raise FetchError(f"{url} ended in the middle of its compressed data; try again later.")
    return bytes(body)


def inflate(data: bytes, *, url: str, limit: int) -> bytes:
    """Decompress gzip or zlib `data` (a .gz file, say), refusing output over `limit` bytes."""
    inflater = _Inflater()
    try:
        out = inflater.feed(data, limit + 1)
    except zlib.error as exc:
        raise FetchError(f"{url} is not valid compressed data.") from exc
    if len(out) > limit:
        raise too_large(url, limit)
    if not inflater.finished():
        raise FetchError(f"{url} ends in the middle of its compressed data.")
    return out


def too_large(url: str, limit: int) -> PageTooLarge:
    return PageTooLarge(
        f"{url} is larger than the {describe_size(limit)} limit for one page, "
        "so Parley stopped reading it."
    )


def describe_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.3g} MB"
    if size >= 1024:
        return f"{size / 1024:.3g} KB"
    return f"{size} bytes"
