"""Peer expectations from the corpus: kube-proxy's packet-flow tests and Docker's iptables docs.

kube-proxy (kube-proxy/*.flows.json, see SOURCES.md): its test tracer follows every statistic
branch and lists the DNAT destinations; ``masq`` says KUBE-MARK-MASQ was hit. Docker
(docker/iptablesdoc-*/extracted): per scenario the ``iptables -S`` output of each table, built
into one ruleset; the generated docs say what happens to published ports and to packets routed
straight at a container address.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from nf_helpers import standard_host

from natlens.errors import ParseWarning
from natlens.model import Family, Ruleset, TableName
from natlens.netfilter import Packet, Simulator, Trace
from natlens.parse.save import parse_save

# -- kube-proxy ---------------------------------------------------------------------------------

KUBE_HOST: dict[str, Any] = {
    "interfaces": {
        "lo": ["127.0.0.1/8", "::1/128"],
        "eth0": ["192.168.0.2/24", "192.168.99.11/24", "2001:db8::1/64"],
        "eth1": ["192.168.1.2/24", "2001:db8:1::2/64"],
        "cni0": ["10.0.0.1/8"],
    },
    "routes": [
        ["default", "eth0", "192.168.0.1"],
        ["10.0.0.0/8", "cni0"],
        ["192.168.0.0/24", "eth0"],
        ["192.168.99.0/24", "eth0"],
        ["192.168.1.0/24", "eth1"],
    ],
}
"""The node of TestTracePacket: testNodeIPs local, pods 10.0.0.0/8 behind cni0."""

_NOFLUSH_JUMPS = ("*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                  "-A PREROUTING -j KUBE-SERVICES\n-A OUTPUT -j KUBE-SERVICES\n")


def _kube_ruleset(path: Path) -> Ruleset:
    text = path.read_text()
    if ":PREROUTING" not in text:  # a --noflush payload: add the jumps into KUBE-SERVICES
        text = text.replace("*nat\n", _NOFLUSH_JUMPS, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParseWarning)  # kube-proxy's restore input is lenient
        return parse_save(text, source=path.name, strict=False)


def _kube_packet(flow: dict[str, Any]) -> Packet:
    src = flow["source_ip"]
    common = {"src": src, "dst": flow["dest_ip"], "proto": flow["protocol"],
              "sport": 41000, "dport": flow["dest_port"]}
    if src in ("192.168.0.2", "192.168.1.2", "192.168.99.11"):
        return Packet(local_origin=True, **common)
    return Packet(in_interface="cni0" if src.startswith("10.") else "eth0", **common)


def _kube_output(trace: Trace) -> str:
    """kube-proxy's tracer output: the DNAT destinations, or the filter verdict."""
    outcomes = trace.branches or (trace,)
    dnat = [b.final_dst for b in outcomes if b.final_dst != trace.packet.to_dict()["dst"] +
            f":{trace.packet.dport}"]
    if dnat:
        return ", ".join(sorted(set(dnat)))
    if trace.verdict.value != "ACCEPT":
        return trace.verdict.value
    hit_accept = any(s.table == "filter" and s.target == "ACCEPT" and s.rule is not None
                     for s in trace.steps)
    return "ACCEPT" if hit_accept else ""


def _kube_flows(corpus: Path) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    base = corpus / "kube-proxy"
    trace = json.loads((base / "trace-packet.flows.json").read_text())
    out.extend((trace["rules_file"], f) for f in trace["flows"])
    itp = json.loads((base / "internal-traffic-policy.flows.json").read_text())
    for case in itp["cases"]:
        out.extend((case["rules_file"], f) for f in case["flows"])
    return out


def _corpus_dir() -> Path:
    from conftest import corpus_path  # the shared tests/conftest.py helper

    return corpus_path()


KUBE_FLOWS = _kube_flows(_corpus_dir()) if (_corpus_dir() / "kube-proxy").is_dir() else []


def test_kube_flows_are_there(corpus: Path) -> None:
    assert len(_kube_flows(corpus)) == 9


@pytest.mark.parametrize(("rules_file", "flow"), KUBE_FLOWS,
                         ids=[f"{r.split('.')[0]}:{f['name']}" for r, f in KUBE_FLOWS])
def test_kube_proxy_flow(corpus: Path, rules_file: str, flow: dict[str, Any]) -> None:
    sim = Simulator(standard_host(KUBE_HOST), _kube_ruleset(corpus / "kube-proxy" / rules_file))
    trace = sim.trace(_kube_packet(flow))
    assert _kube_output(trace) == flow["output"], str(trace)
    masq = any(s.chain == "KUBE-MARK-MASQ" for s in trace.steps)
    assert masq == flow["masq"], str(trace)


def test_kube_statistic_branches_share_probability(corpus: Path) -> None:
    sim = Simulator(standard_host(KUBE_HOST),
                    _kube_ruleset(corpus / "kube-proxy" / "internal-traffic-policy-cluster.rules"))
    trace = sim.trace(Packet(in_interface="cni0", src="10.0.0.2", dst="172.30.1.1", dport=80,
                             sport=41000))
    probs = {b.final_dst: round(b.probability, 3) for b in trace.branches}
    assert probs == {"10.0.1.1:80": 0.333, "10.0.1.2:80": 0.333, "10.0.1.3:80": 0.333}
    assert next(b.to_dict()["probability"] for b in trace.branches) == pytest.approx(1 / 3, 1e-6)


# -- Docker's own documentation -----------------------------------------------------------------

