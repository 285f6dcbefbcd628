"""The usage ledger: one append-only row per reply and per embedding batch, priced on write.

A reply's row is written by the SQL function `parley_finish_reply` (backend/assistants/engine.py),
with the cost from `cost_micros`; an embedding batch's by `record_embedding`.

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
