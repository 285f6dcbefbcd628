"""A stand-in for Telegram's Bot API server, on 127.0.0.1, for tests.

It speaks the Bot API's wire format, so aiogram runs its own code against it:
`POST /bot<token>/<method>` (GET works too, as on Telegram) with the parameters in the query
string, a form (urlencoded, as aiogram sends them when there is no file, or multipart), or a
JSON body. Form values are strings; objects and arrays (allowed_updates, commands,
link_preview_options...) arrive JSON-encoded, numbers and booleans as their JSON text. The
answer is always JSON: {"ok": true, "result": ...}, or {"ok": false, "error_code": N,
"description": "...", "parameters": {"retry_after": S}} with the same HTTP status.

    async with TelegramStandIn() as server:
        info = server.add_bot()
        session = AiohttpSession(api=TelegramAPIServer.from_base(server.base_url))
        bot = Bot(info.token, session=session)

Methods: getMe, setWebhook, deleteWebhook, getWebhookInfo, setMyCommands, setMyDescription,
setMyShortDescription, sendMessage, sendChatAction and getUpdates (long polling: it waits up to
`timeout` seconds for `queue_update`). Any other method is 404, an unknown or revoked token 401.
Like Telegram, it refuses: a webhook that is not HTTPS on port 80, 88, 443 or 8443 (unless
`strict_webhooks=False`), a secret token outside [A-Za-z0-9_-]{1,256}, getUpdates while a
webhook is set (409), a text longer than 4,096 UTF-16 code units after entity parsing, and
HTML that Telegram's parser refuses (`parse_html` follows TDLib's: same error texts, byte
offsets in UTF-8). Tags: a, b, strong, i, em, u, ins, s, strike, del, code, pre, blockquote,
tg-spoiler and span class="tg-spoiler"; entities &lt; &gt; &amp; &quot; and numeric ones, any
other `&` is text. Sent messages come back with the text and the entities Telegram would show.

With `enforce_limits=True` sends are throttled as Telegram does: per chat about 1/s (a burst of
3), per bot 30/s, per group 20/min; a send over a limit is answered 429 with an integer
`retry_after` and is not delivered. `calls` records every call, `too_many_requests` counts the
429s; `fail_next` and `drop_connection_next` make the next calls of a method fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import web

TEXT_LIMIT = 4096
WEBHOOK_PORTS = frozenset({80, 88, 443, 8443})
CHAT_ACTIONS = frozenset(
    [
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    ]
)
# Form values that are text even when they look like JSON ("123", "true").
STRING_PARAMS = frozenset(
    [
        "text",
        "caption",
        "url",
        "secret_token",
        "description",
        "short_description",
        "parse_mode",
        "action",
        "language_code",
        "ip_address",
        "business_connection_id",
    ]
)
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class BotInfo:
    id: int
    username: str
    first_name: str
    token: str

    def user(self) -> dict[str, Any]:
        """The bot as a Telegram User object."""
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }


@dataclass
class Call:
    token: str
    method: str
    params: dict[str, Any]
    content_type: str = ""  # how the parameters came: a form (urlencoded, multipart) or JSON
    status: int = 0  # the HTTP status answered; 0 while unanswered or if the connection dropped


@dataclass(frozen=True)
class SentMessage:
    token: str
    chat_id: int
    text: str  # as sent: the HTML source when parse_mode is HTML
    parse_mode: str | None
    message: dict[str, Any]  # the Message answered: the text shown and its entities


@dataclass(frozen=True)
class Webhook:
    url: str
    secret_token: str | None
    allowed_updates: list[str] | None
    max_connections: int


class ApiError(Exception):
    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


class EntityParseError(ValueError):
    """HTML that Telegram refuses; the message is Telegram's, after "can't parse entities: "."""


@dataclass
class _Bucket:
    """A token bucket: `capacity` sends at once, refilled at `per_second`."""

    capacity: float
    per_second: float
    tokens: float
    at: float

    def wait(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.per_second)
        self.at = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.per_second


