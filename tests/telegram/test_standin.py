"""The Bot API stand-in speaks Telegram's wire format: checked with aiogram's Bot and raw HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import BotCommand, LinkPreviewOptions, Update

from tests.standins.telegram_api import (
    GROUP_CHAT_ID,
    PRIVATE_USER_ID,
    BotInfo,
    EntityParseError,
    TelegramStandIn,
    make_command_update,
    make_group_update,
    make_media_update,
    make_text_update,
    make_user,
    parse_html,
)

CHAT = PRIVATE_USER_ID
WEBHOOK = "https://parley.example.com/telegram/webhook/4f0c"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
async def shared_server() -> AsyncIterator[TelegramStandIn]:
    async with TelegramStandIn() as server:
        yield server


@pytest.fixture(scope="module")
async def session(shared_server: TelegramStandIn) -> AsyncIterator[AiohttpSession]:
    # One session for the module: closing one costs aiogram a quarter of a second.
    session = AiohttpSession(api=TelegramAPIServer.from_base(shared_server.base_url))
    yield session
    await session.close()


@pytest.fixture
def server(shared_server: TelegramStandIn) -> Iterator[TelegramStandIn]:
    """The module's stand-in; each test has bots of its own, and limits off unless it says."""
    yield shared_server
    shared_server.enforce_limits = False
    shared_server.clock = time.monotonic


@pytest.fixture
def info(server: TelegramStandIn) -> BotInfo:
    return server.add_bot(username="parley_help_bot", first_name="Parley Help")


@pytest.fixture
def bot(info: BotInfo, session: AiohttpSession) -> Bot:
    return Bot(info.token, session=session)


async def raw_call(
    server: TelegramStandIn, token: str, method: str, **request: Any
) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.base_url}/bot{token}/{method}", **request)
    body: dict[str, Any] = response.json()
    return response.status_code, body


# Bots and tokens


async def test_get_me_describes_the_registered_bot(bot: Bot, info: BotInfo) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username, me.first_name) == (
        info.id,
        True,
        "parley_help_bot",
        "Parley Help",
    )
    assert info.token.startswith(f"{info.id}:")


async def test_aiogram_sends_a_urlencoded_form_with_json_values(
    server: TelegramStandIn, bot: Bot, info: BotInfo
) -> None:
    await bot.send_message(
        CHAT, "hi", link_preview_options=LinkPreviewOptions(is_disabled=True), parse_mode=None
    )
    (call,) = server.calls_to("sendMessage", info.token)
    assert call.content_type == "application/x-www-form-urlencoded"
    assert call.params == {
        "chat_id": CHAT,
        "text": "hi",
        "link_preview_options": {"is_disabled": True},
    }


async def test_json_bodies_and_query_strings_work_too(
    server: TelegramStandIn, info: BotInfo
) -> None:
    status, body = await raw_call(
        server,
        info.token,
        "sendMessage",
        json={"chat_id": CHAT, "text": "<b>x</b>", "parse_mode": "HTML"},
    )
    assert status == 200
    assert body["ok"] is True
    assert body["result"]["entities"] == [{"type": "bold", "offset": 0, "length": 1}]
    status, body = await raw_call(server, info.token, "getMe", params={"unused": "1"})
    assert (status, body["result"]["id"]) == (200, info.id)


async def test_unknown_and_revoked_tokens_are_unauthorized(
    server: TelegramStandIn, bot: Bot, info: BotInfo
) -> None:
    status, body = await raw_call(server, "123:not-registered", "getMe")
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    await bot.get_me()
    server.revoke(info.token)
    with pytest.raises(TelegramUnauthorizedError):
        await bot.get_me()


async def test_unknown_method_is_not_found(server: TelegramStandIn, info: BotInfo) -> None:
    status, body = await raw_call(server, info.token, "sendTelepathy")
    assert (status, body["description"]) == (404, "Not Found")


# Webhooks, commands, descriptions


