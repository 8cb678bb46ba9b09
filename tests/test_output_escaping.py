"""Hostile names and comments through every output channel (issue 11, item 1; cases hostile/04,
14 and the output part of 15).

- Shell: every suggested ``fix`` is one command line that bash parses (``bash -n``) and that,
  run with ``iptables`` & co. replaced by a recorder on PATH, hands iptables exactly the argv
  meant (the chain names, rule words and interface names from the input, whole) and runs nothing
  else: no payload's marker file appears.
- Pictures: the SVG parses as XML, Graphviz reads the DOT without a complaint, Mermaid labels
  hold no quote or bracket, and every picture is free of raw control characters.
- Terminals: report tables, trace text and kernel lines, DOT and Mermaid hold no raw control,
  bidi or separator character; JSON and SARIF keep every value exact and encode as UTF-8.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from hostile_output import (
    CHAINS,
    COMMENT,
    CONTAINER,
    IFACE,
    MARKERS,
    assert_dot,
    assert_json,
    assert_mermaid,
    assert_svg,
    assert_text_safe,
    broken_rules_text,
    docker_snapshot,
    rules_text,
    run_fix,
)
from netns_helpers import namespaces

import natlens
from natlens import graph
from natlens.audit import Finding
from natlens.cli import main
from natlens.netfilter import Packet
from natlens.parse.tokens import split_args

FIXTURES = REPO_ROOT / "fixtures"
HOSTILE = "hostile"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")



# -- inputs -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """rules.txt (valid iptables-save) and broken.txt (needs --lenient) with hostile names."""
    d = tmp_path_factory.mktemp("hostile")
    (d / "rules.txt").write_text(rules_text(), encoding="utf-8")
    (d / "broken.txt").write_text(broken_rules_text(), encoding="utf-8")
    return d


DOCKER_BASES = (FIXTURES / "planted-faults", FIXTURES / "loopback-9000",
                *(REPO_ROOT / "docs" / "examples" / n
                  for n in ("bypass", "mismatch", "missing", "split-backend")))
"""Snapshots whose findings together have every kind of fix that takes words from the input."""


@pytest.fixture(scope="module")
def docker_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Copies of DOCKER_BASES with a hostile comment on every rule, outside interface and
    container name."""
    tmp = tmp_path_factory.mktemp("docker")
    return [docker_snapshot(base, tmp / base.name) for base in DOCKER_BASES]


def _findings(path: Path, *, strict: bool = True) -> list[Finding]:
    return natlens.audit(natlens.load(path, strict=strict))


@pytest.fixture(scope="module")
def all_findings(hostile_dir: Path, docker_dirs: list[Path]) -> list[Finding]:
    found = [*_findings(hostile_dir / "rules.txt"),
             *_findings(hostile_dir / "broken.txt", strict=False)]
    for d in docker_dirs:
        found.extend(_findings(d))
    kinds = {f.kind for f in found if f.fix}
    # the kinds whose fix takes words from the input, each at least once
    assert {"duplicate", "dead-rule", "unused-chain", "loop", "ineffective", "stale",
            "shadowed", "mismatch", "exposed", "bypass", "split-backend"} <= kinds, kinds
    return found


# -- shell --------------------------------------------------------------------------------------


def _spec(text: str) -> list[str]:
    """A rule's words after ``-A CHAIN``, as iptables-restore reads its save line."""
    return split_args(text)[0][2:]


