"""Embedding providers: the offline all-MiniLM-L6-v2 default and OpenAI-compatible servers."""

from backend.knowledge.embeddings.base import EmbeddingError, EmbeddingProvider, l2_normalize
from backend.knowledge.embeddings.factory import (
    DEFAULT_PROVIDER,
    get_embedding_provider,
    local_provider,
)
from backend.knowledge.embeddings.local import LocalMiniLMProvider
from backend.knowledge.embeddings.openai_provider import OpenAIEmbeddingProvider

__all__ = [
    "DEFAULT_PROVIDER",
    "EmbeddingError",
    "EmbeddingProvider",
    "LocalMiniLMProvider",
    "OpenAIEmbeddingProvider",
    "get_embedding_provider",
    "l2_normalize",
    "local_provider",
]
