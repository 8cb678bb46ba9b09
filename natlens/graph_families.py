"""Large families of similar chains drawn as one node (issue 13: pictures at scale).

A kube-proxy node has one ``KUBE-SVC-*`` chain per service and one ``KUBE-SEP-*`` chain per
endpoint (tens of thousands); some hosts have one chain per container. Drawn one by one, no
picture can be read and Graphviz cannot lay it out. ``collapse(graph)`` merges every *family*
of at least ``MIN_FAMILY`` chains into one node named ``PREFIX-*`` with the number of chains
(``members``) and their rules; jumps between two nodes become one edge counting them.

A chain's family is its name without the last ``-``/``_`` part when that part looks like an
identifier: kube-proxy's 16-character base32 hash (``KUBE-SEP-ZLYNRJ6JY4TFQ6LH``), a hex id
(``cali-fw-cali1a2b3c4d5e6``), or any part with a digit (``DOCKER-ISOLATION-STAGE-1``,
``user-1042``). Built-in chains, missing chains, chains on the highlighted path and chains
named by ``keep`` (``natlens graph --chain NAME``, shell patterns) are never merged;
``--expand`` draws every chain.

``too_big_for_layout`` says when a graph is more than Graphviz's ``dot`` lays out in
reasonable time (``MAX_LAYOUT_NODES`` nodes or ``MAX_LAYOUT_EDGES`` edges): the CLI warns
before running it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection, Iterable
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import networkx as nx

from natlens.graph import ChainGraph

__all__ = [
    "MAX_LAYOUT_EDGES", "MAX_LAYOUT_NODES", "MIN_FAMILY", "collapse", "family_of",
    "too_big_for_layout",
]

MIN_FAMILY = 10
"""Smallest family merged into one node."""

MAX_LAYOUT_NODES = 1500
MAX_LAYOUT_EDGES = 4000
"""Beyond these, ``dot`` takes minutes to hours (its layout is super-linear in the edges)."""

_ID_PART = re.compile(r"[A-Z2-7]{16}|[0-9a-fA-F]{8,}|.*[0-9].*")
_SPLIT = re.compile(r"[-_]")


def family_of(name: str) -> str | None:
    """The family of chain ``name`` (``KUBE-SEP-*``), or None when its last part is no id.

    >>> family_of("KUBE-SEP-ZLYNRJ6JY4TFQ6LH")
    'KUBE-SEP-*'
    >>> family_of("DOCKER-ISOLATION-STAGE-1")
    'DOCKER-ISOLATION-STAGE-*'
    >>> family_of("DOCKER-USER") is None
    True
    """
    parts = _SPLIT.split(name)
    if len(parts) < 2 or not parts[-1] or not _ID_PART.fullmatch(parts[-1]):
        return None
    return name[:len(name) - len(parts[-1])] + "*"


def _kept(name: str, keep: Collection[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in keep)


def _collapse_table(g: nx.MultiDiGraph, keep: Collection[str],
                    on_path: Collection[str]) -> nx.MultiDiGraph:
    families: dict[str, list[str]] = {}
    for node, data in g.nodes(data=True):
        if data["builtin"] or data["missing"] or node in on_path or _kept(node, keep):
            continue
        family = family_of(node)
        if family is not None:
            families.setdefault(family, []).append(node)
    merged = {n: f for f, members in families.items() if len(members) >= MIN_FAMILY
              for n in members}
    if not merged:
        return g
    out = nx.MultiDiGraph(**g.graph)
    sizes: dict[str, list[int]] = {}
    for node, data in g.nodes(data=True):
        family = merged.get(node)
        if family is None:
            out.add_node(node, **data)
            continue
        count = sizes.setdefault(family, [0, 0])
        count[0] += 1
        count[1] += data["rules"]
    for family, (members, rules) in sizes.items():
        out.add_node(family, builtin=False, policy=None, rules=rules, missing=False,
                     members=members)
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for u, v, _, data in g.edges(keys=True, data=True):
        fu, fv = merged.get(u, u), merged.get(v, v)
        if fu == u and fv == v:
            out.add_edge(u, v, key=data["position"], **data)
        else:
            grouped.setdefault((fu, fv), []).append(data)
    for (fu, fv), edges in grouped.items():
        if len(edges) == 1:
            out.add_edge(fu, fv, key=edges[0]["position"], **edges[0])
            continue
        first = edges[0]
        out.add_edge(fu, fv, key=first["position"], position=first["position"],
                     goto=all(e["goto"] for e in edges), match="", text=first["text"],
                     jump=first["jump"], ref=f"{len(edges)} jumps", jumps=len(edges))
    return out


def collapse(graph: ChainGraph, *, keep: Collection[str] = (),
             highlight: Iterable[Any] = ()) -> ChainGraph:
    """``graph`` with every family of ``MIN_FAMILY`` or more similar chains merged into one
    node (see the module docstring). ``keep``: chain names or shell patterns never merged;
    ``highlight``: path steps (``(table, chain, rule)`` or objects with ``table`` and
    ``chain``) whose chains stay as they are. Tables without a large family are returned
    unchanged (the same graph objects)."""
    on_path: dict[str, set[str]] = {}
    for step in highlight:
        table, chain = (step[0], step[1]) if isinstance(step, tuple) else \
            (getattr(step, "table", None), getattr(step, "chain", None))
        if table is not None and chain is not None:
            on_path.setdefault(str(table), set()).add(str(chain))
    tables = {name: _collapse_table(g, keep, on_path.get(name, set()))
              for name, g in graph.tables.items()}
    return replace(graph, tables=MappingProxyType(tables))


def too_big_for_layout(graph: ChainGraph, table: str | None = None) -> tuple[int, int] | None:
    """(nodes, edges) of what would be drawn when over ``MAX_LAYOUT_NODES`` /
    ``MAX_LAYOUT_EDGES``; None when Graphviz can lay it out."""
    graphs = [g for name, g in graph.tables.items() if table is None or name == table
              or name.endswith(f" {table}")]
    nodes = sum(g.number_of_nodes() for g in graphs)
    edges = sum(g.number_of_edges() for g in graphs)
    if nodes > MAX_LAYOUT_NODES or edges > MAX_LAYOUT_EDGES:
        return nodes, edges
    return None
