"""Who is chatting in the widget: the assistant a public key names, whether the page's origin
may use it, and visitors, anonymous or verified by the business's HMAC of its user id.

Visitor tokens are JWTs signed with Parley's secret key. They are short-lived; an expired one
(up to REFRESH_DAYS old) still proves the visitor id, so the widget refreshes quietly.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.config import get_settings
from backend.db import set_public_key_context, set_tenant_context
from backend.errors import Forbidden, NotAuthenticated, NotFound
from backend.models import Assistant

TOKEN_AUDIENCE = "parley:widget"  # noqa: S105 (a JWT audience, not a secret)
TOKEN_TYPE = "parley-visitor"  # noqa: S105 (a claim value, not a secret)
REFRESH_DAYS = 30
VERIFIED_PREFIX = "user:"


class OriginNotAllowed(Forbidden):
    code = "origin_not_allowed"


@dataclass(frozen=True)
class WidgetAssistant:
    """What the widget's requests need of an assistant, read once per request or socket."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    language: str
    welcome_message: str | None
    suggested_questions: list[str]
    appearance: dict[str, Any]
    allowed_origins: list[str]
    allow_all_origins: bool
    identity_secret_version: int


@dataclass(frozen=True)
class Visitor:
    id: str
    assistant_id: uuid.UUID
    tenant_id: uuid.UUID
    verified: bool


async def assistant_by_key(session: AsyncSession, public_key: str) -> WidgetAssistant:
    """The assistant a public key names; sets the transaction's workspace to its own."""
    await set_public_key_context(session, public_key)
    found = await session.scalar(select(Assistant).where(Assistant.public_key == public_key))
    if found is None:
        raise NotFound("No assistant has this public key; was it rotated?")
    await set_tenant_context(session, found.tenant_id)
    return WidgetAssistant(
        id=found.id,
        tenant_id=found.tenant_id,
        name=found.name,
        language=found.language,
        welcome_message=found.welcome_message,
        suggested_questions=list(found.suggested_questions),
        appearance=dict(found.appearance),
        allowed_origins=list(found.allowed_origins),
        allow_all_origins=found.allow_all_origins,
        identity_secret_version=found.identity_secret_version,
    )


def _own_origin() -> str:
    url = get_settings().public_url.rstrip("/")
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def check_origin(assistant: WidgetAssistant, origin: str | None) -> None:
    """Refuse a page whose origin the assistant does not allow. Parley's own pages are always
    allowed; requests without an Origin (servers, not browsers) are allowed, since the public
    key grants nothing but chatting."""
    if origin is None or assistant.allow_all_origins:
        return
    origin = origin.rstrip("/")
    if origin == _own_origin() or origin in assistant.allowed_origins:
        return
    raise OriginNotAllowed(
        f"The assistant does not allow the widget on {origin}: add it to the assistant's "
        "allowed_origins."
    )


def identity_secret(assistant_id: uuid.UUID, version: int) -> str:
    """The HMAC key a business signs its user ids with; derived, so nothing secret is stored."""
    key = get_settings().secret_key.get_secret_value().encode()
    return hmac.new(key, f"parley-identity:{assistant_id}:{version}".encode(), "sha256").hexdigest()


def verify_user(assistant: WidgetAssistant, user_id: str, user_hash: str) -> str:
    secret = identity_secret(assistant.id, assistant.identity_secret_version)
    expected = hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, user_hash.strip().lower()):
        raise NotAuthenticated("The user's identity hash does not match; check the secret.")
    return VERIFIED_PREFIX + user_id


def issue_token(assistant: WidgetAssistant, visitor_id: str) -> tuple[str, datetime]:
    settings = get_settings()
    now = datetime.now(UTC)
    expires = now + timedelta(minutes=settings.widget_token_minutes)
    claims = {
        "sub": visitor_id,
        "aid": str(assistant.id),
        "tid": str(assistant.tenant_id),
        "typ": TOKEN_TYPE,
        "aud": TOKEN_AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
    }
    token = jwt.encode(claims, settings.secret_key.get_secret_value(), algorithm="HS256")
    return token, expires


def read_token(assistant: WidgetAssistant, token: str, *, allow_expired: bool) -> Visitor:
    """The visitor a token names, if Parley signed it for this assistant. An expired token is
    accepted only for a refresh, and only up to REFRESH_DAYS old."""
    try:
        claims = jwt.decode(
            token,
            get_settings().secret_key.get_secret_value(),
            algorithms=["HS256"],
            audience=TOKEN_AUDIENCE,
            options={"verify_exp": not allow_expired},
        )
    except jwt.PyJWTError as exc:
        raise NotAuthenticated("The visitor token is not valid; ask for a new one.") from exc
    issued = datetime.fromtimestamp(int(claims.get("iat", 0)), UTC)
    if (
        claims.get("typ") != TOKEN_TYPE
        or claims.get("aid") != str(assistant.id)
        or datetime.now(UTC) - issued > timedelta(days=REFRESH_DAYS)
    ):
        raise NotAuthenticated("The visitor token is not valid; ask for a new one.")
    subject = str(claims["sub"])
    return Visitor(subject, assistant.id, assistant.tenant_id, subject.startswith(VERIFIED_PREFIX))


def new_visitor_id() -> str:
    return "v_" + secrets.token_urlsafe(12)
