"""What iptables-save prints that depends on the address family, added once a parse knows it.

Some save functions print defaults that differ per family (extensions/*.c, iptables 1.8.9):
libxt_recent.c ``--mask`` (all ones: ``255.255.255.255`` or ``ffff:...:ffff``),
libxt_connlimit.c ``--connlimit-mask`` (32 or 128), libxt_hashlimit.c leaves out
``--hashlimit-srcmask``/``--hashlimit-dstmask`` equal to 32 (128), libxt_TPROXY.c prints
``--on-ip`` (``0.0.0.0`` or ``::``), REJECT its type (natlens.parse.reject: a default, and
aliases or prefixes read per family). natlens.parse.save applies ``with_family_defaults`` after
the family check, to the parts it recorded while reading; the rest of the canonical forms is
natlens.parse.canonical's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from natlens.model import Chain, Match, Option, Rule, Table, Target, TargetKind
from natlens.parse.canonical import ordered
from natlens.parse.modules import MATCHES, TARGETS, ModuleSpec
from natlens.parse.reject import REJECT_DEFAULT, reject_type

__all__ = ["FAMILY_MATCH", "FAMILY_TARGET", "family_parts", "is_family_part",
           "with_family_defaults"]

Options = tuple[Option, ...]

_ALL_ONES = {4: "255.255.255.255", 6: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}
_ANY = {4: "0.0.0.0", 6: "::"}
_PLEN = {4: "32", 6: "128"}


def _with(spec: ModuleSpec, options: Options, option: Option) -> Options:
    """``options`` with ``option`` added unless one of that name is there."""
    if any(o.name == option.name for o in options):
        return options
    return ordered(spec, [*options, option])


def _family_recent(options: Options, version: int) -> Options:
    return _with(MATCHES["recent"], options, Option("--mask", (_ALL_ONES[version],)))


def _family_connlimit(options: Options, version: int) -> Options:
    return _with(MATCHES["connlimit"], options, Option("--connlimit-mask", (_PLEN[version],)))


def _family_hashlimit(options: Options, version: int) -> Options:
    return tuple(o for o in options if not (
        o.name in ("--hashlimit-srcmask", "--hashlimit-dstmask") and o.args == (_PLEN[version],)))


def _family_tproxy(options: Options, version: int) -> Options:
    return _with(TARGETS["TPROXY"], options, Option("--on-ip", (_ANY[version],)))


def _family_reject(options: Options, version: int) -> Options:
    out: list[Option] = []
    for opt in options:
        if opt.name == "--reject-with" and len(opt.args) == 1:
            name = reject_type(opt.args[0], version)
            if name is not None:
                opt = Option(opt.name, (name,), opt.negated)
        out.append(opt)
    return _with(TARGETS["REJECT"], tuple(out),
                 Option("--reject-with", (REJECT_DEFAULT[version],)))


FAMILY_MATCH: Mapping[str, Callable[[Options, int], Options]] = {
    "recent": _family_recent,
    "connlimit": _family_connlimit,
    "hashlimit": _family_hashlimit,
}
"""Module -> rewrite(options, IP version 4 or 6) of what its save prints per family."""

FAMILY_TARGET: Mapping[str, Callable[[Options, int], Options]] = {
    "TPROXY": _family_tproxy,
    "REJECT": _family_reject,
}


def is_family_part(part: Match | Target) -> bool:
    """Whether ``part`` (a Match or a Target) is one ``with_family_defaults`` may rewrite: a
    known match of ``FAMILY_MATCH`` or an extension target of ``FAMILY_TARGET``."""
    if isinstance(part, Match):
        return part.known and part.module in FAMILY_MATCH
    return part.kind is TargetKind.EXTENSION and part.name in FAMILY_TARGET


def family_parts(rule: Rule) -> list[Match | Target]:
    """The parts of ``rule`` that ``with_family_defaults`` may rewrite (``is_family_part``)."""
    parts: list[Match | Target] = [m for m in rule.matches if is_family_part(m)]
    if rule.target is not None and is_family_part(rule.target):
        parts.append(rule.target)
    return parts


def with_family_defaults(tables: list[Table], version: int,
                         parts: Iterable[Match | Target]) -> list[Table]:
    """``tables`` with ``FAMILY_MATCH``/``FAMILY_TARGET`` applied for IP ``version`` (4 or
    6): the same Table, Chain and Rule objects where nothing changes. A Match or Target shared
    by several rules (the fast path's segments) is rewritten once.

    ``parts`` must hold every Match and Target of the rules that ``is_family_part`` names
    (more, and repeats, do no harm): the parser records each when it makes it
    (natlens.parse.fastrule ``SegmentCache.family``, ``family_parts`` of the rules the full
    parser reads). Only when one of them changes are the rules read; else ``tables`` itself is
    returned. iptables-save prints each default itself, so its dumps (kube-proxy's 100k rules
    among them) need no rewrite: the pass costs one look per distinct part (issue 13)."""
    done: dict[int, Match | Target] = {}
    changed = False
    for part in parts:
        if is_family_part(part) and _rewritten(part, version, done) is not part:
            changed = True
    if not changed:
        return tables
    out: list[Table] = []
    family_match, family_target = FAMILY_MATCH, FAMILY_TARGET
    for table in tables:
        chains: list[Chain] | None = None
        for i, chain in enumerate(table.chains):
            rules: list[Rule] | None = None
            for j, rule in enumerate(chain.rules):
                target = rule.target
                hit = target is not None and target.name in family_target
                if not hit:
                    for match in rule.matches:
                        if match.module in family_match:
                            hit = True
                            break
                if hit:
                    new = _rule_with(rule, version, done)
                    if new is not rule:
                        if rules is None:
                            rules = list(chain.rules)
                        rules[j] = new
            if rules is not None:
                if chains is None:
                    chains = list(table.chains)
                chains[i] = replace(chain, rules=tuple(rules))
        out.append(table if chains is None else replace(table, chains=tuple(chains)))
    return out


def _rewritten(part: Match | Target, version: int, done: dict[int, Match | Target]) \
        -> Match | Target:
    cached = done.get(id(part))
    if cached is None:
        if isinstance(part, Match):
            options = FAMILY_MATCH[part.module](part.options, version)
        else:
            options = FAMILY_TARGET[part.name](part.options, version)
        cached = part if options == part.options else replace(part, options=options)
        done[id(part)] = cached
    return cached


def _rule_with(rule: Rule, version: int, done: dict[int, Match | Target]) -> Rule:
    target = rule.target
    if target is not None and target.name in FAMILY_TARGET \
            and target.kind is TargetKind.EXTENSION:
        new_target = _rewritten(target, version, done)
        assert isinstance(new_target, Target)
        target = new_target
    matches = tuple(m if m.module not in FAMILY_MATCH or not m.known
                    else _rewritten(m, version, done) for m in rule.matches)
    if target is rule.target and all(a is b for a, b in zip(matches, rule.matches,
                                                             strict=True)):
        return rule
    return replace(rule, target=target, matches=matches)  # type: ignore[arg-type]
