"""Cheap construction of the model's frozen dataclasses for the parser's hot path.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (a 13-field
``Rule`` costs about 5x a plain class's ``__init__``; a 100k-rule dump builds 100k of them, issue
13). Here each class has a plain twin with the very same ``__slots__``: the object is built by the
twin's ordinary ``__init__``, then becomes an instance of the model class (``__class__``
assignment, which CPython allows between classes of the same slot layout). The result *is* a
``Rule`` (``type(r) is Rule``), equal to and indistinguishable from one built by ``Rule(...)``;
tests/test_parse_fastpath.py compares both on the corpus. No field is computed or defaulted
here: callers pass every field.
"""

from __future__ import annotations

import ipaddress

from natlens.model import (
    Address,
    Chain,
    Counters,
    Interface,
    IPNetwork,
    Match,
    Option,
    Origin,
    Protocol,
    Rule,
    Target,
    TargetKind,
)
from natlens.parse.lines import ListedLines, SourceLines

__all__ = ["new_address", "new_chain", "new_match", "new_option", "new_origin", "new_rule",
           "new_target"]


class _Rule:
    __slots__ = Rule.__slots__

    def __init__(self, chain: str, source: Address | None,  # noqa: PLR0917 (hot path)
                 destination: Address | None,
                 in_interface: Interface | None, out_interface: Interface | None,
                 protocol: Protocol | None, fragment: bool | None, matches: tuple[Match, ...],
                 target: Target | None, goto: bool, counters: Counters | None,
                 origin: Origin | None, unknown: frozenset[str]) -> None:
        self.chain = chain
        self.source = source
        self.destination = destination
        self.in_interface = in_interface
        self.out_interface = out_interface
        self.protocol = protocol
        self.fragment = fragment
        self.matches = matches
        self.target = target
        self.goto = goto
        self.counters = counters
        self.origin = origin
        self.unknown = unknown


class _Address:
    __slots__ = Address.__slots__

    def __init__(self, network: IPNetwork, negated: bool,
                 mask: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> None:
        self.network = network
        self.negated = negated
        self.mask = mask


class _Chain:
    __slots__ = Chain.__slots__

    def __init__(self, name: str, builtin: bool, policy: str | None,  # noqa: PLR0917
                 counters: Counters | None, rules: tuple[Rule, ...],
                 origin: Origin | None) -> None:
        self.name = name
        self.builtin = builtin
        self.policy = policy
        self.counters = counters
        self.rules = rules
        self.origin = origin


class _Origin:
    __slots__ = Origin.__slots__

    def __init__(self, source: str, line: int, text: str | SourceLines | ListedLines) -> None:
        self.source = source
        self.line = line
        self.text = text


class _Option:
    __slots__ = Option.__slots__

    def __init__(self, name: str, args: tuple[str, ...], negated: bool, quoted: bool) -> None:
        self.name = name
        self.args = args
        self.negated = negated
        self.quoted = quoted


class _Match:
    __slots__ = Match.__slots__

    def __init__(self, module: str, options: tuple[Option, ...], known: bool,
                 implicit: bool) -> None:
        self.module = module
        self.options = options
        self.known = known
        self.implicit = implicit


class _Target:
    __slots__ = Target.__slots__

    def __init__(self, name: str, options: tuple[Option, ...], kind: TargetKind) -> None:
        self.name = name
        self.options = options
        self.kind = kind


def new_rule(chain: str, source: Address | None,  # noqa: PLR0917 (one call per rule)
             destination: Address | None,
             in_interface: Interface | None, out_interface: Interface | None,
             protocol: Protocol | None, fragment: bool | None, matches: tuple[Match, ...],
             target: Target | None, goto: bool, counters: Counters | None,
             origin: Origin | None, unknown: frozenset[str]) -> Rule:
    """``Rule(...)`` with every field given, in field order."""
    rule = _Rule(chain, source, destination, in_interface, out_interface, protocol, fragment,
                 matches, target, goto, counters, origin, unknown)
    rule.__class__ = Rule  # type: ignore[assignment]
    return rule  # type: ignore[return-value]


def new_address(network: IPNetwork, negated: bool,
                mask: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> Address:
    """``Address(network, negated, mask)``."""
    address = _Address(network, negated, mask)
    address.__class__ = Address  # type: ignore[assignment]
    return address  # type: ignore[return-value]


def new_chain(name: str, builtin: bool, policy: str | None,  # noqa: PLR0917
              counters: Counters | None, rules: tuple[Rule, ...], origin: Origin | None) -> Chain:
    """``Chain(name, builtin, policy, counters, rules, origin)``."""
    chain = _Chain(name, builtin, policy, counters, rules, origin)
    chain.__class__ = Chain  # type: ignore[assignment]
    return chain  # type: ignore[return-value]


def new_origin(source: str, line: int, text: str | SourceLines | ListedLines) -> Origin:
    """``Origin(source, line, text)`` (one per rule and chain on the hot path); ``text`` may be
    the input's lines, which the origin then reads its line from when asked (``Origin``)."""
    origin = _Origin(source, line, text)
    origin.__class__ = Origin  # type: ignore[assignment]
    return origin  # type: ignore[return-value]


def new_option(name: str, args: tuple[str, ...], negated: bool, quoted: bool) -> Option:
    """``Option(name, args, negated, quoted)``."""
    option = _Option(name, args, negated, quoted)
    option.__class__ = Option  # type: ignore[assignment]
    return option  # type: ignore[return-value]


def new_match(module: str, options: tuple[Option, ...], known: bool, implicit: bool) -> Match:
    """``Match(module, options, known, implicit)``."""
    match = _Match(module, options, known, implicit)
    match.__class__ = Match  # type: ignore[assignment]
    return match  # type: ignore[return-value]


def new_target(name: str, options: tuple[Option, ...], kind: TargetKind) -> Target:
    """``Target(name, options, kind)``."""
    target = _Target(name, options, kind)
    target.__class__ = Target  # type: ignore[assignment]
    return target  # type: ignore[return-value]


def _check() -> None:
    """Fail at import, not later, if a model class gains a field the twins do not set."""
    twins: tuple[tuple[type, type], ...] = (
        (Rule, _Rule), (Origin, _Origin), (Address, _Address), (Option, _Option),
        (Match, _Match), (Target, _Target), (Chain, _Chain))
    for model, twin in twins:
        names: tuple[str, ...] = getattr(model, "__slots__", ())
        message = f"update natlens.parse.construct for {model.__name__}'s fields"
        assert names == getattr(twin, "__slots__", None), message
        assert len(names) == vars(twin)["__init__"].__code__.co_argcount - 1, message
    built = new_rule("C", None, None, None, None, None, None, (), None, False, None,
                     new_origin("s", 1, "t"), frozenset())
    assert type(built) is Rule
    assert built == Rule("C", origin=Origin("s", 1, "t"))


_check()