def _intended(f: Finding) -> list[list[str]] | None:
    """The argvs the fix of ``f`` must run, from the finding's own data; None: checked by
    ``_check_shape`` instead (commands whose words are not all in the finding)."""
    r = f.rule
    deletes = (f.fix or "").split(" ")[3:4] == ["-D"]
    if r is None or (f.kind in ("exposed", "bypass") and not deletes):
        return None
    tool = "ip6tables" if r.family == "ipv6" else "iptables"
    if f.kind in ("duplicate", "loop"):
        return [[tool, "-t", r.table, "-D", r.chain, str(r.index)]]
    if f.kind == "mismatch" and (f.fix or "").split(" ")[3:4] == ["-R"]:
        # the DNAT pointed at the container: the rule's words, --to-destination replaced
        spec = _spec(r.text)
        at = spec.index("--to-destination") + 1
        return [[tool, "-t", r.table, "-R", r.chain, str(r.index), *spec[:at],
                 (f.fix or "").rsplit(" ", 1)[-1], *spec[at + 1:]]]
    if f.kind in ("dead-rule", "stale", "shadowed", "mismatch", "exposed"):
        return [[tool, "-t", r.table, "-D", r.chain, *_spec(r.text)]]
    if f.kind == "unused-chain" and " -I FORWARD " not in (f.fix or ""):
        return [[tool, "-t", r.table, "-F", r.chain], [tool, "-t", r.table, "-X", r.chain]]
    if f.kind == "ineffective" and "(did you mean " in f.message:
        # a typo of a chain's name: the rule pointed at that chain (its words, target replaced)
        spec = _spec(r.text)
        at = spec.index("-g" if "-g" in spec else "-j") + 1
        near = f.message.rsplit("(did you mean ", 1)[1].removesuffix("?)")
        return [[tool, "-t", r.table, "-R", r.chain, str(r.index), *spec[:at],
                 ast.literal_eval(near), *spec[at + 1:]]]
    if f.kind == "ineffective" and " -N " in (f.fix or ""):
        spec = _spec(r.text)
        target = spec[spec.index("-g" if "-g" in spec else "-j") + 1]
        return [[tool, "-t", r.table, "-N", target]]
    return None


def _check_shape(f: Finding, argvs: list[list[str]]) -> None:
    """The fixes that insert or replace a rule: its words, whole, where they belong."""
    assert len(argvs) >= 1
    (argv, *_) = argvs
    if f.kind in ("exposed", "bypass"):  # a DROP inserted before Docker's rules
        family = "iptables" if (f.packet or {}).get("dst", "").count(".") else "ip6tables"
        assert argv[:5] in ([family, "-t", "filter", "-I", "DOCKER-USER"],
                            [family, "-t", "raw", "-I", "PREROUTING"]), argv
        assert argv[argv.index("-i") + 1] in (IFACE, "lo")  # the outside, or ! -i lo
        assert argv[-2:] == ["-j", "DROP"]
    elif argv[3:4] == ["-I"]:  # another inserted rule: interface names whole
        assert argv[1:3] in (["-t", "filter"], ["-t", "raw"], ["-t", "nat"]), argv
        assert argv[-2] == "-j"
        for flag in ("-i", "-o"):
            if flag in argv:
                name = argv[argv.index(flag) + 1]
                assert name in (IFACE, "lo") or name.startswith(("docker", "br-")), argv
    elif f.kind == "ineffective":
        r = f.rule
        assert r is not None
        assert argv[3:6] == ["-R", r.chain, str(r.index)], argv
        spec = _spec(r.text)
        new = argv[6:]
        assert "--ctorigdstport" in new
        assert "--dport" not in new
        # everything but the port match is the rule's own words, in order
        kept = [w for w in spec if w not in ("-m", "tcp", "udp", "--dport")]
        assert [w for w in new if w in kept] == [w for w in kept if w in new]
    elif f.kind == "unused-chain":  # Docker's chain: the jump from FORWARD put back
        assert f.rule is not None
        assert argv[1:5] == ["-t", "filter", "-I", "FORWARD"]
        assert argv[5].isdigit()
        assert argv[6:] == ["-j", f.rule.chain]
    elif f.kind == "split-backend":
        assert all(a[0].endswith(("-legacy", "-nft")) and a[3] in ("-F", "-X", "-P")
                   for a in argvs), argvs
    else:
        raise AssertionError(f"no expectation for the fix of {f}")


