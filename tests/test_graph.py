"""The chain graph: structure, reachability, loops, unused and missing chains, renderers, CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO_ROOT

import natlens
from natlens import graph
from natlens.cli import main
from natlens.errors import NatlensError
from natlens.model import Family, Target, TargetKind

FIXTURES = REPO_ROOT / "fixtures"

TEXT = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
:DOCKER - [0:0]
:LOOP-A - [0:0]
:LOOP-B - [0:0]
:ORPHAN - [0:0]
:ORPHAN-CHILD - [0:0]
:SELF - [0:0]
-A INPUT -j LOOP-A
-A FORWARD -j DOCKER-USER
-A FORWARD ! -i docker0 -o docker0 -p tcp -m tcp --dport 8080 -m comment --comment "web" -g DOCKER
-A FORWARD -j ufw-missing
-A FORWARD -j SYNPROXY --sack-perm
-A DOCKER-USER -j RETURN
-A LOOP-A -j LOOP-B
-A LOOP-B -s 10.0.0.0/8 -j LOOP-A
-A ORPHAN -j ORPHAN-CHILD
-A SELF -j SELF
COMMIT
"""


@pytest.fixture
def chains() -> graph.ChainGraph:
    return graph.build(natlens.parse_save(TEXT, source="rules.txt"))


def test_nodes_carry_builtin_policy_and_rule_count(chains: graph.ChainGraph) -> None:
    g = chains["filter"]
    assert g.nodes["FORWARD"] == {"builtin": True, "policy": "DROP", "rules": 4,
                                  "missing": False}
    assert g.nodes["DOCKER"] == {"builtin": False, "policy": None, "rules": 0, "missing": False}
    assert g.nodes["ufw-missing"]["missing"] is True
    assert "SYNPROXY" not in g  # an extension target is no chain, known or not
    assert graph.builtin_chains(g) == ("INPUT", "FORWARD", "OUTPUT")


def test_edges_are_keyed_by_rule_position_with_goto_and_summary(
        chains: graph.ChainGraph) -> None:
    g = chains["filter"]
    edge = g.edges["FORWARD", "DOCKER", 2]
    assert edge["position"] == 2
    assert edge["goto"] is True
    assert edge["match"] == "! -i docker0 -o docker0 -p tcp --dport 8080"
    assert edge["text"].endswith("-g DOCKER")
    assert g.edges["FORWARD", "DOCKER-USER", 1]["goto"] is False
    assert [(j.source, j.position, j.target) for j in graph.jumps(g)][:3] == [
        ("INPUT", 1, "LOOP-A"), ("FORWARD", 1, "DOCKER-USER"), ("FORWARD", 2, "DOCKER")]


def test_reachable_unused_unreachable(chains: graph.ChainGraph) -> None:
    g = chains["filter"]
    assert graph.reachable(g) == {"INPUT", "FORWARD", "OUTPUT", "DOCKER-USER", "DOCKER",
                                  "LOOP-A", "LOOP-B", "ufw-missing"}
    assert graph.unused_chains(g) == ("ORPHAN",)
    assert graph.unreachable_chains(g) == ("ORPHAN-CHILD", "SELF")


def test_loops_one_cycle_per_component(chains: graph.ChainGraph) -> None:
    assert graph.loops(chains["filter"]) == (("LOOP-A", "LOOP-B"), ("SELF",))


def test_missing_jumps(chains: graph.ChainGraph) -> None:
    missing = graph.missing_jumps(chains["filter"])
    assert [(j.source, j.position, j.target) for j in missing] == [
        ("FORWARD", 3, "ufw-missing")]


@pytest.mark.parametrize(("name", "goto", "expected"), [
    ("DOCKER-USER", False, True),
    ("ufw-before-input", False, True),
    ("KUBE_SVC.1", False, True),
    ("SECMARK", False, False),
    ("TARPIT", False, False),
    ("SOMETHINGNEW", False, False),  # an upper-case word may be an extension natlens lacks
    ("SOMETHINGNEW", True, True),  # but -g always needs a chain
])
def test_is_missing_chain(name: str, goto: bool, expected: bool) -> None:
    assert graph.is_missing_chain(Target(name, kind=TargetKind.UNKNOWN), goto) is expected


