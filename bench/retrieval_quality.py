"""Retrieval quality: hand-written questions over a real public corpus, with their answers' pages.

    python -m bench.retrieval_quality [--top-k 10] [--text-weights 0.5,0.25] [--verbose]

The corpus is the PostgreSQL 15 manual in HTML (install it with
`apt-get install postgresql-doc-15`; see bench/corpus/pgdocs.py): the 176 pages of its
tutorial, data definition, queries, data types, functions, indexes, full text search,
concurrency, configuration, authentication and PL/pgSQL chapters. Every page is uploaded as an
HTML file into one knowledge base with Parley's defaults (local all-MiniLM-L6-v2, 200-token
chunks, English full text) and ingested by the real pipeline (backend.knowledge.pipeline),
in this process.

bench/corpus/questions.json holds 60 questions written by hand in a user's words, each with the
page (or the few pages) that answer it; bench/corpus/questions_holdout.json holds 58 more,
written later for checking changes chosen by their score on the first set. Each set is scored
on its own. Each question is asked through
backend.knowledge.retrieval.search, as the app's role in the tenant's context, in the three
modes: vector only, full text only, and hybrid (reciprocal rank fusion of both), with the
default similarity threshold; --text-weights adds hybrid modes with other weights of the
full-text ranks in the fusion (PARLEY_HYBRID_TEXT_WEIGHT). A question's rank is that of the
first hit (chunk) cited from one of its pages.

  recall@5   share of questions with such a hit among the first 5
  MRR        mean of 1 / rank over the first `--top-k` hits (0 when none is there)

Nothing in Parley is tuned to these questions. Needs PARLEY_TEST_ADMIN_DATABASE_URL; the
benchmark makes its own database and drops it at the end (unless --keep).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Mode:
    name: str
    search: str  # a SearchMode value
    text_weight: float | None = None  # hybrid only; None: the shipped PARLEY_HYBRID_TEXT_WEIGHT


def modes(text_weights: list[float]) -> list[Mode]:
    shipped = [Mode("vector", "vector"), Mode("text", "text"), Mode("hybrid", "hybrid")]
    return shipped + [Mode(f"hybrid@{w:g}", "hybrid", w) for w in text_weights]


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
    workspace: Any, kb_id: Any, question: str, mode: Mode, top_k: int
) -> tuple[list[str | None], float]:
    """The cited file names of the hits, best first, and the search's own time in ms."""
    from backend.config import get_settings
    from backend.db import unit_of_work
    from backend.knowledge import service
    from backend.knowledge.query_cache import query_vectors
    from backend.knowledge.retrieval import search
    from backend.knowledge.schemas import SearchMode

    settings = get_settings()
    shipped = settings.hybrid_text_weight
    if mode.text_weight is not None:
        settings.hybrid_text_weight = mode.text_weight
    # Every mode asks each question; each search's time counts embedding it, as a question
    # asked for the first time does.
    query_vectors.clear()
    try:
        async with unit_of_work(tenant_id=workspace.tenant_id) as session:
            kb = await service.get_knowledge_base(session, workspace.ctx, kb_id)
            response = await search(
                session, kb, question, top_k=top_k, mode=SearchMode(mode.search)
            )
    finally:
        settings.hybrid_text_weight = shipped
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
    parser.add_argument(
        "--questions",
        type=Path,
        nargs="+",
        default=[pgdocs.QUESTIONS, pgdocs.HOLDOUT],
        help="question sets, each scored on its own (default: both of bench/corpus)",
    )
    parser.add_argument(
        "--text-weights",
        default="",
        help="comma-separated full-text weights to try in hybrid search besides the shipped one",
    )
    parser.add_argument(
        "--pages", type=int, default=0, help="ingest only this many pages (a quick check)"
    )
    parser.add_argument("--verbose", action="store_true", help="print every question's ranks")
    parser.add_argument(
        "--keep", action="store_true", help=f"keep the database {DB_NAME} afterwards"
    )
    args = parser.parse_args(argv)
    variants = modes([float(w) for w in args.text_weights.split(",") if w.strip()])

    # The manual is XHTML; Parley parses it as HTML, which makes BeautifulSoup warn once.
    warnings.filterwarnings("ignore", message=".*looks like you're using an HTML parser")
    directory = pgdocs.corpus_dir(args.corpus_dir)
    pages = pgdocs.pages(directory)
    question_sets = {path.name: pgdocs.load_questions(path) for path in args.questions}
    if args.pages:
        chosen = pgdocs.sample(pages, args.pages)
        names = {p.name for p in chosen}
        question_sets = {
            name: [q for q in questions if names.intersection(q["sources"])]
            for name, questions in question_sets.items()
        }
        pages = chosen
    files = [(page.name, page.read_bytes()) for page in pages]

    database = BenchDatabase.from_env(DB_NAME, APP_USER, APP_PASSWORD)
    database.configure(Path(tempfile.mkdtemp(prefix="parley-bench-quality-")))
    discard_jobs()
    counts = ", ".join(f"{len(q)} in {name}" for name, q in question_sets.items())
    print(f"{len(files)} pages; questions: {counts}. Preparing {DB_NAME} ...")
    await database.create()
    scored: dict[str, dict[str, Any]] = {}
    try:
        workspace = await create_workspace("quality")
        kb_id = await create_knowledge_base(workspace, "PostgreSQL manual")
        print("Ingesting through the pipeline ...")
        ingestion = await ingest(workspace, kb_id, files)
        chunks = await chunk_count(workspace, kb_id)
        print(f"  {chunks} chunks in {ingestion['seconds']} s {ingestion['outcomes']}")
        for name, questions in question_sets.items():
            scored[name] = await score(workspace, kb_id, questions, variants, args)
        versions = await server_versions(database)
    finally:
        if not args.keep:
            await database.drop()

    for name, outcome in scored.items():
        print()
        print(
            f"Retrieval quality: {name}, {len(question_sets[name])} questions over "
            f"{len(files)} pages ({chunks} chunks) of the PostgreSQL 15 manual"
        )
        print_table(outcome["results"], args.top_k)
        print(f"  best mode: {outcome['best_mode']}; {outcome['hybrid_vs_vector']}")
    result = {
        "benchmark": "retrieval_quality",
        "corpus": str(directory),
        "pages": len(files),
        "chunks": chunks,
        "top_k": args.top_k,
        "ingestion": ingestion,
        "question_sets": scored,
        "machine": machine(),
        "server": versions,
    }
    print(json.dumps(result))
    return 0


