"""Pause Python's cyclic garbage collector around bulk construction.

Building 100k+ objects in one go (loading a snapshot, applying a ``get_all``
round) triggers repeated full collections that walk every object already alive:
measured at 110k entities, loading a graph takes 1.05 s with the collector on
and 0.43 s with it paused. The entity graph holds no reference cycles (edges
name their endpoints by id), so nothing is lost by collecting later.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Disable the cyclic collector inside the block (nesting-safe)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
