"""Keyset pagination over (created_at, id): stable under inserts, cheap at any depth."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from backend.errors import BadRequest

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class PageParams(BaseModel):
    limit: int
    cursor: str | None


async def page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="Items per page")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        if not isinstance(created_at, str) or not isinstance(row_id, str):
            raise TypeError("cursor items must be strings")
        return datetime.fromisoformat(created_at), uuid.UUID(row_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise BadRequest(
            "The cursor is not valid; pass next_cursor from the previous page."
        ) from exc


def paginate_newest_first(
    statement: Select[Any],
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[uuid.UUID],
    params: PageParams,
) -> Select[Any]:
    """Order newest first, start after the cursor, and fetch one extra row to see if more exist."""
    if params.cursor:
        after_created, after_id = decode_cursor(params.cursor)
        statement = statement.where(
            or_(created_at < after_created, and_(created_at == after_created, row_id < after_id))
        )
    return statement.order_by(created_at.desc(), row_id.desc()).limit(params.limit + 1)


def next_cursor_of(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """Trim the extra row; rows must have `created_at` and `id`."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(last.created_at, last.id)
