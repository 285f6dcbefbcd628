"""The PostgreSQL 15 manual in HTML, as Debian's postgresql-doc-15 package installs it.

A real public corpus that is available offline: the quality and ingestion benchmarks read its
pages from the local disk. Obtain it with

    apt-get install postgresql-doc-15

which puts the manual's ~1,170 pages under /usr/share/doc/postgresql-doc-15/html (another
directory may be given with --corpus-dir or PARLEY_BENCH_PGDOCS). The benchmarks use the 176
pages of these chapters: the tutorial, data definition and manipulation, queries, data types,
functions and operators, indexes, full text search, concurrency control, server
configuration, client authentication and PL/pgSQL.

    python -m bench.corpus.pgdocs    checks the corpus and the question set against each other
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path("/usr/share/doc/postgresql-doc-15/html")
INSTALL_HINT = "apt-get install postgresql-doc-15"
ENV_VAR = "PARLEY_BENCH_PGDOCS"
# Page file names start with their chapter's id: "indexes-partial.html", "indexes.html".
CHAPTERS = (
    "tutorial",
    "ddl",
    "dml",
    "queries",
    "datatype",
    "functions",
    "indexes",
    "textsearch",
    "mvcc",
    "runtime-config",
    "auth",
    "plpgsql",
)
_PAGE = re.compile(rf"^(?:{'|'.join(re.escape(c) for c in CHAPTERS)})(?:-[a-z0-9-]+)?\.html$")
QUESTIONS = Path(__file__).with_name("questions.json")
HOLDOUT = Path(__file__).with_name("questions_holdout.json")


class CorpusMissing(SystemExit):
    pass


def corpus_dir(override: str | None = None) -> Path:
    """The manual's HTML directory, or exit saying how to install it."""
    directory = Path(override or os.environ.get(ENV_VAR) or DEFAULT_DIR)
    if not (directory / "index.html").is_file() or not (directory / "indexes.html").is_file():
        raise CorpusMissing(
            f"The PostgreSQL manual is not at {directory}. Install it with "
            f"`{INSTALL_HINT}` (Debian/Ubuntu), or point --corpus-dir or {ENV_VAR} at a "
            "directory holding the PostgreSQL 15 HTML manual."
        )
    return directory


def pages(directory: Path) -> list[Path]:
    """The benchmark's subset of the manual, sorted by file name."""
    return sorted(p for p in directory.iterdir() if _PAGE.match(p.name))


def sample(all_pages: list[Path], count: int) -> list[Path]:
    """`count` pages spread evenly over the sorted subset (every chapter gets some)."""
    if count >= len(all_pages):
        return list(all_pages)
    step = len(all_pages) / count
    return [all_pages[int(i * step)] for i in range(count)]


def load_questions(path: Path = QUESTIONS) -> list[dict[str, Any]]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    questions: list[dict[str, Any]] = data["questions"]
    return questions


def main() -> int:
    directory = corpus_dir(sys.argv[1] if len(sys.argv) > 1 else None)
    subset = pages(directory)
    names = {p.name for p in subset}
    size = sum(p.stat().st_size for p in subset)
    print(f"{directory}: {len(subset)} pages of the benchmark's chapters, {size / 2**20:.1f} MiB")
    failed = False
    for path in (QUESTIONS, HOLDOUT):
        questions = load_questions(path)
        missing = sorted({s for q in questions for s in q["sources"]} - names)
        print(f"{path.name}: {len(questions)} questions")
        if missing:
            print(f"  expected sources missing from the corpus: {', '.join(missing)}")
            failed = True
    if not failed:
        print("every expected source is in the corpus")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
