"""Rules-only checks on native nftables tables: ``loop``, ``unused-chain``,
``unreachable-chain``, ``duplicate``, ``dead-rule`` and ``ineffective`` (accepts ahead of the
jump to DOCKER-USER), what ``graph_checks``, ``duplicates`` and ``coverage`` find in iptables
tables.

Only the native tables count: those no nf_tables iptables dump shows (``native_tables``; the
others are read, and checked, as iptables rules). Semantics (nft(8), libnftables-json(5)): a
regular chain runs only when a ``jump``/``goto`` names it, directly or as the verdict of a
verdict map (``vmap``, anonymous or a named map of the table); a base chain (one with a hook)
runs from its hook. The kernel checks for jump loops from the base chains only
(``nf_tables_check_loops`` walks from the chain a rule is added to, when a base chain reaches
it): a loop among chains no base chain reaches loads, and the first jump into it is refused
(``loop``, high, as in iptables). ``nft delete chain`` needs the chain empty and
unreferenced, so a fix flushes and deletes every chain that leads only to it.

Duplicates compare rules by their statements without counters (``counter`` statements count,
they do not decide); rules with stateful statements (``limit``, ``quota``, ``numgen``, ``ct
count``, ``last``, set and map updates, ``meter``) are never duplicates, as in ``duplicates``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from natlens.audit.findings import AuditContext, Finding, RuleRef, Severity
from natlens.audit.fixes import command
from natlens.audit.graph_checks import UFW_CHAIN, UNUSED_BY_DESIGN, docker_own
from natlens.audit.nft_refs import delete_rule, native_tables, nft_matches, nft_network, nft_ref
from natlens.correlate import docker_chain
from natlens.graph import loops
from natlens.model import Family
from natlens.nft.jsonvalue import MAPPINGS, Json
from natlens.nft.model import Chain, Statement, Table
from natlens.nft.model import Rule as NftRule

__all__ = [
    "check_nft_dead_rules",
    "check_nft_docker_user_order",
    "check_nft_duplicates",
    "check_nft_loops",
    "check_nft_unreachable_chains",
    "check_nft_unused_chains",
    "reached_from",
]

_STATEFUL = frozenset({"limit", "quota", "numgen", "last", "set", "map", "meter", "ct count",
                       "synproxy", "queue"})
"""Statement kinds (and expressions) whose copies each keep their own state or chance."""
_NAT = frozenset({"dnat", "snat", "redirect", "masquerade"})
_BRANCHING = frozenset({"jump", "goto", "vmap"})
"""Statements that can send a packet to another chain (a verdict map's data among them)."""
_STATEFUL_WORDS = tuple(f"'{k}'" for k in ("limit", "quota", "numgen", "last", "meter"))


def _targets(value: Json, maps: Mapping[str, tuple[str, ...]]) -> Iterator[str]:
    """Chains a statement's JSON sends packets to: ``jump``/``goto`` targets anywhere in it
    (verdict maps' data included) and the targets of the named maps it looks up (``@name``)."""
    if isinstance(value, MAPPINGS):
        for key, item in value.items():
            if key in ("jump", "goto") and isinstance(item, MAPPINGS) \
                    and isinstance(item.get("target"), str):
                yield str(item["target"])
            else:
                yield from _targets(item, maps)
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _targets(item, maps)
    elif isinstance(value, str) and value.startswith("@"):
        yield from maps.get(value[1:], ())


def _family(table: Table) -> int:
    return 6 if table.family.value == "ip6" else 4


@dataclass
class _Graph:
    """One table's chains and the jumps between them."""

    table: Table
    chains: dict[str, Chain] = field(default_factory=dict)
    succ: dict[str, set[str]] = field(default_factory=dict)
    pred: dict[str, dict[str, list[NftRule]]] = field(default_factory=dict)

    @classmethod
    def of(cls, table: Table) -> _Graph:
        maps = {s.name: tuple(t for e in s.elements for t in _targets(e.data, {}))
                for s in table.sets if s.map is not None}
        g = cls(table, {c.name: c for c in table.chains})
        for chain in table.chains:
            g.succ[chain.name] = set()
            for rule in chain.rules:
                for st in rule.statements:
                    if st.kind not in _BRANCHING:
                        continue
                    for target in _targets({st.kind: st.body}, maps):
                        g.succ[chain.name].add(target)
                        g.pred.setdefault(target, {}).setdefault(chain.name, []).append(rule)
        return g

    def live(self) -> set[str]:
        """The chains a base chain reaches."""
        todo = [c.name for c in self.table.chains if c.hook is not None]
        seen = set(todo)
        while todo:
            for nxt in self.succ.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def ancestors(self, name: str) -> set[str]:
        """The chains that reach ``name`` (not itself)."""
        todo, seen = [name], set()
        while todo:
            for prev in self.pred.get(todo.pop(), {}):
                if prev not in seen and prev != name:
                    seen.add(prev)
                    todo.append(prev)
        return seen

    def reaches(self, start: str, goal: str) -> bool:
        todo, seen = [start], {start}
        while todo:
            for nxt in self.succ.get(todo.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False


def reached_from(table: Table, hook: str) -> set[str]:
    """The chains of ``table`` that its base chains on ``hook`` reach (themselves included)."""
    g = _Graph.of(table)
    todo = [c.name for c in table.chains if c.hook == hook]
    seen = set(todo)
    while todo:
        for nxt in g.succ.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _managed(table: Table) -> bool:
    """A table a daemon writes (Docker 29's ``docker-bridges``, firewalld's): its chains come
    back if deleted, so no fix deletes them."""
    return table.name.startswith("docker") or table.name == "firewalld"


def _chain_ref(table: Table, chain: Chain, source: str | None) -> RuleRef:
    fam = Family.IPV6 if table.family.value == "ip6" else Family.IPV4
    return RuleRef(table=f"{table.family.value} {table.name}", chain=chain.name, index=0,
                   text=f"chain {table.family.value} {table.name} {chain.name}", source=source,
                   family=fam.value)


def _by_design(name: str) -> bool:
    """Chains left unused on purpose (ufw's whole set, kube-proxy's canaries), as
    ``graph_checks`` has them."""
    return name in UNUSED_BY_DESIGN or UFW_CHAIN.fullmatch(name) is not None


def _remove(g: _Graph, names: set[str]) -> str | None:
    """``nft flush chain F T A && ... && nft delete chain F T A && ...`` for ``names`` and
    every chain that leads to them; None for a daemon's table or chains (Docker's, ufw's: they
    come back)."""
    if _managed(g.table):
        return None
    doomed = sorted({*names, *(a for n in names for a in g.ancestors(n))})
    if any(docker_own(n) or _by_design(n) for n in doomed):
        return None
    head = [g.table.family.value, g.table.name]
    return command(*(["nft", "flush", "chain", *head, n] for n in doomed),
                   *(["nft", "delete", "chain", *head, n] for n in doomed))


def _graphs(ctx: AuditContext) -> list[_Graph]:
    found = ctx.derived.get("nft_graphs")
    if not isinstance(found, list):
        found = ctx.derived["nft_graphs"] = [_Graph.of(t) for t in native_tables(ctx.snapshot)]
    return found


def _source(ctx: AuditContext) -> str | None:
    nft = ctx.snapshot.nft
    return nft.source if nft is not None else None


def check_nft_loops(ctx: AuditContext) -> Iterator[Finding]:
    """Chains of a native nft table that jump to each other in a cycle (high). The fix removes
    the chains of the cycle and those leading to it when no base chain reaches it, else
    deletes the jump that closes it (a loaded ruleset can only hold the unreached kind)."""
    import networkx as nx  # noqa: PLC0415  (only tables with jumps need it)

    for g in _graphs(ctx):
        if not any(g.succ.values()):
            continue
        dg = nx.DiGraph([(a, b) for a, bs in g.succ.items() for b in bs if b in g.chains])
        live = g.live()
        fam = _family(g.table)
        for cycle in loops(nx.MultiDiGraph(dg)):
            refs = [nft_ref(g.pred[cycle[(i + 1) % len(cycle)]][src][0], fam, _source(ctx))
                    for i, src in enumerate(cycle)]
            path = " -> ".join((*cycle, cycle[0]))
            reached = any(c in live for c in cycle)
            why = ("nft refuses this ruleset" if reached else "no base chain reaches it yet; "
                   "the kernel refuses the first jump into it from one")
            yield Finding(kind="loop", severity=Severity.HIGH,
                          message=f"chains jump in a loop: {path} ({why})",
                          rule=refs[-1], related=tuple(refs[:-1]),
                          fix=delete_rule(refs[-1]) if reached else _remove(g, set(cycle)))


def check_nft_unused_chains(ctx: AuditContext) -> Iterator[Finding]:
    """Regular chains of native nft tables that no rule jumps or goes to (low; the same
    kind as ``graph_checks.check_unused_chains``)."""
    for g in _graphs(ctx):
        for chain in g.table.chains:
            if chain.hook is not None or chain.name in g.pred or _by_design(chain.name):
                continue
            n = len(chain.rules)
            yield Finding(
                kind="unused-chain", severity=Severity.LOW,
                message=f"chain {chain.name} has {n} rule{'' if n == 1 else 's'} but no rule "
                        "jumps to it",
                rule=_chain_ref(g.table, chain, _source(ctx)), fix=_remove(g, {chain.name}))


def check_nft_unreachable_chains(ctx: AuditContext) -> Iterator[Finding]:
    """Chains of native nft tables that rules jump to, but only from chains no base chain
    reaches (low)."""
    for g in _graphs(ctx):
        live = g.live()
        for chain in g.table.chains:
            callers = g.pred.get(chain.name)
            if chain.name in live or not callers:
                continue
            fam = _family(g.table)
            related = tuple(nft_ref(r, fam, _source(ctx)) for c in sorted(callers)
                            for r in callers[c])
            yield Finding(
                kind="unreachable-chain", severity=Severity.LOW,
                message=f"chain {chain.name} is only jumped to from chains no packet reaches "
                        f"({', '.join(sorted(callers))})",
                rule=_chain_ref(g.table, chain, _source(ctx)), related=related,
                fix=_remove(g, {chain.name}))


_Body = tuple[tuple[str, str], ...]


def _body(rule: NftRule) -> _Body | None:
    """The rule's statements without counters, as (kind, the body's repr): equal for equal
    JSON, which ``nft -j`` prints in one key order (None: a rule with state, an expression such
    as ``numgen`` or ``ct count`` included, or with an iptables-nft extension, whose arguments
    the JSON leaves out: two such rules may differ)."""
    body: list[tuple[str, str]] = []
    for st in rule.statements:
        if st.kind == "counter":
            continue
        if st.kind in _STATEFUL or st.kind == "xt":
            return None
        text = repr(st.body)
        if any(w in text for w in _STATEFUL_WORDS) or ("'ct'" in text and "'count'" in text):
            return None
        body.append((st.kind, text))
    return tuple(body)


def _nat_port(rule: NftRule) -> tuple[str | None, int | None]:
    for st in rule.statements:
        body = st.body
        if st.kind != "match" or not isinstance(body, MAPPINGS):
            continue
        left, right = body.get("left"), body.get("right")
        payload = left.get("payload") if isinstance(left, MAPPINGS) else None
        if isinstance(payload, MAPPINGS) and payload.get("field") == "dport" \
                and body.get("op", "==") == "==" and isinstance(right, int):
            return str(payload.get("protocol")), right
    return None, None


def _docker(g: _Graph, chain: str) -> bool:
    return docker_chain(chain) or g.table.name.startswith("docker")


def check_nft_duplicates(ctx: AuditContext) -> Iterator[Finding]:
    """A rule of a native nft table that repeats an earlier rule of its chain, or a NAT rule
    that repeats one in a chain it reaches or that reaches it (the copy outside Docker's chains
    is blamed, else the one that runs first): low ``duplicate``, fixed by deleting the copy by
    its handle."""
    for g in _graphs(ctx):
        fam = _family(g.table)
        src = _source(ctx)
        nat: dict[_Body, list[NftRule]] = {}
        for chain in g.table.chains:
            first: dict[_Body, NftRule] = {}
            for rule in chain.rules:
                body = _body(rule)
                if body is None:
                    continue
                if any(s.kind in _NAT for s in rule.statements):
                    nat.setdefault(body, []).append(rule)
                earlier = first.setdefault(body, rule)
                if earlier is rule:
                    continue
                proto, port = _nat_port(rule)
                original = nft_ref(earlier, fam, src)
                ref = nft_ref(rule, fam, src)
                yield Finding(kind="duplicate", severity=Severity.LOW,
                              message=f"repeats {original.where}", proto=proto,
                              host_port=port, rule=ref, related=(original,),
                              fix=delete_rule(ref))
        for copies in nat.values():
            blamed: set[int] = set()
            for a in copies:
                for b in copies:
                    if a.chain == b.chain or not g.reaches(a.chain, b.chain):
                        continue
                    # a runs first; blame the copy outside Docker's chains
                    blame, other = (b, a) if _docker(g, a.chain) and not _docker(g, b.chain) \
                        else (a, b)
                    if blame.handle in blamed:
                        continue
                    blamed.add(blame.handle)
                    proto, port = _nat_port(blame)
                    what = f" ({proto}/{port})" if proto and port else ""
                    ref = nft_ref(blame, fam, src)
                    other_ref = nft_ref(other, fam, src)
                    kind = next(s.kind for s in blame.statements if s.kind in _NAT)
                    yield Finding(kind="duplicate", severity=Severity.LOW,
                                  message=f"repeats the {kind} of {other_ref.where}{what}",
                                  proto=proto, host_port=port, rule=ref,
                                  related=(other_ref,), fix=delete_rule(ref))


_ESTABLISHED_ONLY = frozenset({"established", "related"})


def _established_only(rule: NftRule) -> bool:
    """Whether the rule matches only packets of connections already seen (``ct state
    established,related``): DOCKER-USER still sees each connection's first packet."""
    for st in rule.statements:
        body = st.body
        if st.kind != "match" or not isinstance(body, MAPPINGS):
            continue
        left, right = body.get("left"), body.get("right")
        ct = left.get("ct") if isinstance(left, MAPPINGS) else None
        if not isinstance(ct, MAPPINGS) or ct.get("key") != "state" \
                or body.get("op", "==") not in ("==", "in"):
            continue
        values = {right} if isinstance(right, str) else set(right) \
            if isinstance(right, tuple | list) else set()
        if values and all(isinstance(v, str) for v in values) and values <= _ESTABLISHED_ONLY:
            return True
    return False


def _bridges(table: Table) -> set[str]:
    """Interfaces Docker's own chains (DOCKER*, not DOCKER-USER) name: its bridges."""
    names: set[str] = set()
    for chain in table.chains:
        if docker_own(chain.name):
            for rule in chain.rules:
                m = nft_matches(rule)
                names.update(i[0] for i in (m.iif, m.oif) if i is not None)
    return names


def _may_be_docker(iface: tuple[str, bool] | None, bridges: set[str]) -> bool:
    if iface is None or iface[1] or not bridges:
        return True
    name = iface[0]
    return any(b.startswith(name[:-1]) for b in bridges) if name.endswith("*") \
        else name in bridges


def _accepts(g: _Graph, rule: NftRule) -> str | None:
    """``accepts`` when the rule accepts, ``jumps to C, which accepts`` when a chain it jumps
    or goes to (or one they reach) has an accepting rule; else None."""
    if any(st.kind == "accept" for st in rule.statements):
        return "accepts"
    for st in rule.statements:
        for target in _targets({st.kind: st.body}, {}):
            todo, seen = [target], {target}
            while todo:
                chain = g.chains.get(todo.pop())
                if chain is None:
                    continue
                if any(s.kind == "accept" for r in chain.rules for s in r.statements):
                    return f"jumps to {target}, which accepts"
                for nxt in g.succ.get(chain.name, ()):
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
    return None


def check_nft_docker_user_order(ctx: AuditContext) -> Iterator[Finding]:
    """``graph_checks.check_docker_user_order`` for native nft tables: rules of a forward base
    chain that can accept Docker's traffic before that chain jumps to DOCKER-USER. An accept
    ends the base chain (nft(8) "VERDICT STATEMENT"), so DOCKER-USER's rules never see those
    packets (``ineffective``: medium, low while DOCKER-USER does nothing)."""
    for g in _graphs(ctx):
        user = g.chains.get("DOCKER-USER")
        if user is None:
            continue
        fam = _family(g.table)
        effect = any(not all(s.kind in ("counter", "return") for s in r.statements)
                     for r in user.rules)
        bridges = _bridges(g.table)
        for chain in g.table.chains:
            if chain.hook != "forward":
                continue
            hook = next((r for r in chain.rules if any(
                t == "DOCKER-USER" for st in r.statements
                for t in _targets({st.kind: st.body}, {}))), None)
            if hook is None:
                continue
            hook_ref = nft_ref(hook, fam, _source(ctx))
            for rule in chain.rules[:hook.index]:
                verb = _accepts(g, rule)
                if verb is None or rule.has_xt or _established_only(rule):
                    continue
                m = nft_matches(rule)
                if not (_may_be_docker(m.iif, bridges) or _may_be_docker(m.oif, bridges)):
                    continue
                yield Finding(
                    kind="ineffective", severity=Severity.MEDIUM if effect else Severity.LOW,
                    message=f"{verb} forwarded packets before {hook_ref.where} jumps to "
                            "DOCKER-USER: the rules in DOCKER-USER never see them"
                            + ("" if effect else " (DOCKER-USER is empty now)"),
                    rule=nft_ref(rule, fam, _source(ctx)), related=(hook_ref,))


# -- dead rules --------------------------------------------------------------------------------

_ENDS = frozenset({"accept", "drop", "reject", "return", "goto", "queue", "dnat", "snat",
                   "masquerade", "redirect"})
"""Statements after which no later rule of the chain runs for the packet (nft(8) "VERDICT
STATEMENT"; a NAT statement ends the nat chain, nft_nat_eval's NF_ACCEPT)."""
_INERT = frozenset({"counter", "log", "match"})
"""Statements that neither end the rule early nor depend on state: a covering rule has only
these and its end."""
_L4 = "l4proto"
_MAX_KEYS = 8
_MAX_COMPARED = 256
"""At most this many earlier rules are compared with one rule (``_dead_in_chain``): a chain of
thousands of rules alike (a block list) stays linear, its rules unjudged past the bound."""


def _left_key(left: Json) -> str:
    """A match's left side as a key; the transport protocol however it is asked
    (``meta l4proto``, ``ip protocol``, ``ip6 nexthdr``) as one key."""
    if isinstance(left, MAPPINGS):
        meta, payload = left.get("meta"), left.get("payload")
        if isinstance(meta, MAPPINGS) and meta.get("key") == "l4proto":
            return _L4
        if isinstance(payload, MAPPINGS) and (payload.get("protocol"), payload.get("field")) in (
                ("ip", "protocol"), ("ip6", "nexthdr")):
            return _L4
    return repr(left)


_Match = tuple[str, str, Json]
"""(left key, op, right) of a ``match`` statement."""


def _matches_of(rule: NftRule, *, implied: bool) -> list[_Match]:
    """The rule's matches; with ``implied``, also the protocol a ``tcp dport`` match implies."""
    out: list[_Match] = []
    for st in rule.statements:
        body = st.body
        if st.kind == "match" and isinstance(body, MAPPINGS):
            left = body.get("left")
            out.append((_left_key(left), str(body.get("op", "==")), body.get("right")))
            payload = left.get("payload") if isinstance(left, MAPPINGS) else None
            if implied and isinstance(payload, MAPPINGS) \
                    and payload.get("protocol") in ("tcp", "udp", "sctp"):
                out.append((_L4, "==", payload.get("protocol")))
    return out


def _implies(b: _Match, a: _Match) -> bool:
    """Whether every packet matching ``b`` matches ``a`` (same left side)."""
    if b[0] != a[0]:
        return False
    if b[1] == a[1] and repr(b[2]) == repr(a[2]):
        return True
    if a[1] not in ("==", "in") or b[1] != "==":
        return False
    right, value = a[2], b[2]
    if isinstance(right, MAPPINGS) and "set" in right:
        items = right["set"]
        return isinstance(items, tuple | list) and any(repr(i) == repr(value) for i in items)
    if isinstance(right, MAPPINGS) and "range" in right:
        bounds = right["range"]
        if not isinstance(bounds, tuple | list) or len(bounds) != 2:
            return False
        lo, hi = bounds
        return isinstance(value, int) and isinstance(lo, int) and isinstance(hi, int) \
            and lo <= value <= hi
    outer, inner = nft_network(right), nft_network(value)
    return outer is not None and inner is not None and inner.version == outer.version \
        and inner.subnet_of(outer)  # type: ignore[arg-type]


def _end(rule: NftRule) -> str | None:
    """The statement that ends the rule for every packet it matches (its text), when all it
    has before are inert statements; None otherwise."""
    for i, st in enumerate(rule.statements):
        if st.kind in _ENDS:
            return st.text if all(s.kind in _INERT for s in rule.statements[:i]) else None
        if st.kind not in _INERT:
            return None
    return None


def _dead_in_chain(chain: Chain) -> Iterator[tuple[NftRule, NftRule]]:
    """(dead rule, the earlier rule that covers it): every match of the earlier rule is
    implied by one of the later rule's, and the earlier rule ends every packet it matches (an
    exact copy is left to ``check_nft_duplicates``, as ``coverage`` leaves it to ``duplicate``).
    Earlier rules are filed by their set of left sides; a later rule looks up the subsets of
    its own (at most ``_MAX_KEYS`` keys and ``_MAX_COMPARED`` rules: more is left unjudged,
    so a dead rule may go unreported, never a live one reported)."""
    filed: dict[frozenset[str], list[tuple[NftRule, list[_Match]]]] = {}
    for rule in chain.rules:
        if rule.has_xt:
            continue
        mine = _matches_of(rule, implied=True)
        keys = sorted({m[0] for m in mine})
        if len(keys) <= _MAX_KEYS:
            cover = None
            budget = _MAX_COMPARED
            for n in range(1 << len(keys)):
                subset = frozenset(k for i, k in enumerate(keys) if n >> i & 1)
                candidates = filed.get(subset, ())
                if len(candidates) > budget:
                    break  # a long list of rules alike (a block list): left unjudged
                budget -= len(candidates)
                for earlier, theirs in candidates:
                    if all(any(_implies(b, a) for b in mine) for a in theirs) and (
                            cover is None or earlier.index < cover.index) \
                            and _body(earlier) != _body(rule):  # a copy: ``duplicate``'s
                        cover = earlier
                        break
            if cover is not None:
                yield rule, cover
                continue
        if _end(rule) is not None and not any(
                _stateful_text(s) for s in rule.statements):
            own = _matches_of(rule, implied=False)
            filed.setdefault(frozenset(m[0] for m in own), []).append((rule, own))


def _stateful_text(st: Statement) -> bool:
    text = repr(st.body)
    return st.kind in _STATEFUL or any(w in text for w in _STATEFUL_WORDS) \
        or ("'ct'" in text and "'count'" in text)


def check_nft_dead_rules(ctx: AuditContext) -> Iterator[Finding]:
    """Rules of native nft chains that an earlier rule of the same chain covers entirely
    (``dead-rule``: medium when the two ends differ, the later rule's intent never happens;
    low when they agree), as ``coverage.check_dead_rules`` for iptables."""
    for g in _graphs(ctx):
        fam = _family(g.table)
        for chain in g.table.chains:
            for rule, cover in _dead_in_chain(chain):
                ref = nft_ref(cover, fam, _source(ctx))
                dead = nft_ref(rule, fam, _source(ctx))
                end = _end(cover) or ""
                yield Finding(
                    kind="dead-rule",
                    severity=Severity.MEDIUM if end != (_end(rule) or "") else Severity.LOW,
                    message=f"never matches: {ref.where} ({end}) catches all its packets first",
                    rule=dead, related=(ref,), fix=delete_rule(dead))
