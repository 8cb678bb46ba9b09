"""``natlens verify``: the simulator against the real kernel, in throwaway network namespaces.

Every fixture snapshot (captured from a real Docker daemon) is mirrored in namespaces and at
least 50 packets per snapshot (every published port from outside, from containers and from the
host, the ports the NAT rules name, container traffic, seeded random packets) go through the
kernel; natlens must agree on verdict, path, final addresses, output interface, conntrack's NAT
mapping and the rules whose counters moved. Needs root (``kernel`` marker); skipped otherwise.

Two simulator bugs this check found are pinned by focused tests: MASQUERADE of a packet leaving
through ``lo`` (the kernel's ``inet_select_addr`` never takes the host-scope 127.0.0.1; IPv6
source selection keeps the destination itself), and martian sources arriving from outside (the
host's own address, 127.0.0.1, 0.0.0.0), which the kernel's routing drops after PREROUTING.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import natlens
import natlens.verify
from natlens.cli import main
from natlens.netfilter import Packet
from natlens.verify import ns as netns
from natlens.verify.compare import VerifyError, verify
from natlens.verify.generate import Probe
from natlens.verify.probe import Prober, parse_conntrack, parse_counters

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "iptables-save.txt").is_file())


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    for tool in ("ip", "iptables-restore", "conntrack"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} missing (root but no {tool}: the kernel tests cannot run)")


def _mine() -> list[str]:
    return [n for n in netns.listing() if n.startswith(f"{netns.PREFIX}{os.getpid()}-")]


# -- the differential check per fixture ---------------------------------------------------------


# Open disagreements with the kernel, by fixture (each one named as an xfail until fixed). The
# last one (multi-interface-ufw: an IPv6 packet to an unrouted address from a sender with no
# route back) was natlens answering REJECT where the kernel cannot send its ICMPv6 error.
OPEN: dict[str, str] = {}


@pytest.mark.kernel
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(reason=OPEN[n]))
                                  if n in OPEN else n for n in NAMES])
def test_fixture_agrees_with_kernel(name: str) -> None:
    _needs_root()
    report = verify(natlens.load(FIXTURES / name), packets=60, seed=0)
    assert _mine() == [], "namespaces left behind"
    assert report.tried >= 50
    assert {r.probe.source for r in report.results} == {"outside", "container", "host"}
    assert report.disagreements == [], report.render()
    # real connections (test_verify_connections.py): every fixture opens at least 25
    assert len(report.connections) >= 25, report.render()
    assert report.connection_disagreements == [], report.render()


@pytest.mark.kernel
def test_every_published_port_is_tried_from_every_source() -> None:
    _needs_root()
    report = verify(natlens.load(FIXTURES / "planted-faults"), packets=50, seed=1)
    for port in (8080, 8081, 8082):
        kinds = {r.probe.source for r in report.results if r.probe.packet.dport == port}
        assert kinds == {"outside", "container", "host"}, port
    eth0 = ipaddress.ip_address("192.0.2.2")
    by_why = {(r.probe.source, r.probe.packet.dport): r for r in report.results
              if r.probe.packet.dst == eth0}
    # the planted faults behave in the kernel as the README says, and natlens agrees
    redirect = by_why[("outside", 8081)]
    assert redirect.observation.final_dst == "192.0.2.2:3128"
    assert redirect.agrees
    stale = by_why[("outside", 8090)]
    assert stale.observation.verdict.value == "DROP"
    assert stale.agrees


@pytest.mark.kernel
def test_masquerade_out_of_lo_ipv4() -> None:
    _needs_root()
    packet = Packet(local_origin=True, src="172.17.0.1", dst="172.17.0.1", proto="udp",
                    sport=20001, dport=80)
    report = verify(natlens.load(FIXTURES / "default-bridge-8080"),
                    probes=[Probe(packet, "host", "own bridge address")])
    (result,) = report.results
    assert result.observation.final_src == "192.0.2.2:20001"
    assert result.agrees, report.render()


@pytest.mark.kernel
def test_masquerade_out_of_lo_ipv6() -> None:
    _needs_root()
    packet = Packet(local_origin=True, src="fd00:dead:beef::1", dst="fd00:dead:beef::1",
                    proto="tcp", sport=20001, dport=80)
    report = verify(natlens.load(FIXTURES / "ipv6"),
                    probes=[Probe(packet, "host", "own bridge address")])
    (result,) = report.results
    assert result.observation.final_src == "[fd00:dead:beef::1]:20001"
    assert result.agrees, report.render()


@pytest.mark.kernel
def test_martian_sources_are_dropped() -> None:
    _needs_root()
    probes = [Probe(Packet(in_interface="eth0", src=src, dst="192.0.2.2", sport=20001 + n,
                           dport=8080), "outside", "martian source")
              for n, src in enumerate(("192.0.2.2", "127.0.0.1", "0.0.0.0"))]
    report = verify(natlens.load(FIXTURES / "default-bridge-8080"), probes=probes)
    assert [r.observation.verdict.value for r in report.results] == ["DROP"] * 3
    assert report.disagreements == [], report.render()


@pytest.mark.kernel
def test_no_route_error_needs_a_route_back_to_the_sender() -> None:
    """A packet to an unrouted address: the routing code answers ICMP destination unreachable
    only when it has a route back to the sender (icmpv6_send looks one up); multi-interface-ufw
    has no IPv6 default route, so 2001:db8::9 gets nothing while the link-local fe80::9 (via
    eth0's fe80::/64) gets the error."""
    _needs_root()
    probes = [Probe(Packet(in_interface="eth0", src=src, dst="2001:db8::4d4", proto="udp",
                           sport=20001 + n, dport=33089), "outside", "unrouted destination")
              for n, src in enumerate(("2001:db8::9", "fe80::9"))]
    report = verify(natlens.load(FIXTURES / "multi-interface-ufw"), probes=probes)
    assert [r.observation.verdict.value for r in report.results] == ["DROP", "REJECT"], \
        report.render()
    assert [r.trace.verdict.value for r in report.results] == ["DROP", "REJECT"]
    assert report.disagreements == [], report.render()


@pytest.mark.kernel
def test_legacy_backend() -> None:
    """A snapshot captured with iptables-legacy is replayed with iptables-legacy."""
    _needs_root()
    snap = natlens.load(FIXTURES / "no-icc")
    legacy = natlens.Snapshot(
        ruleset=snap.ruleset, ruleset6=snap.ruleset6, path=snap.path, addresses=snap.addresses,
        routes=snap.routes, containers=snap.containers, networks=snap.networks,
        meta={**snap.meta, "iptables_backend": "legacy"}, notes=snap.notes)
    report = verify(legacy, packets=50, seed=1)
    assert report.backend == "legacy"
    assert report.tried >= 50
    assert report.disagreements == [], report.render()
    icc = [r for r in report.results
           if r.probe.source == "container"
           and r.probe.packet.dst == ipaddress.ip_address("10.99.1.2")]
    assert icc
    assert all(r.observation.verdict.value == "DROP" for r in icc)


# -- the check can fail -------------------------------------------------------------------------


@pytest.mark.kernel
def test_wrong_expectation_is_a_disagreement(tmp_path: Path) -> None:
    _needs_root()
    source = FIXTURES / "default-bridge-8080"
    wrong_dir = tmp_path / "wrong"
    shutil.copytree(source, wrong_dir)
    rules = wrong_dir / "iptables-save.txt"
    text = rules.read_text()
    assert "--to-destination 172.17.0.2:80" in text
    # natlens is told the container listens on 81 (DNAT and ACCEPT agree): it still accepts
    # the packet, so only the destination port tells the two apart
    rules.write_text(text.replace("--to-destination 172.17.0.2:80",
                                  "--to-destination 172.17.0.2:81")
                     .replace("--dport 80 ", "--dport 81 "))
    packet = Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2", sport=20001,
                    dport=8080)
    report = verify(natlens.load(source), probes=[Probe(packet, "outside", "planted")],
                    expectation=natlens.load(wrong_dir))
    assert report.tried == 1
    assert report.agreements == 0
    (bad,) = report.disagreements
    assert bad.observation.final_dst == "172.17.0.2:80"
    assert "final destination: natlens 172.17.0.2:81, kernel 172.17.0.2:80" in \
        bad.differences, bad.differences
    assert "disagreement 1" in report.render()
    # the right expectation agrees on the same packet
    right = verify(natlens.load(source), probes=[Probe(packet, "outside", "planted")])
    assert right.disagreements == []


