"""A stand-in for an OpenAI-compatible embeddings server, on 127.0.0.1, for tests.

It speaks the real wire format of `POST /v1/embeddings`: the request {model, input,
encoding_format?, dimensions?} with a Bearer key, the answer {"object": "list", "data":
[{"object": "embedding", "index": i, "embedding": [...] or base64}], "model", "usage"}, and
OpenAI's error bodies {"error": {"message", "type", "param", "code"}}. Vectors are derived from
a hash of the text, so they are deterministic and different for different texts; they are not
normalized, like some OpenAI-compatible servers' vectors.

    async with OpenAIStandIn(dimension=8) as server:
        provider = OpenAIEmbeddingProvider(model=server.model, base_url=server.base_url, ...)

`requests` records every request body; `fail_with(status, ...)` makes the next request fail.
"""

from __future__ import annotations

import base64
import hashlib
import math
import socket
import struct
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web


def standin_vector(text: str, dimension: int) -> list[float]:
    """The stand-in's vector for `text`: values in [-1, 1) from sha256, not normalized."""
    values: list[float] = []
    counter = 0
    while len(values) < dimension:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        for offset in range(0, len(digest), 4):
            (number,) = struct.unpack_from("<I", digest, offset)
            values.append(number / 2**31 - 1.0)
        counter += 1
    return values[:dimension]


def normalized(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


@dataclass
class _Failure:
    status: int
    message: str
    code: str | None
    headers: dict[str, str] = field(default_factory=dict)


class OpenAIStandIn:
    def __init__(
        self,
        *,
        dimension: int = 8,
        model: str = "text-embedding-3-small",
        api_key: str = "test-key",
        float_only: bool = False,
    ) -> None:
        self.dimension = dimension
        self.model = model
        self.api_key = api_key
        # Some servers ignore encoding_format and always send floats.
        self.float_only = float_only
        self.requests: list[dict[str, Any]] = []
        self._failures: list[_Failure] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def fail_with(
        self,
        status: int,
        message: str = "The server had an error while processing your request.",
        *,
        code: str | None = None,
        times: int = 1,
        retry_after_ms: int | None = None,
    ) -> None:
        headers = {"retry-after-ms": str(retry_after_ms)} if retry_after_ms is not None else {}
        self._failures.extend(_Failure(status, message, code, headers) for _ in range(times))

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/embeddings", self._embeddings)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OpenAIStandIn:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @staticmethod
    def _error(
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        kind = "invalid_request_error" if status < 500 else "server_error"
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        return web.json_response(body, status=status, headers=headers)

    async def _embeddings(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Incorrect API key provided: sk-***.", code="invalid_api_key")
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "We could not parse the JSON body of your request.")
        self.requests.append(body)
        if self._failures:
            failure = self._failures.pop(0)
            return self._error(
                failure.status, failure.message, code=failure.code, headers=failure.headers
            )
        if body.get("model") != self.model:
            return self._error(
                404,
                f"The model `{body.get('model')}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not inputs or len(inputs) > 2048:
            return self._error(400, "'$.input' is invalid.")
        texts: list[str] = []
        for item in inputs:
            if isinstance(item, str) and item:
                texts.append(item)
            elif isinstance(item, list) and item and all(isinstance(t, int) for t in item):
                texts.append(" ".join(str(t) for t in item))  # token ids
            else:
                return self._error(400, "'$.input' is invalid.")
        dimension = self.dimension
        if body.get("dimensions") is not None:
            dimension = int(body["dimensions"])
        encoding = "float" if self.float_only else body.get("encoding_format", "float")
        data = []
        for index, text in enumerate(texts):
            vector = standin_vector(text, self.dimension)
            if dimension != self.dimension:
                vector = normalized(vector[:dimension])
            embedding: list[float] | str
            if encoding == "base64":
                embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            else:
                embedding = vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(len(text.split()) for text in texts)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": self.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )
