"""Search questions' vectors, remembered per process so a question asked again skips the model.

Keys hold the workspace, the embedding model, the endpoint that computes it and the exact text:
a vector is never shared between workspaces, so no workspace can tell from how fast a search
answers what another workspace has asked. The least recently used entry goes first once
`PARLEY_QUERY_EMBEDDING_CACHE_SIZE` are held; 0 turns the cache off.
"""

from __future__ import annotations

import threading
import uuid
from array import array
from collections import OrderedDict

from backend.config import get_settings

_Key = tuple[uuid.UUID, str, str | None, str]


class QueryVectors:
    """A thread-safe LRU of vectors, kept as packed doubles (8 bytes a number, where a list of
    Python floats takes 32): 1,024 local-model vectors hold about 3 MB."""

    def __init__(self) -> None:
        self._vectors: OrderedDict[_Key, array[float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _Key) -> list[float] | None:
        with self._lock:
            vector = self._vectors.get(key)
            if vector is None:
                return None
            self._vectors.move_to_end(key)
        return vector.tolist()

    def put(self, key: _Key, vector: list[float]) -> None:
        size = get_settings().query_embedding_cache_size
        with self._lock:
            self._vectors[key] = array("d", vector)
            self._vectors.move_to_end(key)
            while len(self._vectors) > size:
                self._vectors.popitem(last=False)

    def __len__(self) -> int:
        return len(self._vectors)

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()


query_vectors = QueryVectors()


def key_of(tenant_id: uuid.UUID, model: str, base_url: str | None, query: str) -> _Key:
    return (tenant_id, model, base_url, query)
