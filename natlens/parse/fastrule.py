"""Fast path for rules already in iptables-save's canonical shape.

iptables-save prints a rule as the IP part, then ``-m MODULE ...`` segments, then the target.
Large dumps (kube-proxy: 100k rules) repeat the same segments over and over, so each segment is
parsed once by the full parser (natlens.parse.rule) and its Match/Target reused. Anything that
does not fit the shape (options of one module after another ``-m``, counters, old-style ``!``,
quoted option-like values) returns None and the caller uses the full parser, so both paths give
the same Rule.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any

from natlens.model import (
    VERDICT_TARGETS,
    Address,
    Interface,
    Match,
    Option,
    Origin,
    Protocol,
    Rule,
    Target,
    TargetKind,
)
from natlens.parse.canonical import CANONICAL_MATCH
from natlens.parse.modules import MATCHES, PROTOCOL_MATCHES, TARGETS
from natlens.parse.rule import (
    NAT_PORT_PROTOCOLS,
    RuleSyntaxError,
    _names_ports,
    _parse_address,
    parse_rule_args,
)
from natlens.parse.tokens import split_args
from natlens.parse.values import canonical_args

__all__ = ["SegmentCache", "new_origin", "parse_line_fast"]

_Core = tuple[Address | None, Address | None, Interface | None, Interface | None,
              Protocol | None, bool | None]
_BOUNDARY = frozenset({"-m", "-j", "-g"})
_UNSET: Any = object()  # cache miss marker (None is a cached "not fast-path material")


@dataclass(slots=True)
class SegmentCache:
    """Parsed segments of one parse call (None: not fast-path material)."""

    core: dict[str, _Core | None] = field(default_factory=dict)
    matches: dict[str, Match | None] = field(default_factory=dict)
    targets: dict[tuple[str, bool, bool], tuple[Target, bool] | None] = field(
        default_factory=dict)


_ADDR_FLAGS = {"-s": 0, "-d": 1}
_IFACE_FLAGS = {"-i": 2, "-o": 3}
_PROTO_CACHE: dict[tuple[str, bool], Protocol] = {}
_IFACE_CACHE: dict[tuple[str, bool], Interface] = {}


def _direct_core(tokens: tuple[str, ...]) -> _Core | None:
    """The IP part in iptables-save's own spelling, without the general parser."""
    out: list[object] = [None, None, None, None, None, None]
    i, n = 0, len(tokens)
    while i < n:
        negated = tokens[i] == "!"
        if negated:
            i += 1
        if i + 1 >= n:
            return None
        flag, value = tokens[i], tokens[i + 1]
        slot = _ADDR_FLAGS.get(flag)
        if slot is not None:
            if out[slot] is not None or "," in value:
                return None
            try:
                out[slot] = _parse_address(value, negated, 0, value)
            except RuleSyntaxError:
                return None
        elif flag in _IFACE_FLAGS:
            slot = _IFACE_FLAGS[flag]
            if out[slot] is not None or len(value) > 15 or value == "+":
                return None
            key = (value, negated)
            out[slot] = _IFACE_CACHE.get(key) or _IFACE_CACHE.setdefault(key, Interface(*key))
        elif flag == "-p" and out[4] is None and value in _SAVE_PROTOCOLS:
            key = (value, negated)
            out[4] = _PROTO_CACHE.get(key) or _PROTO_CACHE.setdefault(key, Protocol(*key))
        else:
            return None
        i += 2
    return tuple(out)  # type: ignore[return-value]


_SAVE_PROTOCOLS = frozenset({"tcp", "udp", "icmp", "sctp", "ipv6-icmp", "udplite", "esp", "ah",
                             "gre", "dccp"})


def _parse_core(tokens: tuple[str, ...]) -> _Core | None:
    direct = _direct_core(tokens)
    if direct is not None:
        return direct
    try:
        rules = parse_rule_args("X", list(tokens))
    except RuleSyntaxError:
        return None
    if len(rules) != 1:
        return None
    r = rules[0]
    if r.matches or r.target is not None or r.counters is not None:
        return None
    return (r.source, r.destination, r.in_interface, r.out_interface, r.protocol, r.fragment)


