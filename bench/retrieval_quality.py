"""Retrieval quality: hand-written questions over a real public corpus, with their answers' pages.

    python -m bench.retrieval_quality [--top-k 10] [--verbose]

The corpus is the PostgreSQL 15 manual in HTML (install it with
`apt-get install postgresql-doc-15`; see bench/corpus/pgdocs.py): the 176 pages of its
tutorial, data definition, queries, data types, functions, indexes, full text search,
concurrency, configuration, authentication and PL/pgSQL chapters. Every page is uploaded as an
HTML file into one knowledge base with Parley's defaults (local all-MiniLM-L6-v2, 200-token
chunks, English full text) and ingested by the real pipeline (backend.knowledge.pipeline),
in this process.

bench/corpus/questions.json holds 60 questions written by hand in a user's words, each with the
page (or the few pages) that answer it. Each question is asked through
backend.knowledge.retrieval.search, as the app's role in the tenant's context, in the three
modes: vector only, full text only, and hybrid (reciprocal rank fusion of both), with the
default similarity threshold. A question's rank is that of the first hit (chunk) cited from
one of its pages.

  recall@5   share of questions with such a hit among the first 5
  MRR        mean of 1 / rank over the first `--top-k` hits (0 when none is there)

Nothing in Parley is tuned to these questions. Needs PARLEY_TEST_ADMIN_DATABASE_URL; the
benchmark makes its own database and drops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from bench.corpus import pgdocs
from bench.ingestion import (
    BenchDatabase,
    create_knowledge_base,
    create_workspace,
    discard_jobs,
    machine,
    server_versions,
    upload,
)

DB_NAME = "parley_bench_quality"
APP_USER, APP_PASSWORD = "parley_bench_quality_app", "parley-bench-quality-app"
MODES = ("vector", "text", "hybrid")


async def ingest(workspace: Any, kb_id: Any, files: list[tuple[str, bytes]]) -> dict[str, Any]:
    from backend.knowledge.pipeline import ingest_document

    documents = await upload(workspace, kb_id, files)
    started = time.perf_counter()
    outcomes: dict[str, int] = {}
    for document_id, version in documents:
        outcome = await ingest_document(workspace.tenant_id, document_id, version)
        kind = outcome.partition(":")[0]
        outcomes[kind] = outcomes.get(kind, 0) + 1
    return {"seconds": round(time.perf_counter() - started, 1), "outcomes": outcomes}


async def chunk_count(workspace: Any, kb_id: Any) -> int:
    from sqlalchemy import func, select

    from backend.db import unit_of_work
    from backend.models import Chunk

    async with unit_of_work(tenant_id=workspace.tenant_id) as session:
        count = await session.scalar(
            select(func.count()).select_from(Chunk).where(Chunk.knowledge_base_id == kb_id)
        )
    return int(count or 0)


async def ask(
    workspace: Any, kb_id: Any, question: str, mode: str, top_k: int
) -> tuple[list[str | None], float]:
    """The cited file names of the hits, best first, and the search's own time in ms."""
    from backend.db import unit_of_work
    from backend.knowledge import service
    from backend.knowledge.retrieval import search
    from backend.knowledge.schemas import SearchMode

    async with unit_of_work(tenant_id=workspace.tenant_id) as session:
        kb = await service.get_knowledge_base(session, workspace.ctx, kb_id)
        response = await search(session, kb, question, top_k=top_k, mode=SearchMode(mode))
    return [hit.citation.filename for hit in response.hits], response.took_ms


def rank_of(cited: list[str | None], sources: list[str]) -> int | None:
    for position, filename in enumerate(cited, start=1):
        if filename in sources:
            return position
    return None


