"""The embedding provider a knowledge base's model name stands for.

`openai:` models use the workspace's own endpoint and key when it set them, else Parley's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.config import get_settings
from backend.kit.crypto import decrypt
from backend.knowledge.embeddings import EmbeddingProvider, get_embedding_provider
from backend.models import TenantEmbeddingSettings


@dataclass(frozen=True)
class OpenAIEndpoint:
    base_url: str | None
    api_key: str | None


async def tenant_endpoint(session: AsyncSession, tenant_id: uuid.UUID) -> OpenAIEndpoint | None:
    """The workspace's own OpenAI-compatible endpoint, if it set one (RLS scopes the read)."""
    row = await session.scalar(
        select(TenantEmbeddingSettings).where(TenantEmbeddingSettings.tenant_id == tenant_id)
    )
    if row is None:
        return None
    return endpoint_of(row.openai_base_url, row.openai_api_key_encrypted)


def endpoint_of(base_url: str | None, api_key_encrypted: str | None) -> OpenAIEndpoint | None:
    """The endpoint a `tenant_embedding_settings` row describes, its key decrypted."""
    if base_url is None and api_key_encrypted is None:
        return None
    key = decrypt(api_key_encrypted) if api_key_encrypted else None
    return OpenAIEndpoint(base_url=base_url, api_key=key)


def provider_for(spec: str, endpoint: OpenAIEndpoint | None = None) -> EmbeddingProvider:
    settings = get_settings()
    platform_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    kind, _, model = spec.partition(":")
    dimension = (
        settings.openai_embedding_dimension
        if kind == "openai" and model == settings.openai_embedding_model
        else None
    )
    return get_embedding_provider(
        spec,
        openai_base_url=endpoint.base_url if endpoint else settings.openai_base_url,
        openai_api_key=endpoint.api_key if endpoint else platform_key,
        cache_dir=settings.resolved_model_cache_dir,
        dimension=dimension,
    )


async def embed_texts(
    spec: str, texts: list[str], endpoint: OpenAIEndpoint | None = None
) -> list[list[float]]:
    """Embed with a provider made for this call, closing its connections afterwards."""
    provider = provider_for(spec, endpoint)
    try:
        return await provider.embed(texts)
    finally:
        close = getattr(provider, "aclose", None)
        if close is not None:
            await close()


async def endpoint_for(
    session: AsyncSession, tenant_id: uuid.UUID, spec: str
) -> OpenAIEndpoint | None:
    """The workspace's endpoint when `spec` is an `openai:` model; the local model needs none."""
    return await tenant_endpoint(session, tenant_id) if spec.startswith("openai:") else None
