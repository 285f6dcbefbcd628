"""The widget's WebSocket against a running Parley: streaming, replay after a dropped
connection, dedupe, limits, and events from other processes through Redis."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from websockets.exceptions import ConnectionClosed, InvalidStatus

from backend.config import get_settings
from backend.redis import get_redis
from backend.widget import events
from tests.assistants.fixtures import KnowledgeMaker
from tests.factories.assistants import create_assistant
from tests.factories.tenancy import make_workspace
from tests.standins.openai_chat import ChatStandIn
from tests.widget.conftest import Connector, WidgetClient, WidgetSetup, session_token

SHOP = "https://shop.example.com"
SATURDAY = "When does the shop open on Saturdays?"


async def _hello(
    client: AsyncClient, connect_widget: Connector, widget: WidgetSetup, **hello: Any
) -> tuple[WidgetClient, dict[str, Any], dict[str, Any]]:
    token = await session_token(client, widget.key)
    socket = await connect_widget(
        widget.key, {"visitor_token": token["visitor_token"], **hello}, origin=SHOP
    )
    return socket, await socket.until("ready"), token


async def _answer(socket: WidgetClient) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The events up to and including `complete`."""
    seen = []
    while True:
        frame = await socket.next()
        seen.append(frame)
        if frame["type"] == "complete":
            return seen, frame


async def test_a_question_streams_an_answer_with_citations(
    client: AsyncClient, connect_widget: Connector, widget: WidgetSetup
) -> None:
    socket, ready, token = await _hello(client, connect_widget, widget)
    assert ready["visitor_id"] == token["visitor_id"]
    assert ready["history"] == []
    client_id = await socket.ask(SATURDAY)
    seen, complete = await _answer(socket)
    kinds = [f["type"] for f in seen]
    assert kinds[:2] == ["message", "typing"]
    assert seen[0]["message"]["client_id"] == client_id
    assert seen[0]["message"]["role"] == "user"
    seqs = [f["seq"] for f in seen]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one by one, no gap
    deltas = "".join(f["text"] for f in seen if f["type"] == "delta")
    answer = complete["message"]
    assert deltas == answer["text"]
    assert "Saturdays it opens at 10:00" in answer["text"]
    assert answer["citations"][0]["title"] == "Shop handbook"
    assert {f["message_id"] for f in seen if f["type"] in ("delta", "typing")} == {answer["id"]}


async def test_history_comes_back_on_a_new_page(
    client: AsyncClient, connect_widget: Connector, widget: WidgetSetup
) -> None:
    socket, ready, token = await _hello(client, connect_widget, widget)
    await socket.ask(SATURDAY)
    await _answer(socket)
    await socket.connection.close()
    again = await connect_widget(
        widget.key,
        {"visitor_token": token["visitor_token"], "conversation_id": ready["conversation_id"]},
        origin=SHOP,
    )
    restored = await again.until("ready")
    assert restored["conversation_id"] == ready["conversation_id"]
    assert [m["role"] for m in restored["history"]] == ["user", "assistant"]
    assert restored["history"][0]["text"] == SATURDAY


async def test_a_dropped_connection_mid_answer_resumes_without_gap_or_duplicate(
    client: AsyncClient,
    connect_widget: Connector,
    handbook_kb: KnowledgeMaker,
    chat_server: ChatStandIn,
) -> None:
    chat_server.reply = " ".join(f"part{i}" for i in range(30))
    chat_server.delta_count = 30
    chat_server.token_delay = 0.05
    owner = await make_workspace()
    assistant = await create_assistant(
        client, owner, knowledge_base_ids=[await handbook_kb(owner)], allow_all_origins=True
    )
    widget = WidgetSetup(owner, assistant)
    socket, ready, token = await _hello(client, connect_widget, widget)
    await socket.ask(SATURDAY)
    applied: list[dict[str, Any]] = []
    while len([f for f in applied if f["type"] == "delta"]) < 5:
        applied.append(await socket.next())
    await socket.connection.close()  # the visitor's network drops mid-answer
    await asyncio.sleep(0.3)
    last_seq = applied[-1]["seq"]
    resumed = await connect_widget(
        widget.key,
        {
            "visitor_token": token["visitor_token"],
            "conversation_id": ready["conversation_id"],
            "last_seq": last_seq,
        },
    )
    back = await resumed.until("ready")
    assert "history" not in back
    rest, complete = await _answer(resumed)
    seqs = [f["seq"] for f in applied + rest]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    text = "".join(f["text"] for f in applied + rest if f["type"] == "delta")
    assert text == chat_server.reply == complete["message"]["text"]


async def test_a_message_sent_twice_is_answered_once(
    client: AsyncClient, connect_widget: Connector, widget: WidgetSetup
) -> None:
    socket, _, _ = await _hello(client, connect_widget, widget)
    frame = {"type": "message", "client_id": str(uuid.uuid4()), "text": SATURDAY}
    await socket.send(frame)
    await socket.send(frame)  # re-sent after a reconnect that raced the first
    await _answer(socket)
    with pytest.raises(TimeoutError):
        await socket.until("message", timeout=1.0)


