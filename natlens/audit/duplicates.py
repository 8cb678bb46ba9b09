"""Duplicate rules: the same rule twice in a chain, or the same NAT rewrite in a chain and in a
chain it jumps to.

Rules are compared as iptables-save prints them, ignoring counters and where they were read.
Rules with stateful or random matches (``statistic``, ``limit``, ``hashlimit``, ``recent``,
``connlimit``, ``quota``, ...) are never duplicates: each copy keeps its own state or draws its
own chance, so two copies do differ. Daemon restarts and re-run scripts that use ``-A``/``-I``
without ``-C`` pile copies up.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from natlens.audit._rules import dport_of, proto_of
from natlens.audit.findings import AuditContext, Finding, RuleRef, Severity
from natlens.audit.fixes import command, delete_at
from natlens.model import Rule, Table

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["STATEFUL_MATCHES", "check_duplicate_rules", "check_duplicate_nat"]

STATEFUL_MATCHES = frozenset({
    "statistic", "limit", "hashlimit", "recent", "connlimit", "quota", "quota2", "nth",
    "random", "connbytes", "rateest", "time", "cluster", "bpf", "u32",
})
"""Matches whose result depends on state, chance or time (two copies of a rule differ)."""


def _body(rule: Rule) -> tuple[object, ...]:
    """The rule without counters and chain: what makes two rules the same rule (the fields
    ``Rule`` equality compares, in a tuple: building a new ``Rule`` per rule is slow on big
    rulesets). ``Match`` equality ignores ``implicit``, so ``-p tcp --dport 80`` equals ``-p tcp
    -m tcp --dport 80`` (iptables-save prints both the same way), as ``normalised`` has it."""
    return (rule.source, rule.destination, rule.in_interface, rule.out_interface, rule.protocol,
            rule.fragment, rule.matches, rule.target, rule.goto, rule.unknown)


def _sketch(rule: Rule) -> tuple[object, ...]:
    """A cheap part of ``_body`` (strings, whose hashes Python keeps): equal rules have equal
    sketches. Hashing a whole body hashes every address, match and option object of the rule,
    most of the cost of these checks on a big ruleset, where most sketches are unique (a
    kube-proxy chain's jumps to per-service chains, its DNATs to per-endpoint addresses)."""
    target = rule.target
    if target is None:
        return (None, len(rule.matches))
    options = target.options
    return (target.name, options[0].args if options else None, len(rule.matches))


def _same_bodies(rules: Sequence[Rule]) -> list[list[int]]:
    """Indices of ``rules`` that are the same comparable rule, one list (of two or more, in
    order) per rule repeated, in the order of their first index.

    Rules are sorted out by ``_sketch`` first, and only those sharing one are hashed whole."""
    sketches: dict[tuple[object, ...], int | list[int]] = {}
    shared: list[list[int]] = []
    for i, rule in enumerate(rules):
        key = _sketch(rule)
        seen = sketches.get(key)
        if seen is None:
            sketches[key] = i
        elif isinstance(seen, int):
            sketches[key] = pair = [seen, i]
            shared.append(pair)
        else:
            seen.append(i)
    groups: list[list[int]] = []
    for indices in shared:
        bodies: dict[tuple[object, ...], list[int]] = {}
        for i in indices:
            if _comparable(rules[i]):
                bodies.setdefault(_body(rules[i]), []).append(i)
        groups.extend(same for same in bodies.values() if len(same) > 1)
    groups.sort(key=lambda same: same[0])
    return groups


def _comparable(rule: Rule) -> bool:
    return not rule.unknown and all(
        m.known and m.module not in STATEFUL_MATCHES for m in rule.matches)


def _nat_port(rule: Rule, table: Table) -> tuple[str | None, int | None]:
    if table.name.value == "nat" and rule.target_name in ("DNAT", "REDIRECT"):
        return proto_of(rule), dport_of(rule)
    return proto_of(rule), None


def check_duplicate_rules(ctx: AuditContext) -> Iterator[Finding]:
    """A rule that repeats an earlier rule of the same chain (low: the copy is redundant).

    >>> from natlens.audit import audit_text
    >>> [str(f) for f in audit_text('''*filter
    ... :INPUT ACCEPT [0:0]
    ... [5:300] -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
    ... [0:0] -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
    ... COMMIT
    ... ''', check_duplicate_rules)]
    ['[low] duplicate: filter INPUT #2: repeats filter INPUT #1']
    """
    for rs in ctx.rulesets():
        index = ctx.index(rs.family)
        for table in rs.tables:
            targets = index[table.name.value].targets
            for chain in table.chains:
                names = targets[chain.name]
                if len(set(names)) == len(names):
                    continue  # no two rules with the same target: no copy
                rules = chain.rules
                repeats = sorted((i, same[0]) for same in _same_bodies(rules) for i in same[1:])
                for i, first in repeats:
                    rule, earlier = rules[i], first + 1
                    original = RuleRef.of(rules[first], table.name, earlier, rs.family)
                    proto, port = _nat_port(rule, table)
                    ref = RuleRef.of(rule, table.name, i + 1, rs.family)
                    yield Finding(
                        kind="duplicate", severity=Severity.LOW,
                        message=f"repeats {original.where}",
                        proto=proto, host_port=port, rule=ref, related=(original,),
                        fix=command(delete_at(ref)),
                    )


def _docker_chain(name: str) -> bool:
    return name.startswith("DOCKER") and name != "DOCKER-USER"


_Copy = tuple[str, int, Rule]


class _Reach:
    """Which copies of one NAT rewrite ``check_duplicate_nat`` blames, from one table's chain
    graph: copy A's chain reaches copy B's (another chain) and the copy outside Docker's chains
    is blamed, else A (evaluated first). Each blamed copy is reported once, with one copy it
    repeats.

    Reachability comes from the graph's strongly connected components (computed once per
    table), walked per group of copies over the components above them only: linear in that
    part of the graph. (A pairwise path search per pair of copies made N²/2 findings and path
    searches for N chains jumping into each other with the same DNAT in each.)
    """

    def __init__(self, g: nx.MultiDiGraph) -> None:
        import networkx as nx  # noqa: PLC0415  (only tables with a repeated NAT rewrite need it)

        self.dag = nx.condensation(g)
        self.scc: dict[str, int] = self.dag.graph["mapping"]
        self.position = {n: i for i, n in enumerate(nx.topological_sort(self.dag))}

    def blamed(self, copies: list[_Copy]) -> Iterator[tuple[_Copy, _Copy]]:
        """(blamed copy, the copy it repeats), in the order of ``copies``."""
        dag, scc = self.dag, self.scc
        first: dict[str, _Copy] = {}
        for copy in copies:
            if copy[0] in scc:
                first.setdefault(copy[0], copy)
        members: dict[int, list[str]] = {}
        for chain in first:
            members.setdefault(scc[chain], []).append(chain)
        above = set(members)
        todo = list(members)
        while todo:
            for pred in dag.predecessors(todo.pop()):
                if pred not in above:
                    above.add(pred)
                    todo.append(pred)
        order = sorted(above, key=self.position.__getitem__)
        # member chains strictly below a component (any / in Docker's chains), two at most:
        # one that is not the asking chain is all a query needs
        below: dict[int, list[str]] = {}
        docker_below: dict[int, list[str]] = {}
        for node in reversed(order):
            found: list[str] = []
            docker: list[str] = []
            for succ in dag.successors(node):
                if succ not in above:
                    continue
                for chain in (*members.get(succ, ()), *below[succ]):
                    if len(found) < 2 and chain not in found:
                        found.append(chain)
                for chain in (*(c for c in members.get(succ, ()) if _docker_chain(c)),
                              *docker_below[succ]):
                    if len(docker) < 2 and chain not in docker:
                        docker.append(chain)
            below[node], docker_below[node] = found, docker
        # a member chain in Docker's chains strictly above a component
        docker_above: dict[int, str | None] = {}
        for node in order:
            hit: str | None = None
            for pred in dag.predecessors(node):
                if pred in above:
                    hit = hit or next((c for c in members.get(pred, ()) if _docker_chain(c)),
                                      None) or docker_above[pred]
            docker_above[node] = hit
        for copy in copies:
            chain = copy[0]
            if chain not in scc:
                continue
            node = scc[chain]
            peers = [c for c in members[node] if c != chain]  # same cycle: reach each other
            if _docker_chain(chain):
                reached = [c for c in peers if _docker_chain(c)] + docker_below[node]
                partner = reached[0] if reached else None
            else:
                reached = peers + below[node]
                partner = reached[0] if reached else (
                    next((c for c in peers if _docker_chain(c)), None) or docker_above[node])
            if partner is not None:
                yield copy, first[partner]


def check_duplicate_nat(ctx: AuditContext) -> Iterator[Finding]:
    """The same NAT rewrite (DNAT, SNAT, REDIRECT, ...) in a chain and in a chain it reaches,
    e.g. a hand-made PREROUTING DNAT repeating Docker's DNAT in chain DOCKER. The copy outside
    Docker's chains is blamed (else the one evaluated first); the other never sees the first
    packet of a connection.

    >>> from natlens.audit import audit_text
    >>> [str(f) for f in audit_text('''*nat
    ... :PREROUTING ACCEPT [0:0]
    ... :DOCKER - [0:0]
    ... -A PREROUTING -p tcp -m tcp --dport 8082 -j DNAT --to-destination 172.17.0.4:80
    ... -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
    ... -A DOCKER -p tcp -m tcp --dport 8082 -j DNAT --to-destination 172.17.0.4:80
    ... COMMIT
    ... ''', check_duplicate_nat)]
    ['[low] duplicate: nat PREROUTING #1: repeats the DNAT of nat DOCKER #1 (tcp/8082)']
    """
    for rs in ctx.rulesets():
        index = ctx.index(rs.family)
        for table in rs.tables:
            j = index[table.name.value]
            nat: list[_Copy] = [(chain, i, table[chain].rules[i - 1]) for chain, i in j.rewrites]
            repeated: list[list[_Copy]] = []
            for same in _same_bodies([rule for _, _, rule in nat]):
                copies = [nat[i] for i in same]
                if len({c for c, _, _ in copies}) > 1:
                    repeated.append(copies)
            if not repeated:
                continue
            # the chains that reach a copy: all _Reach walks (networkx never sees the whole table)
            chains = {c for copies in repeated for c, _, _ in copies}
            reach = _Reach(j.subgraph(chains.union(*(j.ancestors(c) for c in chains))))
            for copies in repeated:
                for blame, other in reach.blamed(copies):
                    other_ref = RuleRef.of(other[2], table.name, other[1], rs.family)
                    proto, port = _nat_port(blame[2], table)
                    what = f" ({proto}/{port})" if proto and port else ""
                    ref = RuleRef.of(blame[2], table.name, blame[1], rs.family)
                    yield Finding(
                        kind="duplicate", severity=Severity.LOW,
                        message=f"repeats the {blame[2].target_name} of {other_ref.where}"
                                f"{what}",
                        proto=proto, host_port=port, rule=ref, related=(other_ref,),
                        fix=command(delete_at(ref)),
                    )
