"""Docker's networks read from its nftables masquerade rules when the snapshot has neither
``docker-networks.json`` nor routes (Docker 29: ``oifname != "docker0" ip saddr 172.17.0.0/16
masquerade``), as from the iptables ``-s NET ! -o BRIDGE -j MASQUERADE`` rule
(tests/netfilter/test_nf_unknown_out_interface.py): the same ``Host.segments`` as
``docker network inspect`` gives, so a reading out of a bridge to a destination outside its
network is unlikely (``Host.unlikely_out``) on nft hosts too.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from nft_build import ACCEPT, aset, match, meta, payload, prefix, ruleset

from natlens.model import Family, Ruleset
from natlens.netfilter import Host, Simulator
from natlens.netfilter.packet import Packet
from natlens.nft import loads as nft_loads

_DOCKER0 = ("docker0", "172.17.0.0/16")
_BRIDGE1 = ("bridge1", "192.0.2.0/24")

# The NAT-mode bridge networks of each scenario of moby's generated nftables docs
# (corpus docker/nftablesdoc-docker-v29.7.2/generated/<scenario>.md: the daemon's docker0 and
# the ``docker network create -o com.docker.network.bridge.name=bridge1 --subnet ...`` network).
# usernet-internal (``--internal``) and usernet-portmap-routed (gateway mode ``routed``) have
# no masquerade rule for bridge1: only docker0 is inferred there (docs/tracing.md's limit).
_SCENARIOS = {
    "new-daemon": (_DOCKER0,),
    "usernet-portmap": (_DOCKER0, _BRIDGE1),
    "usernet-portmap-lo": (_DOCKER0, _BRIDGE1),
    "usernet-portmap-natunprot": (_DOCKER0, _BRIDGE1),
    "usernet-portmap-noicc": (_DOCKER0, _BRIDGE1),
    "usernet-portmap-noproxy": (_DOCKER0, _BRIDGE1),
    "usernet-portmap-routed": (_DOCKER0,),
    "usernet-internal": (_DOCKER0,),
}


def _networks(nets: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    """``docker network inspect`` output (docker-networks.json) for ``(bridge, subnet)``s."""
    return [{"Name": bridge, "Id": f"{i:064x}", "Driver": "bridge",
             "Options": {"com.docker.network.bridge.name": bridge},
             "IPAM": {"Config": [{"Subnet": subnet}]}} for i, (bridge, subnet) in enumerate(nets)]


def _simulator(nft_text: str, networks: list[dict[str, Any]] | None) -> Simulator:
    """No ip-addr.json, no ip-route.json, no iptables rules: only the nft ruleset."""
    return Simulator(Host.from_json(None, None, networks), Ruleset(Family.IPV4),
                     Ruleset(Family.IPV6), nft=nft_loads(nft_text, "nft-ruleset.json"))


def _docker29(corpus: Path, scenario: str) -> str:
    return (corpus / "nftables" / "docker-v29-nftables"
            / f"{scenario}.loaded-by-nft-1.0.6.json").read_text()


@pytest.mark.parametrize("scenario", sorted(_SCENARIOS))
def test_docker29_segments_without_networks_file(corpus: Path, scenario: str) -> None:
    """Without docker-networks.json the simulator's host has the segments the file gives for
    the scenario's NAT-mode networks, each route inferred said once; with the file nothing is
    added (the same networks, not twice)."""
    text = _docker29(corpus, scenario)
    expected = _networks(_SCENARIOS[scenario])
    with_file = _simulator(text, expected).host_for(4)
    inferred = _simulator(text, None).host_for(4)
    assert dict(inferred.segments) == dict(Host.from_json(None, None, expected).segments)
    assert dict(with_file.segments) == dict(Host.from_json(None, None, expected).segments)
    notes = [a for a in inferred.assumptions if "inferred from ip docker-bridges" in a]
    assert sorted(n.split(" inferred")[0] for n in notes) == sorted(
        f"route {subnet} dev {bridge}" for bridge, subnet in _SCENARIOS[scenario])
    assert all(n.endswith("(Docker's masquerade rule)") for n in notes)
    assert not [a for a in with_file.assumptions if "inferred from" in a]
    assert not _simulator(text, None).host_for(6).segments


_BASE = {"postrouting": {"type": "nat", "hook": "postrouting", "prio": 100,
                         "policy": "accept"}}
_SADDR = match(payload("ip", "saddr"), prefix("10.44.0.0", 24))
_NOT_BR = match(meta("oifname"), "br-x", "!=")
_MASQ: dict[str, Any] = {"masquerade": None}


@pytest.mark.parametrize(("expr", "found"), [
    ([_SADDR, _NOT_BR, {"counter": {"packets": 0, "bytes": 0}}, _MASQ], True),
    ([_NOT_BR, _SADDR, _MASQ], True),  # either order
    ([_SADDR, _NOT_BR, ACCEPT], False),  # not a masquerade
    ([_SADDR, match(meta("oifname"), "br-x"), _MASQ], False),  # -o br-x, not ! -o
    ([_SADDR, match(meta("oifname"), "br-*", "!="), _MASQ], False),  # a wildcard
    ([_SADDR, match(meta("oifname"), aset("br-x"), "!="), _MASQ], False),  # a set
    ([match(payload("ip", "saddr"), prefix("10.44.0.0", 24), "!="), _NOT_BR, _MASQ], False),
    ([_SADDR, _MASQ], False),  # no output interface
    ([_NOT_BR, _MASQ], False),  # no source network
    # a condition iptables' -s/-o cannot say: not Docker's rule
    ([_SADDR, _NOT_BR, match(payload("tcp", "dport"), 80), _MASQ], False),
    ([_SADDR, _NOT_BR, match(payload("ip", "daddr"), "10.44.0.2"), _MASQ], False),
    ([_SADDR, _NOT_BR, {"masquerade": None}, _MASQ], False),
])
def test_rule_form(expr: list[Any], found: bool) -> None:
    """Only ``oifname != NAME ip saddr NET [counter] masquerade`` names a network."""
    doc = ruleset("ip", {"postrouting": [expr]}, base=_BASE)
    host = _simulator(json.dumps(doc), None).host_for(4)
    assert dict(host.segments) == ({"br-x": (ipaddress.ip_network("10.44.0.0/24"),)}
                                   if found else {})


def test_inet_table_gives_each_family_its_networks() -> None:
    """An inet table's ``ip6 saddr`` rule names an IPv6 network: the IPv6 host's segment."""
    rules = [[match(payload("ip6", "saddr"), prefix("fd00:44::", 64)), _NOT_BR, _MASQ],
             [_SADDR, _NOT_BR, _MASQ]]
    sim = _simulator(json.dumps(ruleset("inet", {"postrouting": rules}, base=_BASE)), None)
    assert dict(sim.host_for(6).segments) == {"br-x": (ipaddress.ip_network("fd00:44::/64"),)}
    assert dict(sim.host_for(4).segments) == {"br-x": (ipaddress.ip_network("10.44.0.0/24"),)}


@pytest.mark.parametrize(("scenario", "bridge", "src"), [
    ("new-daemon", "docker0", "172.17.0.2"),
    ("usernet-portmap", "docker0", "172.17.0.2"),
    ("usernet-portmap", "bridge1", "192.0.2.5"),
])
def test_docker29_egress_without_networks_file(corpus: Path, scenario: str, bridge: str,
                                               src: str) -> None:
    """A container's packet to a public address, routes and networks unknown: the headline is
    the ACCEPT out of another interface (masqueraded), and every branch whose verdict map chose
    a bridge of the ruleset is marked unlikely and comes after it."""
    trace = _simulator(_docker29(corpus, scenario), None).trace(Packet(
        proto="tcp", in_interface=bridge, src=src, dst="1.1.1.1", sport=40000, dport=443))
    assert (trace.verdict.value, trace.path.value) == ("ACCEPT", "forward")
    assert not any(a.startswith("unlikely") for a in trace.branches[0].assumed)
    assert any("masquerade" in s.text for s in trace.branches[0].steps)
    forward = [b for b in trace.branches if b.path.value == "forward"]
    chose = [b for b in forward if any(" chose " in a for a in b.assumed)]
    assert chose
    for b in chose:
        name = next(a for a in b.assumed if " chose " in a).rsplit(" chose ", 1)[1].rstrip(")")
        assert any(a.startswith(f"unlikely: output interface {name}: 1.1.1.1 is outside")
                   for a in b.assumed), b.assumed
        assert forward.index(b) > max(forward.index(o) for o in forward if o not in chose)
