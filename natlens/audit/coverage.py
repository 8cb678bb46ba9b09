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
from typing import Any

from natlens.audit.duplicates import STATEFUL_MATCHES
from natlens.audit.findings import AuditContext, Finding, RuleRef, Severity
from natlens.audit.fixes import command, delete_spec
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
        tables = ctx.index(rs.family)
        for table in rs.tables:
            targets, gotos = tables[table.name.value].targets, tables[table.name.value].gotos
            for chain in table.chains:
                names = targets[chain.name]
                if _TERMINATING.isdisjoint(names[:-1]) and chain.name not in gotos:
                    continue  # no rule but the last can cover another (see _terminates)
                for index, earlier, rule, cover in _dead_in_chain(chain.rules):
                    ref = RuleRef.of(cover, table.name, earlier, rs.family)
                    jump = f"{'-g' if cover.goto else '-j'} {cover.target_name}"
                    differs = (cover.target_name, cover.target.options if cover.target
                               else ()) != (rule.target_name,
                                            rule.target.options if rule.target else ())
                    dead = RuleRef.of(rule, table.name, index, rs.family)
                    yield Finding(
                        kind="dead-rule",
                        severity=Severity.MEDIUM if differs else Severity.LOW,
                        message=f"never matches: {ref.where} ({jump}) catches all its "
                                "packets first",
                        rule=dead, related=(ref,),
                        fix=command(delete_spec(dead)),
                    )


# -- the index of earlier terminating rules ----------------------------------------------------
#
# ``_dead_in_chain`` must find, for each rule B, the first earlier terminating rule A that covers
# it. Comparing B with every earlier rule is quadratic (a 10,000-rule /24 block list: 5e7 pairs).
# Instead the earlier rules are filed under what B must share with them for ``covers`` to hold,
# one level per condition, and B looks up only the keys it can match:
#
#   source, destination  A's network (version, prefix length, prefix bits); B probes its own
#                        supernets, for the prefix lengths filed so far (a /24 has 25 of them);
#   protocol             A's positive protocol; B probes its own;
#   -i, -o               A's exact name or ``+`` prefix; B probes its name and its prefixes;
#   one exact match      an option of A that B must carry verbatim (``--mark 0x1``, an
#                        ``iprange``), or A's whole option set for a non-conjunctive module;
#   ports                A's --dport (else --sport) intervals in a segment tree over 0..65535;
#                        B stabs it at its lowest port (A must contain that port).
#
# A condition the index cannot key (negations, non-contiguous masks) files A under ``_OTHER``,
# which every B probes; no key means "any" (``None``), also always probed. The candidates come
# out in chain order and ``covers`` decides, so the result is exactly the pairwise scan's. Rules
# that can never cover (unknown or stateful matches, unreadable ports) are not filed, and a later
# exact copy of a filed rule is not filed again (the first copy covers whatever it covers).

_OTHER = "other"
_NEVER = object()  # a rule that covers nothing
_PORTS = 1 << 16
_Entry = tuple[int, Rule]


def _addr_key(addr: Address | None) -> object:
    if addr is None:
        return None
    if addr.negated or addr.mask is not None:
        return _OTHER
    net = addr.network
    shift = net.max_prefixlen - net.prefixlen
    return (net.version, net.prefixlen, int(net.network_address) >> shift)


def _addr_probes(addr: Address | None, lengths: Sequence[int]) -> list[object]:
    """Keys of the networks that may contain ``addr``: its supernets of the filed lengths."""
    keys: list[object] = [None, _OTHER]
    if addr is not None and not addr.negated and addr.mask is None:
        net = addr.network
        bits, top, version = int(net.network_address), net.max_prefixlen, net.version
        keys.extend((version, n, bits >> (top - n)) for n in lengths if n <= net.prefixlen)
    return keys


def _iface_key(iface: Interface | None) -> object:
    if iface is None:
        return None
    if iface.negated:
        return _OTHER
    if iface.name.endswith("+"):
        return ("+", iface.name[:-1])
    return ("=", iface.name)