def test_declared_chain_target_is_never_missing() -> None:
    assert not graph.is_missing_chain(Target("my-chain", kind=TargetKind.CHAIN), True)


def test_match_summary_truncates() -> None:
    rs = natlens.parse_save("*filter\n:INPUT ACCEPT [0:0]\n"
                            "-A INPUT -s 10.0.0.0/8 -d 192.168.100.0/24 -i eth0 -p tcp -m tcp "
                            "--dport 1000:2000 -m conntrack --ctstate NEW -j ACCEPT\nCOMMIT\n")
    text = graph.match_summary(rs["filter"]["INPUT"].rules[0], width=40)
    assert len(text) == 40
    assert text.endswith("…")


def test_can_reach_verdict(chains: graph.ChainGraph) -> None:
    rs = natlens.parse_save(TEXT)
    assert graph.can_reach_verdict(chains["filter"], rs["filter"], "DOCKER-USER", "RETURN")
    assert not graph.can_reach_verdict(chains["filter"], rs["filter"], "DOCKER", "ACCEPT")


def test_unknown_table_is_a_one_line_error(chains: graph.ChainGraph) -> None:
    with pytest.raises(NatlensError, match=r"rules.txt: no table 'nat' \(tables: filter\)"):
        chains["nat"]


# -- renderers ----------------------------------------------------------------------------------


def test_dot_marks_builtins_missing_goto_and_highlight(chains: graph.ChainGraph) -> None:
    dot = graph.to_dot(chains, highlight=[("filter", "FORWARD", 2), ("filter", "DOCKER", None)])
    lines = dot.splitlines()
    assert lines[0] == 'digraph "natlens ipv4" {'
    forward = next(ln for ln in lines if ln.strip().startswith('"filter:FORWARD" ['))
    assert "peripheries=2" in forward
    assert "built-in, policy DROP" in forward
    assert 'fillcolor="#ffd6d6"' in forward
    missing = next(ln for ln in lines if ln.strip().startswith('"filter:ufw-missing" ['))
    assert "dashed" in missing
    assert "missing chain" in missing
    goto = next(ln for ln in lines if '"filter:FORWARD" -> "filter:DOCKER"' in ln)
    assert "style=dashed" in goto
    assert "penwidth=2.5" in goto
    assert 'label="goto #2 ! -i docker0 -o docker0 -p tcp --dport 8080"' in goto
    plain = next(ln for ln in lines if '"filter:FORWARD" -> "filter:DOCKER-USER"' in ln)
    assert "penwidth" not in plain


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")
def test_dot_is_valid_graphviz(chains: graph.ChainGraph) -> None:
    proc = subprocess.run(["dot", "-Tcanon"], input=graph.to_dot(chains), text=True,
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_mermaid(chains: graph.ChainGraph) -> None:
    text = graph.to_mermaid(chains, table="filter", highlight=[("filter", "FORWARD", 1)])
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    assert 'subgraph t0["filter"]' in text
    assert any(ln.strip().startswith("t0n1[[\"FORWARD<br/>built-in, policy DROP")
               for ln in lines)
    assert any('{{"ufw-missing<br/>missing chain"}}' in ln for ln in lines)
    edges = [ln for ln in lines if "-->" in ln or "-.->" in ln]
    highlighted = next(i for i, ln in enumerate(edges) if '|"#35;1"|' in ln and "t0n1 " in ln)
    assert f"  linkStyle {highlighted} stroke:#cc0000,stroke-width:3px" in lines
    assert any('-.->|"goto #35;2 ! -i docker0' in ln for ln in edges)
    assert "  class t0n1 path" in lines
    assert any(ln.startswith("  class ") and ln.endswith(" builtin") for ln in lines)


def test_json(chains: graph.ChainGraph) -> None:
    data = graph.to_json(chains, highlight=[("filter", "INPUT", 1)])
    json.dumps(data)
    (table,) = data["tables"]
    assert table["name"] == "filter"
    assert table["loops"] == [["LOOP-A", "LOOP-B"], ["SELF"]]
    assert table["unused"] == ["ORPHAN"]
    assert table["unreachable"] == ["ORPHAN-CHILD", "SELF"]
    assert table["missing"] == ["ufw-missing"]
    forward = next(c for c in table["chains"] if c["name"] == "FORWARD")
    assert forward == {"name": "FORWARD", "builtin": True, "policy": "DROP", "rules": 4,
                       "missing": False, "reachable": True}
    jump = next(j for j in table["jumps"] if j["to"] == "DOCKER")
    assert jump == {"from": "FORWARD", "to": "DOCKER", "position": 2, "goto": True,
                    "match": "! -i docker0 -o docker0 -p tcp --dport 8080",
                    "text": "-A FORWARD ! -i docker0 -o docker0 -p tcp -m tcp --dport 8080 "
                            '-m comment --comment "web" -g DOCKER'}
    assert data["path"] == [["filter", "INPUT", 1]]


def test_highlight_takes_simulator_steps() -> None:
    from natlens.netfilter import Packet, simulate

    snap = natlens.load(FIXTURES / "planted-faults")
    trace = simulate(snap, Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2",
                                  proto="tcp", dport=8080))
    chains = graph.build(snap.ruleset)
    dot = graph.to_dot(chains, table="nat", highlight=trace.steps)
    edge = next(ln for ln in dot.splitlines() if '"nat:PREROUTING" -> "nat:DOCKER"' in ln)
    assert "penwidth=2.5" in edge


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")
def test_svg(chains: graph.ChainGraph) -> None:
    svg = graph.to_svg(chains)
    assert "<svg" in svg
    assert "FORWARD" in svg


