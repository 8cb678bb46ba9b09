"""Dead rules: a rule that an earlier rule of the same chain covers entirely.

Rule A (earlier) covers rule B (later) when every packet B matches also matches A, and A ends the
packet's way through the chain: a verdict (ACCEPT, DROP, RETURN, QUEUE), REJECT, a NAT rewrite
(DNAT, SNAT, MASQUERADE, REDIRECT, NETMAP: the nat table stops at the first), or ``-g CHAIN``
(the packet never comes back to this chain). ``-j CHAIN`` may return, so it never covers.

"Every packet B matches also matches A" is decided exactly and conservatively, condition by
condition of A (iptables(8), iptables-extensions(8)):

- addresses: B's network inside A's (``! -s X``: B's network outside X, or ``! -s`` a supernet);
- interfaces: equal, ``+`` prefixes contained, negations by disjointness;
- protocol and ``-f``: the same;
- ports (``--sport``/``--dport``, multiport ``--sports``/``--dports``): B's port set, intersected
  over all its port conditions, inside A's set;
- ``conntrack --ctstate`` / ``state --state``, ``addrtype --src-type/--dst-type``: B's list a
  subset of A's (or, negated, a superset);
- any other match: B has the same module with the same options (a superset where the module's
  options are all plain conditions);
- comments never matter.

A never covers when it has a match natlens does not know, a stateful or random match
(``statistic``, ``limit``, ``recent``, ``set``, ...) or a field a listing could not show. B that is
an exact copy of A is left to the ``duplicate`` check.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence

from natlens.audit._rules import normalised
from natlens.audit.duplicates import STATEFUL_MATCHES
from natlens.audit.findings import AuditContext, Finding, RuleRef, Severity
from natlens.model import Address, Interface, Match, Option, Protocol, Rule, TargetKind
from natlens.parse.values import parse_port_range

__all__ = ["NEVER_COVER", "check_dead_rules", "covers"]

NEVER_COVER = STATEFUL_MATCHES | frozenset({"set", "string", "owner", "socket", "helper",
                                            "condition", "ipvs", "cgroup", "policy", "geoip"})
"""Match modules whose outcome natlens cannot compare: a rule with one never covers another."""

_TERMINATING = frozenset({"ACCEPT", "DROP", "RETURN", "QUEUE", "REJECT", "DNAT", "SNAT",
                          "MASQUERADE", "REDIRECT", "NETMAP"})

_PROTO_ALIASES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp", "icmpv6": "ipv6-icmp",
                  "132": "sctp", "136": "udplite", "33": "dccp", "47": "gre", "50": "esp",
                  "51": "ah"}

_PORT_MODULES = frozenset({"tcp", "udp", "udplite", "sctp", "dccp"})
# Modules whose options are each an independent condition (so more options = fewer packets).
_CONJUNCTIVE = frozenset({"tcp", "udp", "udplite", "sctp", "dccp", "icmp", "icmp6", "conntrack",
                          "state", "mark", "connmark", "physdev", "pkttype", "mac", "ttl", "hl",
                          "length", "tos", "dscp", "iprange", "esp", "ah", "devgroup", "rpfilter",
                          "addrtype", "multiport"})
_SET_OPTIONS = {("conntrack", "--ctstate"): "ctstate", ("state", "--state"): "ctstate",
                ("addrtype", "--src-type"): "src-type", ("addrtype", "--dst-type"): "dst-type"}
_PORT_OPTIONS = {"--sport": "sport", "--dport": "dport", "--sports": "sport",
                 "--dports": "dport"}

Intervals = tuple[tuple[int, int], ...]
_ALL_PORTS: Intervals = ((0, 65535),)


def _terminates(rule: Rule) -> bool:
    target = rule.target
    if target is None:
        return False
    if rule.goto and target.kind is TargetKind.CHAIN:
        return True
    return target.kind is not TargetKind.UNKNOWN and target.name in _TERMINATING


# -- addresses and interfaces -------------------------------------------------------------------


def _net_implies(b: Address | None, a: Address | None) -> bool:
    """Whether every address satisfying ``b`` satisfies ``a``."""
    if a is None:
        return True
    if b is None:
        return False
    if a.mask is not None or b.mask is not None:
        return a == b
    an, bn = a.network, b.network
    if an.version != bn.version:
        return False
    if not a.negated and not b.negated:
        return bn.subnet_of(an)  # type: ignore[arg-type]
    if a.negated and not b.negated:
        return not bn.overlaps(an)
    if a.negated and b.negated:
        return an.subnet_of(bn)  # type: ignore[arg-type]
    return False


def _iface_subset(x: str, y: str) -> bool:
    """Whether every interface name ``x`` matches is matched by ``y`` (both positive)."""
    if y.endswith("+"):
        return x.rstrip("+").startswith(y[:-1]) if x.endswith("+") else x.startswith(y[:-1])
    return not x.endswith("+") and x == y


def _iface_disjoint(x: str, y: str) -> bool:
    if x.endswith("+") and y.endswith("+"):
        px, py = x[:-1], y[:-1]
        return not (px.startswith(py) or py.startswith(px))
    if x.endswith("+"):
        return not y.startswith(x[:-1])
    if y.endswith("+"):
        return not x.startswith(y[:-1])
    return x != y


def _iface_implies(b: Interface | None, a: Interface | None) -> bool:
    if a is None:
        return True
    if b is None:
        return False
    if not a.negated and not b.negated:
        return _iface_subset(b.name, a.name)
    if a.negated and not b.negated:
        return _iface_disjoint(b.name, a.name)
    if a.negated and b.negated:
        return _iface_subset(a.name, b.name)
    return False


def _proto(p: Protocol) -> str:
    name = p.name.lower()
    return _PROTO_ALIASES.get(name, name)


def _proto_implies(b: Protocol | None, a: Protocol | None) -> bool:
    if a is None or (a.name == "all" and not a.negated):
        return True
    if b is None or b.name == "all":
        return False
    if not a.negated:
        return not b.negated and _proto(a) == _proto(b)
    if b.negated:
        return _proto(a) == _proto(b)
    return _proto(a) != _proto(b)


# -- ports --------------------------------------------------------------------------------------


def _parse_ports(option: Option) -> Intervals | None:
    spans: list[tuple[int, int]] = []
    for arg in option.args:
        for part in arg.split(","):
            try:
                spans.append(parse_port_range(part))
            except ValueError:
                return None
    merged = _normalise(spans)
    return _complement(merged) if option.negated else merged


def _normalise(spans: Sequence[tuple[int, int]]) -> Intervals:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def _complement(spans: Intervals) -> Intervals:
    out: list[tuple[int, int]] = []
    start = 0
    for lo, hi in spans:
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= 65535:
        out.append((start, 65535))
    return tuple(out)


def _intersect(x: Intervals, y: Intervals) -> Intervals:
    out: list[tuple[int, int]] = []
    for lo1, hi1 in x:
        for lo2, hi2 in y:
            lo, hi = max(lo1, lo2), min(hi1, hi2)
            if lo <= hi:
                out.append((lo, hi))
    return _normalise(out)


def _inside(x: Intervals, y: Intervals) -> bool:
    return _intersect(x, y) == x


def _port_sets(rule: Rule) -> dict[str, Intervals] | None:
    """``{"sport": spans, "dport": spans}`` a rule allows (None when one cannot be read)."""
    sets = {"sport": _ALL_PORTS, "dport": _ALL_PORTS}
    for match in rule.matches:
        if match.module not in _PORT_MODULES and match.module != "multiport":
            continue
        for opt in match.options:
            key = _PORT_OPTIONS.get(opt.name)
            if key is None:
                continue
            spans = _parse_ports(opt)
            if spans is None:
                return None
            sets[key] = _intersect(sets[key], spans)
    return sets


# -- matches ------------------------------------------------------------------------------------


def _words(option: Option) -> frozenset[str]:
    return frozenset(w.upper() for a in option.args for w in a.split(","))


def _set_option(rule: Rule, module: str, name: str) -> list[Option]:
    """Every option ``name`` of a ``module`` match (``state`` counts as ``conntrack``)."""
    modules = ("conntrack", "state") if module in ("conntrack", "state") else (module,)
    return [o for m in rule.matches if m.module in modules for o in m.options
            if _SET_OPTIONS.get((m.module, o.name)) == _SET_OPTIONS[(module, name)]]


def _set_implied(b: Rule, module: str, a_opt: Option) -> bool:
    """Whether some list option of ``b`` (e.g. ``--ctstate NEW``) implies ``a_opt``'s."""
    a_words = _words(a_opt)
    for b_opt in _set_option(b, module, a_opt.name):
        b_words = _words(b_opt)
        if not a_opt.negated and not b_opt.negated and b_words <= a_words:
            return True
        if a_opt.negated and b_opt.negated and a_words <= b_words:
            return True
    return False


