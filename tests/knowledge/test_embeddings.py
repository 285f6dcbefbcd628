"""Embedding providers: the local all-MiniLM-L6-v2 against sentence-transformers' own vectors,
and the OpenAI-compatible provider against a stand-in server speaking the real wire format."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend.knowledge.embeddings import (
    EmbeddingError,
    EmbeddingProvider,
    LocalMiniLMProvider,
    OpenAIEmbeddingProvider,
    get_embedding_provider,
)
from backend.knowledge.embeddings.local import extract_model, model_zip_path, plan_batches
from backend.knowledge.embeddings.openai_provider import estimate_tokens
from tests.knowledge.openai_standin import OpenAIStandIn, normalized, standin_vector

REFERENCE = json.loads(
    (Path(__file__).parent / "fixtures" / "minilm_reference.json").read_text(encoding="utf-8")
)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The chunking tests use the same directory, so the model is unpacked and loaded once.
    return tmp_path_factory.getbasetemp() / "knowledge-models"


@pytest.fixture(scope="session")
def local(model_cache: Path) -> LocalMiniLMProvider:
    provider = get_embedding_provider("local:all-MiniLM-L6-v2", cache_dir=model_cache)
    assert isinstance(provider, LocalMiniLMProvider)
    provider.load()
    return provider


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# The local model


async def test_local_vectors_match_sentence_transformers(local: LocalMiniLMProvider) -> None:
    items = REFERENCE["items"]
    vectors = await local.embed([item["text"] for item in items])
    for item, vector in zip(items, vectors, strict=True):
        assert len(vector) == 384
        assert cosine(vector, item["vector"]) >= 0.9999, item["text"][:40]
        assert max(abs(a - b) for a, b in zip(vector, item["vector"], strict=True)) < 1e-4


async def test_vectors_are_unit_length(local: LocalMiniLMProvider) -> None:
    for vector in await local.embed(["short", "a somewhat longer sentence about invoices", ""]):
        assert math.isclose(math.fsum(x * x for x in vector), 1.0, abs_tol=1e-5)


async def test_batched_and_single_give_the_same_vectors(local: LocalMiniLMProvider) -> None:
    texts = [
        "One.",
        "A question about refunds and how long they take to arrive?",
        "Tables stay whole, or split by rows with the header repeated. " * 6,
        "Short again",
    ]
    together = await local.embed(texts)
    for text, vector in zip(texts, together, strict=True):
        (alone,) = await local.embed([text])
        assert np.allclose(alone, vector, atol=2e-6)


async def test_inputs_are_cut_at_256_tokens(local: LocalMiniLMProvider) -> None:
    base = " ".join(
        f"Paragraph {i} explains one more detail of the refund policy." for i in range(40)
    )
    assert local.count_tokens(base) > 400
    longer = base + " This sentence lies past the model's limit and changes nothing."
    a, b = await local.embed([base, longer])
    assert np.allclose(a, b, atol=1e-6)
    # The limit is in the model's tokens: the last kept tokens still count.
    head = local.count_tokens("x " * 254)
    assert head == 254 == local.max_tokens


async def test_token_counts_are_the_models_word_pieces(local: LocalMiniLMProvider) -> None:
    assert local.count_tokens("") == 0
    assert local.count_tokens("hello world") == 2
    # em ##bed ##ding ##s; the special tokens [CLS] and [SEP] are not counted.
    assert local.count_tokens("embeddings") == 4
    assert local.count_tokens_batch(["hello world", "embeddings"]) == [2, 4]
    for item in REFERENCE["items"]:
        assert local.count_tokens(item["text"]) == item["token_count"] - 2


async def test_similar_texts_are_close(local: LocalMiniLMProvider) -> None:
    query, right, wrong = await local.embed(
        [
            "How do I reset my password?",
            "To change a forgotten password, open the login page and choose 'Reset password'.",
            "Invoices are due within 30 days of the first business day of the month.",
        ]
    )
    assert cosine(query, right) > cosine(query, wrong) + 0.2


async def test_concurrent_calls_share_the_model(local: LocalMiniLMProvider) -> None:
    texts = [f"Concurrent request number {i} about shipping." for i in range(6)]
    expected = await local.embed(texts)
    results = await asyncio.gather(*(local.embed([text]) for text in texts))
    for (vector,), reference in zip(results, expected, strict=True):
        assert np.allclose(vector, reference, atol=2e-6)


def count_passes(local: LocalMiniLMProvider, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of every forward pass the provider runs."""
    passes: list[int] = []
    run_batch = local._run_batch

    def counted(weights: Any, batch: list[list[int]]) -> list[list[float]]:
        passes.append(len(batch))
        return run_batch(weights, batch)

    monkeypatch.setattr(local, "_run_batch", counted)
    return passes