DOCKER_HOST: dict[str, Any] = {
    "interfaces": {
        "lo": ["127.0.0.1/8"],
        "eth0": ["198.51.100.2/24"],
        "docker0": ["172.17.0.1/16"],
        "bridge1": ["192.0.2.1/24"],
    },
    "routes": [
        ["default", "eth0", "198.51.100.1"],
        ["198.51.100.0/24", "eth0"],
        ["172.17.0.0/16", "docker0"],
        ["192.0.2.0/24", "bridge1"],
    ],
}
"""The docs' daemon: docker0 172.17.0.0/16 and bridge1 192.0.2.0/24 (container c1 192.0.2.2)."""

VERSIONS = ("iptablesdoc-v28.0.0", "iptablesdoc-v28.5.2", "iptablesdoc-docker-v29.7.2")


def docker_ruleset(corpus: Path, version: str, scenario: str) -> Ruleset:
    """All tables of one scenario (``<scenario>.<table>.S.rules``) as one ruleset."""
    folder = corpus / "docker" / version / "extracted"
    tables = []
    for table in TableName:
        path = folder / f"{scenario}.{table.value}.S.rules"
        if path.is_file():
            rs = parse_save(path.read_text(), source=path.name, table=table.value,
                            family=Family.IPV4)
            tables.append(rs[table])
    assert tables, f"no rules for {version}/{scenario}"
    return Ruleset(Family.IPV4, tuple(tables), source=f"{version}/{scenario}")


def docker_trace(corpus: Path, version: str, scenario: str, **packet: Any) -> Trace:
    sim = Simulator(standard_host(DOCKER_HOST), docker_ruleset(corpus, version, scenario))
    return sim.trace(Packet(sport=40000, **packet))


OUTSIDE = {"in_interface": "eth0", "src": "203.0.113.7"}
PUBLISHED = ("usernet-portmap", "usernet-portmap-noproxy", "usernet-portmap-natunprot",
             "usernet-portmap-noicc")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("scenario", PUBLISHED)
def test_docker_published_port_reaches_container(corpus: Path, version: str,
                                                 scenario: str) -> None:
    trace = docker_trace(corpus, version, scenario, dst="198.51.100.2", dport=8080, **OUTSIDE)
    assert (trace.verdict.value, trace.path.value, trace.final_dst, trace.out_interface) == \
        ("ACCEPT", "forward", "192.0.2.2:80", "bridge1"), str(trace)
    dnat = [s for s in trace.steps if s.target == "DNAT"]
    assert [(s.hook, s.table, s.chain) for s in dnat] == [("PREROUTING", "nat", "DOCKER")]
    assert not trace.branches
    if version == "iptablesdoc-v28.0.0":  # FORWARD asks the ipset docker-ext-bridges-v4
        assert any("--match-set docker-ext-bridges-v4" in u for u in trace.uncertain)
    else:
        assert trace.uncertain == ()


@pytest.mark.parametrize("version", VERSIONS)
def test_docker_direct_routed_packet_dropped_in_raw(corpus: Path, version: str) -> None:
    trace = docker_trace(corpus, version, "usernet-portmap", dst="192.0.2.2", dport=80, **OUTSIDE)
    assert trace.verdict.value == "DROP", str(trace)
    last = trace.steps[-1]
    assert (last.hook, last.table, last.chain, last.rule) == ("PREROUTING", "raw", "PREROUTING",
                                                              1)


@pytest.mark.parametrize("version", VERSIONS)
def test_docker_nat_unprotected_accepts_direct_routing(corpus: Path, version: str) -> None:
    trace = docker_trace(corpus, version, "usernet-portmap-natunprot", dst="192.0.2.2", dport=80,
                         **OUTSIDE)
    assert (trace.verdict.value, trace.final_dst, trace.out_interface) == \
        ("ACCEPT", "192.0.2.2:80", "bridge1"), str(trace)
    assert ("filter", "DOCKER", "ACCEPT") in [(s.table, s.chain, s.target) for s in trace.steps]


@pytest.mark.parametrize("version", VERSIONS)
def test_docker_loopback_publish(corpus: Path, version: str) -> None:
    # Published on 127.0.0.1 only: from outside the host address is not DNAT'd ...
    t = docker_trace(corpus, version, "usernet-portmap-lo", dst="198.51.100.2", dport=8080,
                     **OUTSIDE)
    assert (t.path.value, t.final_dst) == ("local", "198.51.100.2:8080"), str(t)
    assert not any(s.target == "DNAT" for s in t.steps)
    # ... a forged 127.0.0.1 from outside is dropped in raw ...
    t = docker_trace(corpus, version, "usernet-portmap-lo", dst="127.0.0.1", dport=8080,
                     **OUTSIDE)
    assert (t.verdict.value, t.steps[-1].table) == ("DROP", "raw"), str(t)
    # ... and the host itself reaches 127.0.0.1:8080 locally (docker-proxy), no DNAT in OUTPUT.
    t = docker_trace(corpus, version, "usernet-portmap-lo", local_origin=True, src="127.0.0.1",
                     dst="127.0.0.1", dport=8080)
    assert (t.verdict.value, t.path.value, t.final_dst) == ("ACCEPT", "local", "127.0.0.1:8080")


@pytest.mark.parametrize("version", VERSIONS)
def test_docker_container_egress_is_masqueraded(corpus: Path, version: str) -> None:
    t = docker_trace(corpus, version, "usernet-portmap", in_interface="bridge1", src="192.0.2.2",
                     dst="203.0.113.7", dport=443)
    assert (t.verdict.value, t.final_src, t.out_interface) == \
        ("ACCEPT", "198.51.100.2:40000", "eth0"), str(t)
