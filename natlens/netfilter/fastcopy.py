"""``replace``: ``dataclasses.replace`` for the walk's small frozen, slotted dataclasses.

``dataclasses.replace`` scans the class's fields and calls ``__init__`` on every call (~10 us
for ``Flow``'s 22 fields); the walk copies a ``Flow`` or ``WalkPath`` at every routing
decision and NAT target. This copies the slots directly. Only for dataclasses without
``__post_init__`` or ``InitVar`` fields (what ``__init__`` would check or compute is skipped);
any other class goes to ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["replace"]

T = TypeVar("T")

_COPIERS: dict[type, Any] = {}


def _copier(cls: type) -> Any:
    """A function ``(obj, changes) -> copy`` for a slotted dataclass ``cls`` that sets each slot
    through its descriptor, or None when ``cls`` is not one ``replace`` may copy."""
    if cls in _COPIERS:
        return _COPIERS[cls]
    fields = dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ()
    ok = (bool(fields) and "__slots__" in cls.__dict__ and not hasattr(cls, "__post_init__")
          and all(f.init and f._field_type is dataclasses._FIELD  # type: ignore[attr-defined]
                  for f in fields))
    found = None
    if ok:
        names = [f.name for f in fields]
        scope: dict[str, Any] = {"new_": object.__new__, "cls": cls}
        lines = ["def copy(obj, changes):", "    new = new_(cls)", "    get = changes.get"]
        for k, name in enumerate(names):
            scope[f"set{k}"] = cls.__dict__[name].__set__
            lines.append(f"    set{k}(new, get({name!r}, obj.{name}))")
        lines += [f"    if len(changes) and not changes.keys() <= {set(names)!r}:",
                  "        raise TypeError(f'{cls.__name__} has no field '",
                  f"                        + ', '.join(changes.keys() - {set(names)!r}))",
                  "    return new"]
        exec("\n".join(lines), scope)
        found = scope["copy"]
    _COPIERS[cls] = found
    return found


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of ``obj`` with ``changes`` (field name → value), as ``dataclasses.replace``.

    Raises TypeError for a name that is not a field (as ``dataclasses.replace`` does).
    """
    copy = _copier(type(obj))
    if copy is None:
        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    return copy(obj, changes)  # type: ignore[no-any-return]
