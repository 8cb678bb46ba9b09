"""Faster copies and constructors for the walk's small frozen, slotted dataclasses.

``replace`` is ``dataclasses.replace``; ``fast_init`` gives a class an ``__init__`` that sets
the slots through their descriptors (a frozen dataclass's own ``__init__`` goes through
``object.__setattr__`` per field, ~2.5x slower: a third of a trace went to building ``Step``,
``WalkPath`` and ``Flow`` values).

``dataclasses.replace`` scans the class's fields and calls ``__init__`` on every call (~10 us
for ``Flow``'s 22 fields); the walk copies a ``Flow`` or ``WalkPath`` at every routing
decision and NAT target. This copies the slots directly. Only for dataclasses without
``__post_init__`` or ``InitVar`` fields (what ``__init__`` would check or compute is skipped);
any other class goes to ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["fast_init", "replace"]

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
        exec(compile("\n".join(lines), f"<fast_replace {cls.__qualname__}>", "exec"), scope)
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


C = TypeVar("C", bound=type)


def fast_init(cls: C) -> C:
    """Replace the ``__init__`` of the frozen, slotted dataclass ``cls`` by one with the same
    signature (positional or keyword, the same defaults) that sets each slot through its
    descriptor. Classes with ``__post_init__``, ``InitVar``, ``init=False`` fields or default
    factories are left as they are. Use as a decorator above ``@dataclass``."""
    fields = dataclasses.fields(cls)
    if ("__slots__" not in cls.__dict__ or hasattr(cls, "__post_init__") or any(
            not f.init or f._field_type is not dataclasses._FIELD  # type: ignore[attr-defined]
            or f.default_factory is not dataclasses.MISSING for f in fields)):
        return cls
    scope: dict[str, Any] = {}
    params, body = [], []
    for k, f in enumerate(fields):
        scope[f"set{k}"] = cls.__dict__[f.name].__set__
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            scope[f"default{k}"] = f.default
            params.append(f"{f.name}=default{k}")
        body.append(f"    set{k}(self, {f.name})")
    code = compile(f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body),
                   f"<fast_init {cls.__qualname__}>", "exec")
    exec(code, scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__dict__["__init__"].__doc__
    cls.__init__ = init  # type: ignore[misc]
    return cls
