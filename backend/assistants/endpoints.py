"""Assistant endpoints: configuration, public-key rotation, and unanswered questions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy import select

from backend.assistants import schemas, service, unanswered
from backend.db import SessionDep
from backend.kit.pagination import Page, PageParams, next_cursor_of, page_params
from backend.kit.pagination import paginate_newest_first as newest_first
from backend.models import Assistant
from backend.tenancy.context import TenantContext, require
from backend.tenancy.permissions import Permission
from backend.widget.visitors import identity_secret

router = APIRouter(prefix="/api/v1/assistants", tags=["assistants"])

Read = Annotated[TenantContext, Depends(require(Permission.assistants_read))]
Write = Annotated[TenantContext, Depends(require(Permission.assistants_write))]
Paging = Annotated[PageParams, Depends(page_params)]


async def _reads(session: SessionDep, assistants: list[Assistant]) -> list[schemas.AssistantRead]:
    kbs = await service.knowledge_base_ids(session, [a.id for a in assistants])
    return [
        schemas.AssistantRead.model_validate(
            {
                **{
                    f: getattr(a, f)
                    for f in schemas.AssistantRead.model_fields
                    if f != "knowledge_base_ids"
                },
                "knowledge_base_ids": kbs[a.id],
            }
        )
        for a in assistants
    ]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=schemas.AssistantRead)
async def create_assistant(
    body: schemas.AssistantCreate, ctx: Write, session: SessionDep
) -> schemas.AssistantRead:
    """Create an assistant. Unset settings take their defaults; `provider` defaults to 'auto'."""
    assistant = await service.create_assistant(session, ctx, body)
    return (await _reads(session, [assistant]))[0]


@router.get("", response_model=Page[schemas.AssistantRead])
async def list_assistants(
    ctx: Read, session: SessionDep, page: Paging
) -> Page[schemas.AssistantRead]:
    """The workspace's assistants, newest first."""
    statement = newest_first(
        select(Assistant).where(Assistant.tenant_id == ctx.tenant_id),
        Assistant.created_at,
        Assistant.id,
        page,
    )
    rows, cursor = next_cursor_of(list(await session.scalars(statement)), page.limit)
    return Page(items=await _reads(session, rows), next_cursor=cursor)


@router.get("/{assistant_id}", response_model=schemas.AssistantRead)
async def get_assistant(
    assistant_id: uuid.UUID, ctx: Read, session: SessionDep
) -> schemas.AssistantRead:
    return (await _reads(session, [await service.get_assistant(session, ctx, assistant_id)]))[0]


@router.patch("/{assistant_id}", response_model=schemas.AssistantRead)
async def update_assistant(
    assistant_id: uuid.UUID, body: schemas.AssistantUpdate, ctx: Write, session: SessionDep
) -> schemas.AssistantRead:
    """Change settings; only the fields sent change. `knowledge_base_ids` replaces the list."""
    assistant = await service.update_assistant(session, ctx, assistant_id, body)
    return (await _reads(session, [assistant]))[0]


@router.delete("/{assistant_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_assistant(assistant_id: uuid.UUID, ctx: Write, session: SessionDep) -> None:
    """Delete an assistant with its conversations. Usage already recorded stays in the ledger."""
    await service.delete_assistant(session, ctx, assistant_id)


@router.post("/{assistant_id}/rotate-public-key", response_model=schemas.AssistantRead)
async def rotate_public_key(
    assistant_id: uuid.UUID, ctx: Write, session: SessionDep
) -> schemas.AssistantRead:
    """Issue a new public key for channels; the old one stops working at once."""
    assistant = await service.rotate_public_key(session, ctx, assistant_id)
    return (await _reads(session, [assistant]))[0]


@router.get("/{assistant_id}/unanswered-questions", response_model=list[schemas.UnansweredGroup])
async def list_unanswered_questions(
    assistant_id: uuid.UUID,
    ctx: Read,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Groups to return")] = 50,
) -> list[schemas.UnansweredGroup]:
    """Questions the assistant could not answer from its knowledge, grouped by similarity,
    largest groups first: what to add to the knowledge bases next."""
    assistant = await service.get_assistant(session, ctx, assistant_id)
    return await unanswered.grouped(session, assistant.id, limit=limit)


@router.post(
    "/{assistant_id}/unanswered-questions/resolve", response_model=schemas.ResolvedQuestions
)
async def resolve_unanswered_questions(
    assistant_id: uuid.UUID,
    body: schemas.ResolveQuestions,
    ctx: Write,
    session: SessionDep,
) -> schemas.ResolvedQuestions:
    """Mark questions as handled (their answer was added to a knowledge base): they leave the
    grouped list. Ids of other assistants' questions are ignored."""
    assistant = await service.get_assistant(session, ctx, assistant_id)
    resolved = await unanswered.resolve(session, assistant.id, body.question_ids)
    return schemas.ResolvedQuestions(resolved=resolved)


@router.get("/{assistant_id}/identity-secret", response_model=schemas.IdentitySecret)
async def get_identity_secret(
    assistant_id: uuid.UUID, ctx: Write, session: SessionDep
) -> schemas.IdentitySecret:
    """The secret the business's server signs its user ids with (HMAC-SHA256, hex), for the
    widget's identity verification. Keep it on the server; never put it in a page."""
    assistant = await service.get_assistant(session, ctx, assistant_id)
    return schemas.IdentitySecret(
        identity_secret=identity_secret(assistant.id, assistant.identity_secret_version)
    )


@router.post("/{assistant_id}/rotate-identity-secret", response_model=schemas.IdentitySecret)
async def rotate_identity_secret(
    assistant_id: uuid.UUID, ctx: Write, session: SessionDep
) -> schemas.IdentitySecret:
    """A new identity secret; hashes made with the old one stop verifying at once."""
    assistant = await service.rotate_identity_secret(session, ctx, assistant_id)
    return schemas.IdentitySecret(
        identity_secret=identity_secret(assistant.id, assistant.identity_secret_version)
    )
