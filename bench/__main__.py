"""`python -m bench BENCHMARK [options]`: run one of Parley's benchmarks.

Benchmarks:
  api-overhead   the authenticated, tenant-scoped API-key list against a bare FastAPI endpoint,
                 and the same Parley with row-level security off (docs/performance.md)
"""

from __future__ import annotations

import argparse
import sys

from bench import api_overhead


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Parley's benchmarks. Results are recorded in docs/performance.md.",
    )
    benchmarks = parser.add_subparsers(title="benchmarks", metavar="BENCHMARK", required=True)
    overhead = benchmarks.add_parser(
        "api-overhead",
        help="authenticated tenant-scoped list vs a bare endpoint, and RLS on vs off",
        description=api_overhead.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    api_overhead.add_arguments(overhead)
    overhead.set_defaults(handler=api_overhead.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    opts = build_parser().parse_args(arguments)
    opts.argv = arguments
    code: int = opts.handler(opts)
    return code


if __name__ == "__main__":
    sys.exit(main())
