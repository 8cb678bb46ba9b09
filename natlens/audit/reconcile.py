"""Findings of different checks about the same rules, made consistent (issue 9: kinds never
contradict each other).

* A ``dead-rule`` whose covering rule (its ``related``) is the very rule a ``stale``,
  ``shadowed``, ``mismatch`` or ``duplicate`` finding blames is a consequence of that fault, not a
  fault of its own: its fix would delete the live rule (often the container's own DNAT) while the
  other finding's fix deletes the rule that hides it. It is dropped.
* Two findings of one kind blaming the same rule for the same port and container, with the same
  fix, are one finding said twice (two checks reaching it from different sides): the first in
  report order is kept.
"""

from __future__ import annotations

from collections.abc import Iterable

from natlens.audit.findings import Finding, RuleRef

__all__ = ["reconcile"]

_BLAMING = frozenset({"stale", "shadowed", "mismatch", "duplicate"})

RuleKey = tuple[str | None, str, str, str, int, str]


def _key(ref: RuleRef) -> RuleKey:
    return (ref.source, ref.family, ref.table, ref.chain, ref.index, ref.text)


def reconcile(findings: Iterable[Finding]) -> list[Finding]:
    """``findings`` (in report order) without the consequences and repeats described in the
    module docstring; the order is kept."""
    found = list(findings)
    blamed = {_key(f.rule) for f in found if f.kind in _BLAMING and f.rule is not None}
    out: list[Finding] = []
    seen: set[tuple[object, ...]] = set()
    for f in found:
        if f.kind == "dead-rule" and any(_key(r) in blamed for r in f.related):
            continue
        same = (f.kind, None if f.rule is None else _key(f.rule), f.host_port, f.container,
                f.proto, f.fix)
        if f.rule is not None and same in seen:
            continue
        seen.add(same)
        out.append(f)
    return out