def test_every_fix_runs_only_its_intended_argv(all_findings: list[Finding],
                                               tmp_path: Path) -> None:
    checked = 0
    for n, f in enumerate(all_findings):
        if f.fix is None:
            continue
        assert "\n" not in f.fix
        assert_text_safe(f.fix, f"fix of {f.kind}")
        tmp = tmp_path / str(n)
        tmp.mkdir()
        argvs = run_fix(f.fix, tmp)
        intended = _intended(f)
        if intended is None:
            _check_shape(f, argvs)
        else:
            assert argvs == intended, f"{f.kind}: {f.fix}"
        checked += 1
    assert checked >= 2 * len(CHAINS)


def test_fixes_keep_comments_and_names_whole(all_findings: list[Finding]) -> None:
    """The words of a hostile rule come through as single shell words (JSON and table alike)."""
    fixes = [f.fix for f in all_findings if f.fix and f.kind == "dead-rule"]
    assert len(fixes) == len(CHAINS)
    for fix in fixes:
        assert "$(touch pwn7)" in fix
        assert fix.count("--comment $'") == 1


def test_case_04_fix_quotes_the_chain_name(cases: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    case = cases / HOSTILE / "04-fix-text-shell-injection"
    assert main(["report", str(case / "iptables-save.txt"), "--format", "json"]) == 0
    data = assert_json(capsys.readouterr().out, "report json")
    assert isinstance(data, dict)
    fixes = [f["fix"] for f in data["findings"] if f["fix"]]
    assert fixes == ["iptables -t filter -D '$(touch${IFS}nlc4)' 2"]
    assert run_fix(fixes[0], tmp_path) == [
        ["iptables", "-t", "filter", "-D", "$(touch${IFS}nlc4)", "2"]]
    assert main(["report", str(case / "iptables-save.txt")]) == 0
    assert "fix: iptables -t filter -D '$(touch${IFS}nlc4)' 2" in capsys.readouterr().out


@pytest.mark.kernel
def test_case_04_fix_pasted_into_a_root_shell(cases: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """As the case's run.sh does: the fix pasted into bash with the real iptables, in a
    throwaway namespace holding the case's rules; the rule goes, nothing else runs."""
    if os.geteuid() != 0 or shutil.which("iptables-restore") is None:
        pytest.skip("needs root and iptables")
    case = cases / HOSTILE / "04-fix-text-shell-injection"
    assert main(["report", str(case / "iptables-save.txt"), "--format", "json"]) == 0
    data = assert_json(capsys.readouterr().out, "report json")
    assert isinstance(data, dict)
    (fix,) = [f["fix"] for f in data["findings"] if f["fix"]]
    with namespaces("natlens-c04-") as (ns,):
        def in_ns(*argv: str, stdin: bytes | None = None) -> bytes:
            return subprocess.run(["ip", "netns", "exec", ns, *argv], input=stdin, check=True,
                                  capture_output=True, timeout=60).stdout
        in_ns("iptables-restore", stdin=(case / "iptables-save.txt").read_bytes())
        before = in_ns("iptables-save").count(b"-j DROP")
        subprocess.run(["ip", "netns", "exec", ns, "bash", "-c", fix], cwd=tmp_path, check=True,
                       capture_output=True, timeout=60)
        assert in_ns("iptables-save").count(b"-j DROP") == before - 1
    assert list(tmp_path.iterdir()) == []


# -- pictures -----------------------------------------------------------------------------------


def _graphs(hostile_dir: Path) -> Iterator[tuple[str, graph.ChainGraph]]:
    yield "rules", natlens.chain_graph(natlens.load(hostile_dir / "rules.txt").ruleset)
    yield "broken", natlens.chain_graph(
        natlens.load(hostile_dir / "broken.txt", strict=False).ruleset)


@needs_dot
def test_pictures_stay_well_formed(hostile_dir: Path) -> None:
    for name, chains in _graphs(hostile_dir):
        dot = graph.to_dot(chains)
        assert_text_safe(dot, f"{name} dot")
        assert_dot(dot, f"{name} dot")
        svg = graph.to_svg(chains)
        assert_text_safe(svg, f"{name} svg")
        root = assert_svg(svg, f"{name} svg")
        shown = "\n".join("".join(t.itertext()) for t in root.iter() if t.tag.endswith("text"))
        assert "\\x1b[31mRED" in shown
        assert "\\u202eevil\\u2066" in shown
        assert "<b>&amp;&#1;" in shown  # entities shown as written, not decoded
        assert_mermaid(graph.to_mermaid(chains), f"{name} mermaid")
        data = json.loads(json.dumps(graph.to_json(chains)))
        names = {c["name"] for t in data["tables"] for c in t["chains"]}
        assert {f"{c[:26]}~{'u' if name == 'rules' else 'a'}" for c in CHAINS} <= names


@needs_dot
def test_dot_ids_tell_names_apart(hostile_dir: Path) -> None:
    """``\\x1b[31mRED`` (ESC) and ``\\\\x1b[31mRED`` (a backslash) look alike once escaped, but
    stay two nodes."""
    chains = natlens.chain_graph(natlens.load(hostile_dir / "rules.txt").ruleset)
    svg = assert_dot(graph.to_dot(chains, table="filter", legend=False), "dot")
    nodes = [g.findtext("{http://www.w3.org/2000/svg}title") or ""
             for g in assert_svg(svg, "svg").iter() if g.get("class") == "node"]
    assert len(set(nodes)) == len(nodes) == len(chains["filter"].nodes) == len(CHAINS) * 2 + 3
    assert len([t for t in nodes if t.endswith("x1b[31mRED")]) == 2


@needs_dot
def test_case_14_svg_is_well_formed(cases: Path, tmp_path: Path) -> None:
    case = cases / HOSTILE / "14-svg-not-well-formed"
    out = tmp_path / "g.svg"
    assert main(["graph", str(case / "kernel-dump.txt"), "--format", "svg", "-o", str(out)]) == 0
    svg = out.read_text(encoding="utf-8")
    assert_svg(svg, "case 14 svg")
    assert_text_safe(svg, "case 14 svg")
    assert "\\x1b[31mRED" in svg
    proc = subprocess.run(["bash", str(case / "run.sh")], capture_output=True, text=True,
                          check=False, timeout=120,
                          env={**os.environ, "NATLENS": str(Path(sys.executable).parent /
                                                            "natlens")})
    assert proc.stdout.splitlines()[-1] == "well-formed", proc.stdout


# -- terminals and JSON -------------------------------------------------------------------------


def test_report_formats(hostile_dir: Path, docker_dirs: list[Path],
                        capsys: pytest.CaptureFixture[str]) -> None:
    inputs = [(hostile_dir / "rules.txt", []), (hostile_dir / "broken.txt", ["--lenient"]),
              *((d, []) for d in docker_dirs)]
    for path, lenient in inputs:
        main(["report", str(path), *lenient])
        table = capsys.readouterr().out
        assert_text_safe(table, f"report table of {path.name}")
        main(["report", str(path), *lenient, "--format", "json"])
        data = assert_json(capsys.readouterr().out, "report json")
        main(["report", str(path), *lenient, "--format", "sarif"])
        assert_json(capsys.readouterr().out, "report sarif")
        assert isinstance(data, dict)
        chains = {f["rule"]["chain"] for f in data["findings"] if f["rule"]}
        if path.name == "rules.txt":
            assert set(CHAINS) <= chains  # exact in JSON
            assert "filter \\x1b[31mRED #2" in table
        if path.name == "planted-faults":
            assert "natlens-web" + CONTAINER in {f["container"] for f in data["findings"]}
            assert any(COMMENT in split_args(f["rule"]["text"])[0]
                       for f in data["findings"] if f["rule"] and f["rule"]["index"])
            assert "natlens-web\\x1b[2J\\u202e$(touch pwn7)\\x0a\\ud800" in table


def test_case_15_surrogate_name_reports(cases: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every report format of a snapshot whose container name holds a lone surrogate encodes as
    UTF-8; where the name shows, the table escapes it and JSON keeps it exact (as an escape)."""
    case = cases / HOSTILE / "15-output-write-errors-traceback" / "surrogate-name"
    assert main(["report", str(case)]) == 1
    table = capsys.readouterr().out
    assert_text_safe(table, "table")
    for fmt in ("json", "sarif"):
        assert main(["report", str(case), "--format", fmt]) == 1
        text = capsys.readouterr().out
        data = json.dumps(assert_json(text, fmt), ensure_ascii=False)
        if "natlens-api" in data:
            assert "natlens-api\ud800" in data
            assert "natlens-api\\ud800" in text
            assert fmt == "sarif" or "natlens-api\\ud800" in table


def test_trace_text_and_json(hostile_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snap = natlens.load(hostile_dir / "rules.txt")
    for k, name in enumerate(CHAINS, 1):
        packet = Packet(in_interface="eth0", src=f"10.66.0.{k}", dst="192.0.2.2", proto="tcp",
                        dport=22)
        trace = natlens.simulate(snap, packet)
        chains = {s.chain for s in trace.steps}
        assert name in chains
        assert chains & {"INPUT", "FORWARD"}
        assert any(COMMENT in split_args(s.text)[0] for s in trace.steps)
        assert_text_safe(str(trace), f"trace through {name!r}")
        argv = ["trace", str(hostile_dir / "rules.txt"), "--in", "eth0", "--src",
                f"10.66.0.{k}", "--dst", "192.0.2.2", "--proto", "tcp", "--dport", "22"]
        for fmt in ("table", "kernel"):
            assert main([*argv, "--format", fmt]) == 0
            assert_text_safe(capsys.readouterr().out, f"trace --format {fmt}")
        assert main([*argv, "--format", "json"]) == 0
        data = assert_json(capsys.readouterr().out, "trace json")
        assert isinstance(data, dict)
        assert name in {s["chain"] for s in data["steps"]}


def test_markers_never_appear() -> None:
    """The payloads wrote nowhere in the repository either."""
    assert not [m for m in MARKERS if (REPO_ROOT / m).exists() or Path(m).exists()]


def test_checks_build_fixes_from_argv_only() -> None:
    """No check writes a fix as a string of its own (an f-string would paste input unquoted):
    every ``fix=`` / ``fix = ...`` value is None, a name or a call (``command(...)`` and the
    helpers around it)."""
    offenders: list[str] = []
    for path in sorted((REPO_ROOT / "natlens" / "audit").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            values: list[ast.expr] = []
            if isinstance(node, ast.keyword) and node.arg == "fix":
                values.append(node.value)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == "fix" for t in targets) and node.value:
                    values.append(node.value)
            offenders.extend(f"{path.name}:{v.lineno}" for v in values if _text_built(v))
    assert offenders == []


def _text_built(value: ast.expr) -> bool:
    """Whether ``value`` makes a string itself (a literal, an f-string, a concatenation)
    rather than taking it from a call; the arguments of calls are not looked into."""
    if isinstance(value, ast.JoinedStr) or (isinstance(value, ast.Constant)
                                           and isinstance(value.value, str)):
        return True
    if isinstance(value, ast.BinOp):
        return _text_built(value.left) or _text_built(value.right)
    if isinstance(value, ast.IfExp):
        return _text_built(value.body) or _text_built(value.orelse)
    if isinstance(value, ast.BoolOp):
        return any(_text_built(v) for v in value.values)
    return False