def test_svg_without_graphviz(chains: graph.ChainGraph, monkeypatch: pytest.MonkeyPatch,
                              tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NatlensError, match=r"graphviz 'dot' not found: install graphviz"):
        graph.to_svg(chains)
    with pytest.raises(NatlensError, match=r"/nonexistent/dot: cannot run"):
        graph.to_svg(chains, dot="/nonexistent/dot")


# -- real layouts -------------------------------------------------------------------------------


def _docker_docs(corpus: Path) -> list[Path]:
    files = sorted((corpus / "docker").glob("*/extracted/*.S.rules"))
    return [f for f in files if "excerpt" not in f.name]


def test_docker_docs_layouts_have_a_clean_graph(corpus: Path) -> None:
    files = _docker_docs(corpus)
    assert len(files) >= 40
    for path in files:
        table = path.name.split(".")[-3]
        rs = natlens.parse_save(path.read_text(), table=table, source=str(path))
        g = graph.build(rs)[table]
        assert graph.loops(g) == (), path
        assert graph.missing_jumps(g) == (), path
        assert graph.unused_chains(g) == (), path
        assert graph.reachable(g) == set(g.nodes), path


def test_fixture_graph_family_ipv6() -> None:
    snap = natlens.load(FIXTURES / "ipv6")
    chains = graph.build(snap.ruleset6)
    assert chains.family is Family.IPV6
    assert "DOCKER" in chains["nat"]


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_graph_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(FIXTURES / "planted-faults"), "--table", "nat",
                 "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in data["tables"]] == ["nat"]
    assert {"from": "PREROUTING", "to": "DOCKER"}.items() <= data["tables"][0]["jumps"][0].items()


def test_cli_graph_dot_to_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g.dot"
    assert main(["graph", str(FIXTURES / "planted-faults"), "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    text = out.read_text()
    assert 'subgraph "cluster_filter"' in text
    assert 'subgraph "cluster_nat"' in text


def test_cli_graph_mermaid_ipv6(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(FIXTURES / "ipv6"), "--family", "ipv6", "--format",
                 "mermaid"]) == 0
    assert capsys.readouterr().out.startswith("flowchart LR\n")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")
def test_cli_graph_svg(tmp_path: Path) -> None:
    out = tmp_path / "g.svg"
    assert main(["graph", str(FIXTURES / "planted-faults"), "--format", "svg", "-o",
                 str(out)]) == 0
    assert "<svg" in out.read_text()


def test_cli_graph_svg_without_graphviz(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["graph", str(FIXTURES / "planted-faults"), "--format", "svg"]) == 2
    assert capsys.readouterr().err == (
        "natlens: error: graphviz 'dot' not found: install graphviz (e.g. apt-get install "
        "graphviz) or use --format dot\n")


def test_cli_graph_unknown_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(FIXTURES / "planted-faults"), "--table", "mangle"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("natlens: error: ")
    assert "no table 'mangle' (tables: filter, nat)" in err
