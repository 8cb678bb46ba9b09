"""The real snapshots in fixtures/ (captured from dockerd): what each README says a trace shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import natlens
from natlens.netfilter import Packet, simulate

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
OUT = {"in_interface": "eth0", "src": "198.51.100.7", "dst": "192.0.2.2", "sport": 40000}
UNI = "br-7164ac749e0f"
NOICC = "br-15235b17cea3"

# fixture, packet, expected (verdict, path, final_dst, out_interface), a step that must be there
# as (table, chain, target) or None.
CASES: list[tuple[str, dict[str, Any], tuple[str, str, str, str | None],
                  tuple[str, str, str] | None]] = [
    # scripts/fixtures-exposure.sh: rule-level faults (a DNAT to the wrong port, a dead allow)
    ("planted-rules", {**OUT, "dport": 8081},
     ("DROP", "forward", "172.17.0.3:81", "docker0"), ("nat", "DOCKER", "DNAT")),
    ("planted-rules", {**OUT, "proto": "udp", "dport": 51820},
     ("DROP", "local", "192.0.2.2:51820", None), ("filter", "INPUT", "DROP")),
    ("planted-rules", {**OUT, "dport": 8080},
     ("ACCEPT", "forward", "172.17.0.2:80", "docker0"), ("filter", "DOCKER", "ACCEPT")),
    # scripts/fixtures-exposure.sh: ufw on eth0 only, a VPN on wg0
    ("multi-interface-ufw", {**OUT, "dport": 8080},
     ("ACCEPT", "forward", "172.17.0.2:80", "docker0"), ("filter", "DOCKER", "ACCEPT")),
    ("multi-interface-ufw", {**OUT, "dport": 9999},
     ("DROP", "local", "192.0.2.2:9999", None), ("filter", "ufw-user-input", "DROP")),
    ("multi-interface-ufw", {"in_interface": "wg0", "src": "10.8.0.7", "dst": "10.8.0.1",
                             "sport": 40000, "dport": 9999},
     ("ACCEPT", "local", "10.8.0.1:9999", None), None),
    # Docker 28's raw drop of direct access, a DOCKER-USER allow for wg0 behind it
    ("docker28-raw-drop", {"in_interface": "wg0", "src": "10.8.0.7", "dst": "172.17.0.2",
                           "sport": 40000, "dport": 80},
     ("DROP", "forward", "172.17.0.2:80", None), ("raw", "PREROUTING", "DROP")),
    ("docker28-raw-drop", {**OUT, "dst": "172.17.0.2", "dport": 80},
     ("DROP", "forward", "172.17.0.2:80", None), ("raw", "PREROUTING", "DROP")),
    ("docker28-raw-drop", {**OUT, "dport": 8080},
     ("ACCEPT", "forward", "172.17.0.2:80", "docker0"), ("filter", "DOCKER", "ACCEPT")),
    # --icc=false without the userland proxy: the hairpin is DNATed into docker0 and dropped
    ("icc-no-proxy", {"in_interface": "docker0", "src": "172.17.0.3", "dst": "192.0.2.2",
                      "sport": 40000, "dport": 8080},
     ("DROP", "forward", "172.17.0.2:80", "docker0"), ("filter", "FORWARD", "DROP")),
    ("icc-no-proxy", {**OUT, "dport": 8080},
     ("ACCEPT", "forward", "172.17.0.2:80", "docker0"), ("filter", "DOCKER", "ACCEPT")),
    ("icc-no-proxy", {"in_interface": "docker0", "src": "172.17.0.3", "dst": "172.17.0.2",
                      "sport": 40000, "dport": 80},
     ("DROP", "forward", "172.17.0.2:80", "docker0"), ("filter", "FORWARD", "DROP")),
    # an IPv4-only DOCKER-USER block; IPv6 walks around it
    ("ipv6-docker-user-v4only", {**OUT, "dport": 8080},
     ("DROP", "forward", "172.17.0.2:80", "docker0"), ("filter", "DOCKER-USER", "DROP")),
    ("ipv6-docker-user-v4only", {"in_interface": "eth0", "src": "2001:db8::7", "dst": "fd00::2",
                                 "sport": 40000, "dport": 8080},
     ("ACCEPT", "forward", "[fd00:dead:beef::242:ac11:2]:80", "docker0"),
     ("filter", "DOCKER", "ACCEPT")),
    ("ipv6-docker-user-v4only", {"in_interface": "docker0", "src": "172.17.0.2",
                                 "dst": "198.51.100.7", "sport": 40000, "dport": 8080},
     ("ACCEPT", "forward", "198.51.100.7:8080", "eth0"), None),
    ("default-bridge-8080", {**OUT, "dport": 8080},
     ("ACCEPT", "forward", "172.17.0.2:80", "docker0"), ("filter", "DOCKER", "ACCEPT")),
    ("default-bridge-8080", {"local_origin": True, "src": "192.0.2.2", "dst": "192.0.2.2",
                             "dport": 8080},
     ("ACCEPT", "output", "172.17.0.2:80", "docker0"), ("nat", "DOCKER", "DNAT")),
    ("default-bridge-8080", {"local_origin": True, "src": "127.0.0.1", "dst": "127.0.0.1",
                             "dport": 8080},
     ("ACCEPT", "local", "127.0.0.1:8080", "lo"), None),
    ("docker-user-policy", {**OUT, "src": "203.0.113.9", "dport": 8080},
     ("DROP", "forward", "172.17.0.2:80", "docker0"), ("filter", "DOCKER-USER", "DROP")),
    ("docker-user-policy", {**OUT, "dport": 8080},
     ("ACCEPT", "forward", "172.17.0.2:80", "docker0"), ("filter", "DOCKER", "ACCEPT")),
    ("internal-network", {**OUT, "dst": "10.99.2.2", "dport": 80},
     ("DROP", "forward", "10.99.2.2:80", "br-d8eb1291d06c"),
     ("filter", "DOCKER-ISOLATION-STAGE-1", "DROP")),
    ("internal-network", {"in_interface": "br-d8eb1291d06c", "src": "10.99.2.2",
                          "dst": "198.51.100.7", "sport": 40000, "dport": 443},
     ("DROP", "forward", "198.51.100.7:443", "eth0"),
     ("filter", "DOCKER-ISOLATION-STAGE-1", "DROP")),
    ("internal-network", {**OUT, "dport": 8083}, ("ACCEPT", "local", "192.0.2.2:8083", None),
     None),
    ("ipv6", {**OUT, "src": "2001:db8::7", "dst": "fd00::2", "dport": 8080},
     ("ACCEPT", "forward", "[fd00:dead:beef::242:ac11:2]:80", "docker0"),
     ("nat", "DOCKER", "DNAT")),
    ("loopback-9000", {**OUT, "dport": 9000}, ("ACCEPT", "local", "192.0.2.2:9000", None), None),
    ("loopback-9000", {"local_origin": True, "src": "127.0.0.1", "dst": "127.0.0.1",
                       "dport": 9000},
     ("ACCEPT", "local", "127.0.0.1:9000", "lo"), None),
    ("loopback-9000", {**OUT, "dst": "172.17.0.2", "dport": 80},
     ("ACCEPT", "forward", "172.17.0.2:80", "docker0"), ("filter", "DOCKER", "ACCEPT")),
    ("no-icc", {"in_interface": NOICC, "src": "10.99.1.3", "dst": "10.99.1.2", "sport": 40000,
                "dport": 80},
     ("DROP", "forward", "10.99.1.2:80", NOICC), ("filter", "FORWARD", "DROP")),
    ("no-icc", {**OUT, "dport": 8080}, ("ACCEPT", "forward", "10.99.1.2:80", NOICC),
     ("filter", "DOCKER", "ACCEPT")),
    ("no-icc", {"in_interface": NOICC, "src": "10.99.1.3", "dst": "192.0.2.2", "sport": 40000,
                "dport": 8080},
     ("ACCEPT", "local", "192.0.2.2:8080", None), ("nat", "DOCKER", "RETURN")),
    ("no-userland-proxy", {"local_origin": True, "src": "127.0.0.1", "dst": "127.0.0.1",
                           "dport": 8080},
     ("ACCEPT", "output", "172.17.0.2:80", "docker0"), ("nat", "DOCKER", "DNAT")),
    ("no-userland-proxy", {"in_interface": "docker0", "src": "172.17.0.2", "dst": "192.0.2.2",
                           "sport": 40000, "dport": 8080},
     ("ACCEPT", "forward", "172.17.0.2:80", "docker0"), ("nat", "POSTROUTING", "MASQUERADE")),
    ("planted-faults", {**OUT, "dport": 8090},
     ("DROP", "forward", "172.17.0.99:80", "docker0"), ("filter", "FORWARD", "DROP")),
    ("planted-faults", {**OUT, "dport": 8081},
     ("ACCEPT", "local", "192.0.2.2:3128", None), ("nat", "PREROUTING", "REDIRECT")),
    ("planted-faults", {**OUT, "dst": "203.0.113.5", "dport": 8082},
     ("ACCEPT", "forward", "172.17.0.4:80", "docker0"), ("nat", "PREROUTING", "DNAT")),
    ("planted-faults", {**OUT, "dport": 8080},
     ("ACCEPT", "forward", "172.17.0.2:80", "docker0"), ("filter", "DOCKER", "ACCEPT")),
    ("planted-faults", {"in_interface": "docker0", "src": "172.17.0.2", "dst": "198.51.100.7",
                        "sport": 40000, "dport": 8080},
     ("DROP", "forward", "198.51.100.7:8080", "eth0"), ("filter", "DOCKER-USER", "DROP")),
    ("port-range", {**OUT, "dport": 7001}, ("ACCEPT", "forward", "172.17.0.2:7001", "docker0"),
     ("filter", "DOCKER", "ACCEPT")),
    ("port-range", {**OUT, "dport": 7003}, ("ACCEPT", "local", "192.0.2.2:7003", None), None),
    ("udp-5353", {**OUT, "proto": "udp", "dport": 5353},
     ("ACCEPT", "forward", "172.17.0.2:53", "docker0"), ("filter", "DOCKER", "ACCEPT")),
    ("udp-5353", {**OUT, "dport": 5353}, ("ACCEPT", "local", "192.0.2.2:5353", None), None),
    ("user-network", {**OUT, "dport": 8081}, ("ACCEPT", "forward", "10.99.0.2:80", UNI),
     ("filter", "DOCKER", "ACCEPT")),
    ("user-network", {"in_interface": "docker0", "src": "172.17.0.2", "dst": "10.99.0.2",
                      "sport": 40000, "dport": 80},
     ("DROP", "forward", "10.99.0.2:80", UNI), ("filter", "DOCKER-ISOLATION-STAGE-2", "DROP")),
    # third traces per README (the host itself, the other family, the rest of a range)
    ("docker-user-policy", {"local_origin": True, "src": "192.0.2.2", "dst": "192.0.2.2",
                            "dport": 8080},
     ("ACCEPT", "output", "172.17.0.2:80", "docker0"), ("nat", "DOCKER", "DNAT")),
    ("ipv6", {"local_origin": True, "src": "fd00::2", "dst": "fd00::2", "dport": 8080},
     ("ACCEPT", "output", "[fd00:dead:beef::242:ac11:2]:80", "docker0"),
     ("nat", "DOCKER", "DNAT")),
    ("ipv6", {**OUT, "dport": 8080},
     ("ACCEPT", "forward", "172.17.0.2:80", "docker0"), ("filter", "DOCKER", "ACCEPT")),
    ("no-userland-proxy", {**OUT, "dport": 8080},
     ("ACCEPT", "forward", "172.17.0.2:80", "docker0"), ("filter", "DOCKER", "ACCEPT")),
    ("port-range", {**OUT, "dport": 7002},
     ("ACCEPT", "forward", "172.17.0.2:7002", "docker0"), ("nat", "DOCKER", "DNAT")),
    ("udp-5353", {"local_origin": True, "src": "192.0.2.2", "dst": "192.0.2.2", "proto": "udp",
                  "dport": 5353},
     ("ACCEPT", "output", "172.17.0.2:53", "docker0"), ("nat", "DOCKER", "DNAT")),
    ("user-network", {"local_origin": True, "src": "192.0.2.2", "dst": "192.0.2.2",
                      "dport": 8081},
     ("ACCEPT", "output", "10.99.0.2:80", UNI), ("nat", "DOCKER", "DNAT")),
]


# The fixtures whose firewall is more than Docker's iptables rules (scripts/fixtures-netns.sh):
# a step that must be there is (source, table, chain, target, rule), the rule an iptables index
# (1-based), an nft handle, or None for a policy.
LOCAL = {"local_origin": True, "src": "192.0.2.2", "dst": "192.0.2.2", "sport": 40000}
FROM_DOCKER0 = {"in_interface": "docker0", "src": "172.17.0.2", "dst": "198.51.100.7",
                "sport": 40000, "dport": 443}
Where = tuple[str, str, str, str, int | None]
SOURCE_CASES: list[tuple[str, dict[str, Any], tuple[str, str, str, str | None], Where]] = [
    ("firewalld-docker", {**OUT, "dport": 8080},
     ("ACCEPT", "forward", "172.17.0.2:80", "docker0"),
     ("nft", "firewalld", "filter_FORWARD", "accept", 137)),  # ct status dnat accept
    ("firewalld-docker", {**OUT, "dst": "172.17.0.2", "dport": 80},
     ("REJECT", "forward", "172.17.0.2:80", "docker0"),
     ("nft", "firewalld", "filter_FWD_public", "reject", 191)),
    ("firewalld-docker", {**OUT, "dport": 2222},
     ("DROP", "forward", "172.17.0.2:22", "docker0"),
     ("iptables-nft", "filter", "FORWARD", "DROP", None)),
    ("firewalld-docker", {**OUT, "src": "203.0.113.9", "dport": 5432},
     ("ACCEPT", "local", "192.0.2.2:5432", None),
     ("nft", "firewalld", "filter_IN_public_allow", "accept", 175)),
    ("firewalld-docker", {**OUT, "dport": 5432},
     ("REJECT", "local", "192.0.2.2:5432", None),
     ("nft", "firewalld", "filter_IN_public", "reject", 169)),
    ("firewalld-docker", {**OUT, "src": "192.0.2.66", "dport": 22},
     ("DROP", "local", "192.0.2.2:22", None),
     ("nft", "firewalld", "filter_IN_public_deny", "drop", 170)),
    ("nftables-conf-docker", {**OUT, "dport": 8080},
     ("DROP", "forward", "172.17.0.2:80", "docker0"), ("nft", "filter", "forward", "drop", None)),
    ("nftables-conf-docker", FROM_DOCKER0, ("ACCEPT", "forward", "198.51.100.7:443", "eth0"),
     ("nft", "filter", "forward", "accept", 5)),  # iifname "docker0" accept
    ("nftables-conf-docker", {**LOCAL, "dport": 8080},
     ("ACCEPT", "output", "172.17.0.2:80", "docker0"),
     ("iptables-nft", "nat", "DOCKER", "DNAT", 2)),
    ("nftables-conf-docker", {**OUT, "dport": 22}, ("ACCEPT", "local", "192.0.2.2:22", None),
     ("nft", "filter", "input", "accept", None)),
    ("split-legacy-nft", {**OUT, "dport": 8080},
     ("DROP", "forward", "172.17.0.2:80", "docker0"),
     ("iptables-legacy", "filter", "FORWARD", "DROP", None)),
    ("split-legacy-nft", FROM_DOCKER0, ("ACCEPT", "forward", "198.51.100.7:443", "eth0"),
     ("iptables-legacy", "filter", "FORWARD", "ACCEPT", 2)),
    ("split-legacy-nft", {**OUT, "src": "203.0.113.9", "dport": 22},
     ("DROP", "local", "192.0.2.2:22", None), ("iptables-legacy", "filter", "INPUT", "DROP", 1)),
    ("split-legacy-nft", {**OUT, "dport": 22}, ("ACCEPT", "local", "192.0.2.2:22", None),
     ("iptables-legacy", "filter", "INPUT", "ACCEPT", None)),
    ("docker29-nftables", {**OUT, "dport": 8080}, ("ACCEPT", "forward", "10.99.3.2:80", "bridge1"),
     ("nft", "docker-bridges", "filter-forward-in__bridge1", "accept", 35)),
    ("docker29-nftables", {**OUT, "dst": "10.99.3.2", "dport": 80},
     ("DROP", "forward", "10.99.3.2:80", None),
     ("nft", "docker-bridges", "raw-PREROUTING", "drop", 26)),  # "DROP DIRECT ACCESS"
    ("docker29-nftables", {"in_interface": "bridge1", "src": "10.99.3.2", "dst": "198.51.100.7",
                           "sport": 40000, "dport": 443},
     ("ACCEPT", "forward", "198.51.100.7:443", "eth0"),
     ("nft", "docker-bridges", "nat-postrouting-out__bridge1", "accept", 39)),  # masquerade
    ("docker29-nftables", {**OUT, "dport": 8081}, ("ACCEPT", "local", "192.0.2.2:8081", None),
     ("nft", "docker-bridges", "nat-PREROUTING", "accept", None)),
]


@pytest.mark.parametrize(("fixture", "pkt", "expected", "step"), SOURCE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(SOURCE_CASES)])
def test_fixture_trace_across_sources(fixture: str, pkt: dict[str, Any],
                                      expected: tuple[str, str, str, str | None],
                                      step: Where) -> None:
    trace = simulate(natlens.load(FIXTURES / fixture), Packet(**pkt))
    got = (trace.verdict.value, trace.path.value, trace.final_dst, trace.out_interface)
    assert got == expected, str(trace)
    assert step in [(s.source, s.table, s.chain, s.target, s.rule) for s in trace.steps], \
        str(trace)
    assert not trace.branches, str(trace)
    assert not trace.uncertain, str(trace)


@pytest.mark.parametrize(("fixture", "pkt", "expected", "step"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_fixture_trace(fixture: str, pkt: dict[str, Any],
                       expected: tuple[str, str, str, str | None],
                       step: tuple[str, str, str] | None) -> None:
    trace = simulate(natlens.load(FIXTURES / fixture), Packet(**pkt))
    got = (trace.verdict.value, trace.path.value, trace.final_dst, trace.out_interface)
    assert got == expected, str(trace)
    if step is not None:
        assert step in [(s.table, s.chain, s.target) for s in trace.steps], str(trace)
    assert not trace.branches, str(trace)


def test_every_fixture_readme_has_three_asserted_traces() -> None:
    counts = {name.name: 0 for name in FIXTURES.iterdir() if (name / "README.md").is_file()}
    for fixture, *_ in [*CASES, *SOURCE_CASES]:
        counts[fixture] += 1
    assert {name: n for name, n in counts.items() if n < 3} == {}
