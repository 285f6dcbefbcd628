"""Work started in the background and kept alive until it ends."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def run_in_background(
    work: Coroutine[Any, Any, None], running: set[asyncio.Task[None]]
) -> asyncio.Task[None]:
    """`work` as a task of the running loop, held in `running` until it ends: the loop keeps
    only weak references to its tasks, and `running` is what a caller waits for at shutdown."""
    task = asyncio.get_running_loop().create_task(work)
    running.add(task)
    task.add_done_callback(running.discard)
    return task
