"""NAT ranges as the kernel chooses within them (nf_nat_core.c ``get_unique_tuple``).

A port already in the range is kept; outside it, destination NAT takes the first port and source
NAT a random one; ``--random`` draws at random always; an address range is hashed. Every random
or hashed choice shows as branches (addresses) or a port range (``IP:LOW-HIGH``) and a line
under ``uncertain``; a deterministic one is a single certain answer. The same classes were
observed in the kernel (cases/kernel 02-05, 10; tests/differential).
"""

from __future__ import annotations

import pytest
from nf_helpers import simulator

from natlens.netfilter import Packet

IN = {"in_interface": "eth0", "src": "198.51.100.7", "dst": "192.0.2.2", "sport": 40000}

CASES = [
    # (id, rule, packet overrides, {(final_src, final_dst)}, chosen at random or by hash)
    ("dnat-port-in-range-kept", "-A PREROUTING -p tcp -j DNAT --to-destination "
     "172.17.0.2:8000-8010", {"dport": 8005}, {("198.51.100.7:40000", "172.17.0.2:8005")},
     False),
    ("dnat-port-outside-first", "-A PREROUTING -p tcp -j DNAT --to-destination "
     "172.17.0.2:8000-8010", {"dport": 80}, {("198.51.100.7:40000", "172.17.0.2:8000")},
     False),
    ("dnat-random-port", "-A PREROUTING -p tcp -j DNAT --to-destination 172.17.0.2:8000-8010 "
     "--random", {"dport": 8005}, {("198.51.100.7:40000", "172.17.0.2:8000-8010")}, True),
    ("dnat-random-without-ports-keeps-port", "-A PREROUTING -p tcp -j DNAT --to-destination "
     "172.17.0.2 --random", {"dport": 80}, {("198.51.100.7:40000", "172.17.0.2:80")}, False),
    ("dnat-address-range-hashed", "-A PREROUTING -p tcp -j DNAT --to-destination "
     "172.17.0.2-172.17.0.3", {"dport": 80},
     {("198.51.100.7:40000", "172.17.0.2:80"), ("198.51.100.7:40000", "172.17.0.3:80")}, True),
    ("dnat-port-offset", "-A PREROUTING -p tcp -j DNAT --to-destination 172.17.0.2:80-90/8000",
     {"dport": 8005}, {("198.51.100.7:40000", "172.17.0.2:85")}, False),
    ("snat-port-in-range-kept", "-A POSTROUTING -o docker0 -p tcp -j SNAT --to-source "
     "172.17.0.1:40000-40010", {"dst": "172.17.0.2", "sport": 40005, "dport": 80},
     {("172.17.0.1:40005", "172.17.0.2:80")}, False),
    ("snat-port-outside-random", "-A POSTROUTING -o docker0 -p tcp -j SNAT --to-source "
     "172.17.0.1:2000-2100", {"dst": "172.17.0.2", "dport": 80},
     {("172.17.0.1:2000-2100", "172.17.0.2:80")}, True),
    ("snat-tuple-in-range-kept", "-A POSTROUTING -o docker0 -j SNAT --to-source "
     "198.51.100.0-198.51.100.9", {"dst": "172.17.0.2", "dport": 80},
     {("198.51.100.7:40000", "172.17.0.2:80")}, False),
    ("masquerade-random-privileged", "-A POSTROUTING -o docker0 -j MASQUERADE --random",
     {"dst": "172.17.0.2", "sport": 53, "dport": 80}, {("172.17.0.1:1-511", "172.17.0.2:80")},
     True),
    ("masquerade-random-600", "-A POSTROUTING -o docker0 -j MASQUERADE --random-fully",
     {"dst": "172.17.0.2", "sport": 700, "dport": 80},
     {("172.17.0.1:600-1023", "172.17.0.2:80")}, True),
    ("masquerade-to-ports-kept", "-A POSTROUTING -o docker0 -p tcp -j MASQUERADE --to-ports "
     "2000-2100", {"dst": "172.17.0.2", "sport": 2050, "dport": 80},
     {("172.17.0.1:2050", "172.17.0.2:80")}, False),
    ("redirect-port-in-range-kept", "-A PREROUTING -p udp -j REDIRECT --to-ports 8080-8085",
     {"proto": "udp", "dport": 8083}, {("198.51.100.7:40000", "192.0.2.2:8083")}, False),
    ("icmp-dnat-with-port", "-A PREROUTING -p icmp -j DNAT --to-destination 172.17.0.2:8080",
     {"proto": "icmp", "sport": None}, {("198.51.100.7", "172.17.0.2")}, False),
]


@pytest.mark.parametrize(("rule", "overrides", "expected", "chosen"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_nat_choice(rule: str, overrides: dict[str, object], expected: set[tuple[str, str]],
                    chosen: bool) -> None:
    text = ("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            f":POSTROUTING ACCEPT [0:0]\n{rule}\nCOMMIT\n")
    spec: dict[str, object] = {**IN, "proto": "tcp", **overrides}
    trace = simulator(text).trace(Packet(**spec))  # type: ignore[arg-type]
    outcomes = {(b.final_src, b.final_dst) for b in trace.branches} or \
        {(trace.final_src, trace.final_dst)}
    assert outcomes == expected, str(trace)
    said = any("random" in u or "hash" in u for u in trace.uncertain)
    assert said == chosen, str(trace)
