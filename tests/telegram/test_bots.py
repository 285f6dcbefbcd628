"""Telegram end to end: connecting, the webhook, exactly one answer per update, limits and
failures, against the loopback Bot API and a real ARQ worker."""

from __future__ import annotations

import asyncio

import pytest
from httpx import AsyncClient

from backend.config import get_settings
from backend.models import BotStatus
from tests.factories.responses import assert_error
from tests.factories.tenancy import make_workspace
from tests.standins.openai_chat import ChatStandIn
from tests.standins.telegram_api import (
    TelegramStandIn,
    group_chat,
    make_command_update,
    make_group_update,
    make_media_update,
    make_text_update,
)
from tests.telegram.conftest import ConnectedBot, bot_row, deliver, run_worker

pytestmark = pytest.mark.usefixtures("real_arq")
SATURDAY = "When does the shop open on Saturdays?"


async def test_connecting_checks_the_token_and_sets_the_bot_up(
    client: AsyncClient, telegram: TelegramStandIn, connected: ConnectedBot
) -> None:
    hook = telegram.webhook(connected.info.token)
    assert hook is not None
    assert hook.url == f"https://parley.example.com/telegram/webhook/{connected.id}"
    assert connected.info.token not in hook.url
    assert [c["command"] for c in telegram.commands(connected.info.token)] == [
        "start",
        "help",
        "reset",
        "human",
    ]
    assert telegram.description(connected.info.token) == "Hello from the shop!"
    listed = await client.get("/api/v1/telegram/bots", headers=connected.owner.headers())
    (bot,) = listed.json()["items"]
    assert bot["username"] == connected.info.username
    assert bot["status"] == "active"
    assert connected.info.token not in listed.text
    row = await bot_row(connected)
    assert connected.info.token not in row.token_encrypted
    assert connected.secret not in row.webhook_secret_hash


async def test_a_refused_token_is_a_clear_error(
    client: AsyncClient, telegram: TelegramStandIn
) -> None:
    from tests.factories.assistants import create_assistant

    owner = await make_workspace()
    assistant = await create_assistant(client, owner)
    info = telegram.add_bot()
    telegram.revoke(info.token)
    response = await client.post(
        "/api/v1/telegram/bots",
        json={"token": info.token, "assistant_id": assistant["id"]},
        headers=owner.headers(),
    )
    body = assert_error(response, 422, "validation_error")
    assert "BotFather" in body["detail"]
    assert info.token not in response.text
    malformed = await client.post(
        "/api/v1/telegram/bots",
        json={"token": "not a token", "assistant_id": assistant["id"]},
        headers=owner.headers(),
    )
    assert_error(malformed, 422, "validation_error")


async def test_an_update_gets_its_answer(
    client: AsyncClient, telegram: TelegramStandIn, connected: ConnectedBot
) -> None:
    response = await deliver(client, connected, make_text_update(SATURDAY))
    assert response.status_code == 200, response.text
    await run_worker()
    (sent,) = telegram.sent_messages(connected.info.token)
    assert "10:00" in sent.text, sent.text
    assert "Shop handbook" in sent.text
    assert telegram.calls_to("sendChatAction", connected.info.token)


async def test_the_same_update_three_times_gets_one_answer(
    client: AsyncClient, telegram: TelegramStandIn, connected: ConnectedBot
) -> None:
    update = make_text_update(SATURDAY)
    for _ in range(3):
        assert (await deliver(client, connected, update)).status_code == 200
    await run_worker()
    await deliver(client, connected, update)  # once more, after it was answered
    await run_worker()
    assert len(telegram.sent_messages(connected.info.token)) == 1


async def test_a_wrong_secret_is_refused_and_processes_nothing(
    client: AsyncClient, telegram: TelegramStandIn, connected: ConnectedBot
) -> None:
    for secret in ("wrong", ""):
        response = await client.post(
            connected.webhook_path(),
            json=make_text_update(SATURDAY),
            headers={"X-Telegram-Bot-Api-Secret-Token": secret},
        )
        assert_error(response, 401, "not_authenticated")
    unknown = await client.post(
        "/telegram/webhook/00000000-0000-0000-0000-000000000000",
        json=make_text_update(SATURDAY),
        headers={"X-Telegram-Bot-Api-Secret-Token": connected.secret},
    )
    assert_error(unknown, 401, "not_authenticated")
    await run_worker()
    assert telegram.sent_messages(connected.info.token) == []


