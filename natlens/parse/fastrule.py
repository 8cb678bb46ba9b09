"""Fast path for rules already in iptables-save's canonical shape.

iptables-save prints a rule as the IP part, then ``-m MODULE ...`` segments, then the target.
Large dumps (kube-proxy: 100k rules) repeat the same segments over and over, so each segment is
parsed once by the full parser (natlens.parse.rule) and its Match/Target reused. The segments
that are unique on kube dumps (one per service or endpoint: ``--comment`` texts, ``-j CHAIN``
jumps, ``DNAT --to-destination A.B.C.D:PORT``, ``-s``/``-d`` addresses) have their own direct
readers, which accept exactly what the full parser would give the same object for and leave the
rest to it: a word reader takes a whole IP part (``_address_core``), one precompiled pattern
checks a NAT target (``_NAT_TAIL``, port range included), and the readers that run once per
rule are inlined in ``parse_line_fast`` (issue 13: a Python call per piece costs more than the
check). Each segment's address family is checked once, when first read (``SegmentCache.conflicts``;
natlens.parse.families). Anything that does not fit the shape (options of one module
after another ``-m``, counters, old-style ``!``, quoted option-like values) returns None and the
caller uses the full parser, so both paths give the same Rule (tests/test_parse_fastpath.py
compares them on the corpus and kube dumps, down to ``repr``).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from typing import cast

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
from natlens.parse.canonical import CANONICAL_MATCH, CANONICAL_TARGET
from natlens.parse.checks import MATCH_CHECKS, refusal
from natlens.parse.construct import (
    _Match,
    _Option,
    _Rule,
    _Target,
    new_match,
    new_option,
    new_target,
)
from natlens.parse.families import (
    address_conflicts,
    match_conflicts,
    target_conflicts,
)
from natlens.parse.family_defaults import is_family_part
from natlens.parse.modules import MATCHES, PROTOCOL_MATCHES, TARGETS
from natlens.parse.rule import (
    NAT_PORT_PROTOCOLS,
    RuleSyntaxError,
    _ipv4_address,
    _is_name,
    _parse_address,
    parse_rule_args,
    protocol_bound,
    protocol_refusal,
)
from natlens.parse.tokens import split_args
from natlens.parse.values import canonical_args

__all__ = ["SegmentCache", "parse_line_fast"]

_Core = tuple[Address | None, Address | None, Interface | None, Interface | None,
              Protocol | None, bool | None]
_MatchEntry = tuple[Match, str | None]
_TargetEntry = tuple[Target, bool, bool]
"""A target segment: the Target, whether it is a ``-g``, whether it takes only some ``-p``
values (NAT ports, REJECT tcp-reset: natlens.parse.rule.protocol_refusal)."""
_UNSET = object()  # cache miss marker (None is a cached "not fast-path material")
_COMMENT = "comment --comment "
_COMMENT_AT = len(_COMMENT)
_COMMENT_Q = _COMMENT + '"'


class _Named(typing.Protocol):
    """A table's chain as the parser keeps it (its ``name`` is the table's key for it; its
    ``jump``, None until the first jump to it, the Target of every jump to it)."""

    @property
    def name(self) -> str: ...

    jump: Target | None


@dataclass(slots=True)
class SegmentCache:
    """Parsed segments of one parse call (None: not fast-path material).

    ``conflicts`` gathers the ``natlens.parse.families`` conflict bits of every segment parsed:
    when it lacks the ruleset family's bit, no rule of the fast path names a value of the other
    family (the full check is skipped)."""

    core: dict[str, _Core | None] = field(default_factory=dict)
    matches: dict[str, _MatchEntry | None] = field(default_factory=dict)
    """`` -m `` piece (without ``-m``) -> its Match and the ``-p`` it needs (``-m tcp``)."""
    comments: dict[str, Match | tuple[Match]] = field(default_factory=dict)
    """Quoted ``--comment`` text -> its Match, keyed by the Option's own argument string
    (kube dumps hold one comment per endpoint: no second copy of each); once a rule has it
    as its only match, the Match in a 1-tuple: the ``matches`` of every such rule (a third of
    kube rules; not made for every comment, which would cost more than it shares)."""
    targets: dict[tuple[str, bool, bool], _TargetEntry | None] = field(default_factory=dict)
    conflicts: int = 0
    family: list[Match | Target] = field(default_factory=list)
    """Each Match and Target made here whose saved form depends on the family
    (natlens.parse.family_defaults ``is_family_part``): the parts the parse rewrites once it
    knows the family, without reading every rule (issue 13)."""


_ADDR_FLAGS = {"-s": 0, "-d": 1}
_IFACE_FLAGS = {"-i": 2, "-o": 3}
_PROTO_CACHE: dict[tuple[str, bool], Protocol] = {}
_IFACE_CACHE: dict[tuple[str, bool], Interface] = {}
_VERDICTS: dict[str, _TargetEntry] = {
    name: (Target(name, (), TargetKind.VERDICT), False, False) for name in VERDICT_TARGETS}
_EMPTY_CORE: _Core = (None, None, None, None, None, None)
# An IPv4 address as iptables-save prints it (what values._is_plain_ipv4 accepts) and a port
# number without leading zeros: DNAT/SNAT values of this shape are canonical as written.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_PORT = (r"(?:0|[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]"
         r"|6553[0-5])")  # 0 to 65535
_PLAIN_NAT_TEXT = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}(:{_PORT})?"
_PLAIN_NAT = re.compile(_PLAIN_NAT_TEXT)
_NAT_TAIL = re.compile(rf"(?:DNAT --to-destination|SNAT --to-source) ({_PLAIN_NAT_TEXT})")
"""A DNAT/SNAT target as iptables-save prints it (``_plain_nat``): group 1 the value, group 2
its port (None: no port)."""
_V4_CONFLICTS = address_conflicts(4)
"""The conflict bits of an IPv4 address (in a DNAT/SNAT target)."""
# the comment and NAT fast paths skip canonical rewrites
assert "comment" not in CANONICAL_MATCH
assert "DNAT" not in CANONICAL_TARGET
assert "SNAT" not in CANONICAL_TARGET


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
            if out[slot] is not None or len(value) > 15 or not value.isascii() or value == "+" \
                    or "/" in value \
                    or not _is_name(value.lstrip("!")):
                return None  # the full parser says why a name is refused
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
def _address_core(text: str) -> _Core | None:
    """What ``_direct_core`` gives for an IP part of IPv4 addresses and a protocol in
    iptables-save's order and spelling, `` [! ]-s ADDR[ [! ]-d ADDR][ -p NAME]`` or
    `` [! ]-d ADDR[ -p NAME]`` (with the space that follows the chain name; one per service or
    endpoint on kube dumps), each address of digits, dots and a slash
    (natlens.parse.rule ``_ipv4_address``); None for any other text (``_direct_core``
    decides). Read word by word: a third of the cost of a pattern and its groups."""
    words = text.split(" ")
    n = len(words)
    i = 1
    s_not = d_not = False
    source = destination = name = None
    if i < n and words[i] == "!":
        s_not = True
        i += 1
    if i + 1 < n and words[i] == "-s":
        source = words[i + 1]
        i += 2
        if i < n and words[i] == "!":
            d_not = True
            i += 1
    elif s_not:  # "! -d"
        s_not, d_not = False, True
    if i + 1 < n and words[i] == "-d":
        destination = words[i + 1]
        i += 2
    elif d_not:
        return None
    if i + 1 < n and words[i] == "-p":
        name = words[i + 1]
        i += 2
    if i != n or words[0] or (source is None and destination is None):
        return None
    protocol = None
    if name is not None:
        if name not in _SAVE_PROTOCOLS:
            return None
        key = (name, False)
        protocol = _PROTO_CACHE.get(key) or _PROTO_CACHE.setdefault(key, Protocol(*key))
    src = dst = None
    if source is not None:
        src = _ipv4_address(source, s_not)
        if src is None:
            return None
    if destination is not None:
        dst = _ipv4_address(destination, d_not)
        if dst is None:
            return None
    return (src, dst, None, None, protocol, None)


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
    if refusal(module, result, MATCH_CHECKS.get(module)) is not None:
        return None  # the full parser says why iptables refuses it
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


def _claimable(options: tuple[Option, ...]) -> bool:
    """Whether some known match could own one of ``options`` (read for an unknown module, a
    chain or an unknown target, which take any option).

    The full parser (natlens.parse.rule ``_find_owner``) gives such an option to an earlier
    known match of the rule or to the implicit match of ``-p tcp``/``udp``/...: the same piece
    read alone gives it to the unknown owner, so the piece is not fast-path material."""
    return any(spec.lookup(option.name) is not None
               for option in options for spec in MATCHES.values())


def _plain_nat(value: str) -> bool:
    """Whether a DNAT/SNAT address is ``A.B.C.D`` or ``A.B.C.D:PORT`` as iptables-save prints
    it (then ``canonical_args("natrange", ...)`` returns it unchanged)."""
    return _PLAIN_NAT.fullmatch(value) is not None


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
    if not (opt.kind == "natrange" and _plain_nat(args[0])):
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


def _comment(text: str) -> Match | None:
    """``comment --comment VALUE`` (one bare word or one quoted stretch without escapes) as
    the full parser reads it, or None (then the general segment path decides)."""
    value = text[_COMMENT_AT:]
    if not value:
        return None
    if value[0] == '"':
        if len(value) < 2 or value[-1] != '"' or value.count('"') != 2:
            return None
        arg = value[1:-1]
        quoted = True
    else:
        if " " in value or '"' in value:
            return None
        arg = value
        quoted = False
    if arg == "!" or (arg[:1] == "-" and arg[1:2].isalpha()):
        return None  # what _direct_match leaves to the full parser
    return new_match("comment", (new_option("--comment", (arg,), False, quoted),), True, False)


def _quoted_comment_match(value: str) -> Match:
    """``-m comment --comment "value"`` as ``_comment`` reads it (no call per object)."""
    option = _Option("--comment", (value,), False, True)
    option.__class__ = Option  # type: ignore[assignment]
    match = _Match("comment", (option,), True, False)  # type: ignore[arg-type]
    match.__class__ = Match  # type: ignore[assignment]
    return match  # type: ignore[return-value]


def _match_segment(text: str, cache: SegmentCache) -> _MatchEntry | None:
    """The Match of ``text`` (a `` -m `` piece without its ``-m``, with an even number of
    quotes) and the protocol it needs, parsed once per text."""
    cached: object = cache.matches.get(text, _UNSET)
    if cached is not _UNSET:  # never held in a typed name: a compiled core checks them
        return cast("_MatchEntry | None", cached)
    entry: _MatchEntry | None = None
    match = _comment(text) if text.startswith(_COMMENT) else None
    if match is None:
        tokens, quoted = _split_tokens(text)
        match = _parse_match(("-m", *tokens), frozenset(q + 1 for q in quoted))
        if match is not None and not match.known and _claimable(match.options):
            match = None
        if match is not None:
            cache.conflicts |= match_conflicts(match)
            if is_family_part(match):
                cache.family.append(match)
    if match is not None:
        want = None
        if match.module in PROTOCOL_MATCHES:
            want = "ipv6-icmp" if match.module == "icmp6" else match.module
        entry = (match, want)
    cache.matches[text] = entry
    return entry


def _core_segment(text: str, cache: SegmentCache) -> _Core | None:
    """The IP part of ``text`` (what precedes the first `` -m ``), parsed once per text."""
    cached: object = cache.core.get(text, _UNSET)
    if cached is not _UNSET:  # see _match_segment
        return cast("_Core | None", cached)
    core: _Core | None
    core = _address_core(text)
    if core is not None:  # not cached: an address is unique per service or endpoint
        cache.conflicts |= _V4_CONFLICTS  # digits and dots: IPv4 addresses
        return core
    if '"' in text:
        core = None
    else:
        tokens = tuple(text.split())
        core = _parse_core(tokens) if tokens else _EMPTY_CORE
    if "-s " not in text and "-d " not in text:
        cache.core[text] = core  # an address is unique per service or endpoint on kube
    if core is not None:
        for address in core[:2]:
            if address is not None:
                cache.conflicts |= address_conflicts(address.network.version)
    return core


def _target_segment(tail: str, name: str, goto: bool, chains: Mapping[str, _Named],
                    cache: SegmentCache) -> _TargetEntry | None:
    """The target of ``tail`` (what follows `` -j ``/`` -g ``, ``name`` its first word)."""
    if '"' in tail and tail.count('"') % 2:
        return None
    is_chain = name in chains
    if is_chain and len(name) == len(tail):  # -j CHAIN: one Target per chain, kept on it
        state = chains[name]
        jump = state.jump
        if jump is None:  # named by the table's string: no copy per rule
            jump = state.jump = new_target(state.name, (), TargetKind.CHAIN)
        return jump, goto, False
    if not is_chain and not goto:
        verdict = _VERDICTS.get(tail)
        if verdict is not None:
            return verdict
    key = (tail, is_chain, goto)
    cached: object = cache.targets.get(key, _UNSET)
    if cached is not _UNSET:  # see _match_segment
        return cast("_TargetEntry | None", cached)
    found: _TargetEntry | None = None
    if tail.startswith(("DNAT ", "SNAT ")) and not is_chain and not goto \
            and '"' not in tail:
        found = _nat_target(tail)  # unique per endpoint on kube dumps: not cached
        if found is not None:
            cache.conflicts |= address_conflicts(4)
            return found
    tokens, quoted = _split_tokens(tail)
    parsed = _parse_target(("-g" if goto else "-j", *tokens),
                           frozenset(q + 1 for q in quoted), is_chain, chains)
    if parsed is not None and parsed[0].name not in TARGETS \
            and _claimable(parsed[0].options):
        parsed = None
    if parsed is not None:
        found = (parsed[0], parsed[1], protocol_bound(parsed[0]))
        cache.conflicts |= target_conflicts(parsed[0])
        if is_family_part(parsed[0]):
            cache.family.append(parsed[0])
    cache.targets[key] = found
    return found


def _nat_target(tail: str) -> _TargetEntry | None:
    """``DNAT --to-destination A.B.C.D[:PORT]`` (or SNAT ``--to-source``) as iptables-save
    prints it, or None."""
    found = _NAT_TAIL.fullmatch(tail)
    if found is None:
        return None
    return _nat(tail, found[1]), False, found[2] is not None


def _nat(tail: str, value: str) -> Target:
    """The Target of ``tail``, which ``_NAT_TAIL`` matched with ``value`` (one per endpoint on
    kube dumps: built as ``new_option`` and ``new_target`` do, without a call to each)."""
    # an IPv4 address: ip6tables refuses it (natlens.parse.families), iptables takes it
    dnat = tail[0] == "D"
    option = _Option("--to-destination" if dnat else "--to-source", (value,), False, False)
    option.__class__ = Option  # type: ignore[assignment]
    target = _Target("DNAT" if dnat else "SNAT", (option,), _EXTENSION)  # type: ignore[arg-type]
    target.__class__ = Target  # type: ignore[assignment]
    return target  # type: ignore[return-value]


_EXTENSION = TargetKind.EXTENSION


def parse_line_fast(  # noqa: PLR0917 (one call per rule)
    line: str,
    chain: str,
    origin: Origin,
    chains: Mapping[str, _Named],
    cache: SegmentCache,
    plain: bool = False,
) -> Rule | None:
    """An ``-A CHAIN ...`` line in iptables-save's spelling as a Rule, or None.

    ``chain`` is the table's own string for the chain the line names (``line`` continues after
    it with a space); ``plain`` tells that the whole text holds no tab, backslash or double
    space (each line is checked otherwise). The line is cut at `` -m `` and `` -j ``/`` -g ``
    with string operations and each piece is looked up in ``cache`` (the lookups that hit are
    inlined: this runs once per rule); None means the full parser must read the line.
    """
    if not plain and ("  " in line or "\t" in line or "\\" in line):
        return None
    head, jsep, tail = line.partition(" -j ")
    goto = False
    if not jsep:
        head, jsep, tail = line.partition(" -g ")
        goto = bool(jsep)
    # A cut inside a quoted stretch leaves a piece with an odd number of quotes: the core
    # refuses quotes, and each match piece and the tail is checked when first seen (a cached
    # piece passed the check).
    pieces = head.split(" -m ")
    core_text = pieces[0][3 + len(chain):]  # after "-A CHAIN"
    core: _Core | None = cache.core.get(core_text)
    if core is None:
        core = _core_segment(core_text, cache)
        if core is None:
            return None
    proto = core[4]
    matches: tuple[Match, ...] = ()
    if len(pieces) > 1:
        found: list[Match] = []
        cached: str | None = None  # the key of the last comment found in cache.comments
        known, comments = cache.matches, cache.comments
        for text in pieces[1:]:
            if text.startswith(_COMMENT_Q):
                # the cache holds only quote-free texts: a hit is exactly COMMENT "text"
                value = text[_COMMENT_AT + 1:-1]
                hit = comments.get(value)
                if hit is None:
                    if text[-1] == '"' and '"' not in value and len(text) > _COMMENT_AT + 1 \
                            and value != "!" and not (value[:1] == "-" and value[1:2].isalpha()):
                        # a new quoted comment (one per endpoint on kube dumps): _comment's
                        match = comments[value] = _quoted_comment_match(value)
                        cached = value
                    else:
                        if text.count('"') % 2:
                            return None
                        entry = _match_segment(text, cache)
                        if entry is None:
                            return None
                        match = entry[0]  # a comment needs no -p
                else:
                    match = hit[0] if isinstance(hit, tuple) else hit
                    cached = value
                found.append(match)
                continue
            entry = known.get(text)  # a hit is a text seen before: no more checks
            if entry is None:
                if text.count('"') % 2:
                    return None
                entry = _match_segment(text, cache)
                if entry is None:
                    return None
            match, want = entry
            if want is not None and (proto is None or proto.name != want or proto.negated):
                return None
            found.append(match)
        if cached is not None and len(pieces) == 2:  # its only match: share the 1-tuple
            shared = comments[cached]
            if not isinstance(shared, tuple):
                shared = comments[cached] = (shared,)
            matches = shared
        else:
            matches = tuple(found)
    target: Target | None = None
    if jsep:
        state = chains.get(tail)
        target = None if state is None else state.jump  # -j CHAIN: one Target per chain
        if target is None:
            if state is not None and " " not in tail and '"' not in tail:
                # the first jump to a chain (one per chain on kube dumps): _target_segment's
                target = state.jump = new_target(state.name, (), TargetKind.CHAIN)
            elif not goto and (nat := _NAT_TAIL.fullmatch(tail)) is not None \
                    and tail[:4] not in chains:
                # DNAT/SNAT to A.B.C.D[:PORT], unique per endpoint on kube dumps: what
                # _target_segment and _nat_target give, inlined
                if nat[2] is not None and (proto is None or proto.negated
                                           or proto.name not in NAT_PORT_PROTOCOLS):
                    return None  # the full parser says why iptables refuses it
                target = _nat(tail, nat[1])
                cache.conflicts |= _V4_CONFLICTS
            else:
                segment = _target_segment(tail, tail.partition(" ")[0], goto, chains, cache)
                if segment is None:
                    return None
                target = segment[0]
                if segment[2] and protocol_refusal(target, proto) is not None:
                    return None  # the full parser says why iptables refuses it
    rule = _Rule(chain, core[0], core[1], core[2], core[3], proto, core[5], matches, target, goto,
                 None, origin, _NOTHING_UNKNOWN)
    rule.__class__ = Rule  # type: ignore[assignment]
    return rule  # type: ignore[return-value]


_NOTHING_UNKNOWN: frozenset[str] = frozenset()
