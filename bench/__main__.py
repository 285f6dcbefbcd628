"""`python -m bench BENCHMARK [options]`: run one of Parley's benchmarks.

Benchmarks:
  api-overhead   the authenticated, tenant-scoped API-key list against a bare FastAPI endpoint,
                 and the same Parley with row-level security off (docs/performance.md)
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

from bench import api_overhead, telegram_bots, ttft, widget_sockets


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
    first_token = benchmarks.add_parser(
        "ttft",
        help="time to first token through Parley vs the same upstream called directly",
        description=ttft.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ttft.add_arguments(first_token)
    first_token.set_defaults(handler=ttft.run)
    sockets = benchmarks.add_parser(
        "widget-sockets",
        help="idle widget connections and fan-out vs a bare websockets server; bundle size",
        description=widget_sockets.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    widget_sockets.add_arguments(sockets)
    sockets.set_defaults(handler=widget_sockets.run)
    telegram = benchmarks.add_parser(
        "telegram-bots",
        help="webhook acknowledgement vs bare endpoints; a 10,000-message burst within limits",
        description=telegram_bots.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    telegram_bots.add_arguments(telegram)
    telegram.set_defaults(handler=telegram_bots.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    opts = build_parser().parse_args(arguments)
    opts.argv = arguments
    code: int = opts.handler(opts)
    return code


if __name__ == "__main__":
    sys.exit(main())
