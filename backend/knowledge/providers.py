"""The embedding provider a knowledge base's model name stands for, with Parley's settings."""

from __future__ import annotations

from backend.config import get_settings
from backend.knowledge.embeddings import EmbeddingProvider, get_embedding_provider


def provider_for(spec: str) -> EmbeddingProvider:
    settings = get_settings()
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    kind, _, model = spec.partition(":")
    dimension = (
        settings.openai_embedding_dimension
        if kind == "openai" and model == settings.openai_embedding_model
        else None
    )
    return get_embedding_provider(
        spec,
        openai_base_url=settings.openai_base_url,
        openai_api_key=key,
        cache_dir=settings.resolved_model_cache_dir,
        dimension=dimension,
    )
