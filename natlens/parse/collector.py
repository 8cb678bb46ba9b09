"""The cyclic garbage collector around work that builds or walks a large object graph: off
while it runs, and what it built handed to an older generation afterwards. The one policy of
natlens (``collector_off``): the parsers, the snapshot cache's reads and writes, the simulator,
the audit and the exposure map use it.

A parse allocates one object graph that lives on; collecting it midway is wasted work that grows
with the input (quadratic on 100k-rule dumps with the collector on). Made with the collector
off, the new objects would all sit in the youngest generation, and the first collection after
the parse would walk them all (0.3 s for 100k rules) to find no garbage. ``collector_off(size)``
moves them into the oldest generation without looking at them (``gc.freeze()`` then
``gc.unfreeze()``: two list splices, CPython's Modules/gcmodule.c), as if they had aged
normally: the next full collection walks them, as it would have. A caller that keeps what was
built to the end of the process (the CLI's snapshot, ``natlens.snapshot_cache``) asks for
``freeze``: everything alive goes to the permanent generation, which no collection walks.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["OLD_ENOUGH", "collector_off"]

OLD_ENOUGH = 1 << 20
"""Characters of input above which ``collector_off`` ages what the parse built."""


@contextmanager
def collector_off(size: int = 0, *, freeze: bool = False) -> Iterator[None]:
    """Run the body with the collector off, and back on after when it was on.

    ``size``: after a body that did not raise, on input of ``size`` characters above
    ``OLD_ENOUGH``, move every tracked object into the oldest generation. Not done when the
    caller had the collector off already (it manages it), nor when something froze objects on
    purpose (``gc.get_freeze_count()``: ``unfreeze`` would thaw them, as the CLI's snapshot
    cache freezes its snapshot).

    ``freeze``: after the body, raised or not, move every object alive into the permanent
    generation (``gc.freeze()``), whether the collector was on or not: for a caller that keeps
    what the body built to the end (a first collection would walk the 100k-rule model, 1-2 s).
    """
    collect = gc.isenabled()
    gc.disable()
    try:
        yield
        if collect and size > OLD_ENOUGH and not freeze and not gc.get_freeze_count():
            gc.freeze()
            gc.unfreeze()
    finally:
        if freeze:
            gc.freeze()
        if collect:
            gc.enable()
