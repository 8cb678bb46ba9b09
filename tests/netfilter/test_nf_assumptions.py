"""What a trace assumes of sysctls the snapshot lacks, and from which evidence.

IP forwarding: said by whether the snapshot shows Docker (dockerd turns it on). ``route_localnet``:
1 when the filter table holds kube-proxy's guard rule (written with it, dead without it;
kubernetes ``pkg/proxy/iptables/proxier.go``), else the kernel default 0. The golden cases
``kube-localnet-guard-route-localnet`` and ``kube-clusterip-no-endpoints-not-local-headline``
show whole traces.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest
from nf_helpers import STANDARD_HOST, ip_json, packet, rules, simulator, standard_host

from natlens.model import Family, Ruleset
from natlens.netfilter import Host, Simulator
from natlens.netfilter.routing import localnet_guard
from natlens.nft import loads as nft_loads

GUARD_BARE = ("! -s 127.0.0.0/8 -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT "
              "-j DROP")
GUARD = GUARD_BARE.replace("-m conntrack", "-m comment --comment \"block incoming localnet "
                           "connections\" -m conntrack")


def _filter(*lines: str, chains: tuple[str, ...] = ()) -> list[str]:
    return ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
            *(f":{c} - [0:0]" for c in chains), *lines, "COMMIT"]


@pytest.mark.parametrize(("lines", "expected"), [
    ([f"-A KUBE-FIREWALL {GUARD}"], "filter:KUBE-FIREWALL#1"),
    (["-A KUBE-FIREWALL -j RETURN", f"-A KUBE-FIREWALL {GUARD_BARE}"], "filter:KUBE-FIREWALL#2"),
    # not the guard: another state set, no negated source, a DNAT-less state, ACCEPT
    ([f"-A KUBE-FIREWALL {GUARD.replace('! -s', '-s')}"], None),
    ([f"-A KUBE-FIREWALL {GUARD.replace(',DNAT', '')}"], None),
    ([f"-A KUBE-FIREWALL {GUARD.replace('! --ctstate', '--ctstate')}"], None),
    ([f"-A KUBE-FIREWALL {GUARD.replace('-j DROP', '-j ACCEPT')}"], None),
    ([f"-A KUBE-FIREWALL {GUARD.replace('-d 127.0.0.0/8', '-d 127.0.0.1/32')}"], None),
])
def test_localnet_guard(lines: list[str], expected: str | None) -> None:
    assert localnet_guard([rules(_filter(*lines, chains=("KUBE-FIREWALL",)))]) == expected


def _localnet_assumed(sim: Simulator) -> list[str]:
    trace = sim.trace(packet({"local_origin": True, "src": "127.0.0.1", "dst": "10.244.1.5",
                              "sport": 40000, "dport": 8080}))
    return [a for a in trace.assumptions if "route_localnet" in a]


def test_route_localnet_from_the_guard_unless_the_sysctl_is_known() -> None:
    """A loopback source leaving by eth0: with the guard and no sysctl, route_localnet=1 is
    assumed and named; a sysctl in the snapshot wins over the rule."""
    text = _filter(f"-A KUBE-FIREWALL {GUARD}", chains=("KUBE-FIREWALL",))
    guarded = simulator(text)
    (said,) = _localnet_assumed(guarded)
    assert said.startswith("net.ipv4.conf.all.route_localnet=1: not in the snapshot; inferred "
                           "from filter:KUBE-FIREWALL#1")
    trace = guarded.trace(packet({"local_origin": True, "src": "127.0.0.1", "dst": "10.244.1.5",
                                  "sport": 40000, "dport": 8080}))
    assert (trace.verdict.value, trace.out_interface) == ("ACCEPT", "eth0")
    assert _localnet_assumed(simulator(_filter())) == [
        "net.ipv4.conf.eth0.route_localnet=0 (the kernel default)"]
    known = replace(standard_host(), sysctls=MappingProxyType(
        {"net.ipv4.conf.all.route_localnet": "0"}))
    sim = simulator(text, host=known)
    assert sim.localnet is None
    trace = sim.trace(packet({"local_origin": True, "src": "127.0.0.1", "dst": "10.244.1.5",
                              "sport": 40000, "dport": 8080}))
    assert trace.verdict.value == "DROP"


_DOCKER_NFT = '{"nftables": [{"table": {"family": "ip", "name": "docker-bridges"}}]}'


@pytest.mark.parametrize(("host", "lines", "nft", "docker"), [
    ("unknown", [], None, False),
    ("unknown", ["-A FORWARD -j KUBE-FORWARD"], None, False),
    ("unknown", ["-A FORWARD -j DOCKER-USER"], None, True),
    ("standard", [], None, True),  # docker0 has a bridge port
    ("unknown", [], _DOCKER_NFT, True),
])
def test_forwarding_assumption_says_whether_docker_is_there(
        host: str, lines: list[str], nft: str | None, docker: bool) -> None:
    chains = ("KUBE-FORWARD",) if "KUBE" in "".join(lines) else \
        ("DOCKER-USER",) if lines else ()
    h = Host.from_json(None, None) if host == "unknown" else standard_host()
    sim = Simulator(h, rules(_filter(*lines, chains=chains)), Ruleset(Family.IPV6),
                    nft=nft_loads(nft, "nft.json") if nft else None)
    assert sim.docker is docker
    trace = sim.trace(packet({"in_interface": "eth0", "src": "198.51.100.7",
                              "dst": "203.0.113.9", "sport": 40000, "dport": 80}))
    (said,) = [a for a in trace.assumptions if a.startswith("IP forwarding enabled")]
    assert ("dockerd sets it" in said) is docker
    assert ("the kernel default is 0" in said) is not docker


def test_forwarding_off_drops_even_where_the_route_is_unknown() -> None:
    """``ip_forward=0`` in the snapshot drops a packet to forward whether or not the route is
    known (``ip_forward`` is checked on the input device before the route matters)."""
    addrs, _ = ip_json(STANDARD_HOST)  # addresses known, routes not
    host = Host.from_json(addrs, None)
    assert not host.known_routes
    for forwarding, verdict in ((False, "DROP"), (None, "ACCEPT")):
        known = {4: forwarding} if forwarding is not None else {}
        sim = Simulator(replace(host, forwarding=MappingProxyType(known)), rules(_filter()))
        trace = sim.trace(packet({"in_interface": "eth0", "src": "198.51.100.7",
                                  "dst": "203.0.113.9", "sport": 40000, "dport": 80}))
        assert (trace.verdict.value, trace.path.value, trace.branches) == (
            verdict, "forward", ())
        assert any("forwarding off" in s.text for s in trace.steps) is (forwarding is False)
        assert any(a.startswith("IP forwarding enabled") for a in trace.assumptions) is (
            forwarding is None)
