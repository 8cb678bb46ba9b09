"""``check_duplicate_nat`` blames the copies the pairwise definition blames, once each, and stays
linear on a deep chain of jumps with the same DNAT in every chain (issue 11, item 5).
"""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from natlens.audit import audit_text
from natlens.audit.duplicates import _docker_chain, _Reach, check_duplicate_nat
from natlens.model import Rule

CHAINS = ["PREROUTING", "OUTPUT", "DOCKER", "DOCKER-A", "DOCKER-USER", "A", "B", "C"]


def _pairwise_blamed(g: nx.MultiDiGraph, copies: list[tuple[str, int, Rule]]) -> set[int]:
    """The definition: for copies a, b in different chains with a's chain reaching b's, the
    copy outside Docker's chains is blamed, else a."""
    blamed = set()
    for ia, (ca, _, _) in enumerate(copies):
        for ib, (cb, _, _) in enumerate(copies):
            if ca != cb and ca in g and cb in g and nx.has_path(g, ca, cb):
                blamed.add(ib if _docker_chain(ca) and not _docker_chain(cb) else ia)
    return blamed


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(edges=st.lists(st.tuples(st.sampled_from(CHAINS), st.sampled_from(CHAINS)), max_size=14),
       where=st.lists(st.sampled_from(CHAINS), min_size=2, max_size=6))
def test_blamed_copies_are_those_of_the_pairwise_definition(
        edges: list[tuple[str, str]], where: list[str]) -> None:
    g = nx.MultiDiGraph()
    g.add_nodes_from(CHAINS)
    g.add_edges_from(edges)
    rule = Rule("X")
    copies = [(chain, i + 1, rule) for i, chain in enumerate(where)]
    found = list(_Reach(g).blamed(copies))
    blamed = [copies.index(b) for b, _ in found]
    assert len(blamed) == len(set(blamed))  # once each
    assert set(blamed) == _pairwise_blamed(g, copies)
    for b, other in found:  # the partner is one the definition pairs it with
        ca, cb = b[0], other[0]
        assert ca != cb
        assert nx.has_path(g, ca, cb) or (nx.has_path(g, cb, ca) and _docker_chain(cb))


def _deep_nat(n: int) -> str:
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
             ":POSTROUTING ACCEPT [0:0]", *(f":N{i} - [0:0]" for i in range(1, n + 1)),
             "-A PREROUTING -j N1"]
    for i in range(1, n + 1):
        lines.append(f"-A N{i} -p tcp -m tcp --dport 9999 -j DNAT --to-destination 10.0.0.9:80")
        if i < n:
            lines.append(f"-A N{i} -j N{i + 1}")
    return "\n".join([*lines, "COMMIT", ""])


def test_deep_chain_of_copies_is_one_finding_per_copy_without_path_searches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_path_search(*args: object) -> bool:
        raise AssertionError("pairwise path search")

    monkeypatch.setattr(nx, "has_path", no_path_search)
    findings = audit_text(_deep_nat(1_500), check_duplicate_nat)
    assert len(findings) == 1_499  # every copy but the last repeats a copy below it
    assert {f.rule.chain for f in findings if f.rule} == {f"N{i}" for i in range(1, 1_500)}
    assert all(f.related[0].chain == f"N{int(f.rule.chain[1:]) + 1}"
               for f in findings if f.rule)
