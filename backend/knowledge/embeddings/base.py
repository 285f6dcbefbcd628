"""What every embedding provider offers, and the one error they raise.

A provider turns texts into L2-normalized vectors of a fixed dimension and counts tokens the way
its model does, so chunks can be sized in the model's own tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from backend.errors import AppError


class EmbeddingError(AppError):
    """Embedding failed. `reason` (also `detail`) is a sentence a person can act on.

    `retryable` says whether the same call may succeed later (a timeout, an overloaded or failing
    server) or will fail again until something is changed (a wrong key, an unknown model).
    """

    status_code = 503
    code = "embedding_failed"

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@runtime_checkable
class EmbeddingProvider(Protocol):
    """An embedding model.

    `name` identifies the model and its provider ("local:all-MiniLM-L6-v2",
    "openai:text-embedding-3-small"); vectors from providers with different names are never
    compared. `max_tokens` is the most tokens, as `count_tokens` counts them, that one input may
    have without the model cutting it off.
    """

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalized vector per text, in order; batched internally."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many of the model's tokens `text` takes, not counting any the model adds."""
        ...


def l2_normalize(vector: Sequence[float]) -> list[float]:
    """`vector` scaled to length 1 (a zero vector stays zero)."""
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if norm == 0.0:
        return [0.0 for _ in vector]
    return [x / norm for x in vector]
