"""Fuzz: generated chain names, comments, interface and container names through every output
format (issue 11: "a second [fuzz test] over names/comments asserts every output format stays
well-formed and free of control characters").

Per example: a rule file with the names and comment (duplicates, dead rules, unused chains) and
a copy of fixtures/planted-faults with the comment on every rule, the outside interface and the
containers renamed. Checked: report table / JSON / SARIF, trace text / JSON, graph DOT (read by
Graphviz) / Mermaid / JSON / SVG (parsed as XML), and every fix (bash runs them with iptables
recorded: nothing else runs). Text formats hold no raw control, bidi or separator character;
JSON keeps the names exact.

Budget: ``NATLENS_OUTPUT_FUZZ_EXAMPLES`` examples (default 150: about a minute of CPU).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from hostile_output import (
    assert_dot,
    assert_json,
    assert_mermaid,
    assert_svg,
    assert_text_safe,
    docker_snapshot,
    recorder,
    records,
    rules_text,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import natlens
from natlens import graph, report
from natlens.audit import Finding
from natlens.cli import main
from natlens.model import BUILTIN_CHAINS
from natlens.netfilter import Packet

EXAMPLES = int(os.environ.get("NATLENS_OUTPUT_FUZZ_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])
pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")

_SPECIAL = (
    [chr(c) for c in range(0x20)] + ["\x7f"] + [chr(c) for c in range(0x80, 0xA0)]
    + list("\u061c\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
           "\u2028\u2029\ufeff\ufffe\uffff")
    + list("$`'\"\\;|&<>(){}[]#%*?~!-=:,./@^+ ") + ["$(touch x)", "`id`", "&amp;", "&#1;", "%%",
                                                   "-->", "<br/>", "\\n", "\\x1b"]
)
_chars = st.one_of(st.sampled_from(_SPECIAL), st.characters(codec="utf-8"))
_text = st.lists(_chars, max_size=12).map("".join)

_BUILTIN = {c for chains in BUILTIN_CHAINS.values() for c in chains}
_BAD_CHAIN = re.compile(r"[\s\"']")
chain_names = _text.filter(lambda s: 1 <= len(s.encode("utf-8", "surrogatepass")) <= 26
                           and s[0] not in "-!"
                           and not _BAD_CHAIN.search(s) and s not in _BUILTIN
                           and "\0" not in s)
"""Names iptables-restore accepts as chains: at most 28 bytes (room for the ``~u`` of the unused
copy)."""

_LINE_BREAKS = re.compile("[\0\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
comments = _text.filter(lambda s: not _LINE_BREAKS.search(s))
"""Comments a save file can carry on one line."""

_KERNEL_SPACES = frozenset(b" \t\n\x0b\x0c\r\xa0")
"""The bytes the kernel's ``isspace`` takes (lib/ctype.c: 9-13, 32 and 0xa0)."""
ifaces = _text.filter(lambda s: 1 <= len(s.encode("utf-8", "surrogatepass")) <= 15
                      and not re.search(r"[\s/:\0\"']", s) and s[0] != "!"
                      and _KERNEL_SPACES.isdisjoint(s.encode("utf-8", "surrogatepass"))
                      and s not in (".", "..", "+", "lo", "docker0", "eth0"))
"""Interface names the kernel accepts (net/core/dev.c dev_valid_name: no byte its isspace
takes, so no UTF-8 sequence holding 0xa0) that iptables can name in a rule (no quotes, no
leading ``!``)."""

_surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
containers = st.lists(st.one_of(_chars, _surrogates), max_size=8).map("".join)
"""What a docker-containers.json may append to a name (lone surrogates included)."""


def _run_fixes(findings: list[Finding], tmp: Path) -> None:
    fixes = [f.fix for f in findings if f.fix]
    if not fixes:
        return
    for fix in fixes:
        assert "\n" not in fix
        assert_text_safe(fix, "fix")
    script = "\n".join(fixes) + "\n"
    syntax = subprocess.run(["bash", "-n"], input=script.encode(), capture_output=True,
                            check=False)
    assert syntax.returncode == 0, syntax.stderr
    work = tmp / "work"
    work.mkdir(parents=True)
    env = {"PATH": f"{recorder(tmp)}:/usr/bin:/bin", "NATLENS_FIX_LOG": str(tmp / "calls"),
           "LC_ALL": "C.UTF-8", "HOME": str(work)}
    subprocess.run(["bash"], input=script.encode(), cwd=work, env=env, capture_output=True,
                   check=True, timeout=60)
    assert list(work.iterdir()) == []
    calls = records(tmp / "calls")
    assert len(calls) == sum(fix.count(" && ") + 1 for fix in fixes)
    assert all(argv[0].decode().endswith(("tables", "-legacy", "-nft")) for argv in calls)