async def test_set_webhook_records_url_secret_and_updates(
    server: TelegramStandIn, bot: Bot, info: BotInfo
) -> None:
    secret = "s3cr3t_-token"
    assert await bot.set_webhook(WEBHOOK, secret_token=secret, allowed_updates=["message"])
    webhook = server.webhook(info.token)
    assert webhook is not None
    assert (webhook.url, webhook.secret_token, webhook.allowed_updates) == (
        WEBHOOK,
        secret,
        ["message"],
    )
    webhook_info = await bot.get_webhook_info()
    assert (webhook_info.url, webhook_info.allowed_updates) == (WEBHOOK, ["message"])
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook()
    assert server.webhook(info.token) is None
    assert (await bot.get_webhook_info()).url == ""


@pytest.mark.parametrize(
    ("url", "secret", "message"),
    [
        ("http://parley.example.com/hook", None, "An HTTPS URL must be provided"),
        ("https://parley.example.com:8000/hook", None, "only on ports 80, 88, 443 or 8443"),
        (WEBHOOK, "has spaces", "secret token contains unallowed characters"),
    ],
)
async def test_webhooks_telegram_refuses(
    server: TelegramStandIn, bot: Bot, info: BotInfo, url: str, secret: str | None, message: str
) -> None:
    with pytest.raises(TelegramBadRequest, match=message):
        await bot.set_webhook(url, secret_token=secret)
    assert server.webhook(info.token) is None


async def test_commands_and_descriptions_are_recorded(
    server: TelegramStandIn, bot: Bot, info: BotInfo
) -> None:
    commands = [
        BotCommand(command="start", description="Start over"),
        BotCommand(command="human", description="Ask for a person"),
    ]
    assert await bot.set_my_commands(commands, language_code="en")
    assert await bot.set_my_description("Answers from the docs.", language_code="en")
    assert await bot.set_my_short_description("Parley help")
    assert server.commands(info.token, language_code="en") == [
        {"command": "start", "description": "Start over"},
        {"command": "human", "description": "Ask for a person"},
    ]
    assert server.description(info.token, "en") == "Answers from the docs."
    assert server.short_description(info.token) == "Parley help"
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Not Valid", description="x")])


# Sending


async def test_send_message_with_html_answers_a_message(
    server: TelegramStandIn, bot: Bot, info: BotInfo
) -> None:
    html = '<b>Refunds</b> take 5 days <a href="https://e.com/r?a=1&amp;b=2">[1]</a> &lt;ok&gt; 😀'
    first = await bot.send_message(CHAT, html, parse_mode="HTML")
    second = await bot.send_message(CHAT, "plain <b>", parse_mode=None)
    other = await bot.send_message(CHAT + 1, "elsewhere", parse_mode=None)
    assert (first.message_id, second.message_id, other.message_id) == (1, 2, 1)
    assert first.text == "Refunds take 5 days [1] <ok> 😀"
    assert first.from_user is not None
    assert first.from_user.id == info.id
    assert (first.chat.id, first.chat.type) == (CHAT, "private")
    assert [(e.type, e.offset, e.length, e.url) for e in first.entities or []] == [
        ("bold", 0, 7, None),
        ("text_link", 20, 3, "https://e.com/r?a=1&b=2"),
    ]
    assert second.text == "plain <b>"
    sent = server.sent_messages(info.token, chat_id=CHAT)
    assert [(s.text, s.parse_mode) for s in sent] == [(html, "HTML"), ("plain <b>", None)]


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<b>unclosed", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<script>x</script>", 'Unsupported start tag "script" at byte offset 0'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("é</b>", "Unexpected end tag at byte offset 2"),
        ("1 <2", "Unclosed start tag at byte offset 2"),
    ],
)
async def test_broken_html_is_refused(
    server: TelegramStandIn, bot: Bot, info: BotInfo, html: str, error: str
) -> None:
    with pytest.raises(TelegramBadRequest) as raised:
        await bot.send_message(CHAT, html, parse_mode="HTML")
    assert raised.value.message == f"Bad Request: can't parse entities: {error}"
    assert server.sent_messages(info.token) == []


