"""``natlens trace`` (exit codes, whole output lines), ``simulate`` on snapshot folders, speed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import natlens
from natlens.cli import main
from natlens.netfilter import Packet, Simulator, simulate
from natlens.netfilter.engine import prepare

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "tests" / "netfilter" / "golden" / "docker-seed-published-port.json"


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.txt"
    path.write_text("\n".join(json.loads(SEED.read_text())["rules"]) + "\n")
    return path


def test_cli_trace_json(seed_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["trace", str(seed_file), "--in", "eth0", "--src", "198.51.100.7",
                   "--dst", "192.0.2.2", "--dport", "8080", "--sport", "40000",
                   "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    assert set(out) == {"packet", "verdict", "path", "final_dst", "final_src", "out_interface",
                        "steps", "branches", "uncertain", "assumptions", "notes", "connection"}
    assert (out["verdict"], out["path"], out["final_dst"], out["out_interface"]) == \
        ("ACCEPT", "forward", "172.17.0.2:80", "docker0")
    assert all(set(s) == {"hook", "source", "table", "chain", "rule", "target", "text"}
               for s in out["steps"])
    # a single file has no host data: what was assumed is said
    # ... and whether 192.0.2.2 is the host's own address forks the trace (headline: it is)
    assert any("whether 192.0.2.2 is an address of this host" in u for u in out["uncertain"])
    assert out["branches"][0]["assumed"][0] == "192.0.2.2 is an address of this host"
    assert {(b["verdict"], b["final_dst"]) for b in out["branches"]} == {
        ("ACCEPT", "172.17.0.2:80"), ("DROP", "192.0.2.2:8080")}
    assert any("inferred from nat:POSTROUTING rule 1" in a for a in out["assumptions"])


def test_cli_trace_table_and_kernel(seed_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["trace", str(seed_file), "--local-origin", "--src", "127.0.0.1", "--dst",
            "127.0.0.1", "--dport", "8080"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"natlens trace for {seed_file}"
    assert lines[1] == "packet: Packet(local, tcp 127.0.0.1 -> 127.0.0.1:8080, new)"
    assert "=> ACCEPT (local) 127.0.0.1 -> 127.0.0.1:8080 via lo" in lines
    assert main([*args[:2], "--in", "eth0", "--src", "198.51.100.7", "--dst", "192.0.2.2",
                 "--dport", "8080", "--format", "kernel"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "TRACE: nat:PREROUTING:rule:1", "TRACE: nat:DOCKER:rule:2", "TRACE: filter:FORWARD:rule:1",
        "TRACE: filter:DOCKER-USER:rule:1", "TRACE: filter:FORWARD:rule:3",
        "TRACE: filter:DOCKER:rule:1", "TRACE: nat:POSTROUTING:policy:ACCEPT"]


@pytest.mark.parametrize(("args", "message"), [
    (["--in", "eth0", "--src", "198.51.100.7", "--dst", "192.0.2.2", "--state", "bogus"],
     "natlens: error: unknown state 'bogus'"),
    (["--src", "198.51.100.7", "--dst", "192.0.2.2"],
     # --packets FILE made --in/--local-origin optional for argparse: the check moved to trace
     "natlens: error: trace needs --in IFACE and --src, or --local-origin, and --dst (or "
     "--packets FILE)\n"),
    (["--in", "eth0", "--local-origin", "--src", "1.2.3.4", "--dst", "1.2.3.5"],
     "natlens: error: argument --local-origin: not allowed with argument --in"),
])
def test_cli_trace_usage_errors(seed_file: Path, capsys: pytest.CaptureFixture[str],
                                args: list[str], message: str) -> None:
    try:
        status = main(["trace", str(seed_file), *args])  # bad values: NatlensError -> 2
    except SystemExit as exc:  # bad command line: argparse exits 2
        status = exc.code  # type: ignore[assignment]
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_simulate_on_snapshot_folders() -> None:
    snap = natlens.load(REPO / "fixtures" / "default-bridge-8080")
    t = simulate(snap, Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2",
                              sport=40000, dport=8080))
    assert (t.verdict.value, t.final_dst, t.out_interface) == ("ACCEPT", "172.17.0.2:80",
                                                               "docker0")
    assert t.assumptions == ()  # meta.json's sysctls say forwarding is on: nothing assumed
    six = natlens.load(REPO / "fixtures" / "ipv6")
    t = simulate(six, Packet(in_interface="eth0", src="2001:db8::7", dst="fd00::2", sport=40000,
                             dport=8080))
    assert (t.verdict.value, t.final_dst, t.final_src) == \
        ("ACCEPT", "[fd00:dead:beef::242:ac11:2]:80", "[2001:db8::7]:40000")
    assert simulate(six, Packet(in_interface="eth0", src="2001:db8::7", dst="fd00::2",
                                sport=40000, dport=8080)) == t  # cached simulator, same result


def _kube_dump(services: int, endpoints: int) -> str:
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from gen_kube import generate
    finally:
        sys.path.pop(0)
    text: str = generate(services, endpoints)
    return text


def test_large_ruleset_traces_each_endpoint_as_a_branch() -> None:
    """A kube-proxy-sized dump: every served cluster IP forks into its 3 endpoints (speed is
    measured by benchmarks/bench_trace.py --check, not here)."""
    from nf_helpers import standard_host

    rs = natlens.parse_save(_kube_dump(3_000, 3))
    assert len(rs["nat"]["KUBE-SERVICES"]) > 2_700
    prepare(rs)
    sim = Simulator(standard_host(), rs)
    packets = [Packet(in_interface="eth0", src="198.51.100.7",
                      dst=f"10.96.{(10 + i) // 256}.{(10 + i) % 256}", sport=40000,
                      dport=80 + i % 20) for i in range(0, 3_000, 7)]
    traces = [sim.trace(p) for p in packets]
    served = [t for t in traces if t.branches]
    assert served
    assert all(len(t.branches) == 3 for t in served)


def test_public_names_sorted_and_present() -> None:
    import natlens.netfilter as nf

    assert list(nf.__all__) == sorted(nf.__all__)
    assert all(hasattr(nf, name) for name in nf.__all__)
    assert nf.simulate is simulate


def test_docstring_examples() -> None:
    import doctest

    from natlens.netfilter import matches, packet

    for module in (matches, packet):
        result = doctest.testmod(module)
        assert result.attempted > 0
        assert result.failed == 0


def test_host_for_is_the_host_the_walks_see(seed_file: Path) -> None:
    """``Simulator.host_for(family)``: the snapshot's host plus the routes inferred from
    Docker's MASQUERADE rule (what ``exposure_share`` reads); ``host`` stays as given."""
    sim = natlens.load(seed_file).simulator
    inferred = [r for r in sim.host_for(4).routes if r not in sim.host.routes]
    assert [(str(r.network), r.dev) for r in inferred] == [("172.17.0.0/16", "docker0")]
    assert any("inferred from nat:POSTROUTING rule 1" in a
               for a in sim.host_for(4).assumptions)
    assert sim.host_for(6).routes == sim.host.routes
    with pytest.raises(KeyError):
        sim.host_for(5)
