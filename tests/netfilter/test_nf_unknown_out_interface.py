"""An output interface the snapshot cannot tell (no route): one interface for the whole path.

Each ``-o`` reading a path takes joins ``Flow.out_readings`` and decides the later ``-o``
matches (``matches.read_out``), so no branch rests on contradicting readings; a reading that
puts a packet out of a Docker network's bridge although its destination lies outside the
network is unlikely (``Host.unlikely_out``) and its branches come after the others, so the
headline is the likeliest reading. With the MASQUERADE address unknown, the ``connection``
line says the reply comes to that address and is de-NATed back.
"""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path
from typing import Any

import pytest
from nf_helpers import packet, simulator

import natlens
from natlens.model import Interface
from natlens.netfilter import Host, simulate
from natlens.netfilter.matches import read_out

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.mark.parametrize(("cond", "readings", "expected"), [
    (Interface("docker0"), (), None),
    (Interface("docker0"), (("docker0", True),), True),
    (Interface("docker0", negated=True), (("docker0", True),), False),
    (Interface("docker0"), (("docker0", False),), False),
    (Interface("docker0", negated=True), (("docker0", False),), True),
    # the interface is eth0: every other exact name or wildcard is decided
    (Interface("docker0"), (("eth0", True),), False),
    (Interface("eth+"), (("eth0", True),), True),
    (Interface("br-+", negated=True), (("eth0", True),), True),
    # not docker0 says nothing of eth0
    (Interface("eth0"), (("docker0", False),), None),
    # not any br-*: br-1234 neither; any br-*: not eth0, and br-12+ still open
    (Interface("br-1234"), (("br-+", False),), False),
    (Interface("br-1234", negated=True), (("br-+", False),), True),
    (Interface("eth0"), (("br-+", True),), False),
    (Interface("br-12+"), (("br-+", True),), None),
    (Interface("br+"), (("br-+", True),), None),
])
def test_read_out(cond: Interface, readings: tuple[tuple[str, bool], ...],
                  expected: bool | None) -> None:
    assert read_out(cond, readings) is expected


_NETWORK = [{"Name": "backend", "Id": "ab" * 32, "Driver": "bridge", "Options": {},
             "IPAM": {"Config": [{"Subnet": "10.44.0.0/24", "Gateway": "10.44.0.1"}]}}]


@pytest.mark.parametrize(("name", "dst", "unlikely"), [
    ("br-backend", "1.1.1.1", True),  # outside the network whose gateway is the host
    ("br-backend", "10.44.0.9", False),  # on it
    ("eth0", "1.1.1.1", False),  # no Docker network names eth0
    ("br-+", "1.1.1.1", False),  # a wildcard may be any interface
])
def test_unlikely_out_reads_the_docker_networks(name: str, dst: str, unlikely: bool) -> None:
    net = dict(_NETWORK[0], Options={"com.docker.network.bridge.name": "br-backend"})
    host = Host.from_json(None, None, [net])
    assert (host.unlikely_out(name, ipaddress.ip_address(dst)) is not None) is unlikely


def test_uplink_bridge_of_ip_addr_is_never_unlikely() -> None:
    """A bridge that enslaves the uplink (ip-addr.json's ``master``) may carry the default
    route: only Docker's networks are segments whose gateway is the host."""
    addrs = [{"ifname": "br0", "addr_info": [{"family": "inet", "local": "192.0.2.2",
                                                "prefixlen": 24}]},
             {"ifname": "eth0", "master": "br0", "addr_info": []}]
    host = Host.from_json(addrs, None)
    assert host.is_bridge("br0")
    assert host.unlikely_out("br0", ipaddress.ip_address("1.1.1.1")) is None


_RULES = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]",
          "-A FORWARD -o {bridge} -p tcp -m tcp --dport 443 -j DROP",
          "-A FORWARD -i {bridge} ! -o {bridge} -j ACCEPT",
          "-A FORWARD -i {bridge} -o {bridge} -j ACCEPT", "COMMIT",
          "*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
          ":POSTROUTING ACCEPT [0:0]",
          "-A POSTROUTING -s {subnet} ! -o {bridge} -j MASQUERADE", "COMMIT"]