def _direct_match(tokens: tuple[str, ...], quoted: frozenset[int]) -> Match | None:
    """A ``-m MODULE --opt ARG ...`` segment of a known module in save order."""
    if len(tokens) < 2:
        return None
    module = tokens[1]
    spec = MATCHES.get(module)
    if spec is None:
        return None
    by_name = spec.by_name
    options: list[Option] = []
    last_order = -1
    i, n = 2, len(tokens)
    while i < n:
        negated = tokens[i] == "!"
        if negated:
            i += 1
        if i >= n:
            return None
        opt = by_name.get(tokens[i])
        if opt is None or opt.name != tokens[i] or opt.order <= last_order:
            return None
        last_order = opt.order
        end = i + 1 + opt.nargs
        if end > n:
            return None
        args = tokens[i + 1:end]
        if opt.kind not in ("str", "string"):
            try:
                if canonical_args(opt.kind, args) != args:
                    return None
            except ValueError:
                return None
        for a in args:
            if a == "!" or (a.startswith("-") and a[1:2].isalpha()):
                return None
        was_quoted = bool(quoted) and any(q in quoted for q in range(i + 1, end))
        options.append(Option(opt.name, args, negated, was_quoted))
        i = end
    result = tuple(options)
    rewrite = CANONICAL_MATCH.get(module)
    if rewrite is not None and rewrite(result) != result:
        return None
    return Match(module, result, True, False)


def _has_core(r: Rule) -> bool:
    """Whether a segment parse picked up IP-part options or counters (not its own)."""
    return (r.source is not None or r.destination is not None or r.in_interface is not None
            or r.out_interface is not None or r.fragment is not None or r.counters is not None)


def _parse_match(tokens: tuple[str, ...], quoted: frozenset[int]) -> Match | None:
    direct = _direct_match(tokens, quoted)
    if direct is not None:
        return direct
    module = tokens[1] if len(tokens) > 1 else ""
    prefix: list[str] = []
    if module in PROTOCOL_MATCHES:  # -m tcp is only valid with -p tcp; the caller checks that
        prefix = ["-p", "ipv6-icmp" if module == "icmp6" else module]
        quoted = frozenset(q + 2 for q in quoted)
    try:
        rules = parse_rule_args("X", [*prefix, *tokens], quoted=quoted)
    except RuleSyntaxError:
        return None
    r = rules[0]
    if len(r.matches) != 1 or r.target is not None or (r.protocol is not None) != bool(prefix):
        return None
    if _has_core(r):
        return None
    return r.matches[0]


def _direct_target(tokens: tuple[str, ...], is_chain: bool) -> tuple[Target, bool] | None:
    """``-j NAME`` without options, or ``-j DNAT/SNAT --to-… ADDR`` as iptables-save prints."""
    if len(tokens) < 2:
        return None
    goto = tokens[0] == "-g"
    name = tokens[1]
    if len(tokens) == 2:
        if is_chain:
            return Target(name, (), TargetKind.CHAIN), goto
        if goto:
            return None
        if name in VERDICT_TARGETS:
            return Target(name, (), TargetKind.VERDICT), False
        return None
    if goto or is_chain or len(tokens) != 4:
        return None
    spec = TARGETS.get(name)
    if spec is None or name not in ("DNAT", "SNAT"):
        return None
    opt = spec.by_name.get(tokens[2])
    if opt is None or opt.name != tokens[2] or opt.nargs != 1:
        return None
    args = tokens[3:]
    try:
        if canonical_args(opt.kind, args) != args:
            return None
    except ValueError:
        return None
    return Target(name, (Option(opt.name, args),), TargetKind.EXTENSION), False


def _parse_target(tokens: tuple[str, ...], quoted: frozenset[int], is_chain: bool,
                  chains: Container[str]) -> tuple[Target, bool] | None:
    if not quoted:
        direct = _direct_target(tokens, is_chain)
        if direct is not None:
            return direct
    try:
        rules = parse_rule_args("X", list(tokens), quoted=quoted, chains=chains)
    except RuleSyntaxError:
        return None
    r = rules[0]
    if r.matches or r.target is None or r.protocol is not None or _has_core(r):
        return None
    if (r.target.name in chains) != is_chain:
        return None
    return r.target, r.goto


def _split_tokens(text: str) -> tuple[tuple[str, ...], frozenset[int]]:
    if '"' not in text:
        return tuple(text.split()), frozenset()
    args, quoted = split_args(text)
    return tuple(args), quoted


