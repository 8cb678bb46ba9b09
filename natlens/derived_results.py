"""Command results kept with a snapshot (``Snapshot.derived``), so that the snapshot cache
answers a second ``report``, ``exposure`` or ``graph`` without reading every rule (issue 13).

Each result is named by everything it depends on besides the snapshot (the cache entry's key
covers the input bytes, the load options and natlens's version): its shape's version, and for a
graph the family, ``--expand``, the ``--chain`` patterns and the chains a ``--trace`` path
highlights. Options that only change how a result is printed (the terminal's width,
``--fail-on``, and for a graph ``--format``, ``--table`` and the title) are not part of its name:
a ``graph --format mermaid`` draws the graph a ``graph --format dot`` stored (its text, kept
apart, is named by them too). ``natlens.cache_derived`` stores each result as its own blob of
the entry, read on first use.

- ``exposure_map(snap)``: ``natlens.exposure.exposure(snap)``, kept as ``exposure.map/1``;
- ``audit_findings(snap)``: ``natlens.audit.audit(snap, exposure=exposure_map(snap))`` (every
  check, the snapshot's own inventory), kept as ``audit.findings/1``;
- ``chain_graph(snap, family, build, ...)``: the graph ``natlens graph`` draws (built by
  ``build``, families collapsed unless ``expand``, edges labelled), kept as plain tuples
  (names, attributes: no rules, nothing networkx) and made into networkx graphs again when
  read. A graph of more than ``MAX_GRAPH_ELEMENTS`` nodes and edges is not kept (its name is,
  with None), nor more than ``MAX_GRAPHS`` option sets per snapshot;
- ``graph_source(snap, family, build, fmt=, ...)``: the text ``natlens graph`` prints (for SVG
  the DOT text Graphviz lays out on each call), named by the graph's options and the drawing's
  (``--table``, the title, the traced path, the caption), so that the same ``graph`` command
  again builds no graph (networkx is not even imported); ``MAX_GRAPHS`` texts per snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from natlens.model import Family
from natlens.snapshot import Snapshot

if TYPE_CHECKING:
    from natlens.audit.findings import Finding
    from natlens.exposure import ExposureMap
    from natlens.graph import ChainGraph

__all__ = ["AUDIT", "EXPOSURE", "GRAPH", "MAX_GRAPHS", "MAX_GRAPH_ELEMENTS", "TEXT", "Drawn",
           "audit_findings", "chain_graph", "exposure_map", "graph_source"]

EXPOSURE = "exposure.map/1"
AUDIT = "audit.findings/1"
GRAPH = "graph.chains/1"
"""Name prefix of a stored chain graph (the options follow)."""
TEXT = "graph.text/1"
"""Name prefix of a stored graph text (the graph's and the drawing's options follow)."""

MAX_GRAPH_ELEMENTS = 20_000
"""Nodes plus edges of the largest graph kept (the collapsed graph of a 100k-rule kube-proxy
dump has ~30; ``--expand`` on it ~100,000, built again each time rather than stored)."""

MAX_GRAPHS = 8
"""Option sets (family, ``--expand``, ``--chain``, highlighted chains) kept per snapshot."""


def exposure_map(snap: Snapshot) -> ExposureMap:
    """The exposure map of ``snap`` (``natlens.exposure.exposure``), computed once."""
    from natlens.exposure import ExposureMap, exposure  # noqa: PLC0415

    found = snap.derived(EXPOSURE, exposure)
    assert isinstance(found, ExposureMap)
    return found


def _audit(snap: Snapshot) -> tuple[Finding, ...]:
    from natlens.audit import audit  # noqa: PLC0415

    return tuple(audit(snap, exposure=exposure_map(snap)))


def audit_findings(snap: Snapshot) -> list[Finding]:
    """Every check's findings on ``snap`` as ``natlens.audit.audit`` sorts them (with the map
    of ``exposure_map``), computed once; a new list each call."""
    return list(snap.derived(AUDIT, _audit))


Plain = tuple[str, str, tuple[tuple[str, tuple[tuple[str, Any], ...],
                                    tuple[tuple[str, tuple[tuple[str, Any], ...]], ...],
                                    tuple[tuple[str, str, Any, tuple[tuple[str, Any], ...]],
                                          ...]], ...]]
"""A ``ChainGraph`` as stored: family, source, then per table its name, graph attributes,
nodes (name, attributes) and edges (from, to, key, attributes without the ``jump``)."""


def _size(chains: ChainGraph) -> int:
    return sum(g.number_of_nodes() + g.number_of_edges() for g in chains.tables.values())


def _plain(chains: ChainGraph) -> Plain:
    return (chains.family.value, chains.source, tuple(
        (name, tuple(g.graph.items()),
         tuple((node, tuple(data.items())) for node, data in g.nodes(data=True)),
         tuple((u, v, key, tuple((k, x) for k, x in data.items() if k != "jump"))
               for u, v, key, data in g.edges(keys=True, data=True)))
        for name, g in chains.tables.items()))


def _graph(plain: Plain) -> ChainGraph:
    import networkx as nx  # noqa: PLC0415

    from natlens.graph import ChainGraph  # noqa: PLC0415

    family, source, tables = plain
    graphs: dict[str, nx.MultiDiGraph] = {}
    for name, attrs, nodes, edges in tables:
        g = nx.MultiDiGraph(**dict(attrs))
        g.add_nodes_from((node, dict(data)) for node, data in nodes)
        for u, v, key, data in edges:
            g.add_edge(u, v, key=key, jump=None, **dict(data))
        graphs[name] = g
    return ChainGraph(Family(family), MappingProxyType(graphs), source)


def _on_path(highlight: Iterable[Any]) -> tuple[tuple[str, str], ...]:
    """The (table, chain) pairs of path steps (what ``graph_families.collapse`` keeps)."""
    found: set[tuple[str, str]] = set()
    for step in highlight:
        table, chain = (step[0], step[1]) if isinstance(step, tuple) else \
            (getattr(step, "table", None), getattr(step, "chain", None))
        if table is not None and chain is not None:
            found.add((str(table), str(chain)))
    return tuple(sorted(found))


def chain_graph(snap: Snapshot, family: Family, build: Callable[[], ChainGraph], *,
                keep: Sequence[str] = (), expand: bool = False,
                highlight: Iterable[Any] = ()) -> ChainGraph:
    """The chain graph ``natlens graph`` draws for ``family``: ``build()`` (the tables'
    unlabelled graphs), families of chains collapsed (``natlens.graph_families.collapse``,
    keeping ``keep`` and the chains of ``highlight``'s steps) unless ``expand``, every edge
    labelled (``natlens.graph.label_edges``). Kept with ``snap`` (module docstring)."""
    from natlens import graph  # noqa: PLC0415

    highlight = tuple(highlight)

    def make() -> ChainGraph:
        chains = build()
        if not expand:
            from natlens.graph_families import collapse  # noqa: PLC0415

            chains = collapse(chains, keep=keep, highlight=highlight)
        for table_graph in chains.tables.values():
            graph.label_edges(table_graph)
        return chains

    # what the collapsing keeps: nothing to name when nothing is collapsed
    kept = ((), ()) if expand else (tuple(keep), _on_path(highlight))
    name = f"{GRAPH} {family.value} expand={bool(expand)} keep={kept[0]!r} path={kept[1]!r}"
    names = snap.derived_names()
    if name not in names and sum(n.startswith(GRAPH) for n in names) >= MAX_GRAPHS:
        return make()
    made: list[ChainGraph] = []

    def compute(_: Snapshot) -> Plain | None:
        chains = make()
        made.append(chains)
        return _plain(chains) if _size(chains) <= MAX_GRAPH_ELEMENTS else None

    plain = snap.derived(name, compute)
    if plain is not None:  # a stored graph, also right after storing it: one way to print it
        return _graph(plain)
    return made[0] if made else make()


Drawn = tuple[str, "tuple[int, int] | None"]
"""What ``graph_source`` gives: the text, and ``(nodes, edges)`` when Graphviz would be handed
more than it can lay out (``natlens.graph_families.too_big_for_layout``), else None."""


def graph_source(snap: Snapshot, family: Family, build: Callable[[], ChainGraph], *,
                 fmt: str, keep: Sequence[str] = (), expand: bool = False,
                 highlight: Iterable[Any] = (), table: str | None = None,
                 title: str | None = None, caption: Sequence[str] = ()) -> Drawn:
    """The text ``natlens graph --format fmt`` prints of ``chain_graph(snap, family, build,
    keep=, expand=, highlight=)``: ``to_dot``, ``to_mermaid`` or ``to_json`` (indented) with
    ``table``, ``highlight``, ``title`` and ``caption``; for ``svg`` the DOT text to hand
    Graphviz (``natlens.graph.svg_of_dot``: the layout is not kept, Graphviz may have changed).
    Kept with ``snap`` (``MAX_GRAPHS`` option sets of text, besides the graphs), so a warm
    ``graph`` neither reads the rules nor builds a graph. Raises ``UsageError`` when the
    family has no rules to draw."""
    import json  # noqa: PLC0415

    from natlens import graph  # noqa: PLC0415

    highlight = tuple(highlight)
    source = "dot" if fmt == "svg" else fmt
    if source not in ("dot", "mermaid", "json"):
        raise ValueError(f"graph format {fmt!r}")

    def draw() -> tuple[Drawn, int]:
        from natlens.errors import UsageError  # noqa: PLC0415
        from natlens.graph_families import too_big_for_layout  # noqa: PLC0415

        chains = chain_graph(snap, family, build, keep=keep, expand=expand, highlight=highlight)
        if not chains.tables:
            raise UsageError(f"{snap.path}: no {family.value} rules to draw")
        if source == "dot":
            text = graph.to_dot(chains, table=table, highlight=highlight, title=title,
                                caption=caption)
        elif source == "mermaid":
            text = graph.to_mermaid(chains, table=table, highlight=highlight, title=title,
                                    caption=caption)
        else:
            text = json.dumps(graph.to_json(chains, table=table, highlight=highlight),
                              indent=2) + "\n"
        return (text, too_big_for_layout(chains, table)), _size(chains)

    name = (f"{TEXT} {source} {family.value} expand={bool(expand)} keep={tuple(keep)!r} "
            f"path={graph.path_steps(highlight)!r} table={table!r} title={title!r} "
            f"caption={tuple(caption)!r}")
    names = snap.derived_names()
    if name not in names and sum(n.startswith(TEXT) for n in names) >= MAX_GRAPHS:
        return draw()[0]
    made: list[Drawn] = []

    def compute(_: Snapshot) -> Drawn | None:
        drawn, size = draw()
        made.append(drawn)
        return drawn if size <= MAX_GRAPH_ELEMENTS else None  # a huge text: not kept

    found = snap.derived(name, compute)
    if found is not None:
        return found
    return made[0] if made else draw()[0]
