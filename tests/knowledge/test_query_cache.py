"""Search questions' vectors are remembered per workspace: a repeated question skips the model."""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient

from backend.config import get_settings
from backend.db import PendingJob
from backend.knowledge import providers, retrieval
from backend.knowledge.providers import OpenAIEndpoint
from backend.knowledge.query_cache import QueryVectors, key_of, query_vectors
from tests.factories.knowledge import add_text, create_kb, run_jobs
from tests.factories.tenancy import make_workspace

MODEL = "local:all-MiniLM-L6-v2"


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts the query path really sent to the embedding model, in order."""
    sent: list[str] = []

    async def counted(
        spec: str, texts: list[str], endpoint: OpenAIEndpoint | None = None
    ) -> list[list[float]]:
        sent.extend(texts)
        return await providers.embed_texts(spec, texts, endpoint)

    monkeypatch.setattr(retrieval, "embed_texts", counted)
    return sent


async def test_a_repeated_question_is_embedded_once_per_workspace(embedded: list[str]) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    question = f"When do parcels to Norway arrive? {uuid.uuid4()}"
    vector = await retrieval._embed_query(first, MODEL, question, None)
    again = await retrieval._embed_query(first, MODEL, question, None)
    assert again == vector
    assert embedded == [question]
    # Another workspace asking the same never gets the first one's entry.
    other = await retrieval._embed_query(second, MODEL, question, None)
    assert other == vector
    assert embedded == [question, question]
    # Another text, or another endpoint, is another key.
    await retrieval._embed_query(first, MODEL, question + "?", None)
    assert len(embedded) == 3
    elsewhere = OpenAIEndpoint(base_url="http://127.0.0.1:9/v1", api_key=None)
    await retrieval._embed_query(first, MODEL, question, elsewhere)
    assert len(embedded) == 4


async def test_size_zero_turns_the_cache_off(
    embedded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "query_embedding_cache_size", 0)
    tenant = uuid.uuid4()
    question = f"Is there a cafeteria? {uuid.uuid4()}"
    for _ in range(3):
        await retrieval._embed_query(tenant, MODEL, question, None)
    assert embedded == [question] * 3
    assert query_vectors.get(key_of(tenant, MODEL, None, question)) is None


def test_the_least_recently_used_vector_goes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "query_embedding_cache_size", 2)
    cache = QueryVectors()
    tenant = uuid.uuid4()
    a, b, c = (key_of(tenant, MODEL, None, text) for text in ("a", "b", "c"))
    cache.put(a, [1.0])
    cache.put(b, [2.0])
    assert cache.get(a) == [1.0]  # a is now the most recent
    cache.put(c, [3.0])
    assert len(cache) == 2
    assert cache.get(b) is None
    assert (cache.get(a), cache.get(c)) == ([1.0], [3.0])
    returned = cache.get(a)
    assert returned is not None
    returned.append(9.0)  # a caller's copy; the entry stays as it was
    assert cache.get(a) == [1.0]


async def test_searching_twice_embeds_the_question_once(
    client: AsyncClient, recorded_jobs: list[PendingJob], embedded: list[str]
) -> None:
    owner = await make_workspace()
    kb_id = await create_kb(client, owner)
    await add_text(client, owner, kb_id, "Parcels to Norway take five to seven days to arrive.")
    assert all(r.startswith("ready:") for r in await run_jobs(recorded_jobs))
    question = "how long does a parcel to Norway take?"
    answers = []
    for _ in range(2):
        response = await client.post(
            f"/api/v1/knowledge-bases/{kb_id}/search",
            json={"query": question, "threshold": -1},
            headers=owner.headers(),
        )
        assert response.status_code == 200, response.text
        answers.append(response.json()["hits"])
    assert embedded.count(question) == 1
    assert answers[0] == answers[1]
    assert "Norway" in answers[0][0]["text"]
