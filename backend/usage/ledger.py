"""The usage ledger: one append-only row per reply and per embedding batch, priced on write.

Costs are integers in micro-units (millionths of the price table's currency), rounded up per
row, from the `prices` setting. A model missing from the table costs nothing (local models,
the offline answer, self-hosted servers).
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from backend.config import ModelPrice, get_settings
from backend.models import UsageKind, UsageOutcome, UsageRecord

_PER = 1_000_000  # prices are per million tokens


def price_of(model: str) -> ModelPrice:
    return get_settings().prices.get(model) or ModelPrice()


def cost_micros(model: str, *, prompt: int = 0, completion: int = 0, embedding: int = 0) -> int:
    price = price_of(model)
    total = prompt * price.prompt + completion * price.completion + embedding * price.embedding
    return -(-total // _PER)  # ceiling division: a row never rounds down to free


async def record_reply(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    assistant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    charged: bool,
) -> UsageRecord:
    """A reply's row. `charged=False` keeps the tokens on record at no cost (a failed call)."""
    cost = cost_micros(model, prompt=prompt_tokens, completion=completion_tokens)
    row = UsageRecord(
        tenant_id=tenant_id,
        kind=UsageKind.reply,
        outcome=UsageOutcome.charged if charged else UsageOutcome.free,
        assistant_id=assistant_id,
        conversation_id=conversation_id,
        message_id=message_id,
        model=model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_micros=cost if charged else 0,
    )
    session.add(row)
    await session.flush()
    return row


async def record_embedding(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    knowledge_base_id: uuid.UUID,
    model: str,
    tokens: int,
) -> UsageRecord:
    row = UsageRecord(
        tenant_id=tenant_id,
        kind=UsageKind.embedding,
        outcome=UsageOutcome.charged,
        knowledge_base_id=knowledge_base_id,
        model=model,
        embedding_tokens=tokens,
        cost_micros=cost_micros(model, embedding=tokens),
    )
    session.add(row)
    await session.flush()
    return row