def _match_implied(b: Rule, a: Match) -> bool:
    """Whether every packet ``b`` matches satisfies ``a`` (ports are checked separately)."""
    if a.module == "comment":
        return True
    if not a.known or a.module in NEVER_COVER:
        return False
    others: list[Option] = []
    for opt in a.options:
        if opt.name in _PORT_OPTIONS and (a.module in _PORT_MODULES or a.module == "multiport"):
            continue  # compared as port sets
        if (a.module, opt.name) in _SET_OPTIONS:
            if not _set_implied(b, a.module, opt):
                return False
            continue
        others.append(opt)
    if not others:
        if a.module in _CONJUNCTIVE:
            return True
        return any(m.module == a.module and set(m.options) == set(a.options)
                   for m in b.matches)
    same = [m for m in b.matches if m.module == a.module]
    if a.module in _CONJUNCTIVE:
        have = {o for m in same for o in m.options}
        return set(others) <= have
    return any(set(m.options) == set(a.options) for m in same)


def covers(a: Rule, b: Rule) -> bool:
    """Whether rule ``a`` matches every packet rule ``b`` matches (targets are not compared).

    >>> from natlens import parse_save
    >>> rs = parse_save('''*filter
    ... :INPUT ACCEPT [0:0]
    ... -A INPUT -s 10.0.0.0/8 -p tcp -m multiport --dports 80,443,8000:9000 -j DROP
    ... -A INPUT -s 10.1.2.0/24 -i eth0 -p tcp -m tcp --dport 8080 -j ACCEPT
    ... -A INPUT -s 10.1.2.0/24 -p udp -m udp --dport 8080 -j ACCEPT
    ... COMMIT
    ... ''')
    >>> a, b, c = rs["filter"]["INPUT"].rules
    >>> covers(a, b), covers(a, c), covers(b, a)
    (True, False, False)
    """
    if a.unknown or b.unknown:
        return False
    if not (_net_implies(b.source, a.source) and _net_implies(b.destination, a.destination)
            and _iface_implies(b.in_interface, a.in_interface)
            and _iface_implies(b.out_interface, a.out_interface)
            and _proto_implies(b.protocol, a.protocol)):
        return False
    if a.fragment is not None and b.fragment != a.fragment:
        return False
    if not all(_match_implied(b, m) for m in a.matches):
        return False
    a_ports, b_ports = _port_sets(a), _port_sets(b)
    if a_ports is None or b_ports is None:
        return False
    return all(_inside(b_ports[k], a_ports[k]) for k in ("sport", "dport"))