async def test_message_too_long_is_refused(
    server: TelegramStandIn, bot: Bot, info: BotInfo
) -> None:
    await bot.send_message(CHAT, "😀" * 2_048, parse_mode=None)  # exactly 4,096 units
    await bot.send_message(CHAT, "<b>" + "x" * 4_096 + "</b>", parse_mode="HTML")  # tags are free
    with pytest.raises(TelegramBadRequest, match="Bad Request: message is too long"):
        await bot.send_message(CHAT, "😀" * 2_048 + "!", parse_mode=None)
    assert len(server.sent_messages(info.token)) == 2


async def test_empty_text_and_blocked_chat(
    server: TelegramStandIn, bot: Bot, info: BotInfo
) -> None:
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(CHAT, "<b> </b>", parse_mode="HTML")
    server.block_chat(info.token, CHAT)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(CHAT, "hello", parse_mode=None)


async def test_send_chat_action(server: TelegramStandIn, bot: Bot, info: BotInfo) -> None:
    assert await bot.send_chat_action(CHAT, "typing")
    with pytest.raises(TelegramBadRequest):
        await bot.send_chat_action(CHAT, "dancing")
    assert [c.params["action"] for c in server.calls_to("sendChatAction", info.token)] == [
        "typing",
        "dancing",
    ]


# Failures


async def test_injected_429_raises_retry_after(
    server: TelegramStandIn, bot: Bot, info: BotInfo
) -> None:
    server.fail_next(
        "sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7, token=info.token
    )
    before = server.too_many_requests
    with pytest.raises(TelegramRetryAfter) as raised:
        await bot.send_message(CHAT, "hi", parse_mode=None)
    assert raised.value.retry_after == 7
    assert server.too_many_requests == before + 1
    assert server.sent_messages(info.token) == []
    await bot.send_message(CHAT, "hi", parse_mode=None)  # only the next one failed
    assert len(server.sent_messages(info.token)) == 1


async def test_injected_server_error(server: TelegramStandIn, bot: Bot, info: BotInfo) -> None:
    server.fail_next("getMe", 502, "Bad Gateway", times=2, token=info.token)
    for _ in range(2):
        with pytest.raises(TelegramServerError):
            await bot.get_me()
    assert (await bot.get_me()).id == info.id


async def test_dropped_connection(server: TelegramStandIn, bot: Bot, info: BotInfo) -> None:
    server.drop_connection_next("sendMessage", token=info.token)
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(CHAT, "lost", parse_mode=None)
    assert server.sent_messages(info.token) == []
    server.drop_connection_next("sendMessage", after_delivery=True, token=info.token)
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(CHAT, "sent, answer lost", parse_mode=None)
    assert [s.text for s in server.sent_messages(info.token)] == ["sent, answer lost"]


# Rate limits


async def test_per_chat_limit_throttles_a_burst(
    server: TelegramStandIn, bot: Bot, info: BotInfo
) -> None:
    server.enforce_limits = True
    before = server.too_many_requests
    outcomes: list[int | None] = []
    for n in range(5):
        try:
            await bot.send_message(CHAT, f"burst {n}", parse_mode=None)
            outcomes.append(None)
        except TelegramRetryAfter as error:
            outcomes.append(error.retry_after)
    assert outcomes[:3] == [None, None, None]
    assert outcomes[3:] == [1, 1]
    assert server.too_many_requests == before + 2
    assert [s.text for s in server.sent_messages(info.token)] == ["burst 0", "burst 1", "burst 2"]
    await bot.send_message(CHAT + 1, "another chat is not held up", parse_mode=None)