def _iface_probes(iface: Interface | None) -> list[object]:
    keys: list[object] = [None, _OTHER]
    if iface is not None and not iface.negated:
        if not iface.name.endswith("+"):
            keys.append(("=", iface.name))
        stem = iface.name.rstrip("+")
        keys.extend(("+", stem[:n]) for n in range(len(stem) + 1))
    return keys


def _proto_key(proto: Protocol | None) -> object:
    if proto is None or (proto.name == "all" and not proto.negated):
        return None
    return _OTHER if proto.negated else _proto(proto)


def _proto_probes(proto: Protocol | None) -> list[object]:
    keys: list[object] = [None, _OTHER]
    if proto is not None and not proto.negated and proto.name != "all":
        keys.append(_proto(proto))
    return keys


def _anchor(rule: Rule) -> object:
    """One condition of ``rule`` that a rule it covers must carry verbatim (None: none;
    ``_NEVER``: the rule covers nothing), following ``_match_implied``."""
    for m in rule.matches:
        if m.module == "comment":
            continue
        if not m.known or m.module in NEVER_COVER:
            return _NEVER
        ports = m.module in _PORT_MODULES or m.module == "multiport"
        others = [o for o in m.options if not (o.name in _PORT_OPTIONS and ports)
                  and (m.module, o.name) not in _SET_OPTIONS]
        if m.module not in _CONJUNCTIVE:
            return ("all", m.module, frozenset(m.options))
        if others:
            return ("one", m.module, others[0])
    return None


def _anchor_probes(rule: Rule) -> list[object]:
    keys: list[object] = [None]
    for m in rule.matches:
        keys.append(("all", m.module, frozenset(m.options)))
        keys.extend(("one", m.module, o) for o in m.options)
    return keys


class _Stab:
    """Entries filed under sets of port intervals; ``at(p)``: those whose set holds port ``p``.

    A segment tree over 0..65535 in a dict: an interval is filed at the O(log) nodes that tile
    it, a point query reads the 17 nodes from its leaf to the root. An entry's intervals are
    disjoint, so a query meets each entry at most once. Node lists keep insertion order.
    """

    __slots__ = ("entries", "nodes")

    def __init__(self) -> None:
        self.nodes: dict[int, list[_Entry]] = {}
        self.entries: list[_Entry] = []

    def add(self, spans: Intervals, entry: _Entry) -> None:
        self.entries.append(entry)
        for lo, hi in spans:
            left, right = lo + _PORTS, hi + _PORTS + 1
            while left < right:
                if left & 1:
                    self.nodes.setdefault(left, []).append(entry)
                    left += 1
                if right & 1:
                    right -= 1
                    self.nodes.setdefault(right, []).append(entry)
                left >>= 1
                right >>= 1

    def at(self, port: int) -> Iterator[list[_Entry]]:
        node = port + _PORTS
        while node:
            found = self.nodes.get(node)
            if found:
                yield found
            node >>= 1


class _Leaf:
    """Earlier rules sharing every keyed condition, by their port conditions."""

    __slots__ = ("any", "dport", "sport")

    def __init__(self) -> None:
        self.any: list[_Entry] = []
        self.dport = _Stab()
        self.sport = _Stab()

    def add(self, ports: dict[str, Intervals], entry: _Entry) -> None:
        if ports["dport"] != _ALL_PORTS:
            self.dport.add(ports["dport"], entry)
        elif ports["sport"] != _ALL_PORTS:
            self.sport.add(ports["sport"], entry)
        else:
            self.any.append(entry)

    def candidates(self, ports: dict[str, Intervals]) -> Iterator[list[_Entry]]:
        if self.any:
            yield self.any
        for name, stab in (("dport", self.dport), ("sport", self.sport)):
            if not stab.entries:
                continue
            spans = ports[name]
            if spans:
                yield from stab.at(spans[0][0])
            else:  # B matches no port at all: every A holds its (empty) set
                yield stab.entries


