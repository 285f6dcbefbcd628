"""The provider tells whoever started a call once its request is written to the model server,
so a reply can commit after the model has the question instead of while the request is built."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from backend.llm import StreamEvent, TextDelta
from backend.llm.sent import notifying, request_sent
from tests.llm.conftest import ProviderFactory
from tests.llm.helpers import REPLY, chat_request
from tests.standins.openai_chat import ChatStandIn


async def _read_noting_sends(
    provider_stream: AsyncIterator[StreamEvent], notices: list[float]
) -> list[float]:
    """Read a stream in a context that notes each notice's time; returns the deltas' times."""
    loop = asyncio.get_running_loop()
    deltas: list[float] = []

    async def read() -> None:
        async for event in provider_stream:
            if isinstance(event, TextDelta):
                deltas.append(loop.time())

    await loop.create_task(read(), context=notifying(lambda: notices.append(loop.time())))
    return deltas


async def test_the_provider_tells_its_caller_when_the_request_is_written(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.first_token_delay = 0.3
    notices: list[float] = []

    deltas = await _read_noting_sends(make_provider().stream(chat_request()), notices)

    assert len(notices) == 1
    assert chat_server.request_count == 1
    # Told when the request left, not when the answer began: the server waited 0.3 s before it.
    assert deltas
    assert deltas[0] - notices[0] >= 0.25


async def test_each_attempt_tells_again(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    chat_server.fail_with(503)
    notices: list[float] = []

    deltas = await _read_noting_sends(make_provider().stream(chat_request()), notices)

    assert chat_server.request_count == 2
    assert len(notices) == 2
    assert deltas
    assert notices[1] <= deltas[0]


async def test_a_call_outside_a_notifying_context_tells_nobody(
    chat_server: ChatStandIn, make_provider: ProviderFactory
) -> None:
    request_sent()  # no caller asked: nothing happens
    text = ""
    async for event in make_provider().stream(chat_request()):
        if isinstance(event, TextDelta):
            text += event.text
    assert text == REPLY


class _Relay:
    """A TCP relay in front of the stand-in, used as the HTTP proxy (the stand-in accepts the
    proxy's absolute-form request line). Counts the connections it carried."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> _Relay:
        self._server = await asyncio.start_server(self._carry, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except ConnectionError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_a_proxy_from_the_environment_is_used_and_still_tells(
    chat_server: ChatStandIn, make_provider: ProviderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _Relay(chat_server.port) as relay:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{relay.port}")
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{relay.port}")
        provider = make_provider()  # reads the environment's proxies when it is made
        notices: list[float] = []

        deltas = await _read_noting_sends(provider.stream(chat_request()), notices)

    assert relay.connections == 1
    assert chat_server.request_count == 1
    assert deltas
    assert len(notices) == 1
