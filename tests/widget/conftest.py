"""Widget fixtures: an assistant with knowledge, and a protocol client over a real socket."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from httpx import AsyncClient
from websockets.asyncio.client import ClientConnection, connect

from tests.assistants.fixtures import KnowledgeMaker
from tests.factories.accounts import Account
from tests.factories.assistants import create_assistant
from tests.factories.tenancy import make_workspace


@dataclass
class WidgetSetup:
    owner: Account
    assistant: dict[str, Any]

    @property
    def key(self) -> str:
        return str(self.assistant["public_key"])


@pytest.fixture
async def widget(client: AsyncClient, handbook_kb: KnowledgeMaker) -> WidgetSetup:
    owner = await make_workspace()
    kb_id = await handbook_kb(owner)
    assistant = await create_assistant(
        client,
        owner,
        knowledge_base_ids=[kb_id],
        allowed_origins=["https://shop.example.com"],
        welcome_message="Hi! Ask me anything.",
    )
    return WidgetSetup(owner, assistant)


@dataclass
class WidgetClient:
    """One widget connection: sends frames, collects what the server sends."""

    connection: ClientConnection
    received: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(frame))

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        while True:
            frame: dict[str, Any] = json.loads(
                await asyncio.wait_for(self.connection.recv(), timeout)
            )
            if frame.get("type") == "heartbeat":
                continue
            self.received.append(frame)
            return frame

    async def until(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        while True:
            frame = await self.next(timeout)
            if frame["type"] == kind:
                return frame

    async def ask(self, text: str) -> str:
        client_id = str(uuid.uuid4())
        await self.send({"type": "message", "client_id": client_id, "text": text})
        return client_id


Connector = Callable[..., Awaitable[WidgetClient]]


async def session_token(client: AsyncClient, key: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/widget/session", json={"key": key, **body})
    assert response.status_code == 200, response.text
    token: dict[str, Any] = response.json()
    return token


@pytest.fixture
async def connect_widget(parley_url: str) -> AsyncIterator[Connector]:
    opened: list[ClientConnection] = []

    async def open_socket(
        key: str, hello: dict[str, Any] | None, origin: str | None = None
    ) -> WidgetClient:
        url = parley_url.replace("http://", "ws://") + f"/ws/widget?key={key}"
        headers = {"Origin": origin} if origin else None
        connection = await connect(url, additional_headers=headers, compression=None)
        opened.append(connection)
        widget = WidgetClient(connection)
        if hello is not None:
            await widget.send({"type": "hello", **hello})
        return widget

    yield open_socket
    for connection in opened:
        await connection.close()
