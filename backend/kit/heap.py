"""Short garbage-collector pauses in long-running processes.

After start-up a Parley process holds about 350,000 long-lived container objects: the pydantic
models and validators of FastAPI, aiogram and the openai SDK, SQLAlchemy's mappers, the routes.
Every full collection walks all of them, which took about 300 ms on the 2-core benchmark
machine: a pause that every request in flight waits out, and the whole of the webhook's and
the widget's p99 (docs/performance.md). Objects frozen after start-up are left out of every
collection, so a full pass only walks what requests allocated since.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collect what start-up left over, then freeze the rest; returns how many were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def unfreeze() -> None:
    """Give the frozen objects back to the collector, so a process that starts several apps (the
    tests) can free the ones it drops."""
    gc.unfreeze()
