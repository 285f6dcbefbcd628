"""The raw baseline of `bench ttft`: the least a FastAPI app can do to relay a streamed reply.

    uvicorn bench.bare_relay:create_app --factory   (bench ttft starts it as bench.serve does)

`POST /v1/chat/completions` reads the JSON body, sends the upstream exactly the body Parley
sends it (the template in the file RELAY_BODY_ENV names, with this request's tag), through the
official `openai` SDK the way Parley's provider does (`AsyncOpenAI.post`, streamed, as a raw
response, over Parley's aiohttp transport), and passes the upstream's bytes on as they come.
No authentication, no database, no quota, no prompt and no parsing of the events: what is left
is the stack Parley is built on (uvicorn, FastAPI, the SDK and its HTTP client). Its overhead
over calling the upstream directly is a floor for Parley's.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import openai
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from backend.llm.transport import AiohttpClient

UPSTREAM_ENV = "BENCH_RELAY_UPSTREAM"
KEY_ENV = "BENCH_RELAY_KEY"
RELAY_BODY_ENV = "BENCH_RELAY_BODY_FILE"
TAG = "@TAG@"
_TAG = re.compile(r"\(ref ([A-Za-z0-9_-]+)\)")


def create_app() -> FastAPI:
    template = Path(os.environ[RELAY_BODY_ENV]).read_text(encoding="utf-8")
    client = openai.AsyncOpenAI(
        base_url=os.environ[UPSTREAM_ENV],
        api_key=os.environ[KEY_ENV],
        max_retries=0,
        http_client=AiohttpClient(),
    )
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> Response:
        body = await request.json()
        question = body["messages"][-1]["content"]
        found = _TAG.search(question)
        if found is None:
            return JSONResponse({"error": "the question carries no (ref TAG)"}, status_code=400)
        raw = await client.post(
            "/chat/completions",
            cast_to=httpx2.Response,
            body=json.loads(template.replace(TAG, found.group(1))),
            stream=True,
            stream_cls=None,
        )

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for piece in raw.aiter_raw():
                    yield piece
            finally:
                await raw.aclose()

        return StreamingResponse(relay(), media_type="text/event-stream")

    return app