async def sends_until_refused(
    send: Callable[[int], Awaitable[object]], clock: FakeClock, step: float
) -> tuple[int, int]:
    """How many sends succeed, `step` seconds apart, before one is refused; and its retry_after."""
    for n in range(200):
        try:
            await send(n)
        except TelegramRetryAfter as error:
            return n, error.retry_after
        clock.now += step
    raise AssertionError("never throttled")


async def test_per_chat_limit_refills_at_one_a_second(server: TelegramStandIn, bot: Bot) -> None:
    clock = FakeClock()
    server.enforce_limits, server.clock = True, clock
    sent, _ = await sends_until_refused(
        lambda n: bot.send_message(CHAT, "x", parse_mode=None), clock, 0.5
    )
    assert sent == 5  # a burst of 3, then 1 a second: at 0, 0.5, 1, 1.5, 2 (2.5 is refused)


async def test_group_limit_is_twenty_a_minute(server: TelegramStandIn, bot: Bot) -> None:
    clock = FakeClock()
    server.enforce_limits, server.clock = True, clock
    sent, retry_after = await sends_until_refused(
        lambda n: bot.send_message(GROUP_CHAT_ID, "x", parse_mode=None), clock, 1.0
    )
    assert sent == 29  # 20 at once, plus one every 3 s: sending 1/s runs dry after 29
    assert 1 <= retry_after <= 3


async def test_bot_limit_is_thirty_a_second(server: TelegramStandIn, bot: Bot) -> None:
    clock = FakeClock()
    server.enforce_limits, server.clock = True, clock
    sent, retry_after = await sends_until_refused(
        lambda n: bot.send_message(CHAT + n, "x", parse_mode=None), clock, 0.0
    )
    assert (sent, retry_after) == (30, 1)


# getUpdates


async def test_get_updates_returns_queued_updates_after_offset(
    server: TelegramStandIn, bot: Bot, info: BotInfo
) -> None:
    first = server.queue_update(info.token, make_text_update("Hello"))
    second = server.queue_update(info.token, make_command_update("help"))
    updates = await bot.get_updates()
    assert [u.update_id for u in updates] == [first["update_id"], second["update_id"]]
    assert updates[0].message is not None
    assert updates[0].message.text == "Hello"
    updates = await bot.get_updates(offset=second["update_id"])
    assert [u.update_id for u in updates] == [second["update_id"]]
    assert await bot.get_updates(offset=second["update_id"] + 1) == []


async def test_get_updates_waits_for_an_update(
    server: TelegramStandIn, bot: Bot, info: BotInfo
) -> None:
    started = time.monotonic()
    waiting = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    server.queue_update(info.token, make_text_update("late"))
    updates = await asyncio.wait_for(waiting, 5)
    assert [u.message.text for u in updates if u.message] == ["late"]
    assert time.monotonic() - started < 2


async def test_a_second_poller_ends_the_first(server: TelegramStandIn, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.1)
    second = asyncio.create_task(bot.get_updates(timeout=1))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await asyncio.wait_for(first, 5)
    second.cancel()


async def test_stopping_ends_waiting_polls() -> None:
    server = TelegramStandIn()
    await server.start()
    info = server.add_bot()
    session = AiohttpSession(api=TelegramAPIServer.from_base(server.base_url))
    try:
        waiting = asyncio.create_task(Bot(info.token, session=session).get_updates(timeout=30))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await server.stop()
        assert time.monotonic() - started < 2
        assert await asyncio.wait_for(waiting, 2) == []
    finally:
        await session.close()


# Updates as Telegram sends them


