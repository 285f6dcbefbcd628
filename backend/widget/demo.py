"""The demo workspace's assistant: a sample shoe shop's knowledge, answered offline, shown on
`/demo`. Seeded once by `parley seed-demo`; its public key is kept in <data_dir>/demo.json."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.assistants import schemas as assistant_schemas
from backend.assistants import service as assistants
from backend.knowledge import schemas as knowledge_schemas
from backend.knowledge import service as knowledge
from backend.models import Assistant
from backend.tenancy.context import TenantContext, TenantId
from backend.tenancy.permissions import Permission

DEMO_NAME = "Harbour Shoes"
DEMO_KNOWLEDGE = """# Harbour Shoes

Harbour Shoes is a family shoe shop at 12 Harbour Street, open since 1987. We sell walking
shoes, running shoes, sandals and children's shoes, and we repair leather shoes.

## Opening hours

The shop opens at 9:00 and closes at 18:00 from Monday to Friday. On Saturdays it opens at
10:00 and closes at 14:00. It is closed on Sundays and public holidays.

## Returns and refunds

Unworn shoes can be returned within 30 days with the receipt. Refunds go back to the card you
paid with and arrive within five working days. Sale items can be exchanged but not refunded.

## Delivery

Orders placed before 14:00 leave the same day. Delivery takes two to three working days and
costs 4.90; it is free for orders over 60.

## Repairs

We resole leather shoes in about a week. New heels take two days. Bring the shoes to the shop;
we call you when they are ready.

## Sizes

Our shoes come in EU sizes 19 to 48. Staff measure feet for free; for children we recommend
measuring every three months.
"""
SUGGESTED = ["When are you open on Saturday?", "How do returns work?", "Do you repair shoes?"]


def _context(tenant_id: uuid.UUID) -> TenantContext:
    return TenantContext(tenant_id=TenantId(tenant_id), permissions=frozenset(Permission))


async def seed_demo_assistant(session: AsyncSession, tenant_id: uuid.UUID, saved: Path) -> str:
    """The demo assistant's public key: the one saved earlier if it still exists, else a new
    assistant on a new knowledge base (its ingestion is queued for the worker)."""
    key = read_demo_key(saved)
    if key and await session.scalar(select(Assistant.id).where(Assistant.public_key == key)):
        return key
    ctx = _context(tenant_id)
    kb = await knowledge.create_knowledge_base(
        session, ctx, knowledge_schemas.KnowledgeBaseCreate(name=f"{DEMO_NAME} handbook")
    )
    await knowledge.create_source(
        session,
        ctx,
        kb,
        knowledge_schemas.SourceCreate(kind="text", title="Shop handbook", text=DEMO_KNOWLEDGE),
    )
    assistant = await assistants.create_assistant(
        session,
        ctx,
        assistant_schemas.AssistantCreate(
            name=DEMO_NAME,
            instructions="You help the customers of Harbour Shoes, a family shoe shop.",
            knowledge_base_ids=[kb.id],
            welcome_message="Hello! Ask me about opening hours, returns, delivery or repairs.",
            suggested_questions=SUGGESTED,
            appearance=assistant_schemas.Appearance(
                title=DEMO_NAME, primary_color="#0f766e", greeting="Questions? Ask me."
            ),
        ),
    )
    _save_demo_key(saved, assistant.public_key)
    return assistant.public_key


def read_demo_key(saved: Path) -> str | None:
    if not saved.is_file():
        return None
    return str(json.loads(saved.read_text()).get("assistant_public_key", "")) or None


def _save_demo_key(saved: Path, key: str) -> None:
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps({"assistant_public_key": key}) + "\n")
