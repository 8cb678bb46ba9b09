"""Building a listing's ``Rule`` and ``Origin`` objects cheaply (one of each per rule line).

``new_rule`` and ``new_origin`` set the slots of the frozen dataclasses through their slot
descriptors: the same objects as ``Rule(...)`` / ``Origin(...)`` (equal, same fields, same
``repr``), at about half the cost of the generated ``__init__`` (issue 13: the listing parser
within 1.5x of ``parse_save``). Neither class has a ``__post_init__``; the assertions below
fail at import if a field is added, so the setters cannot silently leave one unset.
"""

from __future__ import annotations

from collections.abc import Callable

from natlens.model import (
    Address,
    Counters,
    Interface,
    Match,
    Origin,
    Protocol,
    Rule,
    Target,
)

__all__ = ["new_origin", "new_rule"]

_Setter = Callable[[object, object], None]


def _slots(cls: type[Rule] | type[Origin], names: tuple[str, ...]) -> tuple[_Setter, ...]:
    assert cls.__slots__ == names, f"update natlens/parse/listing/build.py: {cls.__name__} changed"
    assert not hasattr(cls, "__post_init__"), f"{cls.__name__} validates in __post_init__"
    return tuple(vars(cls)[name].__set__ for name in names)


(_set_chain, _set_source, _set_destination, _set_in, _set_out, _set_protocol, _set_fragment,
 _set_matches, _set_target, _set_goto, _set_counters, _set_origin, _set_unknown) = _slots(
    Rule, ("chain", "source", "destination", "in_interface", "out_interface", "protocol",
           "fragment", "matches", "target", "goto", "counters", "origin", "unknown"))
_set_origin_source, _set_origin_line, _set_origin_text = _slots(
    Origin, ("source", "line", "text"))
_new = object.__new__


def new_origin(source: str, line: int, text: str) -> Origin:
    """``Origin(source, line, text)`` built through its slots."""
    origin: Origin = _new(Origin)
    _set_origin_source(origin, source)
    _set_origin_line(origin, line)
    _set_origin_text(origin, text)
    return origin


def new_rule(
    chain: str, *, source: Address | None, destination: Address | None,
    in_interface: Interface | None, out_interface: Interface | None,
    protocol: Protocol | None, fragment: bool | None, matches: tuple[Match, ...],
    target: Target | None, goto: bool, counters: Counters | None, origin: Origin | None,
    unknown: frozenset[str],
) -> Rule:
    """``Rule(...)`` with every field given, built through its slots."""
    rule: Rule = _new(Rule)
    _set_chain(rule, chain)
    _set_source(rule, source)
    _set_destination(rule, destination)
    _set_in(rule, in_interface)
    _set_out(rule, out_interface)
    _set_protocol(rule, protocol)
    _set_fragment(rule, fragment)
    _set_matches(rule, matches)
    _set_target(rule, target)
    _set_goto(rule, goto)
    _set_counters(rule, counters)
    _set_origin(rule, origin)
    _set_unknown(rule, unknown)
    return rule