class _CoverIndex:
    """Earlier terminating rules of one chain, filed as described above."""

    def __init__(self) -> None:
        self.root: dict[object, Any] = {}
        self.lengths: dict[str, set[int]] = {"src": set(), "dst": set()}
        self.sorted: dict[str, list[int]] = {"src": [], "dst": []}
        self.bodies: set[tuple[object, ...]] = set()

    def add(self, index: int, rule: Rule, ports: dict[str, Intervals] | None) -> None:
        anchor = _anchor(rule)
        if ports is None or rule.unknown or anchor is _NEVER:
            return
        body = _body(rule)
        if body in self.bodies:
            return
        self.bodies.add(body)
        for name, addr in (("src", rule.source), ("dst", rule.destination)):
            if addr is not None and not addr.negated and addr.mask is None:
                lengths = self.lengths[name]
                if addr.network.prefixlen not in lengths:
                    lengths.add(addr.network.prefixlen)
                    self.sorted[name] = sorted(lengths)
        node = self.root
        keys = (_addr_key(rule.source), _addr_key(rule.destination), _proto_key(rule.protocol),
                _iface_key(rule.in_interface), _iface_key(rule.out_interface))
        for key in keys:
            node = node.setdefault(key, {})
        leaf = node.get(anchor)
        if leaf is None:
            leaf = node[anchor] = _Leaf()
        leaf.add(ports, (index, rule))

    def candidates(self, rule: Rule, ports: dict[str, Intervals]) -> Iterator[_Entry]:
        """Earlier filed rules that may cover ``rule``, in chain order."""
        levels = (_addr_probes(rule.source, self.sorted["src"]),
                  _addr_probes(rule.destination, self.sorted["dst"]),
                  _proto_probes(rule.protocol), _iface_probes(rule.in_interface),
                  _iface_probes(rule.out_interface), _anchor_probes(rule))
        nodes: list[Any] = [self.root]
        for probes in levels:
            nodes = [child for node in nodes for key in probes
                     if (child := node.get(key)) is not None]
            if not nodes:
                return iter(())
        lists = [found for leaf in nodes for found in leaf.candidates(ports)]
        if len(lists) == 1:
            return iter(lists[0])
        return heapq.merge(*lists, key=lambda entry: entry[0])


def _body(rule: Rule) -> tuple[object, ...]:
    """What ``_same`` compares: every field ``Rule`` equality reads but the chain and counters
    (``Match`` equality already ignores ``implicit``)."""
    return (rule.source, rule.destination, rule.in_interface, rule.out_interface, rule.protocol,
            rule.fragment, rule.matches, rule.target, rule.goto, rule.unknown)


def _dead_in_chain(rules: Sequence[Rule]) -> Iterator[tuple[int, int, Rule, Rule]]:
    """(index, covering index, rule, covering rule) for each dead rule of a chain.

    Each rule is compared only with the earlier terminating rules the index (above) returns for
    it: O(n log n) for block lists of networks, port ranges, interfaces or marks, where the
    pairwise scan was O(n²). Exact copies of the covering rule are left to ``duplicate``. The
    rules before the first terminating one are skipped unread (nothing can cover them): on a
    kube-proxy dump that is most chains whole.
    """
    last = len(rules)
    start = next((i for i, rule in enumerate(rules, 1) if i < last and _terminates(rule)), None)
    if start is None:
        return
    index = _CoverIndex()
    for position in range(start, last + 1):
        rule = rules[position - 1]
        ports = None if rule.unknown else _port_sets(rule)
        if index.bodies and ports is not None:
            body = _body(rule)
            for earlier, cover in index.candidates(rule, ports):
                if _body(cover) != body and covers(cover, rule):
                    yield position, earlier, rule, cover
                    break
        if _terminates(rule):
            index.add(position, rule, ports)
