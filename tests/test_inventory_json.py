"""``Inventory.from_json`` on the captured fixture folders and on hand-written inspect objects.

Offline: no daemon needed. The fixture folders are made by ``scripts/make-fixtures.sh`` on a real
dockerd 20.10; their README.md files describe each scenario.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

import natlens
from natlens.docker import (
    DaemonFacts,
    Inventory,
    PortProto,
    PublishedPort,
    inventory_from_snapshot,
)
from natlens.errors import NatlensError, SnapshotJsonError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# scenario -> {container: sorted published ports as printed}, (userland proxy, ip6tables)
EXPECTED: dict[str, tuple[dict[str, list[str]], tuple[bool, bool]]] = {
    "default-bridge-8080": ({"natlens-web": ["0.0.0.0:8080->80/tcp", "[::]:8080->80/tcp"]},
                            (True, False)),
    "loopback-9000": ({"natlens-web": ["127.0.0.1:9000->80/tcp"]}, (True, False)),
    "udp-5353": ({"natlens-dns": ["0.0.0.0:5353->53/udp", "[::]:5353->53/udp"]}, (True, False)),
    "port-range": ({"natlens-web": [f"{h}:{p}->{p}/tcp" for p in (7000, 7001, 7002)
                                    for h in ("0.0.0.0", "[::]")]}, (True, False)),
    "user-network": ({"natlens-web": ["0.0.0.0:8081->80/tcp", "[::]:8081->80/tcp"]},
                     (True, False)),
    "no-userland-proxy": ({"natlens-web": ["0.0.0.0:8080->80/tcp"]}, (False, False)),
    "no-icc": ({"natlens-web": ["0.0.0.0:8080->80/tcp", "[::]:8080->80/tcp"],
                "natlens-client": []}, (True, False)),
    "internal-network": ({"natlens-db": []}, (True, False)),
    "ipv6": ({"natlens-web": ["0.0.0.0:8080->80/tcp", "[::]:8080->80/tcp"]}, (True, True)),
    "docker-user-policy": ({"natlens-web": ["0.0.0.0:8080->80/tcp", "[::]:8080->80/tcp"]},
                           (True, False)),
    "planted-faults": ({name: [f"0.0.0.0:{port}->80/tcp", f"[::]:{port}->80/tcp"]
                        for name, port in (("natlens-web", 8080), ("natlens-api", 8081),
                                           ("natlens-app", 8082))}, (True, False)),
}


def _inventory(name: str) -> Inventory:
    snap = natlens.load(FIXTURES / name)
    inv = inventory_from_snapshot(snap)
    assert inv is not None, f"{name}: no Docker data in the snapshot"
    return inv


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_ports_and_daemon(name: str) -> None:
    ports, (proxy, ip6tables) = EXPECTED[name]
    inv = _inventory(name)
    assert {c.name: sorted(str(p) for p in c.ports) for c in inv.containers} == {
        k: sorted(v) for k, v in ports.items()}
    assert all(c.running for c in inv.containers)
    assert inv.daemon.userland_proxy is proxy
    assert inv.daemon.ip6tables is ip6tables
    assert inv.daemon.iptables is True
    assert str(inv.daemon.version).startswith("20.10")
    assert inv.source == str(FIXTURES / name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_addresses_inside_their_networks(name: str) -> None:
    inv = _inventory(name)
    for container in inv.running:
        assert container.networks, container.name
        for endpoint in container.networks:
            net = inv.network(endpoint.name)
            assert net is not None
            assert endpoint.network_id == net.id
            assert endpoint.ipv4 is not None
            assert any(endpoint.ipv4 in s for s in net.subnets)
            assert endpoint.gateway in net.gateways
            assert inv.holder(endpoint.ipv4) == container


def test_from_json_equals_itself_reloaded() -> None:
    folder = FIXTURES / "planted-faults"
    containers = json.loads((folder / "docker-containers.json").read_text())
    networks = json.loads((folder / "docker-networks.json").read_text())
    meta = json.loads((folder / "meta.json").read_text())
    assert Inventory.from_json(containers, networks, meta) == _inventory("planted-faults")
    # order of the inspect objects does not matter
    assert Inventory.from_json(containers[::-1], networks[::-1], meta) == _inventory(
        "planted-faults")


def test_default_bridge_and_user_networks() -> None:
    inv = _inventory("user-network")
    bridge = inv.network("bridge")
    assert bridge is not None
    assert bridge.bridge == "docker0"
    assert bridge.subnets == (ipaddress.ip_network("172.17.0.0/16"),)
    assert bridge.gateways == (ipaddress.ip_address("172.17.0.1"),)
    assert (bridge.icc, bridge.masquerade, bridge.internal) == (True, True, False)
    assert bridge.host_binding_ipv4 == ipaddress.ip_address("0.0.0.0")
    user = inv.network("natlens-net")
    assert user is not None
    assert user.bridge == f"br-{user.id[:12]}"
    assert user.subnets == (ipaddress.ip_network("10.99.0.0/24"),)
    assert user.gateways == (ipaddress.ip_address("10.99.0.1"),)  # Docker's default IPAM
    assert inv.network(user.id[:12]) == user
    host = inv.network("host")
    assert host is not None
    assert host.bridge is None
    assert host.subnets == ()
    web = inv.container("natlens-web")
    assert web is not None
    assert web.network_mode == "natlens-net"
    assert [n.name for n in web.networks] == ["natlens-net"]


def test_no_icc_and_internal_networks() -> None:
    noicc = _inventory("no-icc").network("natlens-noicc")
    assert noicc is not None
    assert noicc.icc is False
    assert noicc.option("com.docker.network.bridge.enable_icc") == "false"
    internal = _inventory("internal-network")
    net = internal.network("natlens-internal")
    assert net is not None
    assert net.internal is True
    db = internal.container("natlens-db")
    assert db is not None
    # Docker binds nothing on an internal network although -p 8083:80 was asked for.
    assert db.ports == ()
    assert db.requested == (PublishedPort(PortProto.TCP, 80, None, 8083, 8083),)


def test_ipv6_addresses() -> None:
    inv = _inventory("ipv6")
    web = inv.container("natlens-web")
    assert web is not None
    endpoint = web.network("bridge")
    assert endpoint is not None
    assert endpoint.ipv6 is not None
    assert endpoint.ipv6 in ipaddress.ip_network("fd00:dead:beef::/64")
    assert endpoint.ipv6_prefix == 64
    assert endpoint.gateway6 == ipaddress.ip_address("fd00:dead:beef::1")
    assert inv.holder(endpoint.ipv6) == web
    bridge = inv.network("bridge")
    assert bridge is not None
    assert bridge.enable_ipv6
    assert ipaddress.ip_network("fd00:dead:beef::/64") in bridge.subnets


def test_loopback_binding() -> None:
    web = _inventory("loopback-9000").container("natlens-web")
    assert web is not None
    (port,) = web.ports
    assert port.loopback_only
    assert port.host_ip == ipaddress.ip_address("127.0.0.1")
    assert list(port.host_ports) == [9000]


def test_stale_address_has_no_holder() -> None:
    assert _inventory("planted-faults").holder("172.17.0.99") is None


# --- hand-written inspect objects (shapes as dockerd 20.10 prints them) ---------------------------


def _container(**over: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "Id": "a" * 64,
        "Name": "/stopped",
        "Image": "sha256:" + "b" * 64,
        "State": {"Status": "exited", "Running": False},
        "Config": {"Image": "natlens-busybox:latest"},
        "HostConfig": {"NetworkMode": "default", "PortBindings": {
            "80/tcp": [{"HostIp": "", "HostPort": "8082"}, {"HostIp": "", "HostPort": "7100-7102"}],
            "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
            "9/sctp": [{"HostIp": "", "HostPort": ""}],
        }},
        "NetworkSettings": {"Ports": {}, "Networks": {"bridge": {
            "NetworkID": "", "IPAddress": "", "IPPrefixLen": 0, "Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPv6Gateway": "",
            "MacAddress": "", "Aliases": None}}},
    }
    obj.update(over)
    return obj


def test_stopped_container_uses_port_bindings() -> None:
    inv = Inventory.from_json([_container()], [])
    (c,) = inv.containers
    assert c.name == "stopped"
    assert not c.running
    assert c.image == "natlens-busybox:latest"
    assert c.addresses == ()
    assert [str(p) for p in c.ports] == [
        "127.0.0.1:5353->53/udp", "7100-7102->80/tcp", "8082->80/tcp"]
    assert c.ports == c.requested
    rng = c.ports[1]
    assert (rng.host_start, rng.host_end, rng.host_ip) == (7100, 7102, None)
    assert list(rng.host_ports) == [7100, 7101, 7102]
    assert inv.daemon == DaemonFacts()


def test_network_options() -> None:
    net = {"Name": "custom", "Id": "c" * 64, "Driver": "bridge", "Internal": False,
           "IPAM": {"Driver": "default", "Config": [
               {"Subnet": "10.5.0.0/16", "Gateway": "10.5.0.254"},
               {"Subnet": "fd00:5::/64"}]},
           "Options": {"com.docker.network.bridge.name": "br-custom",
                       "com.docker.network.bridge.enable_ip_masquerade": "false",
                       "com.docker.network.bridge.host_binding_ipv4": "127.0.0.1"}}
    (n,) = Inventory.from_json([], [net]).networks
    assert n.bridge == "br-custom"
    assert n.masquerade is False
    assert n.icc is True
    assert n.gateways == (ipaddress.ip_address("10.5.0.254"), ipaddress.ip_address("fd00:5::1"))
    assert n.host_binding_ipv4 == ipaddress.ip_address("127.0.0.1")
    other = dict(net, Driver="macvlan", IPAM={"Driver": "default", "Config": [
        {"Subnet": "10.6.0.0/24"}]})
    (m,) = Inventory.from_json([], [other]).networks
    assert m.bridge is None
    assert m.gateways == ()  # only the bridge driver's default IPAM gateway is known


def test_daemon_facts_round_trip() -> None:
    facts = DaemonFacts(userland_proxy=False, iptables=True, ip6tables=None, version="20.10.24")
    assert DaemonFacts.from_meta(facts.to_meta()) == facts
    assert DaemonFacts.from_meta({"userland_proxy": "maybe"}) == DaemonFacts()


def test_not_inspect_output_is_one_line_error() -> None:
    with pytest.raises(NatlensError,
                       match=r"^docker-containers\.json \(containers\): \$\[0\]: no 'Id' field$"):
        Inventory.from_json([{"Name": "x"}], [], source="docker-containers.json")
    with pytest.raises(NatlensError, match=r"\(networks\): \$\[0\]: expected an object"):
        Inventory.from_json([], [["not", "an", "object"]])


def test_single_rule_file_has_no_inventory(tmp_path: Path) -> None:
    rules = tmp_path / "rules.txt"
    rules.write_text("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
    assert inventory_from_snapshot(natlens.load(rules)) is None


def test_network_endpoints_and_exposed_ports() -> None:
    """Endpoints that are no container (swarm's ingress-sbox) and EXPOSEd ports are part of the
    inventory, so a live SDK inventory carries them too."""
    import ipaddress
    import json
    from pathlib import Path

    from natlens.audit._docker_example import container_json
    from natlens.docker import Inventory

    data = json.loads((Path(__file__).parent / "data" / "docker-corpus-inventories"
                       / "swarm-portmap.json").read_text())
    inv = Inventory.from_json(data["containers"], data["networks"], data["meta"])
    gw = inv.network("docker_gwbridge")
    assert gw is not None
    assert gw.endpoints == (("gateway_ingress-sbox", ipaddress.ip_address("172.18.0.2")),)
    web = container_json("web", "172.17.0.2", exposed=("80/tcp", "53/udp"))
    (c,) = Inventory.from_json([web], []).containers
    assert c.exposed == (("tcp", 80), ("udp", 53))
    bad = container_json("web", "172.17.0.2", exposed=("80/tcp", "x/tcp"))
    with pytest.raises(SnapshotJsonError, match=r"\$\[0\]\.Config\.ExposedPorts: key 'x/tcp'"):
        Inventory.from_json([bad], [])
