"""API key endpoints: create (the key is shown once), list, revoke."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from backend.apikeys import schemas, service
from backend.db import SessionDep
from backend.kit.pagination import Page, PageParams, page_params
from backend.tenancy.context import TenantContext, require
from backend.tenancy.permissions import Permission

router = APIRouter(prefix="/api/v1/api-keys", tags=["api keys"])

ManageKeys = Annotated[TenantContext, Depends(require(Permission.api_keys_manage))]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=schemas.ApiKeyCreated)
async def create_api_key(
    body: schemas.ApiKeyCreate, ctx: ManageKeys, session: SessionDep
) -> schemas.ApiKeyCreated:
    """Create a key. The full key is in this response only; Parley keeps just its hash."""
    api_key, key = await service.create_api_key(session, ctx, body.name, body.scopes)
    return schemas.ApiKeyCreated(**schemas.ApiKeyRead.model_validate(api_key).model_dump(), key=key)


@router.get("", response_model=Page[schemas.ApiKeyRead])
async def list_api_keys(
    ctx: ManageKeys, session: SessionDep, page: Annotated[PageParams, Depends(page_params)]
) -> Page[schemas.ApiKeyRead]:
    """The workspace's keys, newest first, with their prefix, scopes and last use."""
    rows, cursor = await service.list_api_keys(session, ctx, page)
    return Page(items=[schemas.ApiKeyRead.model_validate(k) for k in rows], next_cursor=cursor)


@router.delete("/{key_id}", response_model=schemas.ApiKeyRead)
async def revoke_api_key(
    key_id: uuid.UUID, ctx: ManageKeys, session: SessionDep
) -> schemas.ApiKeyRead:
    """Revoke a key. It stops working at once; the record stays for the audit trail."""
    return schemas.ApiKeyRead.model_validate(await service.revoke_api_key(session, ctx, key_id))
