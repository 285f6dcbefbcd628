"""The widget's public HTTP side: its config, visitor sessions, the script itself, and /demo.

These routes need no login: the assistant's public key names the assistant, and the page's
Origin must be one the assistant allows. Answers carry CORS headers for that origin.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from backend.config import get_settings
from backend.db import SessionDep, set_tenant_context
from backend.errors import NotAuthenticated, NotFound
from backend.kit.text import PlainText
from backend.widget.demo import read_demo_key
from backend.widget.visitors import (
    WidgetAssistant,
    assistant_by_key,
    check_origin,
    issue_token,
    new_visitor_id,
    read_token,
    verify_user,
)

router = APIRouter(tags=["widget"])
PublicKey = Annotated[str, Query(min_length=3, max_length=64, description="The public key")]
DEMO_FILE = "demo.json"
PUBLIC_KEY_SHAPE = re.compile(r"pk_[A-Za-z0-9_-]{10,60}")
DEMO_PAGE = Path(__file__).with_name("demo.html")


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=3, max_length=64)
    visitor_token: str | None = Field(default=None, max_length=4000)
    user_id: PlainText | None = Field(default=None, min_length=1, max_length=200)
    user_hash: str | None = Field(default=None, max_length=128)


class SessionRead(BaseModel):
    visitor_token: str
    visitor_id: str
    expires_at: datetime


def _cors(response: Response, request: Request) -> None:
    # Vary even without an Origin: a same-origin answer (the dashboard's preview) cached by the
    # browser must not be reused for another site's page, which needs its CORS header.
    response.headers["Vary"] = "Origin"
    origin = request.headers.get("origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin


async def _allowed(session: SessionDep, request: Request, key: str) -> WidgetAssistant:
    assistant = await assistant_by_key(session, key)
    check_origin(assistant, request.headers.get("origin"))
    await set_tenant_context(session, assistant.tenant_id)
    return assistant


@router.get("/api/widget/config")
async def widget_config(
    key: PublicKey, request: Request, response: Response, session: SessionDep
) -> dict[str, Any]:
    """What the widget shows before any chat: the assistant's name, greeting and looks."""
    assistant = await _allowed(session, request, key)
    _cors(response, request)
    response.headers["Cache-Control"] = "public, max-age=60"
    looks = assistant.appearance
    return {
        "assistant": {
            "name": assistant.name,
            "language": assistant.language,
            "welcome_message": assistant.welcome_message,
            "suggested_questions": assistant.suggested_questions,
        },
        "appearance": {
            "title": looks.get("title") or assistant.name,
            "primary_color": looks.get("primary_color", "#2563eb"),
            "text_color": looks.get("text_color", "#ffffff"),
            "position": looks.get("position", "right"),
            "avatar_url": looks.get("avatar_url"),
            "launcher_icon": looks.get("launcher_icon", "chat"),
            "greeting": looks.get("greeting"),
        },
        "max_message_chars": get_settings().widget_max_message_chars,
    }


@router.post("/api/widget/session", response_model=SessionRead)
async def widget_session(
    body: SessionRequest, request: Request, response: Response, session: SessionDep
) -> SessionRead:
    """A visitor token: a new anonymous visitor, the same one again (from an earlier token,
    even expired), or a verified user of the business (`user_id` with its HMAC `user_hash`)."""
    assistant = await _allowed(session, request, body.key)
    if body.user_id is not None or body.user_hash is not None:
        if not body.user_id or not body.user_hash:
            raise NotAuthenticated("Identity verification needs both user_id and user_hash.")
        visitor_id = verify_user(assistant, body.user_id, body.user_hash)
    elif body.visitor_token:
        try:
            visitor_id = read_token(assistant, body.visitor_token, allow_expired=True).id
        except NotAuthenticated:
            visitor_id = new_visitor_id()  # an unusable old token: start afresh, quietly
    else:
        visitor_id = new_visitor_id()
    token, expires = issue_token(assistant, visitor_id)
    _cors(response, request)
    return SessionRead(visitor_token=token, visitor_id=visitor_id, expires_at=expires)


@router.options("/api/widget/session", include_in_schema=False)
@router.options("/api/widget/config", include_in_schema=False)
async def widget_preflight(request: Request) -> Response:
    """CORS preflight. It grants nothing: the request itself checks the origin."""
    response = Response(status_code=204)
    _cors(response, request)
    response.headers["Access-Control-Allow-Methods"] = "GET, POST"
    response.headers["Access-Control-Allow-Headers"] = "content-type"
    response.headers["Access-Control-Max-Age"] = "600"
    return response


@router.get("/widget.js", include_in_schema=False)
async def widget_script() -> FileResponse:
    path = get_settings().resolved_widget_dir / "widget.js"
    if not path.is_file():
        raise NotFound("The widget is not built: run `make widget` (npm, in widget/).")
    return FileResponse(
        path,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )


@router.get("/demo", include_in_schema=False)
async def demo_page() -> HTMLResponse:
    """A sample business page with the widget of the demo workspace's assistant."""
    key = read_demo_key(get_settings().data_dir / DEMO_FILE)
    if key is None:
        raise NotFound("There is no demo assistant yet: run `parley seed-demo`.")
    if not PUBLIC_KEY_SHAPE.fullmatch(key):
        raise NotFound("The saved demo key is not a public key: run `parley seed-demo`.")
    return HTMLResponse(_demo_page().replace("{{PUBLIC_KEY}}", key))


@lru_cache
def _demo_page() -> str:
    return DEMO_PAGE.read_text()
