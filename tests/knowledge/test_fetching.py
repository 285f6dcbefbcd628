"""Fetching for URL and website sources, against a real web server on 127.0.0.1.

Covers the SSRF guard (each class of address, names that resolve to them, redirects to them,
connections pinned to the vetted address), the fetch limits, conditional GET, robots.txt,
sitemaps and crawling.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import ssl
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from ipaddress import ip_address
from pathlib import Path

import pytest

from backend.knowledge.fetching.crawl import crawl
from backend.knowledge.fetching.errors import (
    AddressRefused,
    FetchError,
    PageTooLarge,
    UnsupportedContent,
)
from backend.knowledge.fetching.fetch import Fetcher, FetchResult, fetch
from backend.knowledge.fetching.guard import check_url, refusal_reason
from backend.knowledge.fetching.links import extract_links
from backend.knowledge.fetching.sitemap import SitemapError, discover_sitemap_urls, parse_sitemap
from backend.knowledge.fetching.urls import matches_patterns, normalize_url
from tests.knowledge.sites import (
    LoopbackSite,
    fake_dns,
    html_page,
    self_signed_certificate,
    sitemap_index,
    urlset,
)

MB = 1024 * 1024
UNSPECIFIED = "0.0.0.0"  # noqa: S104 - an address to refuse, nothing binds it


@pytest.fixture
async def site() -> AsyncIterator[LoopbackSite]:
    async with LoopbackSite() as running:
        yield running


async def get(url: str, *, allow_loopback: bool = True, **options: object) -> FetchResult:
    """fetch() with test limits: 1 MB, 5 s."""
    options.setdefault("max_bytes", MB)
    options.setdefault("timeout_s", 5.0)
    return await fetch(url, allow_loopback=allow_loopback, **options)  # type: ignore[arg-type]


# The SSRF guard: addresses


@pytest.mark.parametrize(
    ("address", "phrase"),
    [
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("169.254.169.254", "link-local"),
        ("169.254.1.1", "link-local"),
        (UNSPECIFIED, "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "reserved"),
        ("198.18.0.1", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "reserved"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:0.0.0.0", "unspecified"),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 form of 169.254.169.254
        ("2002:a00:1::1", "private"),  # 6to4 form of 10.0.0.1
        ("::a00:1", "private"),  # IPv4-compatible form of 10.0.0.1
    ],
)
def test_refuses_each_class_of_non_public_address(address: str, phrase: str) -> None:
    reason = refusal_reason(ip_address(address))
    assert reason is not None
    assert phrase in reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal_reason(ip_address(address)) is None


def test_allow_loopback_admits_loopback_only() -> None:
    for address in ("127.0.0.1", "127.0.0.2", "::1"):
        assert refusal_reason(ip_address(address), allow_loopback=True) is None
    for address in ("10.0.0.1", "169.254.169.254", UNSPECIFIED, "::ffff:127.0.0.1", "fe80::1"):
        assert refusal_reason(ip_address(address), allow_loopback=True) is not None


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("ftp://example.com/file", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("gopher://example.com/", "only http:// and https://"),
        ("http://user:secret@example.com/", "user name or password"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://METADATA.google.internal./", "metadata"),
        ("http://db.corp.internal/", "internal"),
        ("http://instance-data/latest/", "metadata"),
    ],
)
def test_check_url_refuses_schemes_credentials_and_internal_names(url: str, phrase: str) -> None:
    with pytest.raises(AddressRefused) as refused:
        check_url(url)
    assert phrase in refused.value.detail


@pytest.mark.parametrize(
    "make_url",
    [
        lambda port: f"http://127.0.0.1:{port}/",
        lambda port: f"http://localhost:{port}/",
        lambda port: f"http://[::1]:{port}/",
        lambda port: f"http://2130706433:{port}/",  # 127.0.0.1 as one number
        lambda port: f"http://[::ffff:127.0.0.1]:{port}/",
        lambda port: f"http://0.0.0.0:{port}/",
        lambda port: "http://10.0.0.1/",
        lambda port: "http://169.254.169.254/latest/meta-data/",
        lambda port: "http://[fd00::1]/",
    ],
)
async def test_fetch_refuses_non_public_addresses(
    site: LoopbackSite, make_url: Callable[[int], str]
) -> None:
    site.page("/", html_page())
    with pytest.raises(AddressRefused) as refused:
        await get(make_url(site.port), allow_loopback=False)
    assert "Parley only fetches public web pages" in refused.value.detail
    assert site.requests == []


async def test_unspecified_and_mapped_loopback_stay_refused_with_loopback_allowed(
    site: LoopbackSite,
) -> None:
    site.page("/", html_page())
    for url in (
        site.url().replace("127.0.0.1", UNSPECIFIED),
        f"http://[::ffff:127.0.0.1]:{site.port}/",
    ):
        with pytest.raises(AddressRefused):
            await get(url, allow_loopback=True)
    assert site.requests == []


async def test_loopback_is_fetched_when_allowed(site: LoopbackSite) -> None:
    site.page("/", html_page("Home"))
    result = await get(site.url(), allow_loopback=True)
    assert result.status == 200
    assert b"Home" in result.body
    # localhost may answer ::1 first; the server listens on 127.0.0.1 only.
    by_name = await get(f"http://localhost:{site.port}/", allow_loopback=True)
    assert b"Home" in by_name.body


async def test_name_resolving_to_private_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = fake_dns(monkeypatch, {"docs.example.com": ["10.0.0.5"]})
    with pytest.raises(AddressRefused) as refused:
        await get("https://docs.example.com/guide", allow_loopback=False)
    assert refused.value.reason == (
        "The address docs.example.com resolves to a private network address (10.0.0.5); "
        "Parley only fetches public web pages."
    )
    assert asked == ["docs.example.com"]


async def test_name_with_one_private_address_among_public_ones_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_dns(monkeypatch, {"mixed.example.com": ["93.184.216.34", "169.254.169.254"]})
    with pytest.raises(AddressRefused, match=r"link-local address \(.*\) \(169\.254\.169\.254\)"):
        await get("http://mixed.example.com/", allow_loopback=False)


async def test_connection_goes_to_the_vetted_address_with_the_original_host(
    site: LoopbackSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    # docs.parley.test exists in no DNS: only a connection to the vetted address can succeed.
    asked = fake_dns(monkeypatch, {"docs.parley.test": ["127.0.0.1"]})
    site.page("/a", html_page(links=["/b"]))
    site.page("/b", html_page("B"))
    async with Fetcher(max_bytes=MB, timeout_s=5, allow_loopback=True) as fetcher:
        first = await fetcher.fetch(f"http://docs.parley.test:{site.port}/a")
        second = await fetcher.fetch(f"http://docs.parley.test:{site.port}/b")
    assert first.url == f"http://docs.parley.test:{site.port}/a"
    assert b"B" in second.body
    assert [r.headers["Host"] for r in site.requests] == [f"docs.parley.test:{site.port}"] * 2
    assert asked == ["docs.parley.test"]  # resolved once, then pinned


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://rebound.parley.test/",  # resolves to 10.0.0.7
        "file:///etc/passwd",
    ],
)
async def test_redirect_to_forbidden_address_is_refused_on_the_hop(
    site: LoopbackSite, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    fake_dns(monkeypatch, {"rebound.parley.test": ["10.0.0.7"]})
    site.redirect("/go", target)
    with pytest.raises(AddressRefused):
        await get(site.url("/go"), allow_loopback=True)
    assert site.paths_requested() == ["/go"]


async def test_tls_to_a_pinned_address_verifies_the_original_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed_certificate(tmp_path, "secure.parley.test")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    fake_dns(monkeypatch, {"secure.parley.test": ["127.0.0.1"]})
    async with LoopbackSite(ssl_context=server_context) as secure:
        secure.page("/", html_page("Secure"))
        async with Fetcher(
            max_bytes=MB, timeout_s=5, allow_loopback=True, verify=client_context
        ) as fetcher:
            result = await fetcher.fetch(f"https://secure.parley.test:{secure.port}/")
            assert b"Secure" in result.body
            # The certificate is for the name, not the address: verification is really on.
            with pytest.raises(FetchError, match="certificate"):
                await fetcher.fetch(f"https://127.0.0.1:{secure.port}/")


# Fetch: metadata, redirects, conditional GET, limits


async def test_fetch_records_final_url_and_metadata(site: LoopbackSite) -> None:
    body = html_page("Final")
    site.redirect("/start", "/middle", status=301)
    site.redirect("/middle", "/final#section", status=307)
    site.page(
        "/final",
        body,
        content_type="text/html; charset=ISO-8859-1",
        etag='"v1"',
        last_modified="Wed, 21 Oct 2015 07:28:00 GMT",
    )
    result = await get(site.url("/start"))
    assert result.url == site.url("/final")
    assert result.requested_url == site.url("/start")
    assert (result.status, result.content_type, result.charset) == (200, "text/html", "iso-8859-1")
    assert result.etag == '"v1"'
    assert result.last_modified == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert result.body == body
    assert result.sha256 == hashlib.sha256(body).hexdigest()
    assert not result.not_modified
    assert site.requests[0].headers["User-Agent"].startswith("ParleyBot/")


async def test_too_many_redirects(site: LoopbackSite) -> None:
    for hop in range(7):
        site.redirect(f"/r{hop}", f"/r{hop + 1}")
    with pytest.raises(FetchError, match="redirects more than 5 times"):
        await get(site.url("/r0"))
    assert len(site.requests) == 6


async def test_conditional_get_answers_not_modified(site: LoopbackSite) -> None:
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"
    site.page("/doc", html_page("Doc"), etag='"abc"', last_modified=stamp)

    by_etag = await get(site.url("/doc"), etag='"abc"')
    assert by_etag.not_modified
    assert (by_etag.body, by_etag.sha256, by_etag.etag) == (b"", None, '"abc"')

    by_date = await get(site.url("/doc"), last_modified=stamp)
    assert by_date.not_modified
    assert by_date.last_modified == stamp

    changed = await get(site.url("/doc"), etag='"old"')
    assert changed.status == 200
    assert b"Doc" in changed.body
    assert site.requests[0].headers["If-None-Match"] == '"abc"'
    assert site.requests[1].headers["If-Modified-Since"] == stamp


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        (404, "was not found (HTTP 404)"),
        (403, "refuses access (HTTP 403)"),
        (429, "(HTTP 429)"),
        (503, "server error (HTTP 503)"),
        (418, "HTTP 418"),
    ],
)
async def test_error_status_is_a_fetch_error_with_the_status(
    site: LoopbackSite, status: int, phrase: str
) -> None:
    site.page("/broken", "nope", status=status)
    with pytest.raises(FetchError) as failed:
        await get(site.url("/broken"))
    assert phrase in failed.value.detail
    assert failed.value.http_status == status


TEN_MB_ONE_LINE = b"<html><body><p>" + b"word " * 2_000_000 + b"</p></body></html>"


async def test_ten_megabyte_single_line_page_is_refused_past_the_limit(site: LoopbackSite) -> None:
    site.page("/big", TEN_MB_ONE_LINE)
    with pytest.raises(PageTooLarge, match="larger than the 1 MB limit"):
        await get(site.url("/big"), max_bytes=MB)


async def test_ten_megabyte_single_line_page_is_read_within_a_larger_limit(
    site: LoopbackSite,
) -> None:
    site.page("/big", TEN_MB_ONE_LINE)
    result = await get(site.url("/big"), max_bytes=16 * MB)
    assert len(result.body) == len(TEN_MB_ONE_LINE)
    assert result.sha256 == hashlib.sha256(TEN_MB_ONE_LINE).hexdigest()


async def test_body_without_length_is_cut_off_at_the_limit_in_bounded_memory(
    site: LoopbackSite,
) -> None:
    site.stream("/endless", b"x" * 65536, count=1000)  # 64 MB if read to the end
    site.stream("/short", b"x" * 65536, count=2)
    await get(site.url("/short"))  # imports and pools are warm before memory is measured
    tracemalloc.start()
    try:
        with pytest.raises(PageTooLarge):
            await get(site.url("/endless"), max_bytes=MB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2.5 * MB
    assert len(site.requests) == 2


async def test_compressed_bomb_is_cut_off_at_the_limit(site: LoopbackSite) -> None:
    site.page("/bomb", b"\0" * (64 * MB), gzip=True)  # about 64 KB on the wire
    with pytest.raises(PageTooLarge):
        await get(site.url("/bomb"), max_bytes=MB)
    site.page("/small", b"hello " * 1000, gzip=True, content_type="text/plain")
    result = await get(site.url("/small"))
    assert result.body == b"hello " * 1000


async def test_slow_page_times_out(site: LoopbackSite) -> None:
    site.page("/slow", html_page(), delay_s=3)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"did not answer within 0\.3 seconds"):
        await get(site.url("/slow"), timeout_s=0.3)
    assert time.monotonic() - started < 2


async def test_unaccepted_content_type_is_refused_before_the_body(site: LoopbackSite) -> None:
    site.page("/image.bin", b"\x89PNG" + b"\0" * 100, content_type="image/png")
    with pytest.raises(UnsupportedContent, match="image/png"):
        await get(site.url("/image.bin"), accept_types={"text/html"})


# robots.txt and crawling


async def collect(start: str, **options: object) -> list[FetchResult]:
    options.setdefault("max_depth", 5)
    options.setdefault("max_pages", 50)
    options.setdefault("max_bytes", MB)
    options.setdefault("timeout_s", 5.0)
    options.setdefault("allow_loopback", True)
    pages = crawl(start, **options)  # type: ignore[arg-type]
    async with contextlib.aclosing(pages):
        return [page async for page in pages]


def paths(results: list[FetchResult], site: LoopbackSite) -> set[str]:
    return {result.url.removeprefix(site.origin) for result in results}


async def test_crawl_follows_links_to_the_depth_limit(site: LoopbackSite) -> None:
    site.page("/", html_page(links=["/a"]))
    site.page("/a", html_page(links=["/b"]))
    site.page("/b", html_page(links=["/c"]))
    site.page("/c", html_page())
    assert paths(await collect(site.url(), max_depth=2), site) == {"/", "/a", "/b"}
    assert "/c" not in site.paths_requested()
    assert paths(await collect(site.url(), max_depth=0), site) == {"/"}


async def test_crawl_stops_at_the_page_limit_with_bounded_concurrency(site: LoopbackSite) -> None:
    links = [f"/p{n}" for n in range(20)]
    site.page("/", html_page(links=links))
    for link in links:
        site.page(link, html_page(link), delay_s=0.05)
    results = await collect(site.url(), max_pages=9)
    assert len(results) == 9
    assert len([p for p in site.paths_requested() if p.startswith("/p")]) == 8
    assert 1 < site.max_in_flight <= 4


async def test_crawl_include_and_exclude_globs(site: LoopbackSite) -> None:
    site.page(
        "/",
        html_page(links=["/docs/intro", "/docs/private/keys", "/blog/post", "/docs/guide?v=2"]),
    )
    for path in ("/docs/intro", "/docs/private/keys", "/blog/post", "/docs/guide"):
        site.page(path, html_page(path))
    results = await collect(site.url(), include=["/docs/*"], exclude=["*/private/*"])
    assert paths(results, site) == {"/docs/intro", "/docs/guide?v=2"}
    requested = site.paths_requested()
    assert "/blog/post" not in requested
    assert "/docs/private/keys" not in requested


async def test_crawl_respects_robots_txt(site: LoopbackSite) -> None:
    site.page(
        "/robots.txt", "User-agent: ParleyBot\nDisallow: /secret\n", content_type="text/plain"
    )
    site.page("/", html_page(links=["/public", "/secret/plans"]))
    site.page("/public", html_page())
    site.page("/secret/plans", html_page())
    assert paths(await collect(site.url()), site) == {"/", "/public"}
    assert "/secret/plans" not in site.paths_requested()
    assert site.paths_requested().count("/robots.txt") == 1


async def test_crawl_start_disallowed_by_robots_raises(site: LoopbackSite) -> None:
    site.page("/robots.txt", "User-agent: *\nDisallow: /\n", content_type="text/plain")
    site.page("/", html_page())
    with pytest.raises(FetchError, match=r"robots\.txt .* does not allow ParleyBot"):
        await collect(site.url())
    assert site.paths_requested() == ["/robots.txt"]


async def test_missing_robots_allows_and_unreadable_robots_disallows(site: LoopbackSite) -> None:
    site.page("/", html_page(links=["/a"]))
    site.page("/a", html_page())
    assert paths(await collect(site.url()), site) == {"/", "/a"}  # robots.txt is a 404

    site.page("/robots.txt", "down", status=503)
    with pytest.raises(FetchError, match=r"could not read .*/robots.txt .*try again later"):
        await collect(site.url())


async def test_crawl_stays_on_origin_and_normalises_links(site: LoopbackSite) -> None:
    site.page(
        "/",
        html_page(
            links=[
                "/a#top",
                "/a#bottom",
                f"http://127.0.0.1:{site.port}/a",
                "http://example.com/elsewhere",
                "mailto:team@example.com",
                "javascript:void(0)",
                "/logo.png",
                "/manual.pdf",
                "/moved",
            ]
        ),
    )
    site.page("/a", html_page())
    site.page("/manual.pdf", b"%PDF-1.4 ...", content_type="application/pdf")
    site.redirect("/moved", "http://example.com/away")
    results = await collect(site.url())
    assert paths(results, site) == {"/", "/a", "/manual.pdf"}
    assert site.paths_requested().count("/a") == 1
    assert "/logo.png" not in site.paths_requested()


async def test_crawl_reports_failed_pages_and_goes_on(site: LoopbackSite) -> None:
    site.page("/", html_page(links=["/missing", "/ok", "/data.bin"]))
    site.page("/ok", html_page())
    site.page("/data.bin", b"\0\1", content_type="application/octet-stream")
    failures: list[tuple[str, FetchError]] = []
    results = await collect(site.url(), on_failure=lambda url, e: failures.append((url, e)))
    assert paths(results, site) == {"/", "/ok"}
    assert {(url.removeprefix(site.origin), type(e)) for url, e in failures} == {
        ("/missing", FetchError),
        ("/data.bin", UnsupportedContent),
    }


async def test_crawl_honours_robots_meta_tags(site: LoopbackSite) -> None:
    nofollow = '<meta name="robots" content="nofollow">'
    site.page("/", html_page(links=["/index-only", "/hidden"]))
    site.page("/index-only", html_page(links=["/never"], body=nofollow))
    site.page("/hidden", html_page(links=["/b"], body='<meta name="robots" content="noindex">'))
    site.page("/b", html_page())
    site.page("/never", html_page())
    assert paths(await collect(site.url()), site) == {"/", "/index-only", "/b"}
    assert "/never" not in site.paths_requested()


async def test_crawl_of_a_ten_megabyte_single_line_page(site: LoopbackSite) -> None:
    site.page("/", html_page(links=["/big"]))
    site.page("/big", TEN_MB_ONE_LINE.replace(b"</p>", b'</p><a href="/after">after</a>'))
    site.page("/after", html_page())
    failures: list[str] = []
    results = await collect(
        site.url(), max_bytes=MB, on_failure=lambda url, e: failures.append(e.detail)
    )
    assert paths(results, site) == {"/"}
    assert len(failures) == 1
    assert "larger than the 1 MB limit" in failures[0]

    results = await collect(site.url(), max_bytes=16 * MB)
    assert paths(results, site) == {"/", "/big", "/after"}


async def test_crawl_start_on_a_private_address_raises() -> None:
    with pytest.raises(AddressRefused):
        await collect("http://192.168.0.10/", allow_loopback=True)


async def test_closing_a_crawl_early_stops_it(site: LoopbackSite) -> None:
    site.page("/", html_page(links=[f"/p{n}" for n in range(30)]))
    for n in range(30):
        site.page(f"/p{n}", html_page(), delay_s=0.02)
    pages = crawl(
        site.url(), max_depth=1, max_pages=100, max_bytes=MB, timeout_s=5, allow_loopback=True
    )
    seen = 0
    async with contextlib.aclosing(pages):
        async for _ in pages:
            seen += 1
            if seen == 3:
                break
    requested = len(site.requests)
    assert requested < 20  # robots.txt, the start page, and at most a few batches
    await asyncio.sleep(0.1)
    assert len(site.requests) == requested


# Links and patterns


def test_extract_links_resolves_base_and_skips_nofollow() -> None:
    html = """<html><head><base href="/docs/"><link rel="canonical" href="/docs/home">
    <link rel="stylesheet" href="/style.css"></head><body>
    <a href="intro">Intro</a><a href="../about?x=1#team">About</a>
    <a rel="nofollow" href="/login">Login</a><a href="HTTP://Example.COM:80/x">X</a>
    <a href="https://example.com:443/y">Y</a><a>no href</a></body></html>"""
    links = extract_links(html, "https://example.com/start")
    assert links.links == [
        "https://example.com/docs/home",
        "https://example.com/docs/intro",
        "https://example.com/about?x=1",
        "http://example.com/x",
        "https://example.com/y",
    ]
    assert links.follow
    assert links.index


def test_normalize_url() -> None:
    assert normalize_url("HTTPS://Docs.Example.com:443/a b?q=1#frag") == (
        "https://docs.example.com/a%20b?q=1"
    )
    assert normalize_url("http://example.com") == "http://example.com/"
    assert normalize_url("http://example.com:8080/x") == "http://example.com:8080/x"
    assert normalize_url("ftp://example.com/") is None
    assert normalize_url("http://user:pw@example.com/") is None
    assert normalize_url("http://example.com:99999/") is None


def test_patterns_are_globs_on_path_and_query_or_whole_url() -> None:
    url = "https://example.com/docs/v2/setup?lang=en"
    assert matches_patterns(url, ["/docs/*"], [])
    assert not matches_patterns(url, ["/blog/*"], [])
    assert not matches_patterns(url, ["/docs/*"], ["*lang=en"])
    assert matches_patterns(url, ["https://example.com/docs/*"], [])
    assert matches_patterns(url, [], [])
    assert not matches_patterns(url, ["/docs/(v1|v2)/.*"], [])  # not a regular expression


# Sitemaps

URLSET = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
  <url><loc>https://example.com/a?x=1&amp;y=2</loc><lastmod>2024-05-01</lastmod>
    <image:image><image:loc>https://example.com/a.png</image:loc></image:image></url>
  <url><loc> https://example.com/b </loc></url>
</urlset>"""


