"""Unanswered questions, grouped by similarity so the tenant sees what knowledge is missing.

Groups are made when listed, from the most recent open questions: each question joins the
first group whose leader is at least `SIMILAR` (cosine, local model) like it. A few thousand
questions take milliseconds in numpy; no clustering is stored, so groups follow new questions.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.assistants.schemas import UnansweredGroup
from backend.models import UnansweredQuestion

SIMILAR = 0.75
RECENT = 2000


async def grouped(
    session: AsyncSession, assistant_id: uuid.UUID, *, limit: int
) -> list[UnansweredGroup]:
    rows = (
        await session.execute(
            select(
                UnansweredQuestion.id,
                UnansweredQuestion.question,
                UnansweredQuestion.embedding,
                UnansweredQuestion.created_at,
            )
            .where(
                UnansweredQuestion.assistant_id == assistant_id,
                UnansweredQuestion.resolved_at.is_(None),
            )
            .order_by(UnansweredQuestion.created_at.desc(), UnansweredQuestion.id.desc())
            .limit(RECENT)
        )
    ).all()
    groups: list[dict[str, Any]] = []
    for row in rows:  # newest first: each group's leader is its latest question
        vector = _unit(row.embedding)
        home = next((g for g in groups if _alike(g, row.question, vector)), None)
        if home is None:
            groups.append({"leader": row, "vector": vector, "members": [row]})
        else:
            home["members"].append(row)
    groups.sort(key=lambda g: (-len(g["members"]), -g["leader"].created_at.timestamp()))
    return [_group(g) for g in groups[:limit]]


def _unit(embedding: Any) -> np.ndarray[Any, Any] | None:
    if embedding is None:
        return None
    vector = np.asarray(embedding, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else None


def _alike(group: dict[str, Any], question: str, vector: np.ndarray[Any, Any] | None) -> bool:
    leader_vector = group["vector"]
    if vector is None or leader_vector is None:
        return bool(group["leader"].question.strip().lower() == question.strip().lower())
    return float(np.dot(leader_vector, vector)) >= SIMILAR


def _group(group: dict[str, Any]) -> UnansweredGroup:
    members = group["members"]
    examples = list(dict.fromkeys(m.question for m in members))[:5]
    return UnansweredGroup(
        question=group["leader"].question,
        count=len(members),
        last_asked_at=group["leader"].created_at,
        examples=examples,
        question_ids=[m.id for m in members],
    )


async def resolve(
    session: AsyncSession, assistant_id: uuid.UUID, question_ids: list[uuid.UUID]
) -> int:
    result = await session.execute(
        update(UnansweredQuestion)
        .where(
            UnansweredQuestion.assistant_id == assistant_id,
            UnansweredQuestion.id.in_(question_ids),
            UnansweredQuestion.resolved_at.is_(None),
        )
        .values(resolved_at=datetime.now(UTC))
    )
    return int(getattr(result, "rowcount", 0) or 0)