async def test_a_revoked_token_disables_the_bot(
    client: AsyncClient, telegram: TelegramStandIn, connected: ConnectedBot
) -> None:
    telegram.revoke(connected.info.token)
    await deliver(client, connected, make_text_update(SATURDAY))
    await run_worker()
    row = await bot_row(connected)
    assert row.status is BotStatus.disabled
    assert "401" in (row.disabled_reason or "")
    shown = await client.get(
        f"/api/v1/telegram/bots/{connected.id}", headers=connected.owner.headers()
    )
    assert shown.json()["status"] == "disabled"
    # Later updates for the disabled bot are acknowledged and dropped.
    assert (await deliver(client, connected, make_text_update("hi"))).status_code == 200
    await run_worker()
    assert telegram.sent_messages(connected.info.token) == []


async def test_a_long_answer_is_split_under_the_limit(
    client: AsyncClient,
    telegram: TelegramStandIn,
    connected: ConnectedBot,
    chat_server: ChatStandIn,
) -> None:
    paragraph = "The shop is open on Saturdays from ten to two, and we are glad to help. " * 12
    chat_server.reply = "\n\n".join([paragraph.strip()] * 8) + " [1]"
    await deliver(client, connected, make_text_update(SATURDAY))
    await run_worker()
    sent = telegram.sent_messages(connected.info.token)
    assert len(sent) >= 2
    shown = [m.message["text"] for m in sent]
    assert all(len(text.encode("utf-16-le")) // 2 <= 4096 for text in shown)
    assert sum(text.count("glad to help") for text in shown) == 8 * 12


async def test_groups_get_answers_only_when_addressed(
    client: AsyncClient, telegram: TelegramStandIn, connected: ConnectedBot
) -> None:
    info = connected.info
    chat = group_chat(-100_555_000_111)
    await deliver(client, connected, make_group_update("random chatter", info, chat=chat))
    await deliver(client, connected, make_group_update(SATURDAY, info, mention=True, chat=chat))
    await deliver(
        client, connected, make_group_update(SATURDAY, info, reply_to_bot=True, chat=chat)
    )
    await deliver(client, connected, make_media_update("sticker", chat=chat))
    await run_worker()
    sent = telegram.sent_messages(info.token, chat_id=chat["id"])
    assert len(sent) == 2
    assert all("10:00" in m.text for m in sent), [m.text for m in sent]


async def test_hostile_text_is_escaped(
    client: AsyncClient,
    telegram: TelegramStandIn,
    connected: ConnectedBot,
    chat_server: ChatStandIn,
) -> None:
    chat_server.reply = 'Try <b onclick="x">this</b> & <script>alert(1)</script> [1]'
    await deliver(client, connected, make_text_update(SATURDAY))
    await run_worker()
    (sent,) = telegram.sent_messages(connected.info.token)
    assert "&lt;script&gt;" in sent.text
    assert "<script>" not in sent.text
    assert "&amp;" in sent.text
    assert "<script>alert(1)</script>" in sent.message["text"]  # shown as text


async def test_commands_media_and_human(
    client: AsyncClient, telegram: TelegramStandIn, connected: ConnectedBot
) -> None:
    token = connected.info.token
    await deliver(client, connected, make_command_update("start"))
    await run_worker()
    (welcome,) = telegram.sent_messages(token)
    assert welcome.text == "Hello from the shop!"
    call = telegram.calls_to("sendMessage", token)[-1]
    assert "When are you open?" in str(call.params.get("reply_markup"))
    await deliver(client, connected, make_media_update("voice"))
    await deliver(client, connected, make_command_update("human"))
    await deliver(client, connected, make_command_update("help"))
    await run_worker()
    texts = [m.text for m in telegram.sent_messages(token)]
    assert any("text messages" in t for t in texts)
    assert any("person" in t for t in texts)
    assert any("/reset" in t for t in texts)


async def test_429s_are_obeyed(
    client: AsyncClient, telegram: TelegramStandIn, connected: ConnectedBot
) -> None:
    telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    started = asyncio.get_running_loop().time()
    await deliver(client, connected, make_text_update(SATURDAY))
    await run_worker()
    assert len(telegram.sent_messages(connected.info.token)) == 1
    assert asyncio.get_running_loop().time() - started >= 1.0


async def test_a_send_that_keeps_failing_becomes_a_dead_letter_and_can_be_retried(
    client: AsyncClient, telegram: TelegramStandIn, connected: ConnectedBot
) -> None:
    attempts = get_settings().telegram_send_attempts
    telegram.fail_next("sendMessage", 502, "Bad Gateway", times=attempts)
    await deliver(client, connected, make_text_update(SATURDAY))
    await run_worker()
    assert telegram.sent_messages(connected.info.token) == []
    listed = await client.get("/api/v1/telegram/dead-letters", headers=connected.owner.headers())
    (letter,) = listed.json()["items"]
    assert "Bad Gateway" in letter["error"]
    retried = await client.post(
        f"/api/v1/telegram/dead-letters/{letter['id']}/retry", headers=connected.owner.headers()
    )
    assert retried.status_code == 200, retried.text
    assert retried.json()["resolved_at"] is not None
    assert len(telegram.sent_messages(connected.info.token)) == 1


async def test_other_workspaces_cannot_see_or_control_the_bot(
    client: AsyncClient, telegram: TelegramStandIn, connected: ConnectedBot
) -> None:
    intruder = await make_workspace()
    for method, path in (
        ("GET", f"/api/v1/telegram/bots/{connected.id}"),
        ("PATCH", f"/api/v1/telegram/bots/{connected.id}"),
        ("DELETE", f"/api/v1/telegram/bots/{connected.id}"),
    ):
        body = {"group_mode": "all"} if method == "PATCH" else None
        response = await client.request(method, path, json=body, headers=intruder.headers())
        assert_error(response, 404, "not_found")
    listed = await client.get("/api/v1/telegram/bots", headers=intruder.headers())
    assert listed.json()["items"] == []
    assert telegram.webhook(connected.info.token) is not None


async def test_disconnecting_removes_the_webhook(
    client: AsyncClient, telegram: TelegramStandIn, connected: ConnectedBot
) -> None:
    response = await client.delete(
        f"/api/v1/telegram/bots/{connected.id}", headers=connected.owner.headers()
    )
    assert response.status_code == 204
    assert telegram.webhook(connected.info.token) is None
    dropped = await deliver(client, connected, make_text_update(SATURDAY))
    assert_error(dropped, 401, "not_authenticated")


async def test_polling_mode_answers_without_a_webhook(
    client: AsyncClient, telegram: TelegramStandIn, real_arq: None
) -> None:
    import uuid as uuid_module

    from backend.config import TelegramMode
    from backend.telegram.tasks import _poll_one
    from tests.factories.assistants import create_assistant

    get_settings().telegram_mode = TelegramMode.polling
    owner = await make_workspace()
    assistant = await create_assistant(client, owner, fallback_message="Ask me about the shop.")
    info = telegram.add_bot()
    response = await client.post(
        "/api/v1/telegram/bots",
        json={"token": info.token, "assistant_id": assistant["id"]},
        headers=owner.headers(),
    )
    assert response.status_code == 201, response.text
    assert telegram.webhook(info.token) is None
    telegram.queue_update(info.token, make_command_update("help"))
    assert owner.tenant_id is not None
    bot_id = uuid_module.UUID(response.json()["id"])
    assert await _poll_one(owner.tenant_id, bot_id, 1) == 1
    (sent,) = telegram.sent_messages(info.token)
    assert "/reset" in sent.text
    assert await _poll_one(owner.tenant_id, bot_id, 1) == 0  # the offset moved on
