"""Knowing when a model call's request has left, and holding it back until it may leave.

Whoever starts a call runs it in a context made by `notifying(callback, gate)`. The provider
calls `request_sent()` once the request's body is written to the model server's connection: a
reply can then commit its transaction after the model server has the question, not while the
request is still being built. A provider that sends nothing over the network (the offline
generator) never calls it, so a waiter also stops waiting when the call itself ends.

With a `gate`, the provider builds its request and then waits in `until_released()` for the
gate to open before sending it: a reply builds the request while its quota hold is still on
its way to the database, and sends it the moment the hold is confirmed. A call whose hold is
refused is cancelled at the gate, and nothing leaves.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable

_on_sent: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "parley_on_request_sent", default=None
)


_gate: contextvars.ContextVar[asyncio.Event | None] = contextvars.ContextVar(
    "parley_request_gate", default=None
)


def notifying(
    callback: Callable[[], None], gate: asyncio.Event | None = None
) -> contextvars.Context:
    """A copy of the current context in which `request_sent()` calls `callback`, and
    `until_released()` waits for `gate` (if any) to be set."""
    context = contextvars.copy_context()
    context.run(_on_sent.set, callback)
    context.run(_gate.set, gate)
    return context


async def until_released() -> None:
    """Wait until whoever started this call lets its request leave (at once if no gate)."""
    gate = _gate.get()
    if gate is not None:
        await gate.wait()


def request_sent() -> None:
    """Tell whoever started this call that its request is on its way (a no-op otherwise)."""
    callback = _on_sent.get()
    if callback is not None:
        callback()
