"""Read-only JSON values as the nft model holds them (``Json``), and the mapping types they use.

``freeze`` turns decoded JSON into them: arrays become tuples, objects read-only mappings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TypeAlias, Union

__all__ = ["MAPPINGS", "Json", "freeze", "to_text"]

Json: TypeAlias = Union[bool, int, float, str, tuple["Json", ...], Mapping[str, "Json"], None]  # noqa: UP007 (a recursive alias needs Union)
"""Read-only JSON: arrays are tuples, objects are read-only mappings."""

MAPPINGS = (dict, MappingProxyType)
"""The mapping types ``Json`` objects have (``isinstance`` on them is much faster than on the
``Mapping`` ABC, which matters when reading 100k rules)."""


def freeze(value: Any) -> Json:
    """JSON as read-only values: lists become tuples, objects read-only mappings."""
    kind = type(value)
    if kind is dict:
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if kind is list:
        return tuple([freeze(v) for v in value])
    return value  # type: ignore[no-any-return]


def to_text(value: Json) -> str:
    """Compact JSON text of a read-only value (``{"key": "x"}``): how rule text shows what it
    cannot render in nft syntax (an opaque statement kept by lenient reading)."""
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False,
                      default=lambda v: dict(v) if isinstance(v, Mapping) else str(v))
