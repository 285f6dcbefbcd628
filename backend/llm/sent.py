"""Knowing when a model call's request has left: so a reply can commit its transaction after
the model server has the question, not while the request is still being built.

Whoever starts a call runs it in a context made by `notifying(callback)`; the provider calls
`request_sent()` once the request's body is written to the model server's connection. A
provider that sends nothing over the network (the offline generator) never calls it, so a
waiter also stops waiting when the call itself ends.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable

_on_sent: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "parley_on_request_sent", default=None
)


def notifying(callback: Callable[[], None]) -> contextvars.Context:
    """A copy of the current context in which `request_sent()` calls `callback`."""
    context = contextvars.copy_context()
    context.run(_on_sent.set, callback)
    return context


def request_sent() -> None:
    """Tell whoever started this call that its request is on its way (a no-op otherwise)."""
    callback = _on_sent.get()
    if callback is not None:
        callback()
