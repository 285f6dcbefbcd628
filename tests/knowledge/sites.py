"""A small website on 127.0.0.1 for fetch and crawl tests, with routes set per test.

    async with LoopbackSite() as site:
        site.page("/", html_page(links=["/a"]))
        site.redirect("/old", "/")
        url = site.url("/")

It answers conditional requests (ETag, Last-Modified) with 304, can gzip, delay or stream a
body without a length, and records every request it gets. Below it: fake DNS answers, a
self-signed certificate and sitemap builders.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from ipaddress import ip_address
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest
from aiohttp import web

from backend.knowledge.fetching import guard
from backend.knowledge.fetching.guard import IPAddress


@dataclass
class Page:
    body: bytes
    content_type: str | None = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    delay_s: float = 0.0
    gzip: bool = False  # sent with Content-Encoding: gzip


@dataclass
class Redirect:
    location: str
    status: int = 302


@dataclass
class Stream:
    """A body sent in chunks without Content-Length, `count` times `chunk`."""

    chunk: bytes
    count: int
    content_type: str = "text/html; charset=utf-8"


Route = Page | Redirect | Stream


@dataclass(frozen=True)
class SeenRequest:
    path: str  # with the query
    headers: dict[str, str]


def html_page(title: str = "Page", links: Sequence[str] = (), body: str = "") -> bytes:
    anchors = "".join(f'<li><a href="{escape(link)}">{escape(link)}</a></li>' for link in links)
    return (
        f"<!doctype html><html><head><title>{escape(title)}</title></head>"
        f"<body><h1>{escape(title)}</h1>{body}<ul>{anchors}</ul></body></html>"
    ).encode()


class LoopbackSite:
    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[SeenRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._ssl_context = ssl_context
        self._runner: web.AppRunner | None = None
        self.port = 0

    def page(self, path: str, body: bytes | str, **options: object) -> Page:
        page = Page(body.encode() if isinstance(body, str) else body, **options)  # type: ignore[arg-type]
        self.routes[path] = page
        return page

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.routes[path] = Redirect(location, status)

    def stream(self, path: str, chunk: bytes, count: int, content_type: str = "text/html") -> None:
        self.routes[path] = Stream(chunk, count, content_type)

    @property
    def origin(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.origin + path

    def paths_requested(self) -> list[str]:
        return [request.path for request in self.requests]

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        # Handlers stop when their client goes away, so a slow page does not hold up cleanup.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(SeenRequest(request.path_qs, dict(request.headers)))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            route = self.routes.get(request.path_qs) or self.routes.get(request.path)
            if route is None:
                return web.Response(status=404, text="not found")
            if isinstance(route, Redirect):
                return web.Response(status=route.status, headers={"Location": route.location})
            if isinstance(route, Stream):
                return await _stream(request, route)
            return await _page(request, route)
        finally:
            self.in_flight -= 1


async def _page(request: web.Request, page: Page) -> web.Response:
    if page.delay_s:
        await asyncio.sleep(page.delay_s)
    headers = dict(page.headers)
    if page.etag:
        headers["ETag"] = page.etag
    if page.last_modified:
        headers["Last-Modified"] = page.last_modified
    etag_matches = page.etag is not None and request.headers.get("If-None-Match") == page.etag
    date_matches = (
        page.last_modified is not None
        and request.headers.get("If-Modified-Since") == page.last_modified
    )
    if etag_matches or date_matches:
        return web.Response(status=304, headers=headers)
    body = page.body
    if page.gzip:
        body = gzip.compress(body, compresslevel=6)
        headers["Content-Encoding"] = "gzip"
    if page.content_type:
        headers["Content-Type"] = page.content_type
    return web.Response(status=page.status, body=body, headers=headers)


async def _stream(request: web.Request, stream: Stream) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": stream.content_type})
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        for _ in range(stream.count):
            await response.write(stream.chunk)
    except (ConnectionError, RuntimeError):
        return response  # the client stopped reading, as it should past its limit
    await response.write_eof()
    return response


# Other stand-ins for the outside world: DNS answers, a TLS certificate, sitemap files.


def fake_dns(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> list[str]:
    """Answer the names in `table` with its addresses; return the names asked for."""
    asked: list[str] = []
    real = guard.resolve_host

    async def resolve(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        if host in table:
            return [ip_address(address) for address in table[host]]
        return await real(host, port)

    monkeypatch.setattr(guard, "resolve_host", resolve)
    return asked


def self_signed_certificate(directory: Path, hostname: str) -> tuple[Path, Path]:
    """A certificate for `hostname` and its key, as PEM files; the certificate is its own CA."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def urlset(urls: list[str]) -> bytes:
    entries = "".join(f"<url><loc>{url}</loc></url>" for url in urls)
    return (
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>'
    ).encode()


def sitemap_index(urls: list[str]) -> bytes:
    entries = "".join(f"<sitemap><loc>{url}</loc></sitemap>" for url in urls)
    return (
        f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}'
        "</sitemapindex>"
    ).encode()
