"""Search questions' vectors, remembered per process so a question asked again skips the model.

Keys hold the workspace, the embedding model, the endpoint that computes it and the exact text:
a vector is never shared between workspaces, so no workspace can tell from how fast a search
answers what another workspace has asked. The least recently used entry goes first once
`PARLEY_QUERY_EMBEDDING_CACHE_SIZE` are held; 0 turns the cache off.
"""

from __future__ import annotations

import uuid
from array import array

from backend.config import get_settings
from backend.kit.lru import LRU

_Key = tuple[uuid.UUID, str, str | None, str]


class QueryVectors:
    """Vectors kept as packed doubles (8 bytes a number, where a list of Python floats takes
    32): 1,024 local-model vectors hold about 3 MB."""

    def __init__(self) -> None:
        self._vectors: LRU[_Key, array[float]] = LRU()

    def get(self, key: _Key) -> list[float] | None:
        vector = self._vectors.get(key)
        return None if vector is None else vector.tolist()

    def put(self, key: _Key, vector: list[float]) -> None:
        self._vectors.put(key, array("d", vector), get_settings().query_embedding_cache_size)

    def __len__(self) -> int:
        return len(self._vectors)

    def clear(self) -> None:
        self._vectors.clear()


query_vectors = QueryVectors()


def key_of(tenant_id: uuid.UUID, model: str, base_url: str | None, query: str) -> _Key:
    return (tenant_id, model, base_url, query)