@dataclass
class _Bot:
    info: BotInfo
    revoked: bool = False
    webhook: Webhook | None = None
    commands: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    short_descriptions: dict[str, str] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    poll_generation: int = 0
    message_ids: dict[int, itertools.count[int]] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)
    buckets: dict[str, _Bucket] = field(default_factory=dict)


@dataclass
class _Failure:
    method: str
    token: str | None
    kind: Literal["status", "drop"]
    status: int = 500
    description: str = ""
    retry_after: int | None = None
    after_delivery: bool = False


@dataclass(frozen=True)
class _Described:
    """A result that comes with a description, as setWebhook's "Webhook was set"."""

    result: Any
    description: str


Handler = Callable[[_Bot, dict[str, Any]], Awaitable[Any]]


class TelegramStandIn:
    def __init__(
        self,
        *,
        enforce_limits: bool = False,
        strict_webhooks: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enforce_limits = enforce_limits
        self.strict_webhooks = strict_webhooks
        self.clock = clock  # what rate limits measure time by
        self.calls: list[Call] = []
        self.too_many_requests = 0
        self._bots: dict[str, _Bot] = {}
        self._sent: list[SentMessage] = []
        self._chats: dict[int, dict[str, Any]] = {}
        self._failures: list[_Failure] = []
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._next_bot_id = itertools.count(7_000_000_001)
        self._methods: dict[str, Handler] = {
            "getme": self._get_me,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "setmycommands": self._set_my_commands,
            "setmydescription": self._set_my_description,
            "setmyshortdescription": self._set_my_short_description,
            "sendmessage": self._send_message,
            "sendchataction": self._send_chat_action,
            "getupdates": self._get_updates,
        }
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # Bots

    def add_bot(
        self, token: str | None = None, *, username: str | None = None, first_name: str = ""
    ) -> BotInfo:
        """Register a bot; its id is the token's number, as in real tokens ("<id>:<secret>")."""
        if token is not None and token in self._bots:
            return self._bots[token].info
        if token is None:
            token = f"{next(self._next_bot_id)}:AA{secrets.token_urlsafe(25)}"
        bot_id, _, secret = token.partition(":")
        if not bot_id.isdigit() or not secret:
            raise ValueError("a bot token looks like '<digits>:<secret>'")
        username = username or f"standin_{bot_id}_bot"
        info = BotInfo(int(bot_id), username, first_name or f"Stand-in {bot_id}", token)
        self._bots[token] = _Bot(info)
        return info

    def revoke(self, token: str) -> None:
        """Later calls with `token` are answered 401, as after /revoke in BotFather."""
        self._bots[token].revoked = True

    def block_chat(self, token: str, chat_id: int) -> None:
        """The user of `chat_id` blocked the bot: sends there are answered 403."""
        self._bots[token].blocked.add(chat_id)

    def webhook(self, token: str) -> Webhook | None:
        return self._bots[token].webhook

    def commands(
        self, token: str, *, scope: str = "default", language_code: str = ""
    ) -> list[dict[str, str]]:
        return self._bots[token].commands.get((scope, language_code), [])

    def description(self, token: str, language_code: str = "") -> str:
        return self._bots[token].descriptions.get(language_code, "")

    def short_description(self, token: str, language_code: str = "") -> str:
        return self._bots[token].short_descriptions.get(language_code, "")

    def queue_update(self, token: str, update: dict[str, Any]) -> dict[str, Any]:
        """Queue `update` for getUpdates; an update_id is given if it has none."""
        bot = self._bots[token]
        if "update_id" not in update:
            last = bot.updates[-1]["update_id"] if bot.updates else 0
            update = {"update_id": max(last + 1, next(_update_ids)), **update}
        for value in update.values():
            if isinstance(value, dict) and isinstance(value.get("chat"), dict):
                chat = value["chat"]
                self._chats[int(chat["id"])] = chat
        bot.updates.append(update)
        bot.arrived.set()
        return update

    # What was called and sent

    def calls_to(self, method: str, token: str | None = None) -> list[Call]:
        return [
            call
            for call in self.calls
            if call.method.lower() == method.lower() and token in (None, call.token)
        ]

    def sent_messages(
        self, token: str | None = None, chat_id: int | None = None
    ) -> list[SentMessage]:
        """Messages delivered (a refused or throttled send is not), in order."""
        return [
            sent
            for sent in self._sent
            if token in (None, sent.token) and chat_id in (None, sent.chat_id)
        ]

    # Failures of the next calls

    def fail_next(
        self,
        method: str,
        status: int,
        description: str,
        retry_after: int | None = None,
        times: int = 1,
        *,
        token: str | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` (of any bot, or of `token`'s) with an error:
        e.g. (429, "Too Many Requests: retry after 5", retry_after=5), or (502, "Bad Gateway")."""
        failure = _Failure(method.lower(), token, "status", status, description, retry_after)
        self._failures.extend(_Failure(**vars(failure)) for _ in range(times))

    def drop_connection_next(
        self,
        method: str,
        *,
        times: int = 1,
        after_delivery: bool = False,
        token: str | None = None,
    ) -> None:
        """Drop the connection of the next `times` calls of `method` without an answer; with
        `after_delivery` the call takes effect first (the message is sent, its answer lost)."""
        failure = _Failure(method.lower(), token, "drop", after_delivery=after_delivery)
        self._failures.extend(_Failure(**vars(failure)) for _ in range(times))

    def _take_failure(self, token: str, method: str) -> _Failure | None:
        for index, failure in enumerate(self._failures):
            if failure.method == method.lower() and failure.token in (None, token):
                return self._failures.pop(index)
        return None

    # Lifetime

    async def start(self) -> str:
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._endpoint)
        # Waiting getUpdates calls return as soon as `_closing` is set.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()
        return self.base_url

    async def stop(self) -> None:
        self._closing.set()
        for bot in self._bots.values():
            bot.arrived.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TelegramStandIn:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # The endpoint

    async def _endpoint(self, request: web.Request) -> web.StreamResponse:
        token, method = request.match_info["token"], request.match_info["method"]
        try:
            params = await _read_params(request)
        except ValueError as exc:
            return web.json_response(_error_body(400, f"Bad Request: {exc}"), status=400)
        call = Call(token, method, params, request.content_type if request.body_exists else "")
        self.calls.append(call)
        bot = self._bots.get(token)
        if bot is None or bot.revoked:
            return self._answer(call, ApiError(401, "Unauthorized"))
        failure = self._take_failure(token, method)
        if failure is not None and failure.kind == "status":
            error = ApiError(failure.status, failure.description, failure.retry_after)
            return self._answer(call, error)
        if failure is not None and not failure.after_delivery:
            return await _abort(request)
        handler = self._methods.get(method.lower())
        if handler is None:
            return self._answer(call, ApiError(404, "Not Found"))
        try:
            result = await handler(bot, params)
        except ApiError as exc:
            return self._answer(call, exc)
        if failure is not None:
            return await _abort(request)
        return self._answer(call, result)

    def _answer(self, call: Call, outcome: Any) -> web.Response:
        if isinstance(outcome, ApiError):
            call.status = outcome.status
            if outcome.status == 429:
                self.too_many_requests += 1
            body = _error_body(outcome.status, outcome.description, outcome.retry_after)
            return web.json_response(body, status=outcome.status)
        call.status = 200
        if isinstance(outcome, _Described):
            body = {"ok": True, "result": outcome.result, "description": outcome.description}
            return web.json_response(body)
        return web.json_response({"ok": True, "result": outcome})

    # Methods

    async def _get_me(self, bot: _Bot, params: dict[str, Any]) -> Any:
        return {
            **bot.info.user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _set_webhook(self, bot: _Bot, params: dict[str, Any]) -> Any:
        url = str(params.get("url") or "")
        if not url:  # Telegram's way to remove a webhook: an empty url
            return await self._delete_webhook(bot, params)
        self._check_webhook_url(url)
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        allowed = params.get("allowed_updates")
        if allowed is not None and not _is_list_of_str(allowed):
            raise ApiError(400, "Bad Request: can't parse allowed updates")
        max_connections = _int_param(params, "max_connections", 40)
        if not 1 <= max_connections <= 100:
            raise ApiError(400, "Bad Request: max_connections must be between 1 and 100")
        if params.get("drop_pending_updates") is True:
            bot.updates.clear()
        bot.webhook = Webhook(
            url, None if secret is None else str(secret), allowed, max_connections
        )
        bot.poll_generation += 1  # a waiting getUpdates ends
        bot.arrived.set()
        return _Described(True, "Webhook was set")

    def _check_webhook_url(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ApiError(400, "Bad Request: bad webhook: Failed to resolve host") from exc
        if not parts.hostname:
            raise ApiError(400, "Bad Request: bad webhook: Failed to resolve host")
        if not self.strict_webhooks:
            return
        if parts.scheme != "https":
            raise ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        if port is not None and port not in WEBHOOK_PORTS:
            raise ApiError(
                400,
                "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443",
            )

    async def _delete_webhook(self, bot: _Bot, params: dict[str, Any]) -> Any:
        if params.get("drop_pending_updates") is True:
            bot.updates.clear()
        had = bot.webhook is not None
        bot.webhook = None
        return _Described(True, "Webhook was deleted" if had else "Webhook is already deleted")

    async def _get_webhook_info(self, bot: _Bot, params: dict[str, Any]) -> Any:
        info: dict[str, Any] = {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(bot.updates),
        }
        if bot.webhook is not None:
            info.update(url=bot.webhook.url, max_connections=bot.webhook.max_connections)
            info["ip_address"] = "127.0.0.1"
            if bot.webhook.allowed_updates is not None:
                info["allowed_updates"] = bot.webhook.allowed_updates
        return info

    async def _set_my_commands(self, bot: _Bot, params: dict[str, Any]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND.fullmatch(str(command.get("command"))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description") or "")) <= 256:
                raise ApiError(400, "Bad Request: command description is empty or too long")
        scope = params.get("scope") or {"type": "default"}
        key = (str(scope.get("type", "default")), str(params.get("language_code") or ""))
        bot.commands[key] = [
            {"command": str(c["command"]), "description": str(c["description"])} for c in commands
        ]
        return True

    async def _set_my_description(self, bot: _Bot, params: dict[str, Any]) -> Any:
        text = str(params.get("description") or "")
        if len(text) > 512:
            raise ApiError(400, "Bad Request: description is too long")
        bot.descriptions[str(params.get("language_code") or "")] = text
        return True

    async def _set_my_short_description(self, bot: _Bot, params: dict[str, Any]) -> Any:
        text = str(params.get("short_description") or "")
        if len(text) > 120:
            raise ApiError(400, "Bad Request: short description is too long")
        bot.short_descriptions[str(params.get("language_code") or "")] = text
        return True

    async def _send_chat_action(self, bot: _Bot, params: dict[str, Any]) -> Any:
        self._chat_id(bot, params)
        if params.get("action") not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    async def _send_message(self, bot: _Bot, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(bot, params)
        source = params.get("text")
        if not isinstance(source, str) or not source.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        parse_mode = params.get("parse_mode")
        text, entities = source, list[dict[str, Any]]()
        if isinstance(parse_mode, str) and parse_mode.lower() == "html":
            try:
                text, entities = parse_html(source)
            except EntityParseError as exc:
                raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from exc
        elif parse_mode not in (None, "Markdown", "MarkdownV2"):  # Markdown is not parsed here
            raise ApiError(400, "Bad Request: unsupported parse_mode")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_length(text) > TEXT_LIMIT:
            raise ApiError(400, "Bad Request: message is too long")
        self._admit(bot, chat_id)
        counter = bot.message_ids.setdefault(chat_id, itertools.count(1))
        message: dict[str, Any] = {
            "message_id": next(counter),
            "from": bot.info.user(),
            "chat": self._chat(chat_id),
            "date": int(time.time()),
            "text": text,
        }
        if entities:
            message["entities"] = entities
        mode = parse_mode if isinstance(parse_mode, str) else None
        self._sent.append(SentMessage(bot.info.token, chat_id, source, mode, message))
        return message

    def _chat_id(self, bot: _Bot, params: dict[str, Any]) -> int:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        if not isinstance(chat_id, int) or isinstance(chat_id, bool):
            raise ApiError(400, "Bad Request: chat not found")  # "@channel": none exist here
        if chat_id in bot.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    def _chat(self, chat_id: int) -> dict[str, Any]:
        if chat_id in self._chats:
            return self._chats[chat_id]
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "User"}
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        return {"id": chat_id, "type": kind, "title": "Group"}

    def _admit(self, bot: _Bot, chat_id: int) -> None:
        """Take a send from each limit that applies, or answer 429 if one has none left."""
        if not self.enforce_limits:
            return
        now = self.clock()
        limits = [("bot", 30.0, 30.0), (f"chat:{chat_id}", 3.0, 1.0)]
        if chat_id < 0:
            limits.append((f"group:{chat_id}", 20.0, 20.0 / 60.0))
        buckets = [
            bot.buckets.setdefault(key, _Bucket(capacity, rate, capacity, now))
            for key, capacity, rate in limits
        ]
        wait = max(bucket.wait(now) for bucket in buckets)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {seconds}", seconds)
        for bucket in buckets:
            bucket.tokens -= 1

    async def _get_updates(self, bot: _Bot, params: dict[str, Any]) -> Any:
        if bot.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _int_param(params, "offset", 0)
        limit = min(max(_int_param(params, "limit", 100), 1), 100)
        timeout = max(_int_param(params, "timeout", 0), 0)
        allowed = params.get("allowed_updates")
        if offset < 0:
            del bot.updates[: max(len(bot.updates) + offset, 0)]
        elif offset:
            bot.updates[:] = [u for u in bot.updates if u["update_id"] >= offset]
        bot.poll_generation += 1
        generation = bot.poll_generation
        bot.arrived.set()  # an earlier getUpdates still waiting is ended by this one
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if generation != bot.poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            found = [u for u in bot.updates if _wanted(u, allowed)][:limit]
            remaining = deadline - asyncio.get_running_loop().time()
            if found or remaining <= 0 or self._closing.is_set():
                return found
            bot.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(bot.arrived.wait(), remaining)


async def _read_params(request: web.Request) -> dict[str, Any]:
    raw: dict[str, Any] = dict(request.query)
    if request.body_exists:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError as exc:
                raise ValueError("can't parse JSON object") from exc
            if not isinstance(body, dict):
                raise ValueError("JSON object expected")
            return {**{k: _decode(k, v) for k, v in raw.items()}, **body}
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                raw[key] = {"filename": value.filename, "size": len(value.file.read())}
            else:
                raw[key] = value
    return {key: _decode(key, value) for key, value in raw.items()}


def _decode(key: str, value: Any) -> Any:
    """A form value as the JSON value it stands for (42, true, [...]) if it is one."""
    if not isinstance(value, str) or key in STRING_PARAMS:
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return value if decoded is None or isinstance(decoded, str) else decoded


def _int_param(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"Bad Request: wrong parameter {name}")
    return value


def _is_list_of_str(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _wanted(update: dict[str, Any], allowed: Any) -> bool:
    if not _is_list_of_str(allowed) or not allowed:
        return True
    return any(kind in update for kind in allowed)


def _error_body(status: int, description: str, retry_after: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return body


async def _abort(request: web.Request) -> web.Response:
    """Drop the connection at once, as a broken network would."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response()


# Telegram's HTML parse mode, after TDLib's parse_html.

_TAGS = {
    **dict.fromkeys(("b", "strong"), "bold"),
    **dict.fromkeys(("i", "em"), "italic"),
    **dict.fromkeys(("u", "ins"), "underline"),
    **dict.fromkeys(("s", "strike", "del"), "strikethrough"),
    **dict.fromkeys(("span", "tg-spoiler"), "spoiler"),
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_URL_SCHEMES = frozenset({"http", "https", "tg", "ton", "tonsite"})


@dataclass
class _OpenTag:
    name: str
    offset: int  # UTF-16 offset in the text where the entity starts
    attributes: dict[str, str]
    language: str = ""


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """The text Telegram shows for `source` and its entities (UTF-16 offsets), or
    EntityParseError with Telegram's description."""
    text: list[str] = []
    size = 0
    entities: list[dict[str, Any]] = []
    stack: list[_OpenTag] = []
    index = 0
    while index < len(source):
        char = source[index]
        if char == "&":
            decoded, after = _decode_entity(source, index)
            if decoded is not None:
                text.append(decoded)
                size += utf16_length(decoded)
                index = after
                continue
        if char != "<":
            text.append(char)
            size += 2 if ord(char) > 0xFFFF else 1
            index += 1
            continue
        if source.startswith("</", index):
            index = _end_tag(source, index, stack, entities, size, "".join(text))
        else:
            tag, index = _start_tag(source, index)
            stack.append(_OpenTag(tag[0], size, tag[1]))
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(text), entities


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode())


def _decode_entity(source: str, index: int) -> tuple[str | None, int]:
    end = index + 1
    if source.startswith("#", end):
        end += 1
        hexadecimal = source.startswith("x", end)
        end += hexadecimal
        digits = "0123456789abcdefABCDEF" if hexadecimal else "0123456789"
        start = end
        while end < len(source) and source[end] in digits:
            end += 1
        value = int(source[start:end], 16 if hexadecimal else 10) if end > start else 0
        if value == 0 or value >= 0x10FFFF or end - index >= 10:
            return None, index
        if 0xD800 <= value <= 0xDFFF:
            raise EntityParseError(
                "Text contains invalid Unicode characters after decoding HTML entities, "
                "check for unmatched surrogate code units"
            )
        decoded = chr(value)
    else:
        while end < len(source) and source[end].isascii() and source[end].isalpha():
            end += 1
        if source[index + 1 : end] not in _NAMED_ENTITIES:
            return None, index
        decoded = _NAMED_ENTITIES[source[index + 1 : end]]
    return decoded, end + 1 if source.startswith(";", end) else end


def _start_tag(source: str, begin: int) -> tuple[tuple[str, dict[str, str]], int]:
    at = _byte_offset(source, begin)
    index = begin + 1
    while index < len(source) and not source[index].isspace() and source[index] != ">":
        index += 1
    if index >= len(source):
        raise EntityParseError(f"Unclosed start tag at byte offset {at}")
    name = source[begin + 1 : index].lower()
    if name not in _TAGS:
        raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {at}')
    attributes: dict[str, str] = {}
    while True:
        while index < len(source) and source[index].isspace():
            index += 1
        if index >= len(source):
            raise EntityParseError(f'Unclosed start tag "{name}" at byte offset {at}')
        if source[index] == ">":
            break
        start = index
        while index < len(source) and not source[index].isspace() and source[index] not in "=>":
            index += 1
        attribute = source[start:index].lower()
        if not attribute:
            raise EntityParseError(f'Empty attribute name in the tag "{name}" at byte offset {at}')
        while index < len(source) and source[index].isspace():
            index += 1
        if index >= len(source) or source[index] != "=":
            attributes[attribute] = ""
            continue
        index += 1
        while index < len(source) and source[index].isspace():
            index += 1
        if index >= len(source):
            raise EntityParseError(f'Unclosed start tag "{name}" at byte offset {at}')
        attributes[attribute], index = _attribute_value(source, index, at)
    if name == "span" and attributes.get("class") != "tg-spoiler":
        raise EntityParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
    return (name, attributes), index + 1


def _attribute_value(source: str, index: int, at: int) -> tuple[str, int]:
    quote = source[index]
    if quote not in "\"'":
        start = index
        while index < len(source) and (
            source[index] in ".-" or (source[index].isascii() and source[index].isalnum())
        ):
            index += 1
        if index >= len(source) or not (source[index].isspace() or source[index] == ">"):
            raise EntityParseError(
                f"Unexpected end of name token at byte offset {_byte_offset(source, start)}"
            )
        return source[start:index].lower(), index
    value: list[str] = []
    index += 1
    while index < len(source) and source[index] != quote:
        if source[index] == "&":
            decoded, after = _decode_entity(source, index)
            if decoded is not None:
                value.append(decoded)
                index = after
                continue
        value.append(source[index])
        index += 1
    if index >= len(source):
        raise EntityParseError(f"Unclosed start tag at byte offset {at}")
    return "".join(value), index + 1


def _end_tag(
    source: str,
    begin: int,
    stack: list[_OpenTag],
    entities: list[dict[str, Any]],
    size: int,
    text: str,
) -> int:
    at = _byte_offset(source, begin)
    if not stack:
        raise EntityParseError(f"Unexpected end tag at byte offset {at}")
    index = begin + 2
    while index < len(source) and not source[index].isspace() and source[index] != ">":
        index += 1
    name = source[begin + 2 : index].lower()
    while index < len(source) and source[index].isspace():
        index += 1
    if index >= len(source) or source[index] != ">":
        raise EntityParseError(f"Unclosed end tag at byte offset {at}")
    tag = stack.pop()
    if name and name != tag.name:
        raise EntityParseError(
            f'Unmatched end tag at byte offset {at}, expected "</{tag.name}>", found "</{name}>"'
        )
    length = size - tag.offset
    if length > 0:
        entity = _entity(tag, stack, length, text)
        if entity is not None:
            entities.append(entity)
    return index + 1


def _entity(tag: _OpenTag, stack: list[_OpenTag], length: int, text: str) -> dict[str, Any] | None:
    entity: dict[str, Any] = {"type": _TAGS[tag.name], "offset": tag.offset, "length": length}
    if tag.name == "a":
        url = _link_url(tag.attributes.get("href") or _tail(text, length))
        if url is None:
            return None
        entity["url"] = url
    elif tag.name == "blockquote" and "expandable" in tag.attributes:
        entity["type"] = "expandable_blockquote"
    elif tag.name == "code" and stack and stack[-1].name == "pre":
        language = tag.attributes.get("class", "")
        if language.startswith("language-") and len(language) > len("language-"):
            stack[-1].language = language.removeprefix("language-")
            return None
    elif tag.name == "pre" and tag.language:
        entity["language"] = tag.language
    return entity


def _tail(text: str, length: int) -> str:
    """The last `length` UTF-16 code units of `text`."""
    encoded = text.encode("utf-16-le")
    return encoded[len(encoded) - 2 * length :].decode("utf-16-le")


def _link_url(url: str) -> str | None:
    """The URL Telegram keeps for a link, or None if it drops the link (javascript:, ...)."""
    url = url.strip()
    if not url or any(char.isspace() for char in url):
        return None
    scheme, colon, rest = url.partition(":")
    if colon and scheme.isalpha() and not rest.isdigit():
        return url if scheme.lower() in _URL_SCHEMES else None
    parts = urlsplit("http://" + url)
    if not parts.hostname or "." not in parts.hostname:
        return None
    return "http://" + url + ("" if parts.path else "/")


# Updates, as Telegram sends them.

_update_ids = itertools.count(800_000_001)
_message_ids = itertools.count(1)

PRIVATE_USER_ID = 5_550_001
GROUP_CHAT_ID = -1_001_234_567_890


def make_user(
    user_id: int = PRIVATE_USER_ID,
    *,
    first_name: str = "Ada",
    username: str | None = "ada_l",
    language_code: str | None = "en",
) -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if username is not None:
        user["username"] = username
    if language_code is not None:
        user["language_code"] = language_code
    return user


def private_chat(user: dict[str, Any]) -> dict[str, Any]:
    chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
    if "username" in user:
        chat["username"] = user["username"]
    return chat


def group_chat(chat_id: int = GROUP_CHAT_ID, title: str = "Parley testers") -> dict[str, Any]:
    kind = "supergroup" if str(chat_id).startswith("-100") else "group"
    return {"id": chat_id, "type": kind, "title": title}


def make_message(
    text: str | None = None,
    *,
    user: dict[str, Any] | None = None,
    chat: dict[str, Any] | None = None,
    entities: Iterable[dict[str, Any]] = (),
    **fields: Any,
) -> dict[str, Any]:
    """A Message object: from `user` (Ada by default), in `chat` (her private chat by default).
    Other fields (photo, voice, reply_to_message...) are given as keyword arguments."""
    user = user if user is not None else make_user()
    message: dict[str, Any] = {
        "message_id": next(_message_ids),
        "from": user,
        "chat": chat if chat is not None else private_chat(user),
        "date": int(time.time()),
    }
    if text is not None:
        message["text"] = text
    if entities := list(entities):
        message["entities"] = entities
    message.update(fields)
    return message


def make_update(message: dict[str, Any], *, kind: str = "message") -> dict[str, Any]:
    """An Update carrying `message` (as "message", or "edited_message"...)."""
    return {"update_id": next(_update_ids), kind: message}


def make_text_update(text: str, *, user: dict[str, Any] | None = None) -> dict[str, Any]:
    """A text message in a private chat."""
    return make_update(make_message(text, user=user))


def make_command_update(
    command: str,
    args: str = "",
    *,
    bot: BotInfo | None = None,
    user: dict[str, Any] | None = None,
    chat: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """ "/start" and the like, with its bot_command entity; "/help@bot" when `bot` is given
    (as commands picked from the menu in groups are)."""
    word = f"/{command.lstrip('/')}" + (f"@{bot.username}" if bot is not None else "")
    text = f"{word} {args}" if args else word
    entity = {"type": "bot_command", "offset": 0, "length": utf16_length(word)}
    return make_update(make_message(text, user=user, chat=chat, entities=[entity]))


def make_group_update(
    text: str,
    bot: BotInfo,
    *,
    mention: bool = False,
    reply_to_bot: bool = False,
    user: dict[str, Any] | None = None,
    chat: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A message in a group: "@bot text" with a mention entity when `mention`, and/or a reply
    to an earlier message of the bot when `reply_to_bot`."""
    chat = chat if chat is not None else group_chat()
    entities: list[dict[str, Any]] = []
    if mention:
        handle = f"@{bot.username}"
        entities.append({"type": "mention", "offset": 0, "length": utf16_length(handle)})
        text = f"{handle} {text}"
    fields: dict[str, Any] = {}
    if reply_to_bot:
        earlier = make_message("An earlier answer.", user=bot.user(), chat=chat)
        fields["reply_to_message"] = earlier
    return make_update(make_message(text, user=user, chat=chat, entities=entities, **fields))


def _file(prefix: str, **fields: Any) -> dict[str, Any]:
    unique = secrets.token_urlsafe(12)
    return {"file_id": f"{prefix}{unique}", "file_unique_id": f"AgAD{unique[:8]}", **fields}


MediaKind = Literal["photo", "voice", "sticker", "document"]
_MEDIA: dict[str, Callable[[], Any]] = {
    "photo": lambda: [_file("AgAC", width=90, height=67), _file("AgAC", width=800, height=600)],
    "voice": lambda: _file("AwAC", duration=3, mime_type="audio/ogg", file_size=9_104),
    "sticker": lambda: _file(
        "CAAC", type="regular", width=512, height=512, is_animated=False, is_video=False, emoji="👍"
    ),
    "document": lambda: _file(
        "BQAC", file_name="report.pdf", mime_type="application/pdf", file_size=48_213
    ),
}


def make_media_update(
    kind: MediaKind,
    *,
    caption: str | None = None,
    user: dict[str, Any] | None = None,
    chat: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A message with no text: a photo (with an optional caption), voice note, sticker or file."""
    fields: dict[str, Any] = {kind: _MEDIA[kind]()}
    if caption is not None:
        fields["caption"] = caption
    return make_update(make_message(None, user=user, chat=chat, **fields))