@pytest.mark.parametrize(("bridge", "subnet", "src"), [
    ("docker0", "172.17.0.0/16", "172.17.0.2"),
    ("br-5f1c0a", "10.44.0.0/24", "10.44.0.7"),  # any name: the data tell
])
@pytest.mark.parametrize("networks", [False, True])
def test_headline_is_the_likely_interface(bridge: str, subnet: str, src: str,
                                          networks: bool) -> None:
    """The first ``-o BRIDGE`` rule drops; the walk follows "matches" first, but a packet
    from the bridge to a public address most likely leaves by another interface: the headline
    is the ACCEPT, the DROP a later branch that names why it is unlikely. The bridge's
    network comes from Docker's MASQUERADE rule or from ``docker network inspect``."""
    rules = [r.format(bridge=bridge, subnet=subnet) for r in _RULES]
    net = dict(_NETWORK[0], Options={"com.docker.network.bridge.name": bridge},
               IPAM={"Config": [{"Subnet": subnet}]})
    host = Host.from_json(None, None, [net] if networks else None)
    trace = simulator(rules, host=host).trace(packet({
        "in_interface": bridge, "src": src, "dst": "1.1.1.1", "sport": 40000, "dport": 443}))
    assert (trace.verdict.value, trace.path.value) == ("ACCEPT", "forward")
    drops = [b for b in trace.branches if b.verdict.value == "DROP"]
    assert len(drops) == 1
    assert any(a.startswith(f"unlikely: output interface {bridge}: 1.1.1.1 is outside "
                            f"{bridge}'s {subnet}") for a in drops[0].assumed)
    assert not any(a.startswith("unlikely") for a in trace.branches[0].assumed)


def _contradicts(assumed: tuple[str, ...]) -> bool:
    """Whether a branch assumes one ``-o NAME`` reading both ways."""
    said: dict[str, bool] = {}
    for a in assumed:
        for verb, hit in ((" matches (-o ", True), (" does not match (-o ", False)):
            if verb in a:
                cond = a.split(verb, 1)[1].split(":", 1)[0]
                name, negated = cond.lstrip("!"), cond.startswith("!")
                out = hit != negated
                if said.setdefault(name, out) != out:
                    return True
    return False


@pytest.fixture
def no_host_files(tmp_path: Path) -> Path:
    """fixtures/default-bridge-8080 without ip-addr.json and ip-route.json."""
    snap = tmp_path / "snap"
    shutil.copytree(FIXTURES / "default-bridge-8080", snap)
    (snap / "ip-addr.json").unlink()
    (snap / "ip-route.json").unlink()
    return snap


def test_container_egress_without_host_files(no_host_files: Path) -> None:
    """The isolation chain's ``! -o docker0`` then ``-o docker0 -j DROP``: no branch both
    matches; the egress is the headline and no DROP is left."""
    trace = simulate(natlens.load(no_host_files), natlens.Packet(
        in_interface="docker0", src="172.17.0.2", dst="1.1.1.1", proto="tcp", dport=443))
    assert (trace.verdict.value, trace.path.value) == ("ACCEPT", "forward")
    assert trace.branches
    assert not [b for b in trace.branches if _contradicts(b.assumed)]
    assert {b.verdict.value for b in trace.branches} == {"ACCEPT"}
    unlikely = [b for b in trace.branches if any(a.startswith("unlikely") for a in b.assumed)]
    assert unlikely
    assert trace.branches.index(unlikely[0]) > 0


_DEFAULT_ONLY = '[{"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"}, ' \
    '{"dst": "172.17.0.0/16", "dev": "docker0", "prefsrc": "172.17.0.1"}]'


@pytest.mark.parametrize(("pkt", "back"), [
    ({"sport": 40000}, "172.17.0.2:40000"),
    ({}, "172.17.0.2"),
])
def test_connection_names_the_unknown_masquerade_address(
        no_host_files: Path, pkt: dict[str, Any], back: str) -> None:
    """The route names eth0 but nothing names its address: MASQUERADE's source is unknown,
    the reply comes to it and conntrack reverses the SNAT to the container."""
    (no_host_files / "ip-route.json").write_text(_DEFAULT_ONLY)
    trace = simulate(natlens.load(no_host_files), natlens.Packet(
        in_interface="docker0", src="172.17.0.2", dst="1.1.1.1", proto="tcp", dport=443,
        **pkt))
    assert (trace.verdict.value, trace.out_interface) == ("ACCEPT", "eth0")
    assert any("MASQUERADE: address of eth0 unknown" in u for u in trace.uncertain)
    assert trace.connection is not None
    assert trace.connection.why == (
        "the reply 1.1.1.1:443 comes back to the address MASQUERADE took on eth0 (unknown) "
        f"through the same conntrack entry, which reverses the source NAT to {back}")
    assert f"-> {back}" not in trace.connection.why