async def test_concurrent_short_calls_are_embedded_in_one_pass(
    local: LocalMiniLMProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"Search query number {i}: when is the shop open?" for i in range(8)]
    expected = [(await local.embed([text]))[0] for text in texts]
    passes = count_passes(local, monkeypatch)
    # gather starts all eight calls before the drain task it schedules gets to run.
    results = await asyncio.gather(*(local.embed([text]) for text in texts))
    assert passes == [8]
    for (vector,), reference in zip(results, expected, strict=True):
        assert np.allclose(vector, reference, atol=2e-6)


async def test_a_cancelled_caller_does_not_disturb_the_others(local: LocalMiniLMProvider) -> None:
    texts = [f"Question {i} about delivery times" for i in range(4)]
    expected = [(await local.embed([text]))[0] for text in texts]
    calls = [asyncio.ensure_future(local.embed([text])) for text in texts]
    await asyncio.sleep(0)  # all four are queued
    await asyncio.sleep(0)  # and the drain has taken them to the model
    calls[1].cancel()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[1], asyncio.CancelledError)
    for index in (0, 2, 3):
        result = results[index]
        assert isinstance(result, list)
        assert np.allclose(result[0], expected[index], atol=2e-6)


async def test_a_model_error_reaches_every_waiting_caller(tmp_path: Path) -> None:
    provider = LocalMiniLMProvider(tmp_path, zip_path=tmp_path / "missing.zip")
    results = await asyncio.gather(
        *(provider.embed([f"query {i}"]) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, EmbeddingError) for r in results), results
    assert provider._waiting == {}  # nothing is left queued for the loop


async def test_without_coalescing_each_call_runs_alone(
    model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = LocalMiniLMProvider(model_cache, coalesce=False)
    passes = count_passes(provider, monkeypatch)
    texts = [f"Separate query {i}" for i in range(3)]
    results = await asyncio.gather(*(provider.embed([text]) for text in texts))
    assert passes == [1, 1, 1]
    assert all(len(vector) == 384 for (vector,) in results)


async def test_empty_batch(local: LocalMiniLMProvider) -> None:
    assert await local.embed([]) == []


def test_provider_attributes(local: LocalMiniLMProvider) -> None:
    assert isinstance(local, EmbeddingProvider)
    assert local.name == "local:all-MiniLM-L6-v2"
    assert local.dimension == 384
    assert local.max_tokens == 254


def test_batches_group_similar_lengths() -> None:
    lengths = [250, 5, 240, 7, 6, 256]
    batches = plan_batches(lengths, token_budget=512, max_batch=64)
    assert sorted(i for batch in batches for i in batch) == list(range(6))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 512 or len(batch) == 1
    assert [1, 4, 3] in batches  # the short ones together


def test_model_is_unpacked_once(model_cache: Path, local: LocalMiniLMProvider) -> None:
    first = extract_model(model_cache)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    again = extract_model(model_cache)
    assert again == first
    assert (again / "model.safetensors").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in first.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    assert model_zip_path().is_file()


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    provider = LocalMiniLMProvider(tmp_path, zip_path=tmp_path / "missing.zip")
    with pytest.raises(EmbeddingError, match="could not be"):
        provider.load()


def test_local_provider_is_one_per_process(model_cache: Path, local: LocalMiniLMProvider) -> None:
    again = get_embedding_provider("local:all-MiniLM-L6-v2", cache_dir=model_cache)
    assert again is local
    alias = get_embedding_provider(
        "local:sentence-transformers/all-MiniLM-L6-v2", cache_dir=model_cache
    )
    assert alias is local


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("local:bge-small", "has no model"),
        ("cohere:embed-v3", "Unknown embedding provider"),
        ("all-MiniLM-L6-v2", "not of the form"),
        ("openai:my-own-model", "not known"),
        ("local:all-MiniLM-L6-v2", "cache directory"),
    ],
)
def test_factory_refuses_what_it_cannot_make(spec: str, message: str) -> None:
    with pytest.raises(EmbeddingError, match=message):
        get_embedding_provider(spec)


async def test_factory_makes_openai_providers() -> None:
    provider = get_embedding_provider(
        "openai:text-embedding-3-small", openai_base_url="http://127.0.0.1:9/v1"
    )
    assert isinstance(provider, OpenAIEmbeddingProvider)
    assert (provider.name, provider.dimension, provider.max_tokens) == (
        "openai:text-embedding-3-small",
        1536,
        8191,
    )
    custom = get_embedding_provider(
        "openai:nomic-embed-text", openai_base_url="http://127.0.0.1:9/v1", dimension=768
    )
    assert custom.dimension == 768
    await provider.aclose()
    assert isinstance(custom, OpenAIEmbeddingProvider)
    await custom.aclose()


# The OpenAI-compatible provider


@pytest.fixture
async def standin() -> AsyncIterator[OpenAIStandIn]:
    async with OpenAIStandIn(dimension=8) as server:
        yield server


def make_provider(server: OpenAIStandIn, **options: object) -> OpenAIEmbeddingProvider:
    settings: dict[str, object] = {
        "model": server.model,
        "base_url": server.base_url,
        "api_key": server.api_key,
        "dimension": server.dimension,
        "max_retries": 0,
        "timeout_seconds": 5.0,
    }
    settings.update(options)
    return OpenAIEmbeddingProvider(**settings)  # type: ignore[arg-type]


