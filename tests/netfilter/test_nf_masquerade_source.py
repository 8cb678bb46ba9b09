"""Which source address MASQUERADE gives, and what natlens says when the snapshot cannot tell.

The kernel takes ``inet_select_addr(out, nexthop, RT_SCOPE_UNIVERSE)`` (nf_nat_masquerade_ipv4,
net/netfilter/nf_nat_masquerade.c): an address of the output interface, else another device's,
else the packet is dropped; IPv6 weighs every interface, the output one first
(``ipv6_dev_get_saddr``). Without ip-addr.json the output interface's own addresses are unknown:
natlens assumes the address its link route names as ``src`` and says so, or says the address is
unknown, and never gives another interface's address as the kernel's choice. The kernel cases
are in ``test_nf_masquerade_kernel.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from nf_helpers import packet, simulator

from natlens.model import Family, Ruleset
from natlens.netfilter import Host, Simulator
from natlens.nft import loads as nft_loads

_DOCKER_NETWORK = [{"Name": "bridge", "Id": "0123456789ab" * 4, "Driver": "bridge",
                    "Options": {}, "IPAM": {"Config": [
                        {"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"},
                        {"Subnet": "fd00:dead:beef::/64", "Gateway": "fd00:dead:beef::1"}]}}]

_MASQ = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
         ":POSTROUTING ACCEPT [0:0]", "-A POSTROUTING ! -o docker0 -j MASQUERADE", "COMMIT"]

_CONNECTED = {"dst": "192.0.2.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link",
              "prefsrc": "192.0.2.2"}
_DEFAULT = {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"}
_DOCKER_ROUTE = {"dst": "172.17.0.0/16", "dev": "docker0", "prefsrc": "172.17.0.1"}


def _addr(name: str, *infos: dict[str, Any]) -> dict[str, Any]:
    return {"ifname": name, "addr_info": [{"family": "inet6" if ":" in i["local"] else "inet",
                                           **i} for i in infos]}


def _trace(host: Host, src: str = "172.17.0.2", dst: str = "8.8.8.8") -> Any:
    sim = simulator(_MASQ, _MASQ if ":" in dst else None, host=host)
    return sim.trace(packet({"in_interface": "docker0", "src": src, "dst": dst, "proto": "udp",
                             "sport": 40000, "dport": 53}))


def _masq_step(trace: Any) -> str:
    (step,) = [s for s in trace.steps if s.target == "MASQUERADE"]
    return str(step.detail)


@pytest.mark.parametrize(("routes", "final_src", "said"), [
    # the link route of eth0 names its address: assumed, and said so
    ([_DEFAULT, _CONNECTED, _DOCKER_ROUTE], "192.0.2.2:40000",
     "MASQUERADE: 192.0.2.2 assumed the address of eth0: route 192.0.2.0/24 dev eth0 names it "
     "as source (host addresses unknown, no ip-addr.json)"),
    # nothing names it: unknown, the source left as it was
    ([_DEFAULT, _DOCKER_ROUTE], "172.17.0.2:40000",
     "MASQUERADE: address of eth0 unknown (host addresses unknown, no ip-addr.json): the kernel "
     "rewrites the source to an address of eth0 (another interface's if it has none); the "
     "source shown is the one before"),
])
def test_unknown_addresses_never_give_another_interfaces_address(
        routes: list[dict[str, Any]], final_src: str, said: str) -> None:
    host = Host.from_json(None, routes, _DOCKER_NETWORK)
    assert not host.known_addresses
    trace = _trace(host)
    assert (trace.out_interface, trace.final_src) == ("eth0", final_src)
    assert [u for u in trace.uncertain if "MASQUERADE" in u] == [f"nat:POSTROUTING#1: {said}"]
    # docker0's address is not eth0's: no step nor outcome names it
    assert not [s for s in trace.steps if "172.17.0.1" in s.detail]
    assert "172.17.0.1" not in trace.final_src


def test_unknown_addresses_ipv6_never_give_another_interfaces_address() -> None:
    """IPv6: docker0's address (from the Docker network) is not what eth0 would give."""
    routes6 = [{"dst": "default", "gateway": "2001:db8::1", "dev": "eth0"},
               {"dst": "fd00:dead:beef::/64", "dev": "docker0"}]
    host = Host.from_json(None, [_DEFAULT], _DOCKER_NETWORK, routes6=routes6)
    trace = _trace(host, "fd00:dead:beef::2", "2001:4860::8888")
    assert trace.out_interface == "eth0"
    assert trace.final_src == "[fd00:dead:beef::2]:40000"
    assert any("MASQUERADE: address of eth0 unknown" in u for u in trace.uncertain)


