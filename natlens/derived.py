"""Facts read from every rule, computed once per snapshot and kept with it: the one way code
asks ``Snapshot.derived`` for them (``natlens.trace_hints``' rule facts, the simulator's index
of routing rules), also when the rules come without a snapshot (a ``Simulator`` built from
rulesets: computed on each call then).

The snapshot cache stores what ``Snapshot.derived`` kept (``natlens.cache_derived``), so a warm
command does not read every chain again (issue 13). This module imports nothing of natlens: the
simulator core may use it without importing the snapshot loader (DESIGN, data flow).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

__all__ = ["KeepsDerived", "derived"]

_T = TypeVar("_T")


class KeepsDerived(Protocol):
    """A value that keeps facts computed from it by name (``natlens.snapshot.Snapshot``)."""

    def derived(self, name: str, compute: Callable[[Any], _T]) -> _T: ...


def derived(owner: KeepsDerived | None, name: str, compute: Callable[[], _T]) -> _T:
    """``compute()``, kept with ``owner`` under ``name`` (``owner.derived``: computed on the
    first call for that name, the kept value returned after); computed on every call when
    ``owner`` is None. ``compute`` must depend only on what ``owner`` holds, and ``name`` must
    say everything else the result depends on (options, a version of its shape), as
    ``Snapshot.derived`` requires. Raises what ``compute`` raises.

    >>> derived(None, "answer", lambda: 6 * 7)
    42
    """
    if owner is None:
        return compute()
    return owner.derived(name, lambda _owner: compute())