def test_made_updates_are_valid_for_aiogram(info: BotInfo) -> None:
    private = Update.model_validate(make_text_update("Hi", user=make_user(42, first_name="Bo")))
    assert private.message is not None
    assert (private.message.chat.type, private.message.chat.id, private.message.text) == (
        "private",
        42,
        "Hi",
    )
    command = Update.model_validate(make_command_update("reset", bot=info)).message
    assert command is not None
    assert command.entities is not None
    assert command.entities[0].type == "bot_command"
    assert command.entities[0].extract_from(command.text or "") == "/reset@parley_help_bot"
    mention = Update.model_validate(make_group_update("what now? 😀", info, mention=True)).message
    assert mention is not None
    assert mention.entities is not None
    assert mention.chat.type == "supergroup"
    assert mention.entities[0].extract_from(mention.text or "") == "@parley_help_bot"
    reply = Update.model_validate(make_group_update("and then?", info, reply_to_bot=True)).message
    assert reply is not None
    assert reply.reply_to_message is not None
    assert reply.reply_to_message.from_user is not None
    assert reply.reply_to_message.from_user.id == info.id
    assert reply.entities is None
    for kind in ("photo", "voice", "sticker", "document"):
        media = Update.model_validate(make_media_update(kind, caption="look")).message
        assert media is not None
        assert media.text is None
        assert getattr(media, kind) is not None


# The HTML parser, on cases from TDLib's own tests


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("🏟 🏟&lt;<abacaba", "Unclosed start tag at byte offset 13"),
        ("🏟 🏟&lt;<abac aba>", 'Unsupported start tag "abac" at byte offset 13'),
        ("🏟 🏟&lt;<i   =aba>", 'Empty attribute name in the tag "i" at byte offset 13'),
        ("🏟 🏟&lt;<i    aba>", 'Can\'t find end tag corresponding to start tag "i"'),
        ("🏟 🏟&lt;<i    aba  =  ", 'Unclosed start tag "i" at byte offset 13'),
        ("🏟 🏟&lt;<i    aba  =  190azAz-.,", "Unexpected end of name token at byte offset 27"),
        ('🏟 🏟&lt;<i    aba  =  "&lt;&gt;&quot;>', "Unclosed start tag at byte offset 13"),
        ("🏟 🏟&lt;</", "Unexpected end tag at byte offset 13"),
        ("🏟 🏟&lt;<b></b></", "Unexpected end tag at byte offset 20"),
        ("🏟 🏟&lt;<i>a</i   ", "Unclosed end tag at byte offset 17"),
        (
            "🏟 🏟&lt;<i>a</em   >",
            'Unmatched end tag at byte offset 17, expected "</i>", found "</em>"',
        ),
    ],
)
def test_parse_html_errors(html: str, error: str) -> None:
    with pytest.raises(EntityParseError) as raised:
        parse_html(html)
    assert str(raised.value) == error


@pytest.mark.parametrize(
    ("html", "text", "entities"),
    [
        ("&ge;&lt;&gt;&amp;&quot;&laquo;&#12345678;", '&ge;<>&"&laquo;&#12345678;', []),
        ("🏟 🏟<i>🏟 &lt🏟</i>", "🏟 🏟🏟 <🏟", [{"type": "italic", "offset": 5, "length": 6}]),
        (
            "🏟 🏟<i>🏟 &gt;<b aba   =   caba>&lt🏟</b></i>",
            "🏟 🏟🏟 ><🏟",
            [
                {"type": "italic", "offset": 5, "length": 7},
                {"type": "bold", "offset": 9, "length": 3},
            ],
        ),
        ("🏟 🏟&lt;<i>a</    >", "🏟 🏟<a", [{"type": "italic", "offset": 6, "length": 1}]),
        (
            "<a href=telegram.org> </a>",
            " ",
            [{"type": "text_link", "offset": 0, "length": 1, "url": "http://telegram.org/"}],
        ),
        ('<a href="javascript:alert(1)">x</a>', "x", []),
        (
            '<pre><code class="language-fift">x &lt; 1</code></pre>',
            "x < 1",
            [{"type": "pre", "offset": 0, "length": 5, "language": "fift"}],
        ),
        ('<span class="tg-spoiler">s</span>', "s", [{"type": "spoiler", "offset": 0, "length": 1}]),
    ],
)
def test_parse_html_text_and_entities(html: str, text: str, entities: list[dict[str, Any]]) -> None:
    assert parse_html(html) == (text, entities)