_ETH0_NONE = [_addr("lo", {"local": "127.0.0.1", "prefixlen": 8, "scope": "host"}),
              _addr("eth0"),
              _addr("docker0", {"local": "172.17.0.1", "prefixlen": 16})]


@pytest.mark.parametrize(("addresses", "verdict", "final_src", "detail"), [
    # eth0's address in the next hop's subnet, whatever the route's src says
    ([_addr("eth0", {"local": "198.51.100.9", "prefixlen": 24},
            {"local": "192.0.2.2", "prefixlen": 24}),
      _addr("docker0", {"local": "172.17.0.1", "prefixlen": 16})],
     "ACCEPT", "192.0.2.2:40000", "(address of eth0)"),
    # eth0 has none: inet_select_addr falls back to another device's
    (_ETH0_NONE, "ACCEPT", "172.17.0.1:40000",
     "(address of docker0: eth0 has none of its own, inet_select_addr takes another's)"),
    # a secondary or link-scope address is never taken
    ([_addr("eth0", {"local": "192.0.2.3", "prefixlen": 24, "secondary": True}),
      _addr("docker0", {"local": "172.17.0.1", "prefixlen": 16, "scope": "link"}),
      _addr("br0", {"local": "10.1.0.1", "prefixlen": 24})],
     "ACCEPT", "10.1.0.1:40000", "(address of br0: eth0 has none"),
    # no global primary address anywhere: dropped ("ate my IP address")
    ([_addr("lo", {"local": "127.0.0.1", "prefixlen": 8, "scope": "host"}), _addr("eth0"),
      _addr("docker0", {"local": "172.17.0.1", "prefixlen": 16, "scope": "link"})],
     "DROP", "172.17.0.2:40000", "MASQUERADE: no address to take (eth0 has none"),
])
def test_known_addresses_follow_inet_select_addr(addresses: list[dict[str, Any]], verdict: str,
                                                 final_src: str, detail: str) -> None:
    src_elsewhere = dict(_CONNECTED, prefsrc="198.51.100.9")  # the route's src plays no part
    host = Host.from_json(addresses, [_DEFAULT, src_elsewhere, _DOCKER_ROUTE])
    trace = _trace(host)
    assert (trace.verdict.value, trace.final_src) == (verdict, final_src)
    assert detail in _masq_step(trace)
    assert not [u for u in trace.uncertain if "MASQUERADE" in u]


def test_source_zero_is_left_alone() -> None:
    """nf_nat_masquerade_ipv4 lets a packet from 0.0.0.0 through untouched (a DHCP client)."""
    host = Host.from_json(_ETH0_NONE, [_DEFAULT, _CONNECTED])
    trace = simulator(_MASQ, host=host).trace(packet({
        "local_origin": True, "src": "0.0.0.0", "dst": "255.255.255.255", "proto": "udp",
        "sport": 68, "dport": 67}))
    assert trace.final_src == "0.0.0.0:68"
    assert "source 0.0.0.0, left as it is" in _masq_step(trace)


_NFT_MASQ = {"nftables": [
    {"table": {"family": "ip", "name": "t"}},
    {"chain": {"family": "ip", "table": "t", "name": "post", "type": "nat",
               "hook": "postrouting", "prio": 100, "policy": "accept"}},
    {"rule": {"family": "ip", "table": "t", "chain": "post", "expr": [
        {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "docker0"}},
        {"masquerade": None}]}}]}


@pytest.mark.parametrize(("routes", "final_src", "said"), [
    ([_DEFAULT, _CONNECTED, _DOCKER_ROUTE], "192.0.2.2:40000", "192.0.2.2 assumed the address"),
    ([_DEFAULT, _DOCKER_ROUTE], "172.17.0.2:40000", "address of eth0 unknown"),
])
def test_nft_masquerade_says_the_same(routes: list[dict[str, Any]], final_src: str,
                                      said: str) -> None:
    """nft's ``masquerade`` (nft_masq.c) calls the same kernel function, and natlens the same
    handler."""
    host = Host.from_json(None, routes, _DOCKER_NETWORK)
    sim = Simulator(host, Ruleset(Family.IPV4), Ruleset(Family.IPV6),
                    nft=nft_loads(json.dumps(_NFT_MASQ), "nft.json"))
    trace = sim.trace(packet({"in_interface": "docker0", "src": "172.17.0.2", "dst": "8.8.8.8",
                              "proto": "udp", "sport": 40000, "dport": 53}))
    assert (trace.out_interface, trace.final_src) == ("eth0", final_src)
    assert any(said in u for u in trace.uncertain), trace.uncertain
    assert not [s for s in trace.steps if "172.17.0.1" in s.detail]
