"""The cyclic garbage collector around a parse: off while the model is built, and what the
parse built handed to the oldest generation afterwards.

A parse allocates one object graph that lives on; collecting it midway is wasted work that grows
with the input (quadratic on 100k-rule dumps with the collector on). Made with the collector
off, the new objects would all sit in the youngest generation, and the first collection after
the parse would walk them all (0.3 s for 100k rules) to find no garbage. ``collector_off``
moves them into the oldest generation without looking at them (``gc.freeze()`` then
``gc.unfreeze()``: two list splices, CPython's Modules/gcmodule.c), as if they had aged
normally: the next full collection walks them, as it would have.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["OLD_ENOUGH", "collector_off"]

OLD_ENOUGH = 1 << 20
"""Characters of input above which ``collector_off`` ages what the parse built."""


@contextmanager
def collector_off(size: int) -> Iterator[None]:
    """Run the body with the collector off; after a body that did not raise, on input of
    ``size`` characters above ``OLD_ENOUGH``, move every tracked object into the oldest
    generation. Nothing changes when the caller had the collector off already (it manages
    it), nor when something froze objects on purpose (``gc.get_freeze_count()``: ``unfreeze``
    would thaw them, as the CLI's snapshot cache freezes its snapshot)."""
    collect = gc.isenabled()
    gc.disable()
    try:
        yield
        if collect and size > OLD_ENOUGH and not gc.get_freeze_count():
            gc.freeze()
            gc.unfreeze()
    finally:
        if collect:
            gc.enable()
