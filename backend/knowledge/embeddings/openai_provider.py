"""Embeddings from OpenAI or any server that speaks the OpenAI embeddings API.

Goes through the official `openai` SDK: `POST {base_url}/embeddings` with {model, input}. The
base URL, model and key are set per platform, and a tenant may bring its own; the caller picks
which and passes them in. Vectors are checked against the configured dimension and
L2-normalized (OpenAI's already are; other servers' may not be).

Tokens are counted with tiktoken when it is installed and has the model's encoding at hand
(it downloads encodings on first use, so offline it usually has not); otherwise with a
conservative estimate that counts high, so chunks sized with it stay within the model's limit.
"""

from __future__ import annotations

import importlib
import math
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import numpy as np
import openai

from backend.knowledge.embeddings.base import EmbeddingError

# Known OpenAI embedding models: their vector sizes. Any other model needs its dimension set.
KNOWN_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
DEFAULT_MAX_TOKENS = 8191  # OpenAI's per-input limit for its embedding models
DEFAULT_BATCH_SIZE = 256  # inputs per request (OpenAI allows up to 2048)
REQUEST_TOKEN_LIMIT = 250_000  # tokens per request, under OpenAI's 300,000
NO_KEY = "no-key"  # sent when the server needs no key: the SDK insists on one


def estimate_tokens(text: str) -> int:
    """An upper-leaning token count for BPE tokenizers such as OpenAI's.

    English averages about 4 characters a token; this counts 3 ASCII characters a token and a
    whole token for every other character (CJK and accented text, emoji).
    """
    ascii_chars = len(text.encode("ascii", "ignore"))
    return math.ceil(ascii_chars / 3) + (len(text) - ascii_chars)