def test_parse_urlset_index_gzip_and_text() -> None:
    sitemap = parse_sitemap(URLSET, max_bytes=MB)
    assert not sitemap.is_index
    assert [(e.url, e.lastmod) for e in sitemap.entries] == [
        ("https://example.com/a?x=1&y=2", "2024-05-01"),
        ("https://example.com/b", None),
    ]
    index = parse_sitemap(
        b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<sitemap><loc>https://example.com/s1.xml</loc></sitemap></sitemapindex>",
        max_bytes=MB,
    )
    assert index.is_index
    assert [e.url for e in index.entries] == ["https://example.com/s1.xml"]
    assert parse_sitemap(gzip.compress(URLSET), max_bytes=MB).entries == sitemap.entries
    text = parse_sitemap(
        b"https://example.com/a\n\nnot a url\nhttp://example.com/b\n", max_bytes=MB
    )
    assert [e.url for e in text.entries] == ["https://example.com/a", "http://example.com/b"]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>&lol9;</loc></url></urlset>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>&secret;</loc></url></urlset>"""


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (BILLION_LAUGHS, "DOCTYPE"),
        (EXTERNAL_ENTITY, "DOCTYPE"),
        (b'<!DOCTYPE urlset SYSTEM "http://10.0.0.1/x.dtd"><urlset/>', "DOCTYPE"),
        (b"<urlset><url><loc>&undefined;</loc></url></urlset>", "not a valid sitemap"),
        (b"<urlset><url><loc>https://example.com/</loc>", "not a valid sitemap"),
        (b"<html><body>Not found</body></html>", "not a sitemap"),
    ],
)
def test_unsafe_or_broken_sitemaps_are_refused(data: bytes, phrase: str) -> None:
    with pytest.raises(SitemapError, match=phrase):
        parse_sitemap(data, max_bytes=MB)


def test_gzip_sitemap_bomb_is_refused() -> None:
    with pytest.raises(PageTooLarge):
        parse_sitemap(gzip.compress(b" " * (32 * MB)), max_bytes=MB)


async def discover(url: str, **options: object) -> list[str]:
    options.setdefault("max_urls", 100)
    options.setdefault("max_bytes", MB)
    options.setdefault("timeout_s", 5.0)
    options.setdefault("allow_loopback", True)
    entries = await discover_sitemap_urls(url, **options)  # type: ignore[arg-type]
    return [entry.url for entry in entries]


async def test_discover_sitemap_index_with_gzip_and_nested_sitemaps(site: LoopbackSite) -> None:
    site.page("/robots.txt", "User-agent: *\nDisallow: /private\n", content_type="text/plain")
    site.page(
        "/sitemap.xml",
        sitemap_index(
            [site.url("/pages.xml.gz"), site.url("/nested.xml"), site.url("/missing.xml")]
        ),
        content_type="application/xml",
    )
    site.page(
        "/pages.xml.gz",
        gzip.compress(
            urlset([site.url("/a"), site.url("/private/b"), "https://example.com/offsite"])
        ),
        content_type="application/gzip",
    )
    site.page("/nested.xml", sitemap_index([site.url("/more.xml"), site.url("/sitemap.xml")]))
    site.page("/more.xml", urlset([site.url("/c"), site.url("/a")]), gzip=True)
    failures: list[str] = []
    found = await discover(site.url("/sitemap.xml"), on_failure=lambda url, e: failures.append(url))
    assert found == [site.url("/a"), site.url("/c")]
    assert failures == [site.url("/missing.xml")]
    assert site.paths_requested().count("/sitemap.xml") == 1  # the cycle is not followed


async def test_discover_sitemap_bounds_and_patterns(site: LoopbackSite) -> None:
    site.page(
        "/sitemap.xml", urlset([site.url(f"/docs/{n}") for n in range(10)] + [site.url("/x")])
    )
    assert len(await discover(site.url("/sitemap.xml"), max_urls=3)) == 3
    found = await discover(site.url("/sitemap.xml"), include=["/docs/[12]"])
    assert found == [site.url("/docs/1"), site.url("/docs/2")]


async def test_discover_sitemap_limits_files_and_depth(site: LoopbackSite) -> None:
    # index -> index -> index -> urlset: the last level is beyond MAX_SITEMAP_DEPTH.
    site.page("/s0.xml", sitemap_index([site.url("/s1.xml")]))
    site.page("/s1.xml", sitemap_index([site.url("/s2.xml")]))
    site.page("/s2.xml", sitemap_index([site.url("/s3.xml")]))
    site.page("/s3.xml", urlset([site.url("/deep")]))
    assert await discover(site.url("/s0.xml")) == []
    assert "/s3.xml" not in site.paths_requested()

    site.page("/wide.xml", sitemap_index([site.url(f"/w{n}.xml") for n in range(10)]))
    for n in range(10):
        site.page(f"/w{n}.xml", urlset([site.url(f"/page{n}")]))
    assert len(await discover(site.url("/wide.xml"), max_sitemaps=4)) == 3


async def test_discover_sitemap_root_failures_raise(site: LoopbackSite) -> None:
    site.page("/bomb.xml", BILLION_LAUGHS)
    with pytest.raises(SitemapError, match="DOCTYPE"):
        await discover(site.url("/bomb.xml"))
    with pytest.raises(FetchError, match="HTTP 404"):
        await discover(site.url("/none.xml"))
    with pytest.raises(AddressRefused):
        await discover(site.url("/sitemap.xml"), allow_loopback=False)


async def test_discover_sitemap_needs_a_readable_robots_txt(site: LoopbackSite) -> None:
    site.page("/sitemap.xml", urlset([site.url("/a")]))
    site.page("/robots.txt", "busy", status=503)
    with pytest.raises(FetchError, match=r"could not read .*robots\.txt \(HTTP 503\)"):
        await discover(site.url("/sitemap.xml"))
    site.page("/robots.txt", "gone", status=404)
    assert await discover(site.url("/sitemap.xml")) == [site.url("/a")]
