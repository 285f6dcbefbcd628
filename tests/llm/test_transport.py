"""The aiohttp transport under the chat provider's SDK client: it says when a request's body is
written, keeps connections alive, and fails with httpx2's errors, by what went wrong."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
import pytest
from aiohttp import web

from backend.llm.transport import BODY_WRITTEN, AiohttpClient, AiohttpTransport

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(transport=AiohttpTransport(), timeout=5.0) as http:
        yield http


async def _serve(handler: Handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def _raw_server(
    answer: Callable[[asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, str]:
    """A TCP server that reads a request's head and then does `answer`, for broken servers."""

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await answer(writer)
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def test_the_body_written_trace_comes_once_and_before_the_answer(
    client: httpx2.AsyncClient,
) -> None:
    written = asyncio.Event()
    events: list[str] = []

    async def trace(event: str, _info: Any) -> None:
        events.append(event)
        written.set()

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        # The server answers only once the client has said its body is written.
        await asyncio.wait_for(written.wait(), 5)
        return web.Response(body=body)

    runner, url = await _serve(handler)
    try:
        response = await client.post(url, content=b"the question", extensions={"trace": trace})
        assert response.content == b"the question"
        assert events == [BODY_WRITTEN]

        written.clear()
        response = await client.get(url, extensions={"trace": trace})  # no body: the headers
        assert response.status_code == 200
        assert events == [BODY_WRITTEN, BODY_WRITTEN]
    finally:
        await runner.cleanup()


async def test_connections_are_kept_alive_and_an_abandoned_answer_closes_its_own(
    client: httpx2.AsyncClient,
) -> None:
    peers: list[object] = []
    transports: list[asyncio.BaseTransport | None] = []
    hold = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        transports.append(request.transport)
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        if request.path == "/slow":
            await hold.wait()
        await response.write_eof()
        return response

    runner, url = await _serve(handler)
    try:
        assert (await client.get(url)).text == "data: first\n\n"
        assert (await client.get(url)).text == "data: first\n\n"
        assert peers[0] == peers[1]  # read to the end: the connection served the next call

        async with client.stream("GET", f"{url}/slow") as response:
            async for piece in response.aiter_bytes():
                assert piece == b"data: first\n\n"
                break  # abandoned midway
        # Closing the answer closes its connection at once, though `response` is still held.
        slow = transports[2]
        assert slow is not None
        for _ in range(100):
            if slow.is_closing():
                break
            await asyncio.sleep(0.01)
        assert slow.is_closing(), "the abandoned answer's connection is still open"
        assert response.is_closed
        assert (await client.get(url)).status_code == 200
        assert peers[2] == peers[1]
        assert peers[3] != peers[2]  # the rest of /slow must not arrive on the next call
    finally:
        hold.set()
        await runner.cleanup()


async def test_a_compressed_body_is_decoded_once(client: httpx2.AsyncClient) -> None:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(b'{"ok": true}'), headers={"Content-Encoding": "gzip"}
        )

    runner, url = await _serve(handler)
    try:
        assert (await client.get(url)).json() == {"ok": True}
    finally:
        await runner.cleanup()


async def _hang_up(_writer: asyncio.StreamWriter) -> None:
    return None


async def _say_nothing(_writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(1)


async def _cut_off(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
    await writer.drain()


async def _stall(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
    await writer.drain()
    await asyncio.sleep(1)


async def _garble(writer: asyncio.StreamWriter) -> None:
    writer.write(b"this is not HTTP at all\r\n\r\n")
    await writer.drain()


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (_hang_up, httpx2.RemoteProtocolError),
        (_say_nothing, httpx2.ReadTimeout),
        (_cut_off, httpx2.RemoteProtocolError),
        (_stall, httpx2.ReadTimeout),
        (_garble, httpx2.RemoteProtocolError),
    ],
    ids=["hangs-up", "says-nothing", "cuts-off-the-body", "stalls-in-the-body", "not-http"],
)
async def test_a_broken_server_gives_httpx2_s_error_for_what_went_wrong(
    answer: Callable[[asyncio.StreamWriter], Awaitable[None]], error: type[Exception]
) -> None:
    server, url = await _raw_server(answer)
    try:
        async with httpx2.AsyncClient(
            transport=AiohttpTransport(), timeout=httpx2.Timeout(5.0, read=0.2)
        ) as http:
            with pytest.raises(error):
                await http.get(url)
    finally:
        server.close()
        await server.wait_closed()


async def test_a_body_cut_off_hands_over_what_came_before_the_cut(
    client: httpx2.AsyncClient,
) -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.1)  # the head is read and the body awaited
        writer.write(b"data: one\n\ndata: two\n\n")
        await writer.drain()
        writer.transport.abort()  # the break comes right behind the data

    server, url = await _raw_server(answer)
    received: list[bytes] = []
    try:
        async with client.stream("GET", url) as response:
            await asyncio.sleep(0.3)  # the data and the break both arrive before it is read
            with pytest.raises(httpx2.RemoteProtocolError):
                await _read_into(received, response)
    finally:
        server.close()
        await server.wait_closed()
    assert b"".join(received) == b"data: one\n\ndata: two\n\n"


async def _read_into(received: list[bytes], response: httpx2.Response) -> None:
    async for piece in response.aiter_raw():
        received.append(piece)


async def test_a_refused_connection_is_a_connect_error(client: httpx2.AsyncClient) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(httpx2.ConnectError):
        await client.get(f"http://127.0.0.1:{port}/")


async def test_one_transport_serves_another_event_loop() -> None:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    runner, url = await _serve(handler)
    transport = AiohttpTransport()
    http = httpx2.AsyncClient(transport=transport, timeout=5.0)
    try:
        assert (await http.get(url)).text == "ok"

        async def in_another_loop() -> str:
            try:
                return (await http.get(url)).text
            finally:
                await transport.aclose()

        # A second loop, in a thread (as a test or a job may run one): a session of its own.
        assert await asyncio.to_thread(asyncio.run, in_another_loop()) == "ok"
        assert (await http.get(url)).text == "ok"  # and a new one back in the first loop
    finally:
        await http.aclose()
        await runner.cleanup()


async def test_the_sdk_s_client_sends_through_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    sent: list[str] = []
    handle = AiohttpTransport.handle_async_request

    async def counted(self: AiohttpTransport, request: httpx2.Request) -> httpx2.Response:
        sent.append(str(request.url))
        return await handle(self, request)

    monkeypatch.setattr(AiohttpTransport, "handle_async_request", counted)

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    runner, url = await _serve(handler)
    try:
        async with AiohttpClient() as http:
            assert (await http.get(f"{url}/v1/models")).text == "ok"
        assert sent == [f"{url}/v1/models"]
    finally:
        await runner.cleanup()