async def test_openai_vectors_come_back_normalized_and_in_order(standin: OpenAIStandIn) -> None:
    texts = ["alpha", "beta", "gamma"]
    async with make_provider(standin) as provider:
        vectors = await provider.embed(texts)
    for text, vector in zip(texts, vectors, strict=True):
        assert np.allclose(vector, normalized(standin_vector(text, 8)), atol=1e-6)
    (request,) = standin.requests
    assert request["model"] == standin.model
    assert request["input"] == texts
    assert request["encoding_format"] == "base64"  # the SDK's default


async def test_openai_servers_that_send_floats_work_too() -> None:
    async with (
        OpenAIStandIn(dimension=8, float_only=True) as server,
        make_provider(server) as provider,
    ):
        (vector,) = await provider.embed(["alpha"])
    assert np.allclose(vector, normalized(standin_vector("alpha", 8)), atol=1e-6)


async def test_openai_requests_are_batched(standin: OpenAIStandIn) -> None:
    texts = [f"text {i}" for i in range(7)]
    async with make_provider(standin, batch_size=3) as provider:
        vectors = await provider.embed(texts)
    assert [len(r["input"]) for r in standin.requests] == [3, 3, 1]
    assert [r["input"] for r in standin.requests][2] == ["text 6"]
    for text, vector in zip(texts, vectors, strict=True):
        assert np.allclose(vector, normalized(standin_vector(text, 8)), atol=1e-6)


async def test_openai_empty_texts_are_sent_as_a_space(standin: OpenAIStandIn) -> None:
    async with make_provider(standin) as provider:
        vectors = await provider.embed(["", "text"])
    assert standin.requests[0]["input"] == [" ", "text"]
    assert len(vectors) == 2


async def test_openai_dimensions_can_be_requested(standin: OpenAIStandIn) -> None:
    async with make_provider(standin, dimension=4, send_dimensions=True) as provider:
        (vector,) = await provider.embed(["alpha"])
    assert standin.requests[0]["dimensions"] == 4
    assert len(vector) == 4


async def test_openai_wrong_key_is_explained(standin: OpenAIStandIn) -> None:
    async with make_provider(standin, api_key="wrong") as provider:
        with pytest.raises(EmbeddingError, match="rejected the API key") as caught:
            await provider.embed(["alpha"])
    assert not caught.value.retryable
    assert "wrong" not in caught.value.reason


async def test_openai_server_errors_are_retryable(standin: OpenAIStandIn) -> None:
    standin.fail_with(500)
    async with make_provider(standin) as provider:
        with pytest.raises(EmbeddingError, match="HTTP 500") as caught:
            await provider.embed(["alpha"])
    assert caught.value.retryable


async def test_openai_sdk_retries_a_failed_request(standin: OpenAIStandIn) -> None:
    standin.fail_with(503, retry_after_ms=10)
    async with make_provider(standin, max_retries=1) as provider:
        (vector,) = await provider.embed(["alpha"])
    assert len(standin.requests) == 2
    assert len(vector) == 8


async def test_openai_rate_limit_is_explained(standin: OpenAIStandIn) -> None:
    standin.fail_with(429, "Rate limit reached for requests", code="rate_limit_exceeded")
    async with make_provider(standin) as provider:
        with pytest.raises(EmbeddingError, match="rate limiting") as caught:
            await provider.embed(["alpha"])
    assert caught.value.retryable


async def test_openai_unknown_model_is_explained(standin: OpenAIStandIn) -> None:
    async with make_provider(standin, model="no-such-model", dimension=8) as provider:
        with pytest.raises(EmbeddingError, match="does not know the model 'no-such-model'"):
            await provider.embed(["alpha"])


async def test_openai_wrong_dimension_is_explained(standin: OpenAIStandIn) -> None:
    async with make_provider(standin, dimension=16) as provider:
        with pytest.raises(EmbeddingError, match="vectors of 8 dimensions, but 16"):
            await provider.embed(["alpha"])


async def test_openai_unreachable_server_is_explained() -> None:
    async with OpenAIStandIn() as server:
        base_url = server.base_url
    provider = OpenAIEmbeddingProvider(
        model="text-embedding-3-small", base_url=base_url, api_key="k", max_retries=0
    )
    async with provider:
        with pytest.raises(EmbeddingError, match="could not be reached") as caught:
            await provider.embed(["alpha"])
    assert caught.value.retryable


def test_openai_token_estimate_counts_high() -> None:
    provider = OpenAIEmbeddingProvider(
        model="text-embedding-3-small", base_url="http://127.0.0.1:9/v1", use_tiktoken=False
    )
    text = "The quick brown fox jumps over the lazy dog."
    assert provider.count_tokens(text) == estimate_tokens(text) >= 10  # 10 tokens in cl100k
    assert estimate_tokens("東京都") == 3
    assert estimate_tokens("") == 0
