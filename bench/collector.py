"""The load clients' own garbage-collector pauses, kept out of what they measure.

A load client that stops for a full collection (60 to 90 ms in the telegram benchmark's client,
seen with a gc.callbacks hook) sends late and reads late, and an open-loop client counts that
as the server's latency. So a client collects and freezes what its set-up built, and runs the
measured phase with the collector off; a phase of a few seconds leaves little cyclic garbage.
The servers under test are left as they are.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