@pytest.mark.kernel
def test_reject_is_seen_as_reject(tmp_path: Path) -> None:
    """REJECT rules (INPUT, FORWARD via DOCKER-USER, OUTPUT) planted into a real snapshot: the
    kernel's reset / ICMP error is recognised, and natlens agrees on every packet."""
    _needs_root()
    folder = tmp_path / "reject"
    shutil.copytree(FIXTURES / "default-bridge-8080", folder)
    rules = folder / "iptables-save.txt"
    text = rules.read_text()
    text = text.replace(
        "[0:0] -A FORWARD -j DOCKER-USER\n",
        "[0:0] -A INPUT -p tcp -m tcp --dport 22 -j REJECT --reject-with icmp-port-unreachable\n"
        "[0:0] -A INPUT -p udp -m udp --dport 53 -j REJECT --reject-with icmp-admin-prohibited\n"
        "[0:0] -A FORWARD -j DOCKER-USER\n"
        "[0:0] -A OUTPUT -d 198.51.100.7/32 -p tcp -m tcp --dport 443 -j REJECT "
        "--reject-with tcp-reset\n", 1)
    text = text.replace("[0:0] -A DOCKER-USER -j RETURN",
                        "[0:0] -A DOCKER-USER -s 203.0.113.0/24 -p tcp -j REJECT --reject-with "
                        "tcp-reset\n[0:0] -A DOCKER-USER -j RETURN")
    rules.write_text(text)
    snap = natlens.load(folder)
    planted = [
        Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2", sport=20001, dport=22),
        Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2", proto="udp",
               sport=20002, dport=53),
        Packet(in_interface="eth0", src="203.0.113.9", dst="192.0.2.2", sport=20003, dport=8080),
        Packet(local_origin=True, src="192.0.2.2", dst="198.51.100.7", sport=20004, dport=443),
    ]
    report = verify(snap, probes=[Probe(p, "planted", "REJECT rule") for p in planted])
    assert [r.observation.verdict.value for r in report.results] == ["REJECT"] * 4
    assert report.disagreements == [], report.render()
    more = verify(snap, packets=50, seed=2)
    assert more.disagreements == [], more.render()


