"""CLI conventions a new user expects (issue 14): trace exit codes like grep, service names and
protocol numbers as iptables reads them, case-insensitive choices, warnings about unknown
interfaces, "did you mean udp?", --example, python -m natlens, NO_COLOR/--color and COLUMNS."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from natlens.cli import main
from natlens.sample import example_path

OUTSIDE = ["--in", "eth0", "--src", "198.51.100.7"]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], list[str]]:
    status = main([*argv, "--no-cache"])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err.splitlines()


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.mark.parametrize(("dst", "dport", "status", "verdict"), [
    ("192.0.2.2", "8080", 0, "=> ACCEPT (forward) 198.51.100.7 -> 172.17.0.2:80 via docker0"),
    ("172.17.0.2", "22", 1, "=> DROP (forward) 198.51.100.7 -> 172.17.0.2:22 via docker0"),
])
def test_trace_exit_status_is_grep_like(capsys: pytest.CaptureFixture[str], dst: str, dport: str,
                                        status: int, verdict: str) -> None:
    got, out, err = _run(["trace", "--example", *OUTSIDE, "--dst", dst, "--dport", dport],
                         capsys)
    assert got == status
    assert verdict in out
    assert err == []


def test_trace_bad_input_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    got, out, err = _run(["trace", "--example", *OUTSIDE, "--dst", "192.0.2.2", "--dport",
                          "no-such-service"], capsys)
    assert (got, out) == (2, [])
    assert err == ["natlens: error: --dport: destination port: unknown service name "
                   "'no-such-service' (not in /etc/services for tcp; give a port number "
                   "0..65535)"]


def test_trace_exits_0_when_any_branch_delivers(tmp_path: object,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    rules = Path(str(tmp_path)) / "half.rules"
    rules.write_text("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                     "-A INPUT -m statistic --mode random --probability 0.5 -j DROP\nCOMMIT\n")
    got, out, _ = _run(["trace", str(rules), "--in", "eth0", "--src", "198.51.100.7",
                        "--dst", "192.0.2.2", "--host-addr", "192.0.2.2", "--dport", "22"],
                       capsys)
    assert "branches (2):" in out
    assert got == 0


@pytest.mark.parametrize(("words", "same"), [
    (["--dport", "http-alt", "--proto", "TCP"], ["--dport", "8080", "--proto", "tcp"]),
    (["--dport", "HTTP-ALT", "--proto", "6"], ["--dport", "8080"]),
])
def test_service_names_and_protocol_numbers(capsys: pytest.CaptureFixture[str],
                                            words: list[str], same: list[str]) -> None:
    base = ["trace", "--example", *OUTSIDE, "--dst", "192.0.2.2", "--format", "json"]
    assert _run([*base, *words], capsys) == _run([*base, *same], capsys)


def test_protocol_number_17_is_udp(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(["trace", "--example", *OUTSIDE, "--dst", "192.0.2.2", "--proto",
                           "17", "--dport", "domain"], capsys)
    assert out[1] == "packet: Packet(in eth0, udp 198.51.100.7 -> 192.0.2.2:53, new)"
    assert status == 0


def test_enum_options_ignore_case(capsys: pytest.CaptureFixture[str]) -> None:
    lower = _run(["report", "--example", "--fail-on", "high", "--format", "json"], capsys)
    upper = _run(["report", "--example", "--fail-on", "HIGH", "--format", "JSON"], capsys)
    assert upper == lower
    assert upper[0] == 0
    lower = _run(["graph", "--example", "--table", "nat", "--family", "ipv4"], capsys)
    upper = _run(["graph", "--example", "--table", "NAT", "--family", "IPv4"], capsys)
    assert upper == lower
    assert upper[0] == 0


def test_unknown_interface_is_warned_about(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _run(["trace", "--example", "--in", "eth9", "--src", "198.51.100.7",
                           "--dst", "192.0.2.2", "--dport", "8080"], capsys)
    assert status == 0
    assert err == ["natlens: warning: interface 'eth9' is not in the snapshot (known: lo, ifb0, "
                   "ifb1, eth0, docker0, vetha44da29): the rules treat it as an unknown outside "
                   "interface"]


def test_other_protocol_gets_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    _, _, err = _run(["trace", str(REPO_ROOT / "fixtures" / "udp-5353"), *OUTSIDE, "--dst",
                      "192.0.2.2", "--dport", "5353"], capsys)
    assert err == ["natlens: hint: port 5353 is published for udp only, not tcp: did you mean "
                   "--proto udp?"]
    _, _, err = _run(["trace", str(REPO_ROOT / "fixtures" / "udp-5353"), *OUTSIDE, "--dst",
                      "192.0.2.2", "--dport", "5353", "--proto", "udp"], capsys)
    assert err == []


@pytest.mark.parametrize("command", ["parse", "trace", "report", "exposure", "graph"])
def test_every_command_takes_example(capsys: pytest.CaptureFixture[str], command: str) -> None:
    packet = [*OUTSIDE, "--dst", "192.0.2.2", "--dport", "8080"] if command == "trace" else []
    by_example = _run([command, "--example", *packet], capsys)
    status, out, err = _run([command, str(example_path()), *packet], capsys)
    # the same output, with the sample named instead of its install path in headers
    named = [line.replace(str(example_path()), "example default-bridge-8080") for line in out]
    assert by_example == (status, named, err)
    assert by_example[0] == 0


def test_example_and_path_together_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["report", "--example", "x"], capsys) == (
        2, [], ["natlens: error: report: give PATH or --example, not both"])
    assert _run(["trace", *OUTSIDE, "--dst", "192.0.2.2"], capsys) == (
        2, [], ["natlens: error: trace needs a PATH (a snapshot folder or rule file), or "
                "--example for the sample snapshot shipped with natlens"])


def test_example_is_the_fixture() -> None:
    fixture = REPO_ROOT / "fixtures" / "default-bridge-8080"
    shipped = example_path()
    names = sorted(p.name for p in fixture.iterdir())
    assert names == sorted(p.name for p in shipped.iterdir())
    for name in names:
        assert (shipped / name).read_bytes() == (fixture / name).read_bytes(), name


def test_python_dash_m() -> None:
    done = subprocess.run([sys.executable, "-m", "natlens", "--version"], capture_output=True,
                          text=True, check=False, cwd=REPO_ROOT)
    assert (done.returncode, done.stdout, done.stderr) == (0, "natlens 0.1.0\n", "")


@pytest.mark.parametrize(("env", "flag", "colored"), [
    ({}, "always", True),
    ({"NO_COLOR": "1"}, "auto", False),
    ({"NO_COLOR": "1"}, "always", True),
    ({}, "never", False),
    ({}, "auto", False),  # not a terminal
])
def test_color(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
               env: dict[str, str], flag: str, colored: bool) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _, out, _ = _run(["trace", "--example", *OUTSIDE, "--dst", "192.0.2.2", "--dport", "8080",
                      "--color", flag], capsys)
    verdict = "=> ACCEPT (forward) 198.51.100.7 -> 172.17.0.2:80 via docker0"
    assert (f"\x1b[32m{verdict}\x1b[0m" in out) is colored
    assert (verdict in out) is not colored


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_columns_bound_trace_and_report(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str],
                                        columns: int) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    planted = str(REPO_ROOT / "fixtures" / "planted-faults")
    _, trace, _ = _run(["trace", planted, *OUTSIDE, "--dst", "192.0.2.2", "--dport", "8081"],
                       capsys)
    _, report, _ = _run(["report", planted], capsys)
    table = report[report.index("HIGH (2)"):]
    assert max(len(line) for line in trace) <= columns
    assert max(len(line) for line in table if not line.startswith(("note:", "judged"))) \
        <= max(columns, 78)


def test_trace_paths_relative_after_header(capsys: pytest.CaptureFixture[str]) -> None:
    planted = REPO_ROOT / "fixtures" / "planted-faults"
    _, out, _ = _run(["trace", str(planted), *OUTSIDE, "--dst", "192.0.2.2", "--dport", "8080"],
                     capsys)
    assert out[0] == f"natlens trace for {planted}"
    assert out[2] == (" 1. PREROUTING  nat:PREROUTING#3 (iptables-save.txt:36)  -A PREROUTING "
                      "-m addrtype --dst-type LOCAL -j DOCKER")
    assert not any(str(planted) in line for line in out[1:])


@pytest.mark.parametrize(("argv", "message"), [
    (["--dport", "8080"],
     "natlens: error: --dport: packet options need --trace (they say which packet's path to "
     "highlight)"),
    (["--in", "eth0", "--src", "198.51.100.7"],
     "natlens: error: --in, --src: packet options need --trace (they say which packet's path "
     "to highlight)"),
    (["-o", "graph.png"],
     "natlens: error: graph.png: natlens graph writes .dot, .gv, .mmd, .mermaid, .json, .svg "
     "files, not '.png' (for PNG: write .svg and convert it, e.g. rsvg-convert -o graph.png "
     "graph.svg)"),
    (["-o", "graph.svg", "--format", "dot"],
     "natlens: error: graph.svg: --format dot but the file name says svg"),
    (["--family", "ipv6"],
     f"natlens: error: {example_path()}: no ipv6 rules to draw"),
    (["--family", "ipv4", "--trace", "--in", "eth0", "--src", "2001:db8:1::7", "--dst",
      "2001:db8::2"],
     "natlens: error: --family ipv4 but the traced packet is ipv6: the graph follows the "
     "packet's family"),
])
def test_graph_refuses_what_it_cannot_do(capsys: pytest.CaptureFixture[str], argv: list[str],
                                         message: str) -> None:
    assert _run(["graph", "--example", *argv], capsys) == (2, [], [message])


def test_graph_format_from_extension(tmp_path: object,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    out = Path(str(tmp_path)) / "g.json"
    assert _run(["graph", "--example", "-o", str(out)], capsys) == (0, [], [])
    assert out.read_text().lstrip().startswith("{")


def test_graph_family_follows_the_packet(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    v6 = str(REPO_ROOT / "fixtures" / "ipv6")
    status = main(["graph", v6, "--format", "json", "--trace", "--in", "eth0", "--src",
                   "2001:db8:1::7", "--dst", "2001:db8::2", "--dport", "8080", "--no-cache"])
    data = json.loads(capsys.readouterr().out)
    assert (status, data["family"]) == (0, "ipv6")


def test_report_table_shows_cis(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(["report", str(REPO_ROOT / "docs" / "examples" / "bypass")], capsys)
    assert any(line.strip().startswith("cis: CIS Docker Benchmark") for line in out)


KUBE = ["graph", str(REPO_ROOT / "docs" / "examples" / "kube-svc.txt"), "--table", "nat",
        "--iface", "eth0=192.0.2.10/24", "--trace", "--in", "eth0", "--src", "203.0.113.9",
        "--dst", "10.96.0.10", "--dport", "80", "--format", "dot"]


def test_graph_has_title_caption_legend_and_every_branch(
        capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(KUBE, capsys)
    assert status == 0
    label = next(line for line in out if line.strip().startswith("labelloc=t"))
    kube = REPO_ROOT / "docs" / "examples" / "kube-svc.txt"
    assert label == (
        '  labelloc=t; labeljust=l; fontname="Helvetica"; fontsize=12; label="'
        f"{kube}: ipv4, table nat\\l"
        "packet: Packet(in eth0, tcp 203.0.113.9 -> 10.96.0.10:80, new)\\l"
        "rewrite nat:KUBE-SEP-A#1: DNAT 10.96.0.10:80 -> 10.244.1.5:8080\\l"
        "rewrite nat:KUBE-SEP-B#1: DNAT 10.96.0.10:80 -> 10.244.2.7:8080\\l"
        "=> ACCEPT (forward) 203.0.113.9 -> 10.244.1.5:8080\\l"
        "branches (2, all drawn in red):\\l"
        "  1. p=0.5 ACCEPT forward 203.0.113.9 -> 10.244.1.5:8080\\l"
        '  2. p=0.5 ACCEPT forward 203.0.113.9 -> 10.244.2.7:8080\\l";')
    assert '  subgraph "cluster_legend" {' in out
    for sep in ("KUBE-SEP-A", "KUBE-SEP-B"):  # both 50/50 branches are drawn
        edge = next(line for line in out if f'-> "nat:{sep}"' in line)
        assert "penwidth=2.5" in edge, sep


def test_graph_nft_tables_are_drawn(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(["graph", str(REPO_ROOT / "fixtures" / "firewalld-docker"),
                           "--table", "firewalld", "--format", "dot", "--trace", *OUTSIDE,
                           "--dst", "172.17.0.2", "--dport", "80"], capsys)
    assert status == 0
    assert '  subgraph "cluster_inet firewalld" {' in out
    assert any('=> REJECT (forward) 198.51.100.7 -> 172.17.0.2:80 via docker0' in line
               for line in out)
    forward = next(line for line in out
                   if line.strip().startswith('"inet firewalld:filter_FWD_public" ['))
    assert 'fillcolor="#ffd6d6"' in forward


def test_report_severity_headings_are_coloured(capsys: pytest.CaptureFixture[str]) -> None:
    planted = str(REPO_ROOT / "fixtures" / "planted-faults")
    _, plain, _ = _run(["report", planted, "--color", "never"], capsys)
    _, colored, _ = _run(["report", planted, "--color", "always"], capsys)
    assert "HIGH (2)" in plain
    assert "\x1b[31mHIGH (2)\x1b[0m" in colored
    assert [line for line in colored if "\x1b[" not in line] == \
        [line for line in plain if not line.startswith(("HIGH (", "MEDIUM (", "LOW ("))]


def test_parse_of_both_families_needs_family(capsys: pytest.CaptureFixture[str]) -> None:
    v6 = REPO_ROOT / "fixtures" / "ipv6"
    assert _run(["parse", str(v6)], capsys) == (
        2, [], [f"natlens: error: {v6}: holds IPv4 and IPv6 rules: add --family ipv4 (input "
                "for iptables-restore) or --family ipv6 (for ip6tables-restore)"])
    status, out, _ = _run(["parse", str(v6), "--family", "ipv6"], capsys)
    assert status == 0
    assert out[0].startswith("# Generated by ip6tables-save")
    for family in ("ipv4", "ipv6"):
        status, out, _ = _run(["parse", str(v6), "--family", family, "--format", "json"],
                              capsys)
        assert status == 0
        assert out[0] == "{"  # one ruleset: a dict, as for a single-family input
        assert out[1] == f'  "family": "{family}",'


@pytest.mark.parametrize("text", [
    "src,dst,in,proto,sport,dport\n"
    "198.51.100.7,192.0.2.2,eth0,TCP,40000,http\n"
    "198.51.100.7,192.0.2.2,eth0,6,https,SSH\n",
    '{"in": "eth0", "src": "198.51.100.7", "dst": "192.0.2.2", "proto": "Tcp", "sport": 40000, '
    '"dport": "http"}\n'
    '{"in": "eth0", "src": "198.51.100.7", "dst": "192.0.2.2", "proto": "6", "sport": "https", '
    '"dport": "ssh"}\n',
])
def test_packet_file_reads_values_as_the_options_do(tmp_path: object, text: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    packets = Path(str(tmp_path)) / "packets.txt"
    packets.write_text(text)
    first = 2 if text.startswith("src") else 1
    assert _run(["trace", "--example", "--packets", str(packets)], capsys) == (0, [
        # delivered to the host, whose sockets the example does not show: no connection part
        f"{first}: Packet(in eth0, tcp 198.51.100.7:40000 -> 192.0.2.2:80, new) => ACCEPT "
        "(local) 198.51.100.7:40000 -> 192.0.2.2:80",
        f"{first + 1}: Packet(in eth0, tcp 198.51.100.7:443 -> 192.0.2.2:22, new) => ACCEPT "
        "(local) 198.51.100.7:443 -> 192.0.2.2:22",
    ], [])


def test_packet_file_unknown_service(tmp_path: object,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    packets = Path(str(tmp_path)) / "packets.csv"
    packets.write_text("src,dst,in,dport\n198.51.100.7,192.0.2.2,eth0,htp\n")
    assert _run(["trace", "--example", "--packets", str(packets)], capsys) == (2, [], [
        f"natlens: error: {packets}:2: packet destination port: unknown service name 'htp' (not "
        "in /etc/services for tcp; give a port number 0..65535)"])


@pytest.mark.parametrize(("argv", "line", "header"), [
    (["report"], 0, "natlens report for example default-bridge-8080"),
    (["trace", *OUTSIDE, "--dst", "192.0.2.2", "--dport", "8080"], 0,
     "natlens trace for example default-bridge-8080"),
    (["graph", "--format", "mermaid"], 1,
     "%% host vm (example default-bridge-8080): ipv4, all tables"),
])
def test_example_is_named_not_its_install_path(capsys: pytest.CaptureFixture[str],
                                               argv: list[str], line: int, header: str) -> None:
    status, out, err = _run([argv[0], "--example", *argv[1:]], capsys)
    assert (status in (0, 1), err) == (True, [])
    assert out[line] == header
    assert not any(str(example_path()) in text for text in out)


def test_help_names_the_cache_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    out, err = capsys.readouterr()
    assert (stop.value.code, err) == (0, "")
    assert "    cache     list, locate (dir) or empty (clear) the snapshot cache" in \
        out.splitlines()
    with pytest.raises(SystemExit):
        main(["cache", "--help"])
    assert capsys.readouterr().out.splitlines()[0] == ("usage: natlens cache [-h] [--format "
                                                       "{table,json}] [--json] {list,clear,dir}")


def test_untrusted_cache_folder_warning_is_what_the_docs_quote(
        tmp_path: object, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import os
    import re
    from pathlib import Path

    home = Path(str(tmp_path))
    (home / "natlens").mkdir(mode=0o700)
    (home / "natlens").chmod(0o777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    status = main(["report", "--example"])
    _, err = capsys.readouterr()
    uid = os.geteuid()
    assert (status, err.splitlines()) == (0, [
        f"natlens: warning: snapshot cache: {home / 'natlens'}: owned by uid {uid} with mode 777 "
        f"(needs uid {uid}, mode 700): not used"])
    doc = " ".join((REPO_ROOT / "docs" / "security.md").read_text().split())
    assert ("`natlens: warning: snapshot cache: FOLDER: owned by uid 0 with mode 777 (needs uid "
            "0, mode 700): not used`") in doc
    assert re.search(r"ENTRY: owned by uid \d+ with mode 644 \(needs uid 0, mode 600\): ignored, "
                     r"never loaded`", doc)


def test_security_doc_names_the_nft_conversion_namespace() -> None:
    source = (REPO_ROOT / "natlens" / "nftconvert.py").read_text()
    assert 'ns = f"{run.prefix}nftconv"' in source  # prefix: nlv-<pid>-<random>-
    doc = (REPO_ROOT / "docs" / "security.md").read_text()
    assert "`ip netns add nlv-<pid>-<random>-nftconv`" in doc
    assert "natlens-nftconv" not in doc