async def score(
    workspace: Any,
    kb_id: Any,
    questions: list[dict[str, Any]],
    variants: list[Mode],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Every question asked in every mode: the metrics per mode and the ranks per question."""
    ranks: dict[str, list[int | None]] = {m.name: [] for m in variants}
    took: dict[str, list[float]] = {m.name: [] for m in variants}
    empty = dict.fromkeys(ranks, 0)
    per_question = []
    for question in questions:
        row: dict[str, Any] = {"id": question["id"]}
        for mode in variants:
            cited, ms = await ask(workspace, kb_id, question["question"], mode, args.top_k)
            rank = rank_of(cited, question["sources"])
            ranks[mode.name].append(rank)
            took[mode.name].append(ms)
            empty[mode.name] += not cited
            row[mode.name] = rank
            row[f"{mode.name}_top"] = cited[0] if cited else None
        per_question.append(row)
        if args.verbose:
            print(
                f"  {question['id']:>3} "
                + " ".join(f"{m.name}={row[m.name] or '-'}" for m in variants)
                + f"  {question['question'][:70]}"
            )
    results = {name: metrics(values, args.top_k) for name, values in ranks.items()}
    for name, result in results.items():
        result["no_hits"] = empty[name]
        ordered = sorted(took[name])
        result["median_search_ms"] = round(ordered[len(ordered) // 2], 1)
    hybrid_key = (results["hybrid"]["recall_at_5"], results["hybrid"]["mrr"])
    vector_key = (results["vector"]["recall_at_5"], results["vector"]["mrr"])
    if hybrid_key > vector_key:
        hybrid_vs_vector = "hybrid beats vector-only"
    elif hybrid_key == vector_key:
        hybrid_vs_vector = "hybrid ties with vector-only"
    else:
        hybrid_vs_vector = "hybrid LOSES to vector-only"
    best = max(results, key=lambda m: (results[m]["recall_at_5"], results[m]["mrr"]))
    return {
        "questions": len(questions),
        "results": results,
        "best_mode": best,
        "hybrid_vs_vector": hybrid_vs_vector,
        "per_question": per_question,
    }


def print_table(results: dict[str, dict[str, Any]], top_k: int) -> None:
    top = f"recall@{top_k}"
    print(
        f"  {'mode':<12}{'recall@1':>10}{'recall@5':>10}{top:>11}{'MRR':>8}"
        f"{'no hits':>9}{'median ms':>11}"
    )
    for name, r in results.items():
        print(
            f"  {name:<12}{r['recall_at_1']:>10.3f}{r['recall_at_5']:>10.3f}"
            f"{r[f'recall_at_{top_k}']:>11.3f}{r['mrr']:>8.3f}{r['no_hits']:>9}"
            f"{r['median_search_ms']:>11.1f}"
        )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