def _cli(*argv: str) -> str:
    """What ``natlens ARGV`` prints (in-process)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(argv)) in (0, 1)
    return out.getvalue()


def _check_reports(path: Path, tmp: Path) -> list[Finding]:
    snap = natlens.load(path)
    findings = natlens.audit(snap)
    assert_text_safe(_cli("report", str(path)), "report table")
    assert_json(_cli("report", str(path), "--format", "json"), "report json (CLI)")
    data = assert_json(report.dumps(report.to_json(findings, snap)), "report json")
    assert data == json.loads(json.dumps(report.to_json(findings, snap)))  # exact values
    assert_json(report.dumps(report.to_sarif(findings, snap)), "report sarif")
    _run_fixes(findings, tmp)
    return findings


def _check_trace(snap: natlens.Snapshot, packet: Packet) -> None:
    trace = natlens.simulate(snap, packet)
    assert_text_safe(str(trace), "trace text")
    assert_json(json.dumps(trace.to_dict()), "trace json")


LEGEND_NODES = ("legend:builtin", "legend:user", "legend:missing", "legend:j1", "legend:j2",
                "legend:g1", "legend:g2")
"""The legend's nodes in a graph without a highlighted path (natlens/graph.py, _dot_legend)."""


def _node_titles(svg: ET.Element) -> list[str]:
    """The ``<title>`` of every node group (Graphviz: ``<g class="node"><title>ID</title>``)."""
    return [g.findtext("{http://www.w3.org/2000/svg}title") or "" for g in svg.iter()
            if g.get("class") == "node"]


def _check_graph(ruleset: natlens.Ruleset, names: list[str]) -> None:
    chains = natlens.chain_graph(ruleset)
    dot = graph.to_dot(chains)
    assert_text_safe(dot, "dot")
    assert_dot(dot, "dot")
    svg = graph.to_svg(chains)
    assert_text_safe(svg, "svg")
    root = assert_svg(svg, "svg")
    titles = _node_titles(root)
    # the legend (graph.to_dot's cluster_legend, on by default) draws its sample boxes as
    # nodes "legend:*"; every chain here is in table filter, so its ID starts "filter:"
    legend = [t for t in titles if t.startswith("legend:")]
    nodes = [t for t in titles if not t.startswith("legend:")]
    assert sorted(legend) == sorted(LEGEND_NODES), "the legend drawn once, whole"
    assert len(nodes) == len(set(nodes)) == sum(len(g.nodes) for g in chains.tables.values()), (
        "two chains drawn as one node")
    assert_mermaid(graph.to_mermaid(chains), "mermaid")
    data = assert_json(json.dumps(graph.to_json(chains)), "graph json")
    assert isinstance(data, dict)
    assert set(names) <= {c["name"] for t in data["tables"] for c in t["chains"]}


@SETTINGS
@given(names=st.lists(chain_names, min_size=1, max_size=3, unique_by=lambda s: s[:26]),
       comment=comments, iface=ifaces, suffix=containers)
def test_every_output_format_stays_well_formed(names: list[str], comment: str, iface: str,
                                               suffix: str) -> None:
    with tempfile.TemporaryDirectory(prefix="natlens-fuzz-") as tmp_name:
        tmp = Path(tmp_name)
        rules = tmp / "rules.txt"
        rules.write_text(rules_text(names, comment), encoding="utf-8")
        findings = _check_reports(rules, tmp / "rules-fixes")
        snap = natlens.load(rules)
        assert {f.rule.chain for f in findings if f.rule and f.kind == "duplicate"} == set(names)
        _check_trace(snap, Packet(in_interface="eth0", src="10.66.0.1", dst="192.0.2.2",
                                  proto="tcp", dport=22))
        _check_graph(snap.ruleset, names)

        planted = docker_snapshot(REPO_ROOT / "fixtures" / "planted-faults", tmp / "planted",
                                  comment=comment, iface=iface, suffix=suffix)
        findings = _check_reports(planted, tmp / "planted-fixes")
        snap = natlens.load(planted)
        assert any(f.fix and f.rule and f.rule.index for f in findings)
        _check_trace(snap, Packet(in_interface=iface, src="198.51.100.7", dst="192.0.2.2",
                                  proto="tcp", dport=8081))
