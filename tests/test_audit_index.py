"""The audit's table index (natlens/audit/_index.py) answers what the networkx chain graph of
``natlens.graph`` answers: same nodes, jumps, reachability and loops, in the same order (issue
13: the rule checks read the index, not a ``MultiDiGraph`` of the whole table). And duplicates
found through cheap sketches are those found by hashing every rule whole.
"""

from __future__ import annotations

import warnings

import networkx as nx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from natlens import ParseWarning, parse_save
from natlens.audit import AuditContext, audit_text, duplicates
from natlens.audit._index import TableIndex
from natlens.audit.graph_checks import check_loops
from natlens.graph import jumps, loops, reachable, table_graph
from natlens.model import Family, Rule, Table
from natlens.snapshot import Snapshot

SETTINGS = settings(max_examples=300, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

USER = ["A", "B", "C", "D", "DOCKER", "DOCKER-USER", "ufw-x"]
TARGETS = [*USER, "MISSING-1", "nochain", "LOG", "ACCEPT", "DROP", "RETURN", "SYNPROXY"]
BUILTIN = ["INPUT", "FORWARD", "OUTPUT"]

GOTO_TARGETS = [*USER, "MISSING-1", "nochain"]  # -g needs a chain (iptables(8))

jump = st.one_of(
    st.tuples(st.sampled_from(BUILTIN + USER), st.just("-j"), st.sampled_from(TARGETS),
              st.sampled_from(["", "-p tcp ", "-s 10.0.0.0/8 "])),
    st.tuples(st.sampled_from(BUILTIN + USER), st.just("-g"), st.sampled_from(GOTO_TARGETS),
              st.just("")))


def _table(declared: list[str], rules: list[tuple[str, str, str, str]]) -> Table:
    lines = ["*filter", *(f":{c} ACCEPT [0:0]" for c in BUILTIN),
             *(f":{c} - [0:0]" for c in declared)]
    lines += [f"-A {src} {cond}{how} {dst}" for src, how, dst, cond in rules
              if src in BUILTIN or src in declared]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParseWarning)
        return parse_save("\n".join([*lines, "COMMIT", ""]), strict=False)["filter"]


@SETTINGS
@given(declared=st.lists(st.sampled_from(USER), unique=True),
       rules=st.lists(jump, max_size=25))
def test_index_is_the_chain_graph(declared: list[str],
                                  rules: list[tuple[str, str, str, str]]) -> None:
    table = _table(declared, rules)
    g = table_graph(table, labels=False)
    index = TableIndex(table)
    assert list(index.nodes) == list(g.nodes)
    assert index.builtin == tuple(n for n, d in g.nodes(data=True) if d["builtin"])
    assert index.missing == {n for n, d in g.nodes(data=True) if d["missing"]}
    assert index.edges == [(j.source, j.target, j.position, j.goto, j.missing)
                           for j in jumps(g)]
    assert index.missing_jumps == [e for e in index.edges if e[4]]
    assert index.reachable() == reachable(g)
    assert dict(index.jumped) == {n: g.in_degree(n) for n in g if g.in_degree(n)}
    for name in g:
        assert index.descendants(name) == nx.descendants(g, name)
        assert index.ancestors(name) == nx.ancestors(g, name)
        assert list(index.pred.get(name, {})) == list(dict.fromkeys(u for u, _ in
                                                                    g.in_edges(name)))
    core = index.core()
    assert (core is None) == nx.is_directed_acyclic_graph(g)
    assert loops(core if core is not None else nx.MultiDiGraph()) == loops(g)


def test_loop_beyond_a_big_acyclic_part_is_found_in_a_small_core() -> None:
    chains = [f"C{i}" for i in range(300)]
    rules = [("INPUT", "-j", c, "") for c in chains]
    rules += [(c, "-j", chains[i + 1], "") for i, c in enumerate(chains[:-1])]  # a long path
    rules += [("C299", "-j", "L1", ""), ("L1", "-j", "L2", ""), ("L2", "-j", "L1", "")]
    text = "\n".join(["*filter", ":INPUT ACCEPT [0:0]",
                      *(f":{c} - [0:0]" for c in [*chains, "L1", "L2"]),
                      *(f"-A {s} {how} {d}" for s, how, d, _ in rules), "COMMIT", ""])
    core = TableIndex(parse_save(text)["filter"]).core()
    assert core is not None
    assert list(core.nodes) == ["L1", "L2"]  # the path above the loop is peeled off
    assert [f.message for f in audit_text(text, check_loops)] == [
        "chains jump in a loop: L1 -> L2 -> L1 (iptables-restore refuses this table)"]


def test_context_builds_index_once_with_each_rule_target() -> None:
    ruleset = parse_save("*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n-A INPUT -j A\n"
                         "-A INPUT -p tcp\n-A A -g A\nCOMMIT\n")
    ctx = AuditContext(Snapshot(ruleset=ruleset))
    assert ctx.index(Family.IPV4) is ctx.index(Family.IPV4)
    index = ctx.index(Family.IPV4)["filter"]
    assert index.targets == {"INPUT": ("A", None), "A": ("A",)}
    assert index.gotos == {"A"}


# -- duplicates: sketches first, whole rules only when sketches meet ----------------------------

PIECES = (("", "-s 10.0.0.0/8", "-s 10.0.0.1/32"), ("", "-i eth0"),
          ("", "-p tcp --dport 80", "-p tcp -m tcp --dport 80", "-p tcp -m tcp --dport 81"),
          ("", '-m comment --comment "a"', '-m comment --comment "b"',
           "-m statistic --mode random --probability 0.5"),
          ("-j ACCEPT", "-j RETURN", "-j LOG", "-j LOG --log-prefix a",
           "-j DNAT --to-destination 10.0.0.9",
           "-j DNAT --to-destination 10.0.0.8", "-j MASQUERADE", "-j A", "-g A", ""))
rule_text = st.tuples(*(st.sampled_from(p) for p in PIECES))


def _naive(rules: list[Rule]) -> list[list[int]]:
    """The definition: comparable rules grouped by their whole body."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, rule in enumerate(rules):
        if duplicates._comparable(rule):
            groups.setdefault(duplicates._body(rule), []).append(i)
    return [same for same in groups.values() if len(same) > 1]


@SETTINGS
@given(st.lists(rule_text, max_size=30))
def test_sketched_duplicates_are_the_whole_rule_duplicates(parts: list[tuple[str, ...]]) -> None:
    text = ("*nat\n:PREROUTING ACCEPT [0:0]\n:A - [0:0]\n"
            + "".join(f"-A PREROUTING {' '.join(p for p in part if p)}\n" for part in parts)
            + "COMMIT\n")
    rules = list(parse_save(text)["nat"]["PREROUTING"].rules)
    assert duplicates._same_bodies(rules) == _naive(rules)
