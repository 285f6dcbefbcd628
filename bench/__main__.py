"""`python -m bench BENCHMARK [options]`: run one of Parley's benchmarks.

Benchmarks:
  api-overhead   the authenticated, tenant-scoped API-key list against a bare FastAPI endpoint,
                 and the same Parley with row-level security off (docs/performance.md)
  request-cpu    CPU time per request inside the app process: this checkout against another
                 one (--against DIR) and the bare endpoint, side by side
  query-embedding
                 concurrent search queries through the local embedding model, coalesced into
                 shared forward passes or one pass each, against the raw model
  sdk-transport  CPU per streamed chat completion call through the openai SDK: its default
                 httpx2 transport against Parley's aiohttp one, side by side
  ttft           time to first token through /v1/chat/completions against the same loopback
                 upstream called directly, sequential and at 50 concurrent streams
  widget-sockets 10,000 idle widget connections and 1,000 events/s fanned out, against a
                 bare websockets server; the widget bundle's gzipped size
  telegram-bots  Telegram webhook acknowledgement at 500 updates/s against bare endpoints, and
                 10,000 sends to 100 chats within Telegram's limits (stand-in Bot API)
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from bench import (
    api_overhead,
    query_embedding,
    request_cpu,
    sdk_transport,
    telegram_bots,
    ttft,
    widget_sockets,
)

# Each benchmark module has a docstring, add_arguments(parser) and run(opts) -> exit code.
BENCHMARKS: dict[str, tuple[ModuleType, str]] = {
    "api-overhead": (
        api_overhead,
        "authenticated tenant-scoped list vs a bare endpoint, and RLS on vs off",
    ),
    "request-cpu": (
        request_cpu,
        "CPU per request in the app process, two checkouts and the bare endpoint",
    ),
    "query-embedding": (
        query_embedding,
        "concurrent query embeddings, coalesced vs one pass each, against the raw model",
    ),
    "sdk-transport": (
        sdk_transport,
        "CPU per streamed SDK call: httpx2's default transport vs Parley's aiohttp one",
    ),
    "ttft": (ttft, "time to first token through Parley vs the same upstream called directly"),
    "widget-sockets": (
        widget_sockets,
        "idle widget connections and fan-out vs a bare websockets server; bundle size",
    ),
    "telegram-bots": (
        telegram_bots,
        "webhook acknowledgement vs bare endpoints; a 10,000-message burst within limits",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Parley's benchmarks. Results are recorded in docs/performance.md.",
    )
    benchmarks = parser.add_subparsers(title="benchmarks", metavar="BENCHMARK", required=True)
    for name, (module, summary) in BENCHMARKS.items():
        sub = benchmarks.add_parser(
            name,
            help=summary,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    opts = build_parser().parse_args(arguments)
    opts.argv = arguments
    code: int = opts.handler(opts)
    return code


if __name__ == "__main__":
    sys.exit(main())