# -- cleanup ------------------------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_no_namespace_left_after_an_error(monkeypatch: pytest.MonkeyPatch,
                                          error: type[BaseException]) -> None:
    _needs_root()
    real = Prober.probe
    calls = {"n": 0}

    def failing(self: Prober, packet: Packet, tag: int) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            assert _mine() != []  # the topology is up while probing
            raise error("boom")
        return real(self, packet, tag)

    monkeypatch.setattr(Prober, "probe", failing)
    with pytest.raises(error):
        verify(natlens.load(FIXTURES / "user-network"), packets=10)
    assert calls["n"] == 3
    assert _mine() == []


@pytest.mark.kernel
def test_cleanup_removes_a_crashed_run() -> None:
    _needs_root()
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(done.stdout)
    name = f"{netns.PREFIX}{dead}-r"
    netns.add(name)
    try:
        assert name in netns.listing()
        removed = natlens.verify.cleanup()
        assert (dead, (name,)) in [(r.pid, r.names) for r in removed]
        assert name not in netns.listing()
    finally:
        netns.delete(name)


@pytest.mark.kernel
def test_cli_verify(capsys: pytest.CaptureFixture[str]) -> None:
    _needs_root()
    status = main(["verify", str(FIXTURES / "udp-5353"), "--packets", "50", "--seed", "7",
                   "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["tried"] >= 50
    assert out["summary"]["connections"]["tried"] >= 25
    failed = out["summary"]["disagreements"] or out["summary"]["connections"]["disagreements"]
    assert status == (1 if failed else 0)
    assert any(r["packet"]["proto"] == "udp" and r["packet"]["dport"] == 5353
               for r in out["results"])
    assert _mine() == []


# -- without root -------------------------------------------------------------------------------


def test_cli_verify_needs_root(monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("natlens.verify.compare.os.geteuid", lambda: 1000)
    assert main(["verify", str(FIXTURES / "default-bridge-8080")]) == 2
    assert "needs root" in capsys.readouterr().err


def test_cli_verify_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["verify", str(FIXTURES / "udp-5353"), "--packets", "0"]) == 2


def test_verify_error_is_a_natlens_error() -> None:
    assert issubclass(VerifyError, natlens.NatlensError)


def test_parse_counters() -> None:
    text = ("*nat\n:PREROUTING ACCEPT [3:180]\n:DOCKER - [0:0]\n"
            "[2:120] -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n"
            "[0:0] -A DOCKER -i docker0 -j RETURN\n[1:60] -A DOCKER -p tcp -j DNAT\nCOMMIT\n"
            "*filter\n:FORWARD DROP [1:60]\n[5:300] -A FORWARD -j DOCKER-USER\nCOMMIT\n")
    assert parse_counters(text) == {
        ("nat", "PREROUTING", None): 3, ("nat", "PREROUTING", 1): 2, ("nat", "DOCKER", 1): 0,
        ("nat", "DOCKER", 2): 1, ("filter", "FORWARD", None): 1, ("filter", "FORWARD", 1): 5,
    }


def test_parse_conntrack() -> None:
    text = ("tcp      6 119 SYN_SENT src=198.51.100.7 dst=192.0.2.2 sport=20001 dport=8080 "
            "[UNREPLIED] src=172.17.0.2 dst=198.51.100.7 sport=80 dport=20001 mark=0 use=1\n"
            "icmpv6   58 29 src=fd00::1 dst=fd00::2 type=128 code=0 id=7 src=fd00::2 "
            "dst=fd00::1 type=129 code=0 id=7 mark=0 use=1\n"
            "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.\n")
    tcp, icmp = parse_conntrack(text)
    assert tcp.original == ("198.51.100.7:20001", "192.0.2.2:8080")
    assert (tcp.nat_dst, tcp.nat_src) == ("172.17.0.2:80", "198.51.100.7:20001")
    assert icmp.reply == ("fd00::2", "fd00::1")
