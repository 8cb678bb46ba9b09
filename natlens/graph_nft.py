"""Chain graphs of native nftables tables, drawn next to the iptables tables (``natlens graph``).

Each nft table (``inet firewalld``) becomes one graph with the attributes ``natlens.graph``
gives iptables tables: nodes are chains (``builtin`` for a base chain, i.e. one with a hook;
``policy``; ``rules``; ``missing`` for a jump target the table does not declare), edges are
``jump``/``goto`` verdicts, also those inside verdict maps (``vmap``), keyed by the rule's
handle (what ``natlens trace`` names nft steps by; nft(8), "VERDICT STATEMENT").

Tables the nf_tables iptables dumps also show (``ip filter`` of iptables-nft) are left out:
they are drawn from the iptables rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import networkx as nx

from natlens.model import Family
from natlens.nft.model import NftRuleset, Rule, Table

__all__ = ["nft_graphs", "nft_table_graph", "table_key"]

_FAMILIES = {Family.IPV4: ("ip", "inet"), Family.IPV6: ("ip6", "inet")}


def table_key(family: str, name: str) -> str:
    """The name an nft table has among a picture's tables: ``inet firewalld``."""
    return f"{family} {name}"


def _verdicts(value: Any) -> Iterator[tuple[str, bool]]:
    """(chain, goto) of every ``jump``/``goto`` inside a statement's JSON (vmap entries too)."""
    if isinstance(value, dict) or hasattr(value, "items"):
        for key, inner in value.items():
            if key in ("jump", "goto") and hasattr(inner, "get") and \
                    isinstance(inner.get("target"), str):
                yield inner["target"], key == "goto"
            else:
                yield from _verdicts(inner)
    elif isinstance(value, (list, tuple)):
        for inner in value:
            yield from _verdicts(inner)


def _summary(rule: Rule, width: int = 60) -> str:
    """The rule's conditions as nft prints them, cut to ``width`` characters."""
    text = " ".join(s.text for s in rule.statements
                    if s.kind not in ("jump", "goto", "counter", "vmap"))
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def nft_table_graph(table: Table) -> nx.MultiDiGraph:
    """The chain graph of one nft table (see the module docstring)."""
    g = nx.MultiDiGraph(table=table_key(table.family.value, table.name))
    for chain in table.chains:
        g.add_node(chain.name, builtin=chain.hook is not None, policy=chain.policy,
                   rules=len(chain.rules), missing=False)
    for chain in table.chains:
        for rule in chain.rules:
            for target, goto in dict.fromkeys(_verdicts({s.kind: s.body for s in rule.statements
                                                         if s.kind != "match"})):
                if target not in g:
                    g.add_node(target, builtin=False, policy=None, rules=0, missing=True)
                g.add_edge(chain.name, target, key=rule.handle, position=rule.handle,
                           ref=f"handle {rule.handle}", goto=goto, match=_summary(rule),
                           text=" ".join(s.text for s in rule.statements), jump=None)
    return g


def nft_graphs(nft: NftRuleset, family: Family,
               skip: set[tuple[str, str]]) -> dict[str, nx.MultiDiGraph]:
    """Graphs of the nft tables that ``family``'s packets meet (``ip``/``ip6`` and ``inet``),
    keyed by ``table_key``; ``skip``: (family, table) pairs the iptables dumps hold."""
    wanted = _FAMILIES[family]
    return {table_key(t.family.value, t.name): nft_table_graph(t) for t in nft.tables
            if t.family.value in wanted and (t.family.value, t.name) not in skip}
