"""What the rule checks read about each table, computed once, in one pass over its rules: the
target name of every rule, chain by chain, and the chain graph (which chain jumps to which) as
plain dicts.

The graph has the nodes and edges of ``natlens.graph.table_graph``, in the same order, without
a networkx graph: on a kube-proxy dump of 100k rules and 35k chains, building the
``MultiDiGraph`` cost more than every rule check together. networkx still finds cycles and
strongly connected components, on graphs cut down to the chains that matter (``core``,
``subgraph``). The target names let a check skip, with one C-level test per chain, the chains
where it cannot fire (no NAT rewrite, no terminating rule, no two rules with the same target).

Semantics (iptables(8), "TARGETS"): packets enter a table at its built-in chains only; ``-j`` and
``-g`` to a user chain are the edges; a jump to a chain the table does not declare is an edge to
a node marked missing (``natlens.graph.is_missing_chain`` decides which unknown targets are).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from itertools import chain as chained
from typing import TYPE_CHECKING

from natlens.graph import is_missing_chain
from natlens.model import Ruleset, Table, TargetKind

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["NAT_TARGETS", "Edge", "TableIndex", "ruleset_index"]

NAT_TARGETS = frozenset({"DNAT", "SNAT", "REDIRECT", "NETMAP", "MASQUERADE"})
"""Targets that rewrite addresses (iptables-extensions(8)): the nat table stops at the first."""

Edge = tuple[str, str, int, bool, bool]
"""One jump ``(source, target, position, goto, missing)``: rule ``position`` (1-based) of chain
``source`` jumps (``goto``: goes) to ``target``; ``missing`` when the table does not declare
``target``. A plain tuple: a named one costs a Python-level call per jump to build."""


class TableIndex:
    """One table's rule targets and chain graph.

    Graph nodes are in ``table_graph``'s order (declared chains as declared, then undeclared
    jump targets as first jumped to), edges chain by chain, then by position. The one pass
    keeps the targets only; the edges with their positions, the predecessor index and
    reachability are computed on first use (a finding to explain, a cycle), which most big
    tables never need.
    """

    __slots__ = ("_edges", "_jumped", "_live", "_pred", "builtin", "gotos", "missing",
                 "missing_jumps", "nodes", "rewrites", "succ", "table", "targets")

    def __init__(self, table: Table) -> None:
        self.table = table
        declared = {chain.name for chain in table.chains}
        undeclared: dict[str, None] = {}
        succ: dict[str, list[str]] = {}
        names: dict[str, tuple[str | None, ...]] = {}
        gotos: set[str] = set()
        rewrites: list[tuple[str, int]] = []
        has_missing = False
        chain_kind, unknown_kind = TargetKind.CHAIN, TargetKind.UNKNOWN
        for chain in table.chains:
            jumps: list[str] | None = None
            chain_names: list[str | None] = []
            for position, rule in enumerate(chain.rules, 1):
                target = rule.target
                if target is None:
                    chain_names.append(None)
                    continue
                name = target.name
                chain_names.append(name)
                if rule.goto:
                    gotos.add(chain.name)
                kind = target.kind
                if kind is not chain_kind and (kind is not unknown_kind
                                               or not is_missing_chain(target, rule.goto)):
                    if name in NAT_TARGETS:
                        rewrites.append((chain.name, position))
                    continue
                if jumps is None:
                    jumps = succ[chain.name] = []
                jumps.append(name)
                if kind is unknown_kind:
                    has_missing = True
                if name not in declared:
                    undeclared[name] = None
            names[chain.name] = tuple(chain_names)
        self.targets: Mapping[str, tuple[str | None, ...]] = names
        """Chain → the target name of each of its rules (None: no target), in rule order."""
        self.gotos = frozenset(gotos)
        """Chains with a ``-g`` rule."""
        self.rewrites = rewrites
        """(chain, 1-based position) of each rule whose target is a NAT rewrite
        (``NAT_TARGETS``), in table order."""
        self.nodes: tuple[str, ...] = (*(c.name for c in table.chains), *undeclared)
        """Every node of the chain graph, in ``table_graph``'s order."""
        self.builtin = tuple(c.name for c in table.chains if c.builtin)
        """The built-in chains, in declaration order (where packets enter)."""
        self.missing = frozenset(undeclared)
        """Nodes that only jumps name (no chain of the table by that name)."""
        self.succ = succ
        """Chain → the targets of its jumps, one per jump, in rule order (chains without jumps
        are absent)."""
        self._edges: list[Edge] | None = None
        self._pred: dict[str, dict[str, list[int]]] | None = None
        self._live: frozenset[str] | None = None
        self._jumped: Counter[str] | None = None
        self.missing_jumps: list[Edge] = [e for e in self.edges if e[4]] if has_missing else []
        """The jumps to chains the table does not declare, in table order."""

    @property
    def edges(self) -> list[Edge]:
        """Every jump, chain by chain, then by position."""
        if self._edges is None:
            edges: list[Edge] = []
            for chain in self.table.chains:
                if chain.name not in self.succ:
                    continue
                for position, rule in enumerate(chain.rules, 1):
                    target = rule.target
                    if target is not None and (target.kind is TargetKind.CHAIN
                                               or is_missing_chain(target, rule.goto)):
                        edges.append((chain.name, target.name, position, rule.goto,
                                      target.kind is not TargetKind.CHAIN))
            self._edges = edges
        return self._edges

    @property
    def pred(self) -> dict[str, dict[str, list[int]]]:
        """Target → {source chain: positions of its jumps there}, sources in the order of their
        first jump (as networkx keeps ``in_edges``); targets nothing jumps to are absent."""
        if self._pred is None:
            pred: dict[str, dict[str, list[int]]] = {}
            for source, target, position, _, _ in self.edges:
                pred.setdefault(target, {}).setdefault(source, []).append(position)
            self._pred = pred
        return self._pred

    @property
    def jumped(self) -> Counter[str]:
        """Chain → the number of jumps to it (the in-degree; chains nothing jumps to are
        absent)."""
        if self._jumped is None:
            self._jumped = Counter(chained.from_iterable(self.succ.values()))
        return self._jumped

    def reachable(self) -> frozenset[str]:
        """Chains a packet can reach: the built-ins and everything they jump or go to."""
        if self._live is None:
            self._live = frozenset(_walk(self.builtin, self.succ, keep_start=True))
        return self._live

    def descendants(self, name: str) -> set[str]:
        """Chains ``name`` reaches through one jump or more (not ``name`` itself, as
        ``networkx.descendants``)."""
        found = _walk((name,), self.succ, keep_start=False)
        found.discard(name)
        return found

    def ancestors(self, name: str) -> set[str]:
        """Chains that reach ``name`` through one jump or more (not ``name`` itself)."""
        found = _walk((name,), self.pred, keep_start=False)
        found.discard(name)
        return found

    def core(self) -> nx.MultiDiGraph | None:
        """The part of the chain graph that can hold a cycle (self-jumps included), as
        ``subgraph``; None when the graph has no cycle. Linear: chains no jump leads into, or
        that lead nowhere, are peeled off (Kahn's algorithm, both ways) before networkx sees the
        rest."""
        succ = self.succ
        indegree = dict(self.jumped)
        todo = [name for name in succ if name not in indegree]
        while todo:
            for name in succ.get(todo.pop(), ()):
                left = indegree[name] - 1
                indegree[name] = left
                if not left:
                    todo.append(name)
        cyclic = {name for name, n in indegree.items() if n}
        if not cyclic:
            return None
        pred = self.pred
        outdegree = {name: sum(t in cyclic for t in succ.get(name, ())) for name in cyclic}
        todo = [name for name, n in outdegree.items() if n == 0]
        while todo:
            for name, positions in pred.get(todo.pop(), {}).items():
                if name in outdegree:
                    outdegree[name] -= len(positions)
                    if outdegree[name] == 0:
                        todo.append(name)
        keep = {name for name, n in outdegree.items() if n > 0}
        return self.subgraph(keep) if keep else None

    def subgraph(self, keep: Collection[str]) -> nx.MultiDiGraph:
        """The ``MultiDiGraph`` of the chains ``keep`` and the jumps between them (keyed by
        position), nodes and edges in ``table_graph``'s order, so that networkx walks them in
        the same order as it would the whole table's graph."""
        import networkx as nx  # noqa: PLC0415  (a loop or a repeated NAT rewrite: rare, small)

        g = nx.MultiDiGraph()
        g.add_nodes_from(n for n in self.nodes if n in keep)
        g.add_edges_from((source, target, position) for source, target, position, _, _
                         in self.edges if source in keep and target in keep)
        return g


def _walk(starts: Iterable[str], adj: Mapping[str, Iterable[str]], *,
          keep_start: bool) -> set[str]:
    """The nodes reached from ``starts`` along ``adj`` (``starts`` included when
    ``keep_start``, else only when reached again). Breadth first, a layer at a time, with the
    set operations in C."""
    seen: set[str] = set(starts) if keep_start else set()
    layer = set(starts)
    while layer:
        layer = set(chained.from_iterable([adj[n] for n in layer if n in adj])) - seen
        seen |= layer
    return seen


def ruleset_index(ruleset: Ruleset) -> dict[str, TableIndex]:
    """Table name (``"nat"``) → its index, for every table of ``ruleset``."""
    return {table.name.value: TableIndex(table) for table in ruleset.tables}
