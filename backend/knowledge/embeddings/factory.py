"""From a provider name ("local:all-MiniLM-L6-v2", "openai:text-embedding-3-small") to a provider.

The local model is one per process (per cache directory): its weights take about 90 MB of
memory and load once. An OpenAI-compatible provider is cheap and is made per call, with the
base URL and key the caller resolved (the platform's, or a tenant's own); close it with
`aclose()` when done.
"""

from __future__ import annotations

import threading
from pathlib import Path

from backend.knowledge.embeddings.base import EmbeddingError, EmbeddingProvider
from backend.knowledge.embeddings.local import MODEL_NAME, LocalMiniLMProvider
from backend.knowledge.embeddings.openai_provider import OpenAIEmbeddingProvider

DEFAULT_PROVIDER = f"local:{MODEL_NAME}"
_LOCAL_ALIASES = {MODEL_NAME.lower(), f"sentence-transformers/{MODEL_NAME}".lower()}

_local_lock = threading.Lock()
_local_providers: dict[Path, LocalMiniLMProvider] = {}


def local_provider(cache_dir: Path) -> LocalMiniLMProvider:
    """The process-wide local model for `cache_dir`."""
    key = Path(cache_dir).resolve()
    with _local_lock:
        provider = _local_providers.get(key)
        if provider is None:
            provider = LocalMiniLMProvider(key)
            _local_providers[key] = provider
        return provider


def get_embedding_provider(
    spec: str,
    *,
    openai_base_url: str | None = None,
    openai_api_key: str | None = None,
    cache_dir: Path | None = None,
    dimension: int | None = None,
) -> EmbeddingProvider:
    """The provider that `spec` ("kind:model") names.

    `cache_dir` is where the local model is unpacked; `dimension` is the vector size of an
    OpenAI-compatible model that is not one of OpenAI's own.
    """
    kind, sep, model = spec.strip().partition(":")
    kind = kind.lower()
    if not sep or not model:
        raise EmbeddingError(
            f"The embedding provider {spec!r} is not of the form 'local:{MODEL_NAME}' or "
            "'openai:<model>'."
        )
    if kind == "local":
        if model.lower() not in _LOCAL_ALIASES:
            raise EmbeddingError(
                f"The local embedding provider has no model {model!r}; it offers {MODEL_NAME}."
            )
        if cache_dir is None:
            raise EmbeddingError("The local embedding model needs a cache directory.")
        return local_provider(cache_dir)
    if kind == "openai":
        return OpenAIEmbeddingProvider(
            model=model,
            base_url=openai_base_url,
            api_key=openai_api_key,
            dimension=dimension,
        )
    raise EmbeddingError(
        f"Unknown embedding provider {kind!r} in {spec!r}; use 'local' or 'openai'."
    )
