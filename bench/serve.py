"""Serve an ASGI app factory with the uvicorn settings of `parley api`, for the benchmarks.

    python -m bench.serve backend.main:create_app --port 8001
    python -m bench.serve bench.bare_app:create_app --port 8002

Every server in a benchmark goes through this one function, so Parley and the bare baseline run
with identical settings: the same worker count, event loop and HTTP implementation, uvicorn's
access log off, and the rest as `parley api` runs (`backend.cli.serve`, which both call: no
per-message deflate, no Server header, with several workers the shared metrics directory).
"""

from __future__ import annotations

import argparse
import sys
from typing import Literal

from backend.cli import serve

LoopName = Literal["uvloop", "asyncio"]
HttpName = Literal["httptools", "h11"]


def fastest_implementations() -> tuple[LoopName, HttpName]:
    """What uvicorn's "auto" picks (and so what `parley api` runs on) on this installation."""
    loop: LoopName = "asyncio"
    http: HttpName = "h11"
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        pass
    try:
        import httptools  # noqa: F401

        http = "httptools"
    except ImportError:
        pass
    return loop, http


def build_parser() -> argparse.ArgumentParser:
    loop, http = fastest_implementations()
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__)
    parser.add_argument("factory", help="import string of an app factory, module:function")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default=loop)
    parser.add_argument("--http", choices=["httptools", "h11"], default=http)
    parser.add_argument("--log-level", default="warning")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    serve(
        args.factory,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        loop=args.loop,
        http=args.http,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
