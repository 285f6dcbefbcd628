"""The HTTP transport under the chat provider's SDK client: aiohttp's client behind httpx2's
transport interface.

The `openai` SDK sends through an httpx2 client, and which transport that client uses is the
caller's to choose (the SDK itself ships an aiohttp one, `openai.DefaultAioHttpClient`). With 25
streamed calls in flight in one process, a call cost about 1.6 ms of CPU through httpx2's
default transport and about 0.9 ms through this one (`python -m bench sdk-transport`,
docs/performance.md); a reply's server CPU fell by 10 to 20 %, its time to first token did not
move measurably. This transport rather than the SDK's, because:

- it reports when a request's body is written, through the request's `trace` extension and
  under the event name httpx2's own transport uses, so backend.llm.openai_provider knows when
  the model server has the question whichever transport sent it;
- it maps aiohttp's failures onto httpx2's by what happened (a server that hung up is a protocol
  error, a read that waited too long a read timeout), which is what the SDK and the provider
  sort them by;
- it takes the client's timeouts as they are meant: `connect` for opening a connection, `pool`
  for getting one (waiting for a free one included), `read` for each wait for data, and no
  bound on a whole streamed answer.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
import httpx2
import openai
from yarl import URL

from backend.kit.background import run_in_background

CertTypes = str | tuple[str, str] | tuple[str, str, str]  # as httpx2 takes a client certificate
Trace = Callable[[str, Mapping[str, Any]], Awaitable[None]]
BODY_WRITTEN = "http11.send_request_body.complete"  # httpx2's (httpcore's) event name
DEFAULT_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=20)  # httpx2's


class AiohttpClient(openai.DefaultAsyncHttpxClient):
    """The SDK's default HTTP client (its timeouts, connection limits and redirects, and the
    proxies the environment names) with AiohttpTransport for direct connections. A request
    through a proxy goes through httpx2's own proxy transport, which reports its body the same
    way."""

    def _init_transport(
        self,
        verify: ssl.SSLContext | str | bool = True,
        cert: CertTypes | None = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx2.Limits = DEFAULT_LIMITS,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> httpx2.AsyncBaseTransport:
        if transport is not None:
            return transport
        return AiohttpTransport(verify=verify, cert=cert, trust_env=trust_env, limits=limits)


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """Plain HTTP/1.1 over one aiohttp session per event loop, its connections kept alive."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        cert: CertTypes | None = None,
        trust_env: bool = True,
        limits: httpx2.Limits = DEFAULT_LIMITS,
    ) -> None:
        self._ssl = httpx2.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _session_here(self) -> aiohttp.ClientSession:
        """The session of the running loop: a session's connections belong to the loop that
        opened them, and a process may outlive its first loop (tests, the worker's jobs)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            if self._session is not None and self._loop is not None:
                _close_in_its_loop(self._session, self._loop)
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,  # 0: no limit, as None is to httpx2
                keepalive_timeout=self._limits.keepalive_expiry,  # None: kept, in both
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trace_configs=[_body_written_config()],
                auto_decompress=False,  # httpx2 decodes the body by its Content-Encoding
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx2 keeps the cookies
            )
            self._loop = loop
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        session = self._session_here()
        body = await request.aread()
        timeouts = request.extensions.get("timeout", {})
        trace = request.extensions.get("trace")
        try:
            response = await session.request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,  # httpx2 follows redirects itself
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeouts.get("pool"),
                    sock_connect=timeouts.get("connect"),
                    sock_read=timeouts.get("read"),
                ),
                trace_request_ctx=_Traced(trace, bool(body)) if trace else None,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _as_httpx(exc, request) from exc
        return httpx2.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseBody(response, request),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and self._loop is asyncio.get_running_loop():
            await session.close()


def _close_in_its_loop(session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop) -> None:
    """Close a session left behind in another loop, in that loop, if it still runs (a closed
    loop took its connections with it)."""
    if not session.closed and not loop.is_closed():
        loop.call_soon_threadsafe(lambda: run_in_background(session.close(), _closing))


_closing: set[asyncio.Task[None]] = set()


class _ResponseBody(httpx2.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            async for piece in content.iter_any():
                yield piece
        except (aiohttp.ClientError, TimeoutError) as exc:
            if isinstance(exc, aiohttp.ClientPayloadError) and (rest := _arrived_before(content)):
                yield rest
            raise _as_httpx(exc, self._request) from exc

    async def aclose(self) -> None:
        # aiohttp keeps the connection for another call only if the answer was read to the end.
        self._response.release()


def _arrived_before(content: aiohttp.StreamReader) -> bytes:
    """The part of a body that arrived before its connection broke and was not read yet.

    aiohttp's readers raise a broken connection's error ahead of the data still in their
    buffer; httpx2's transport hands over every byte that came before the break, and a model's
    answer cut off midway is metered and shown up to where it was cut. aiohttp has no public
    way to take that data once the error is set, hence its private buffer (tested, in
    tests/llm/test_transport.py, against the aiohttp this project installs)."""
    if not content._buffer:
        return b""
    return content._read_nowait(-1)


@dataclass(frozen=True, slots=True)
class _Traced:
    """What the trace hooks of one request need: its `trace` extension, and whether a body
    follows the headers."""

    trace: Trace
    has_body: bool


def _body_written_config() -> aiohttp.TraceConfig:
    """Calls a request's `trace` with BODY_WRITTEN as aiohttp hands its body (or, with none,
    its headers) to the connection. aiohttp signals just before the write, which follows in the
    same step of the event loop, so nothing waiting on the signal can run before it."""

    async def on_headers(_session: object, context: SimpleNamespace, _params: object) -> None:
        traced = context.trace_request_ctx
        if isinstance(traced, _Traced) and not traced.has_body:
            await traced.trace(BODY_WRITTEN, {})

    async def on_body(_session: object, context: SimpleNamespace, _params: object) -> None:
        traced = context.trace_request_ctx
        if isinstance(traced, _Traced):
            await traced.trace(BODY_WRITTEN, {})

    config = aiohttp.TraceConfig()
    config.on_request_headers_sent.append(on_headers)
    config.on_request_chunk_sent.append(on_body)
    config.freeze()
    return config


def _as_httpx(exc: BaseException, request: httpx2.Request) -> httpx2.TransportError:
    """httpx2's exception for what went wrong, so the SDK and the provider can tell a timeout
    from a refused connection from a server that broke off its answer."""
    message = str(exc) or type(exc).__name__
    kind: type[httpx2.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = httpx2.ConnectTimeout
    elif isinstance(exc, TimeoutError):  # aiohttp's socket read timeouts are TimeoutErrors too
        kind = httpx2.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):
        kind = httpx2.ConnectError
    elif isinstance(
        exc,
        (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError),
    ):
        kind = httpx2.RemoteProtocolError
    elif isinstance(exc, aiohttp.ClientOSError):
        kind = httpx2.NetworkError
    elif isinstance(exc, aiohttp.InvalidURL):
        kind = httpx2.UnsupportedProtocol
    else:
        kind = httpx2.TransportError
    return kind(message, request=request)