async def test_limits_are_friendly(
    client: AsyncClient, connect_widget: Connector, widget: WidgetSetup
) -> None:
    await client.patch(
        f"/api/v1/assistants/{widget.assistant['id']}",
        json={"visitor_daily_message_cap": 1, "language": "ru"},
        headers=widget.owner.headers(),
    )
    socket, _, _ = await _hello(client, connect_widget, widget)
    await socket.ask(SATURDAY)
    await _answer(socket)
    client_id = await socket.ask("And on Sundays?")
    error = await socket.until("error")
    assert error["code"] == "limit_reached"
    assert error["client_id"] == client_id
    assert "лимит" in error["message"]
    long = await socket.ask("x" * (get_settings().widget_max_message_chars + 1))
    too_long = await socket.until("error")
    assert (too_long["code"], too_long["client_id"]) == ("too_long", long)


async def test_messages_per_minute_are_limited(
    client: AsyncClient, connect_widget: Connector, widget: WidgetSetup
) -> None:
    settings = get_settings()
    saved = settings.widget_visitor_messages_per_minute
    settings.widget_visitor_messages_per_minute = 1
    try:
        socket, _, _ = await _hello(client, connect_widget, widget)
        await socket.ask(SATURDAY)
        await socket.ask(SATURDAY)
        error = await socket.until("error")
        assert error["code"] == "rate_limited"
    finally:
        settings.widget_visitor_messages_per_minute = saved


async def test_disallowed_origin_is_refused_at_the_handshake(
    connect_widget: Connector, widget: WidgetSetup
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect_widget(widget.key, None, origin="https://evil.example.net")
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        await connect_widget("pk_unknown_key_000", None, origin=SHOP)


async def test_a_bad_first_frame_or_token_closes_the_socket(
    connect_widget: Connector, widget: WidgetSetup
) -> None:
    rude = await connect_widget(widget.key, None, origin=SHOP)
    await rude.send({"type": "message", "client_id": "1", "text": "hi"})
    with pytest.raises(ConnectionClosed) as closed:
        await rude.next()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4400
    forged = await connect_widget(widget.key, {"visitor_token": "not-a-token"}, origin=SHOP)
    error = await forged.next()
    assert error["code"] == "unauthorized"


async def test_someone_elses_conversation_is_not_resumed(
    client: AsyncClient, connect_widget: Connector, widget: WidgetSetup
) -> None:
    _, mine, _ = await _hello(client, connect_widget, widget)
    _, theirs, _ = await _hello(
        client, connect_widget, widget, conversation_id=mine["conversation_id"], last_seq=0
    )
    assert theirs["conversation_id"] != mine["conversation_id"]


async def test_events_from_another_process_reach_the_socket(
    client: AsyncClient, connect_widget: Connector, widget: WidgetSetup
) -> None:
    """Another API process publishes through Redis (an operator's reply, later)."""
    socket, ready, _ = await _hello(client, connect_widget, widget)
    conversation = uuid.UUID(ready["conversation_id"])
    other_process = get_redis().__class__.from_url(
        get_settings().redis_url.get_secret_value(),  # type: ignore[union-attr]
        decode_responses=True,
    )
    try:
        seq = await events.publish(
            other_process,
            conversation,
            {"type": "message", "message": {"id": "op-1", "role": "assistant", "text": "Hi!"}},
        )
    finally:
        await other_process.aclose()
    frame = await socket.until("message")
    assert (frame["seq"], frame["message"]["text"]) == (seq, "Hi!")


async def test_feedback_over_the_socket(
    client: AsyncClient, connect_widget: Connector, widget: WidgetSetup
) -> None:
    socket, ready, _ = await _hello(client, connect_widget, widget)
    await socket.ask(SATURDAY)
    _, complete = await _answer(socket)
    await socket.send({"type": "feedback", "message_id": complete["message"]["id"], "rating": "up"})
    await socket.send({"type": "ping"})
    assert (await socket.until("pong"))["type"] == "pong"
    listed = await client.get(
        f"/api/v1/conversations/{ready['conversation_id']}/messages",
        headers=widget.owner.headers(),
    )
    answer = next(m for m in listed.json()["items"] if m["role"] == "assistant")
    assert answer["feedback"]["rating"] == "up"
    await socket.send({"type": "feedback", "message_id": str(uuid.uuid4()), "rating": "up"})
    assert (await socket.until("error"))["code"] == "not_found"


async def test_a_verified_user_finds_their_conversation_on_another_device(
    client: AsyncClient, connect_widget: Connector, widget: WidgetSetup
) -> None:
    import hashlib
    import hmac

    url = f"/api/v1/assistants/{widget.assistant['id']}/identity-secret"
    secret = (await client.get(url, headers=widget.owner.headers())).json()["identity_secret"]
    user_hash = hmac.new(secret.encode(), b"customer-7", hashlib.sha256).hexdigest()
    laptop = await session_token(client, widget.key, user_id="customer-7", user_hash=user_hash)
    first = await connect_widget(
        widget.key, {"visitor_token": laptop["visitor_token"]}, origin=SHOP
    )
    started = await first.until("ready")
    phone = await session_token(client, widget.key, user_id="customer-7", user_hash=user_hash)
    second = await connect_widget(
        widget.key, {"visitor_token": phone["visitor_token"]}, origin=SHOP
    )
    assert (await second.until("ready"))["conversation_id"] == started["conversation_id"]
    _, fresh, _ = await _hello(client, connect_widget, widget)
    assert fresh["conversation_id"] != started["conversation_id"]