def _tiktoken_counter(model: str) -> Callable[[str], int] | None:
    try:
        tiktoken: Any = importlib.import_module("tiktoken")
    except ImportError:
        return None
    try:
        encoding = tiktoken.encoding_for_model(model)
    except Exception:  # unknown model, or the encoding cannot be fetched (offline)
        return None

    def count(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    return count


def _excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class OpenAIEmbeddingProvider:
    """An OpenAI-compatible embeddings endpoint.

    `dimension` is what the model returns (known for OpenAI's own models); with
    `send_dimensions` it is also asked for, which text-embedding-3 models honour by shortening
    their vectors. `max_tokens` is the model's per-input limit.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        dimension: int | None = None,
        send_dimensions: bool = False,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_retries: int = 2,
        timeout_seconds: float = 60.0,
        use_tiktoken: bool = True,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        if not model:
            raise EmbeddingError("No embedding model is set for the OpenAI-compatible provider.")
        resolved = dimension or KNOWN_DIMENSIONS.get(model)
        if not resolved or resolved <= 0:
            raise EmbeddingError(
                f"The vector size of the embedding model {model!r} is not known; set its "
                "dimension in the embedding settings."
            )
        self.model = model
        self.name = f"openai:{model}"
        self.dimension = resolved
        self.max_tokens = max_tokens
        self.base_url = base_url
        self._send_dimensions = send_dimensions
        self._batch_size = max(1, batch_size)
        self._timeout = timeout_seconds
        self._client = client or openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or NO_KEY,
            max_retries=max_retries,
            timeout=timeout_seconds,
        )
        self._use_tiktoken = use_tiktoken
        self._counter: Callable[[str], int] | None = None
        self._counter_lock = threading.Lock()

    # Token counting

    def count_tokens(self, text: str) -> int:
        counter = self._counter
        if counter is None:
            with self._counter_lock:
                if self._counter is None:
                    exact = _tiktoken_counter(self.model) if self._use_tiktoken else None
                    self._counter = exact or estimate_tokens
                counter = self._counter
        return counter(text)

    # Embedding

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for batch in self._batches(texts):
            vectors.extend(await self._embed_batch(batch))
        return vectors

    def _batches(self, texts: Sequence[str]) -> list[list[str]]:
        """Requests of at most `batch_size` inputs and REQUEST_TOKEN_LIMIT tokens.

        An empty input is sent as one space: the API refuses empty strings.
        """
        batches: list[list[str]] = []
        current: list[str] = []
        current_tokens = 0
        for text in texts:
            text = text if text.strip() else " "
            tokens = min(self.count_tokens(text), self.max_tokens)
            if current and (
                len(current) >= self._batch_size or current_tokens + tokens > REQUEST_TOKEN_LIMIT
            ):
                batches.append(current)
                current, current_tokens = [], 0
            current.append(text)
            current_tokens += tokens
        if current:
            batches.append(current)
        return batches

    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        try:
            if self._send_dimensions:
                response = await self._client.embeddings.create(
                    model=self.model, input=batch, dimensions=self.dimension
                )
            else:
                response = await self._client.embeddings.create(model=self.model, input=batch)
        except openai.APIError as exc:
            raise self._explain(exc) from exc
        except ValueError as exc:  # the SDK's own check of the answer
            raise EmbeddingError(
                f"The embeddings server at {self._where()} sent an answer that is not in the "
                f"OpenAI embeddings format ({exc}).",
                retryable=True,
            ) from exc
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != len(batch) or [item.index for item in data] != list(range(len(batch))):
            raise EmbeddingError(
                f"The embeddings server at {self._where()} returned {len(data)} vectors for "
                f"{len(batch)} texts.",
                retryable=True,
            )
        rows = [item.embedding for item in data]
        sizes = {len(row) for row in rows}
        if sizes != {self.dimension}:
            got = ", ".join(str(size) for size in sorted(sizes))
            raise EmbeddingError(
                f"The embedding model {self.model!r} returned vectors of {got} dimensions, but "
                f"{self.dimension} are configured; fix the dimension in the embedding settings."
            )
        matrix = np.asarray(rows, dtype=np.float64)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        normalized: list[list[float]] = (matrix / np.maximum(norms, 1e-12)).tolist()
        return normalized

    def _where(self) -> str:
        return self.base_url or "api.openai.com"

    def _explain(self, exc: openai.APIError) -> EmbeddingError:
        where = self._where()
        if isinstance(exc, openai.APITimeoutError):
            return EmbeddingError(
                f"The embeddings server at {where} did not answer within {self._timeout:g} s.",
                retryable=True,
            )
        if isinstance(exc, openai.APIConnectionError):
            return EmbeddingError(
                f"The embeddings server at {where} could not be reached.", retryable=True
            )
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = _excerpt(str(exc.message))
            if status == 401:
                return EmbeddingError(
                    f"The embeddings server at {where} rejected the API key (HTTP 401); check "
                    "the key in the embedding settings."
                )
            if status == 403:
                return EmbeddingError(
                    f"The embeddings server at {where} refused access to the model "
                    f"{self.model!r} (HTTP 403): {detail}"
                )
            if status == 404:
                return EmbeddingError(
                    f"The embeddings server at {where} does not know the model {self.model!r}, "
                    f"or the base URL is wrong (HTTP 404)."
                )
            if status == 429:
                return EmbeddingError(
                    f"The embeddings server at {where} is rate limiting or out of quota "
                    f"(HTTP 429): {detail}",
                    retryable=True,
                )
            if status >= 500 or status in (408, 409):
                return EmbeddingError(
                    f"The embeddings server at {where} failed (HTTP {status}); it may work "
                    f"again later: {detail}",
                    retryable=True,
                )
            return EmbeddingError(
                f"The embeddings server at {where} refused the request (HTTP {status}): {detail}"
            )
        return EmbeddingError(
            f"The embeddings server at {where} sent an answer that could not be read: "
            f"{_excerpt(str(exc))}",
            retryable=True,
        )

    # Lifetime

    async def aclose(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> OpenAIEmbeddingProvider:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