def parse_line_fast(
    line: str,
    origin: Origin,
    chains: Container[str],
    cache: SegmentCache,
) -> Rule | None:
    """An ``-A CHAIN ...`` line in iptables-save's spelling as a Rule, or None.

    The line is cut at `` -m `` and `` -j ``/`` -g `` with string operations and each piece is
    looked up in ``cache``; None means the full parser must read the line.
    """
    if not line.startswith("-A ") or "  " in line or "\t" in line or "\\" in line:
        return None
    chain, sep, rest = line[3:].partition(" ")
    if not sep:
        return None
    rest = " " + rest
    head, jsep, tail = rest.partition(" -j ")
    goto = False
    if not jsep:
        head, jsep, tail = rest.partition(" -g ")
        goto = bool(jsep)
    quotes = '"' in line
    if quotes and (head.count('"') % 2 or tail.count('"') % 2):
        return None
    pieces = head.split(" -m ")
    core_text = pieces[0]
    core = cache.core.get(core_text, _UNSET)
    if core is _UNSET:
        if '"' in core_text:
            core = None
        else:
            tokens = tuple(core_text.split())
            core = _parse_core(tokens) if tokens else (None, None, None, None, None, None)
        cache.core[core_text] = core
    if core is None:
        return None
    proto = core[4]
    matches: list[Match] = []
    for text in pieces[1:]:
        if quotes and text.count('"') % 2:
            return None
        match = cache.matches.get(text, _UNSET)
        if match is _UNSET:
            tokens, quoted = _split_tokens(text)
            match = _parse_match(("-m", *tokens), frozenset(q + 1 for q in quoted))
            cache.matches[text] = match
        if match is None:
            return None
        if match.module in PROTOCOL_MATCHES:
            want = "ipv6-icmp" if match.module == "icmp6" else match.module
            if proto is None or proto.name != want or proto.negated:
                return None
        matches.append(match)
    target: Target | None = None
    if jsep:
        name = tail.split(" ", 1)[0]
        is_chain = name in chains
        key = (tail, is_chain, goto)
        found = cache.targets.get(key, _UNSET)
        if found is _UNSET:
            tokens, quoted = _split_tokens(tail)
            flag = "-g" if goto else "-j"
            found = _parse_target((flag, *tokens), frozenset(q + 1 for q in quoted), is_chain,
                                  chains)
            cache.targets[key] = found
        if found is None:
            return None
        target = found[0]
        if _names_ports(target) and (proto is None or proto.negated
                                     or proto.name not in NAT_PORT_PROTOCOLS):
            return None  # the full parser says why iptables refuses it
    rule = _new_rule(Rule)
    _set_chain(rule, chain)
    _set_source(rule, core[0])
    _set_destination(rule, core[1])
    _set_in(rule, core[2])
    _set_out(rule, core[3])
    _set_protocol(rule, proto)
    _set_fragment(rule, core[5])
    _set_matches(rule, tuple(matches))
    _set_target(rule, target)
    _set_goto(rule, goto)
    _set_counters(rule, None)
    _set_origin(rule, origin)
    _set_unknown(rule, _NOTHING_UNKNOWN)
    return rule


# Building the frozen Rule through its slot descriptors costs half of its generated __init__;
# tests/test_parse_fastpath.py checks the result equals what the general parser builds.
_new_rule = object.__new__


def _slot(name: str) -> Callable[[Rule, object], None]:
    setter: Callable[[Rule, object], None] = vars(Rule)[name].__set__
    return setter


_set_chain = _slot("chain")
_set_source = _slot("source")
_set_destination = _slot("destination")
_set_in = _slot("in_interface")
_set_out = _slot("out_interface")
_set_protocol = _slot("protocol")
_set_fragment = _slot("fragment")
_set_matches = _slot("matches")
_set_target = _slot("target")
_set_goto = _slot("goto")
_set_counters = _slot("counters")
_set_origin = _slot("origin")
_set_unknown = _slot("unknown")
_NOTHING_UNKNOWN: frozenset[str] = frozenset()
_set_origin_source: Callable[[Origin, object], None] = vars(Origin)["source"].__set__
_set_origin_line: Callable[[Origin, object], None] = vars(Origin)["line"].__set__
_set_origin_text: Callable[[Origin, object], None] = vars(Origin)["text"].__set__
assert Origin.__slots__ == ("source", "line", "text"), "update new_origin with Origin's fields"


def new_origin(source: str, line: int, text: str) -> Origin:
    """``Origin(source, line, text)``, built through its slots (half the cost of the frozen
    dataclass's ``__init__``; one per rule on the hot path, issue 13)."""
    origin: Origin = _new_rule(Origin)
    _set_origin_source(origin, source)
    _set_origin_line(origin, line)
    _set_origin_text(origin, text)
    return origin
assert len(Rule.__slots__) == 13, "update the setters above with Rule's fields"
