"""Issue 13 (large hosts): batch traces (``trace --packets``, ``simulate_many``), chain families
collapsed in ``graph``, the progress line, and a start that imports nothing heavy."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import natlens
from natlens import graph
from natlens.batch import PacketFileError, read_packets
from natlens.cli import main
from natlens.graph_families import MIN_FAMILY, collapse, family_of, too_big_for_layout
from natlens.netfilter import Packet
from natlens.progress import Progress

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "default-bridge-8080"
OUTSIDE = '{"in": "eth0", "src": "198.51.100.7", "dst": "192.0.2.2", "dport": 8080}'
LOCAL = '{"local_origin": true, "src": "192.0.2.2", "dst": "172.17.0.2", "dport": 80}'
LINES = [
    "1: Packet(in eth0, tcp 198.51.100.7 -> 192.0.2.2:8080, new) => ACCEPT (forward) "
    "198.51.100.7 -> 172.17.0.2:80 via docker0; connection established",
    "3: Packet(local, tcp 192.0.2.2 -> 172.17.0.2:80, new) => ACCEPT (output) 192.0.2.2 -> "
    "172.17.0.2:80 via docker0; connection established",
]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(("text", "numbers"), [
    (f"{OUTSIDE}\n\n{LOCAL}\n", ("1", "3")),
    ("in,local_origin,src,dst,dport\n"
     "eth0,,198.51.100.7,192.0.2.2,8080\n"
     "# a comment\n"
     ",true,192.0.2.2,172.17.0.2,80\n", ("2", "4")),
], ids=["jsonl", "csv"])
def test_trace_packets_prints_one_line_per_packet(tmp_path: Path, text: str,
                                                  numbers: tuple[str, str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    packets = tmp_path / "packets"
    packets.write_text(text)
    status, out, err = _run(["trace", str(FIXTURE), "--packets", str(packets)], capsys)
    assert (status, err) == (0, "")
    assert out.splitlines() == [f"{n}{line[1:]}" for n, line in zip(numbers, LINES,
                                                                     strict=True)]


def test_trace_packets_json_lines_from_stdin(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(
        f"{OUTSIDE}\n{LOCAL}\n".encode())))
    status, out, err = _run(["trace", str(FIXTURE), "--packets", "-", "--format", "json"],
                            capsys)
    assert (status, err) == (0, "")
    rows = [json.loads(line) for line in out.splitlines()]
    single = natlens.simulate(natlens.load(FIXTURE), Packet(
        in_interface="eth0", src="198.51.100.7", dst="192.0.2.2", dport=8080))
    assert rows[0] == {"line": 1, **single.to_dict()}
    assert [r["line"] for r in rows] == [1, 2]
    assert rows[1]["final_dst"] == "172.17.0.2:80"


@pytest.mark.parametrize(("text", "message"), [
    (f"{OUTSIDE}\n{{not json\n", "packets:2: not a JSON object: Expecting property name "
                                 "enclosed in double quotes"),
    (f"{OUTSIDE}\n[1, 2]\n", "packets:2: not a JSON object: list"),
    ('{"in": "eth0", "src": "198.51.100.7", "dst": "192.0.2.2", "dport": 80.5}\n',
     "packets:1: dport: expected a port number or service name, got '80.5'"),
    ('{"in": "eth0", "src": "198.51.100.7", "dst": "::1"}\n',
     "packets:1: packet mixes address families: 198.51.100.7 -> ::1"),
    ('{"in": "eth0", "dst": "192.0.2.2"}\n', "packets:1: no src (give a src column or field)"),
    ('{"local_origin": true, "dst": "192.0.2.2"}\n',
     "packets:1: no src (a packet file names every packet's source: give a src column; only "
     "'natlens trace --local-origin' without --src infers it)"),
    ('{"in": "eth0", "src": "198.51.100.7", "dst": "192.0.2.2", "colour": 1}\n',
     "packets:1: unknown field 'colour' (known: dport, dst, icmp_type, in, in_interface, "
     "local_origin, mark, proto, sport, src, state)"),
    ("src,dst,in\n198.51.100.7,192.0.2.2\n", "packets:2: 2 cells, the header has 3"),
    ("src,dst,port\n", "packets:1: CSV header: unknown column 'port' (known: dport, dst, "
                       "icmp_type, in, in_interface, local_origin, mark, proto, sport, src, "
                       "state)"),
    ("src,dst,in\n198.51.100.7,192.0.2.300,eth0\n",
     "packets:2: packet destination '192.0.2.300' is not an IP address"),
], ids=["json", "not-object", "port", "families", "no-src", "local-no-src", "field", "cells",
        "header",
        "address"])
def test_bad_packet_line_is_one_line_naming_file_and_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Path("packets").write_text(text)
    status, out, err = _run(["trace", str(FIXTURE), "--packets", "packets"], capsys)
    assert (status, out) == (2, "")
    assert len(err.splitlines()) == 1
    assert err.startswith(f"natlens: error: {message}")


@pytest.mark.parametrize("extra", [["--src", "192.0.2.1"], ["--format", "kernel"]])
def test_packets_excludes_single_packet_options(tmp_path: Path, extra: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    packets = tmp_path / "p"
    packets.write_text(OUTSIDE + "\n")
    status, out, err = _run(["trace", str(FIXTURE), "--packets", str(packets), *extra], capsys)
    assert (status, out) == (2, "")
    assert err.startswith("natlens: error: ")
    assert len(err.splitlines()) == 1


def test_simulate_many_equals_simulate_one_by_one() -> None:
    snap = natlens.load(FIXTURE)
    packets = [
        Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2", dport=port)
        for port in (22, 80, 8080, 8081)] + [
        Packet(local_origin=True, src="192.0.2.2", dst="127.0.0.1", dport=8080),
        Packet(in_interface="docker0", src="172.17.0.2", dst="1.1.1.1", proto="udp", dport=53)]
    many = natlens.simulate_many(snap, packets)
    assert many == [natlens.simulate(snap, p) for p in packets]
    assert "simulate_many" in natlens.__all__


def test_simulate_many_refuses_what_is_not_a_packet() -> None:
    with pytest.raises(natlens.UsageError, match=r"item 1: expected a natlens\.Packet"):
        natlens.simulate_many(natlens.load(FIXTURE), [
            Packet(local_origin=True, src="192.0.2.2", dst="192.0.2.2"),
            "not a packet"])  # type: ignore[list-item]  # the refusal under test


def test_read_packets_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(OUTSIDE + "\n" + OUTSIDE.replace("8080", "70000") + "\n")
    with pytest.raises(PacketFileError) as caught:
        read_packets(str(path))
    assert (caught.value.source, caught.value.line_no) == (str(path), 2)


# -- graph: families of similar chains ----------------------------------------------------------

def _kube_like(services: int) -> str:
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":KUBE-SERVICES - [0:0]",
             ":DOCKER-USER - [0:0]"]
    lines += [f":KUBE-SVC-{n:016d} - [0:0]" for n in range(services)]
    lines += [f":KUBE-SEP-{n:016X} - [0:0]" for n in range(services)]
    lines.append("-A PREROUTING -j KUBE-SERVICES")
    for n in range(services):
        lines.append(f"-A KUBE-SERVICES -d 10.96.0.{n + 1}/32 -p tcp -m tcp --dport 80 "
                     f"-j KUBE-SVC-{n:016d}")
        lines.append(f"-A KUBE-SVC-{n:016d} -j KUBE-SEP-{n:016X}")
        lines.append(f"-A KUBE-SEP-{n:016X} -p tcp -m tcp -j DNAT --to-destination "
                     f"10.128.0.{n + 1}:8080")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("name", "family"), [
    ("KUBE-SVC-ZLYNRJ6JY4TFQ6LH", "KUBE-SVC-*"), ("KUBE-SEP-ZLYNRJ6JY4TFQ6LH", "KUBE-SEP-*"),
    ("KUBE-FW-ABCDEFGHIJKLMNOP", "KUBE-FW-*"), ("cali-fw-cali1a2b3c4d5e6", "cali-fw-*"),
    ("DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-*"), ("DOCKER-USER", None),
    ("KUBE-SERVICES", None), ("INPUT", None),
])
def test_family_of(name: str, family: str | None) -> None:
    assert family_of(name) == family


def test_large_families_collapse_into_one_node() -> None:
    ruleset = natlens.parse_save(_kube_like(MIN_FAMILY + 2))
    chains = collapse(graph.build(ruleset))
    nat = chains["nat"]
    assert sorted(nat.nodes) == ["DOCKER-USER", "KUBE-SEP-*", "KUBE-SERVICES", "KUBE-SVC-*",
                                 "PREROUTING"]
    assert nat.nodes["KUBE-SEP-*"]["members"] == MIN_FAMILY + 2
    assert nat.nodes["KUBE-SEP-*"]["rules"] == MIN_FAMILY + 2
    [data] = nat.get_edge_data("KUBE-SVC-*", "KUBE-SEP-*").values()
    assert data["jumps"] == MIN_FAMILY + 2
    dot = graph.to_dot(chains)
    assert '"nat:KUBE-SEP-*" [label="KUBE-SEP-*\\n12 chains, 12 rules"];' in dot
    assert "12 jumps" in dot
    assert "KUBE-SEP-000" not in dot


def test_small_families_and_kept_chains_stay() -> None:
    ruleset = natlens.parse_save(_kube_like(MIN_FAMILY - 1))
    assert set(collapse(graph.build(ruleset))["nat"].nodes) == \
        set(graph.build(ruleset)["nat"].nodes)
    big = natlens.parse_save(_kube_like(MIN_FAMILY + 5))
    kept = collapse(graph.build(big), keep=["KUBE-SVC-0000000000000003"])["nat"]
    assert "KUBE-SVC-0000000000000003" in kept
    assert "KUBE-SVC-*" in kept
    assert kept.nodes["KUBE-SVC-*"]["members"] == MIN_FAMILY + 4
    on_path = collapse(graph.build(big), highlight=[("nat", "KUBE-SEP-0000000000000002", 1)])
    assert "KUBE-SEP-0000000000000002" in on_path["nat"]


def test_graph_cli_collapses_unless_expand(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    dump = tmp_path / "kube.rules"
    dump.write_text(_kube_like(MIN_FAMILY + 1))
    status, out, _ = _run(["graph", str(dump), "--format", "json"], capsys)
    names = {c["name"] for c in json.loads(out)["tables"][0]["chains"]}
    assert status == 0
    assert {"KUBE-SVC-*", "KUBE-SEP-*"} <= names
    status, out, _ = _run(["graph", str(dump), "--format", "json", "--expand"], capsys)
    names = {c["name"] for c in json.loads(out)["tables"][0]["chains"]}
    assert status == 0
    assert "KUBE-SVC-*" not in names
    assert len(names) == 2 * (MIN_FAMILY + 1) + 3
    status, out, _ = _run(["graph", str(dump), "--format", "json", "--chain", "KUBE-SEP-*"],
                          capsys)
    names = {c["name"] for c in json.loads(out)["tables"][0]["chains"]}
    assert "KUBE-SEP-*" not in names
    assert "KUBE-SVC-*" in names


def test_svg_of_a_huge_graph_warns_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import natlens.graph_families as families

    monkeypatch.setattr(families, "MAX_LAYOUT_NODES", 10)
    dump = tmp_path / "kube.rules"
    dump.write_text(_kube_like(MIN_FAMILY + 1))
    assert too_big_for_layout(families.collapse(graph.build(natlens.parse_save(
        dump.read_text())))) is None
    status, out, err = _run(["graph", str(dump), "--format", "svg", "--expand"], capsys)
    assert status == 0
    assert out.lstrip().startswith("<?xml")
    assert err.splitlines()[0] == ("natlens: warning: 25 chains and 23 jumps to lay out: "
                                   "Graphviz may take a very long time: draw fewer chains "
                                   "(--table TABLE, no --expand) or write --format dot or "
                                   "mermaid instead (no layout)")


# -- progress and start-up ----------------------------------------------------------------------

def test_progress_draws_only_when_enabled() -> None:
    shown = io.StringIO()
    bar = Progress(("parsing", "preparing"), enabled=True, stream=shown, delay=0.0,
                   interval=0.001)
    bar("preparing")
    while not shown.getvalue():
        pass
    bar.close()
    assert shown.getvalue().startswith("\r\x1b[Knatlens: [##########..........] 2/2 preparing")
    assert shown.getvalue().endswith("\r\x1b[K")
    silent = io.StringIO()
    off = Progress(("parsing",), enabled=False, stream=silent, delay=0.0, interval=0.001)
    off("parsing")
    off.close()
    assert silent.getvalue() == ""
    assert not Progress.for_terminal(quiet=True).enabled


def test_cli_prints_no_progress_when_stderr_is_not_a_terminal(
        capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _run(["parse", str(FIXTURE)], capsys)
    assert status == 0
    assert "\r" not in err


HEAVY = ("networkx", "jsonschema", "docker", "tabulate", "natlens.netfilter", "natlens.parse",
         "natlens.snapshot", "natlens.audit", "natlens.nft")


@pytest.mark.parametrize("code", [
    "import natlens",
    "import sys; sys.argv = ['natlens', '--help']\n"
    "from natlens.cli_errors import run\n"
    "from natlens.cli import main\n"
    "try:\n    run(lambda c: main())\nexcept SystemExit:\n    pass",
], ids=["import", "help"])
def test_start_imports_nothing_heavy(code: str) -> None:
    probe = (f"{code}\nimport sys\n"
             f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or "
             f"m in {HEAVY!r} or any(m.startswith(h + '.') for h in {HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert out.splitlines()[-1] == "[]"