def _same(a: Rule, b: Rule) -> bool:
    return normalised(a) == normalised(b)


def check_dead_rules(ctx: AuditContext) -> Iterator[Finding]:
    """Rules an earlier terminating rule of the same chain covers entirely (medium when their
    targets differ: the later rule's intent never happens; low when they agree).

    >>> from natlens.audit import audit_text
    >>> found = audit_text('''*filter
    ... :INPUT ACCEPT [0:0]
    ... -A INPUT -s 192.0.2.0/24 -j DROP
    ... -A INPUT -s 192.0.2.7/32 -p tcp -m tcp --dport 22 -j ACCEPT
    ... COMMIT
    ... ''', check_dead_rules)
    >>> for f in found: print(f)  # doctest: +NORMALIZE_WHITESPACE
    [medium] dead-rule: filter INPUT #2: never matches: filter INPUT #1 (-j DROP) catches all
    its packets first
    """
    for rs in ctx.rulesets():
        for table in rs.tables:
            for chain in table.chains:
                for index, earlier, rule, cover in _dead_in_chain(chain.rules):
                    ref = RuleRef.of(cover, table.name, earlier, rs.family)
                    jump = f"{'-g' if cover.goto else '-j'} {cover.target_name}"
                    differs = (cover.target_name, cover.target.options if cover.target
                               else ()) != (rule.target_name,
                                            rule.target.options if rule.target else ())
                    yield Finding(
                        kind="dead-rule",
                        severity=Severity.MEDIUM if differs else Severity.LOW,
                        message=f"never matches: {ref.where} ({jump}) catches all its "
                                "packets first",
                        rule=RuleRef.of(rule, table.name, index, rs.family),
                        related=(ref,),
                        fix="delete this rule, or move it above "
                            f"{ref.where} if it is meant to win",
                    )


_Key = tuple[object, object, object]


def _host(addr: Address | None) -> object:
    if addr is None or addr.negated or addr.mask is not None:
        return None
    net = addr.network
    return net if net.prefixlen == net.max_prefixlen else None


def _single_dport(rule: Rule) -> object:
    ports = _port_sets(rule)
    if ports is None:
        return None
    (span, *rest) = ports["dport"] or ((0, 0),)
    return span[0] if not rest and span[0] == span[1] else None


def _key(rule: Rule) -> _Key:
    """What a covering rule must share exactly: a host source, host destination, single port."""
    return (_host(rule.source), _host(rule.destination), _single_dport(rule))


def _dead_in_chain(rules: Sequence[Rule]) -> Iterator[tuple[int, int, Rule, Rule]]:
    """(index, covering index, rule, covering rule) for each dead rule of a chain.

    Earlier terminating rules are bucketed by ``_key``: a rule matching only host 192.0.2.7 can
    only cover rules for that same host (and likewise for a single destination or port), so
    long block lists and port maps stay linear instead of quadratic.
    """
    buckets: dict[_Key, list[tuple[int, Rule]]] = {}
    for index, rule in enumerate(rules, 1):
        key: _Key | None = None
        if buckets:  # the key only when some earlier rule may cover (most chains: none)
            key = src, dst, port = _key(rule)
            lists = [buckets[k] for k in {(s, d, p) for s in (None, src) for d in (None, dst)
                                           for p in (None, port)} if k in buckets]
            for earlier, cover in heapq.merge(*lists, key=lambda item: item[0]):
                if not _same(cover, rule) and covers(cover, rule):
                    yield index, earlier, rule, cover
                    break
        if _terminates(rule):
            buckets.setdefault(key if key is not None else _key(rule), []).append((index, rule))
