"""Packet validation and the host model (addresses, address types, routes, Docker fallbacks)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from nf_helpers import standard_host

from natlens.errors import UsageError
from natlens.netfilter import Host, Packet
from natlens.netfilter.packet import endpoint


def test_packet_accepts_strings_and_objects() -> None:
    p = Packet(in_interface="eth0", src="198.51.100.7", dst=ipaddress.ip_address("192.0.2.2"),
               dport="8080", mark="0x10")
    assert p.src == ipaddress.ip_address("198.51.100.7")
    assert (p.dport, p.mark, p.state, p.proto, p.family) == (8080, 16, "new", "tcp", 4)
    assert repr(p) == "Packet(in eth0, tcp 198.51.100.7 -> 192.0.2.2:8080, new)"


def test_packet_icmp_defaults_to_echo_request_and_takes_names() -> None:
    assert Packet(local_origin=True, src="10.0.0.1", dst="10.0.0.2", proto="icmp").icmp_type == 8
    p = Packet(local_origin=True, src="::1", dst="2001:db8::1", proto="icmp",
               icmp_type="echo-reply")
    assert (p.proto, p.icmp_type) == ("icmpv6", 129)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"src": "10.0.0.1", "dst": "10.0.0.2"}, "input interface or local origin"),
    ({"in_interface": "eth0", "local_origin": True, "src": "10.0.0.1", "dst": "10.0.0.2"},
     "not both"),
    ({"in_interface": "eth0", "src": "10.0.0.1", "dst": "2001:db8::1"}, "mixes address families"),
    ({"in_interface": "eth0", "src": "10.0.0.300", "dst": "10.0.0.2"}, "is not an IP address"),
    ({"in_interface": "eth0", "src": "10.0.0.1", "dst": "10.0.0.2", "proto": "tcpp"},
     "did you mean 'tcp'"),
    ({"in_interface": "eth0", "src": "10.0.0.1", "dst": "10.0.0.2", "dport": 70000},
     "port number"),
    ({"in_interface": "eth0", "src": "10.0.0.1", "dst": "10.0.0.2", "proto": "icmp",
      "dport": 1}, "icmp packets have no ports"),
    ({"in_interface": "eth0", "src": "10.0.0.1", "dst": "10.0.0.2", "state": "establised"},
     "did you mean 'established'"),
    ({"in_interface": "eth0", "src": "10.0.0.1", "dst": "10.0.0.2", "mark": "0x1ffffffff"},
     "out of range"),
    ({"in_interface": "eth0", "src": "10.0.0.1", "dst": "10.0.0.2", "proto": "icmpv6"},
     "needs IPv6"),
    ({"in_interface": "eth0", "src": "10.0.0.1", "dst": "10.0.0.2", "proto": "icmp",
      "icmp_type": "echo"}, "unknown icmp type"),
])
def test_packet_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Packet(**kwargs)


def test_endpoint_format() -> None:
    assert endpoint(ipaddress.ip_address("10.0.0.1"), 80) == "10.0.0.1:80"
    assert endpoint(ipaddress.ip_address("fd00::2"), 80) == "[fd00::2]:80"
    assert endpoint(ipaddress.ip_address("fd00::2"), None) == "fd00::2"


def test_host_address_types() -> None:
    host = standard_host()
    ip = ipaddress.ip_address
    assert host.address_type(ip("192.0.2.2")) == "LOCAL"
    assert host.address_type(ip("127.0.0.53")) == "LOCAL"
    assert host.address_type(ip("192.0.2.255")) == "BROADCAST"
    assert host.address_type(ip("255.255.255.255")) == "BROADCAST"
    assert host.address_type(ip("239.1.2.3")) == "MULTICAST"
    assert host.address_type(ip("ff02::1")) == "MULTICAST"
    assert host.address_type(ip("192.0.2.3")) == "UNICAST"
    # --limit-iface: LOCAL only on the interface holding the address
    assert host.address_type(ip("192.0.2.2"), "eth0") == "LOCAL"
    assert host.address_type(ip("192.0.2.2"), "docker0") == "UNICAST"
    assert host.address_type(ip("127.0.0.1"), "lo") == "LOCAL"


def test_host_routes_longest_prefix_and_default() -> None:
    host = standard_host()
    ip = ipaddress.ip_address
    route = host.route(ip("172.17.0.2"))
    assert route is not None
    assert route.dev == "docker0"
    route = host.route(ip("203.0.113.1"))
    assert route is not None
    assert (route.dev, str(route.gateway)) == ("eth0", "192.0.2.1")
    route = host.route(ip("10.99.0.1"))
    assert route is not None
    assert route.kind == "blackhole"
    assert host.route(ip("fd00:dead:beef::2")) is not None  # derived from the address
    assert host.route(ip("2001:db8:ffff::1")) is None  # no IPv6 default route known
    assert host.source_address("eth0", ip("203.0.113.1")) == ip("192.0.2.2")
    assert host.primary_address("docker0", 4) == ip("172.17.0.1")
    assert host.is_bridge("docker0")
    assert not host.is_bridge("eth0")


def test_host_from_real_ip_json() -> None:
    addrs = [
        {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
        {"ifname": "eth0", "addr_info": [
            {"family": "inet", "local": "192.0.2.2", "prefixlen": 24,
             "broadcast": "192.0.2.255"},
            {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]},
        {"ifname": "vethab", "master": "docker0", "addr_info": []},
    ]
    routes = [{"dst": "default", "gateway": "192.0.2.1", "dev": "eth0", "flags": []},
              {"dst": "192.0.2.0/24", "dev": "eth0", "prefsrc": "192.0.2.2"}]
    host = Host.from_json(addrs, routes, None)
    assert host.interfaces == ("lo", "eth0", "vethab")
    assert host.masters == {"vethab": "docker0"}
    assert host.is_bridge("docker0")
    assert host.assumptions == ()
    assert host.is_local(ipaddress.ip_address("::1"))  # lo's ::1 is implied


def test_host_without_ip_files_uses_docker_networks() -> None:
    networks = [
        {"Name": "bridge", "Id": "f" * 64, "Driver": "bridge",
         "IPAM": {"Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]},
         "Options": {"com.docker.network.bridge.name": "docker0"}},
        {"Name": "web", "Id": "1a2b3c4d5e6f7a8b9c", "Driver": "bridge",
         "IPAM": {"Config": [{"Subnet": "10.20.0.0/24"}]}, "Options": {}},
        {"Name": "host", "Id": "0" * 64, "Driver": "host", "IPAM": {"Config": []}},
    ]
    host = Host.from_json(None, None, networks)
    assert host.is_local(ipaddress.ip_address("172.17.0.1"))
    assert host.local_interface(ipaddress.ip_address("10.20.0.1")) == "br-1a2b3c4d5e6f"
    route = host.route(ipaddress.ip_address("10.20.0.9"))
    assert route is not None
    assert route.dev == "br-1a2b3c4d5e6f"
    assert not host.known_addresses
    assert not host.known_routes
    text = "\n".join(host.assumptions)
    assert "ip-addr.json missing" in text
    assert "ip-route.json missing" in text
    assert "no gateway given, assumed 10.20.0.1" in text


def test_host_rejects_malformed_json() -> None:
    from natlens.errors import SnapshotError

    with pytest.raises(SnapshotError, match="ifname"):
        Host.from_json([{"addr_info": []}], [])
    with pytest.raises(SnapshotError,  # the schema names the JSON path and what it wanted
                       match=r"\$\[0\]\.dst: expected 'default' or an IP network, got a string "
                             r"'300\.0\.0\.0/8'"):
        Host.from_json([], [{"dst": "300.0.0.0/8"}])


def test_masquerade_source_is_in_the_gateways_subnet() -> None:
    spec = {"interfaces": {"lo": ["127.0.0.1/8"], "eth0": ["10.0.0.5/24", "192.0.2.2/24"]},
            "routes": [["default", "eth0", "192.0.2.1"], ["10.0.0.0/24", "eth0"]]}
    host = standard_host(spec)
    ip = ipaddress.ip_address
    assert host.source_address("eth0", ip("203.0.113.1")) == ip("192.0.2.2")
    assert host.source_address("eth0", ip("10.0.0.9")) == ip("10.0.0.5")


def test_forwarding_sysctl_from_meta_decides_forwarding(tmp_path: Path) -> None:
    """meta.json's sysctls replace the assumption; forwarding off drops forwarded packets."""
    import json
    import shutil

    import natlens

    folder = tmp_path / "snap"
    shutil.copytree(Path(__file__).resolve().parents[2] / "fixtures" / "default-bridge-8080",
                    folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta["sysctl"]["net.ipv4.ip_forward"] = "0"
    (folder / "meta.json").write_text(json.dumps(meta))
    trace = natlens.simulate(natlens.load(folder), natlens.Packet(
        in_interface="eth0", src="198.51.100.7", dst="192.0.2.2", proto="tcp", dport=8080))
    assert (trace.verdict.value, trace.path.value) == ("DROP", "forward")
    assert "net.ipv4.ip_forward=0 (forwarding off): dropped" in str(trace)
    assert not any("forwarding" in a for a in trace.assumptions)
