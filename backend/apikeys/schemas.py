from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from backend.kit.text import PlainText
from backend.tenancy.permissions import API_KEY_SCOPES, Permission


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PlainText = Field(min_length=1, max_length=200)
    scopes: list[Permission] = Field(
        min_length=1,
        max_length=len(Permission),
        description=f"Any of: {', '.join(sorted(p.value for p in API_KEY_SCOPES))}",
    )


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str = Field(description="The visible start of the key, to recognise it")
    scopes: list[str]
    created_by_id: uuid.UUID | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The full key. Shown only once; store it now.")