def metrics(ranks: list[int | None], top_k: int) -> dict[str, float]:
    count = len(ranks)

    def within(n: int) -> float:
        return sum(1 for r in ranks if r is not None and r <= n) / count

    return {
        "recall_at_1": round(within(1), 4),
        "recall_at_5": round(within(5), 4),
        f"recall_at_{top_k}": round(within(top_k), 4),
        "mrr": round(sum(1 / r for r in ranks if r is not None) / count, 4),
    }


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("--top-k", type=int, default=10, help="hits per search (MRR cut-off)")
    parser.add_argument("--corpus-dir", help=f"default: {pgdocs.DEFAULT_DIR}")
    parser.add_argument("--questions", type=Path, default=pgdocs.QUESTIONS)
    parser.add_argument(
        "--pages", type=int, default=0, help="ingest only this many pages (a quick check)"
    )
    parser.add_argument("--verbose", action="store_true", help="print every question's ranks")
    args = parser.parse_args(argv)

    # The manual is XHTML; Parley parses it as HTML, which makes BeautifulSoup warn once.
    warnings.filterwarnings("ignore", message=".*looks like you're using an HTML parser")
    directory = pgdocs.corpus_dir(args.corpus_dir)
    pages = pgdocs.pages(directory)
    questions = pgdocs.load_questions(args.questions)
    if args.pages:
        chosen = pgdocs.sample(pages, args.pages)
        names = {p.name for p in chosen}
        questions = [q for q in questions if names.intersection(q["sources"])]
        pages = chosen
    files = [(page.name, page.read_bytes()) for page in pages]

    database = BenchDatabase.from_env(DB_NAME, APP_USER, APP_PASSWORD)
    database.configure(Path(tempfile.mkdtemp(prefix="parley-bench-quality-")))
    discard_jobs()
    print(f"{len(files)} pages, {len(questions)} questions. Preparing {DB_NAME} ...")
    await database.create()
    ranks: dict[str, list[int | None]] = {mode: [] for mode in MODES}
    took: dict[str, list[float]] = {mode: [] for mode in MODES}
    empty = dict.fromkeys(MODES, 0)
    per_question = []
    try:
        workspace = await create_workspace("quality")
        kb_id = await create_knowledge_base(workspace, "PostgreSQL manual")
        print("Ingesting through the pipeline ...")
        ingestion = await ingest(workspace, kb_id, files)
        chunks = await chunk_count(workspace, kb_id)
        print(f"  {chunks} chunks in {ingestion['seconds']} s {ingestion['outcomes']}")
        for question in questions:
            row: dict[str, Any] = {"id": question["id"]}
            for mode in MODES:
                cited, ms = await ask(workspace, kb_id, question["question"], mode, args.top_k)
                rank = rank_of(cited, question["sources"])
                ranks[mode].append(rank)
                took[mode].append(ms)
                empty[mode] += not cited
                row[mode] = rank
                row[f"{mode}_top"] = cited[0] if cited else None
            per_question.append(row)
            if args.verbose:
                print(
                    f"  {question['id']:>3} "
                    + " ".join(f"{m}={row[m] or '-'}" for m in MODES)
                    + f"  {question['question'][:70]}"
                )
        versions = await server_versions(database)
    finally:
        await database.drop()

    results = {mode: metrics(ranks[mode], args.top_k) for mode in MODES}
    for mode in MODES:
        results[mode]["no_hits"] = empty[mode]
        ordered = sorted(took[mode])
        results[mode]["median_search_ms"] = round(ordered[len(ordered) // 2], 1)
    best = max(MODES, key=lambda m: (results[m]["recall_at_5"], results[m]["mrr"]))
    print()
    print(
        f"Retrieval quality: {len(questions)} questions over {len(files)} pages "
        f"({chunks} chunks) of the PostgreSQL 15 manual"
    )
    print()
    top = f"recall@{args.top_k}"
    print(
        f"  {'mode':<8}{'recall@1':>10}{'recall@5':>10}{top:>11}{'MRR':>8}"
        f"{'no hits':>9}{'median ms':>11}"
    )
    for mode in MODES:
        r = results[mode]
        print(
            f"  {mode:<8}{r['recall_at_1']:>10.3f}{r['recall_at_5']:>10.3f}"
            f"{r[f'recall_at_{args.top_k}']:>11.3f}{r['mrr']:>8.3f}{r['no_hits']:>9}"
            f"{r['median_search_ms']:>11.1f}"
        )
    hybrid_key = (results["hybrid"]["recall_at_5"], results["hybrid"]["mrr"])
    vector_key = (results["vector"]["recall_at_5"], results["vector"]["mrr"])
    if hybrid_key > vector_key:
        hybrid_vs_vector = "hybrid beats vector-only"
    elif hybrid_key == vector_key:
        hybrid_vs_vector = "hybrid ties with vector-only"
    else:
        hybrid_vs_vector = "hybrid LOSES to vector-only"
    print()
    print(f"  best mode: {best}; {hybrid_vs_vector}")
    result = {
        "benchmark": "retrieval_quality",
        "corpus": str(directory),
        "pages": len(files),
        "chunks": chunks,
        "questions": len(questions),
        "top_k": args.top_k,
        "ingestion": ingestion,
        "results": results,
        "best_mode": best,
        "hybrid_vs_vector": hybrid_vs_vector,
        "per_question": per_question,
        "machine": machine(),
        "server": versions,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
