"""Small Docker snapshots for docstring examples and tests, in the shape of the real files.

``container_json`` and ``network_json`` give the fields of ``docker inspect`` /
``docker network inspect`` natlens reads (Engine API 1.41 shape); ``example`` builds an
``AuditContext`` of iptables-save text on a standard host (eth0 192.0.2.2/24, docker0
172.17.0.1/16) with such containers.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from natlens.audit.findings import AuditContext
from natlens.model import Family, Ruleset
from natlens.parse.save import parse_save
from natlens.snapshot import Snapshot

__all__ = ["DOCKER_NAT_8080", "addr_json", "container_json", "example", "network_json"]

DOCKER_NAT_8080 = """*nat
:PREROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
COMMIT
"""
"""The nat table Docker writes for ``docker run -p 8080:80`` (container 172.17.0.2), without
its OUTPUT and hairpin rules: the common start of the examples."""


def _id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def network_json(name: str = "bridge", subnet: str = "172.17.0.0/16", *,
                 bridge: str | None = None, internal: bool = False,
                 options: dict[str, str] | None = None,
                 subnet6: str | None = None) -> dict[str, Any]:
    """A ``docker network inspect`` object of a bridge network (gateway: first address)."""
    net = ipaddress.ip_network(subnet)
    opts = dict(options or {})
    if name == "bridge":
        opts.setdefault("com.docker.network.bridge.default_bridge", "true")
        opts.setdefault("com.docker.network.bridge.name", "docker0")
    if bridge is not None:
        opts["com.docker.network.bridge.name"] = bridge
    config = [{"Subnet": subnet, "Gateway": str(net.network_address + 1)}]
    if subnet6 is not None:
        net6 = ipaddress.ip_network(subnet6)
        config.append({"Subnet": subnet6, "Gateway": str(net6.network_address + 1)})
    return {
        "Name": name, "Id": _id(f"net-{name}"), "Scope": "local", "Driver": "bridge",
        "EnableIPv6": subnet6 is not None,
        "IPAM": {"Driver": "default", "Options": None, "Config": config},
        "Internal": internal, "Attachable": False, "Ingress": False, "Containers": {},
        "Options": opts, "Labels": {},
    }


def _bindings(spec: str) -> tuple[str, dict[str, Any]]:
    """``[HOSTIP:]HOSTPORT:CPORT[/proto]`` → (``"CPORT/proto"``, binding)."""
    spec, _, proto = spec.partition("/")
    parts = spec.rsplit(":", 2)
    host_ip = parts[0].strip("[]") if len(parts) == 3 else ""
    return f"{parts[-1]}/{proto or 'tcp'}", {"HostIp": host_ip, "HostPort": parts[-2]}


def container_json(name: str, ip: str | None, *ports: str, network: str = "bridge",
                   network_id: str | None = None, state: str = "running",
                   ip6: str | None = None, network_mode: str | None = None,
                   exposed: tuple[str, ...] = (), prefix: int = 16) -> dict[str, Any]:
    """A ``docker inspect`` object: ``container_json("web", "172.17.0.2", "8080:80")``.

    ``ports`` are ``-p`` specs; a running container reports them for ``0.0.0.0`` and ``::``
    unless an address is given (as Docker 20.10 does).
    """
    running = state == "running"
    requested: dict[str, list[dict[str, str]]] = {}
    actual: dict[str, list[dict[str, str]]] = {}
    for spec in ports:
        key, bind = _bindings(spec)
        requested.setdefault(key, []).append(bind)
        if bind["HostIp"]:
            actual.setdefault(key, []).append(bind)
        else:
            actual.setdefault(key, []).extend([{**bind, "HostIp": "0.0.0.0"},
                                               {**bind, "HostIp": "::"}])
    net = ipaddress.ip_network(f"{ip}/{prefix}", strict=False) if ip else None
    endpoint = {
        "NetworkID": network_id or _id(f"net-{network}"),
        "EndpointID": _id(f"ep-{name}") if running else "",
        "Gateway": str(net.network_address + 1) if net and running else "",
        "IPAddress": ip if ip and running else "",
        "IPPrefixLen": prefix if running and ip else 0,
        "IPv6Gateway": "", "GlobalIPv6Address": ip6 if ip6 and running else "",
        "GlobalIPv6PrefixLen": 64 if ip6 and running else 0,
        "MacAddress": "02:42:ac:11:00:02" if running else "", "Aliases": None,
    }
    return {
        "Id": _id(f"ctr-{name}"), "Name": f"/{name}",
        "State": {"Status": state, "Running": running},
        "Config": {"Image": "natlens-busybox:latest",
                   "ExposedPorts": {p: {} for p in exposed} or None},
        "HostConfig": {"NetworkMode": network_mode or ("default" if network == "bridge"
                                                        else network),
                       "PortBindings": requested},
        "NetworkSettings": {"Ports": actual if running else {},
                            "Networks": {} if network_mode == "host" else {network: endpoint}},
    }


def addr_json(interfaces: dict[str, list[str]]) -> list[dict[str, Any]]:
    """``ip -j addr show`` entries: ``{"eth0": ["192.0.2.2/24"]}``."""
    out: list[dict[str, Any]] = []
    for name, addrs in interfaces.items():
        info: list[dict[str, Any]] = []
        for text in addrs:
            iface = ipaddress.ip_interface(text)
            entry: dict[str, Any] = {"family": "inet" if iface.version == 4 else "inet6",
                                     "local": str(iface.ip),
                                     "prefixlen": iface.network.prefixlen}
            if iface.version == 4 and iface.network.prefixlen < 31 and not iface.ip.is_loopback:
                entry["broadcast"] = str(iface.network.broadcast_address)
            info.append(entry)
        out.append({"ifname": name, "addr_info": info})
    return out


STANDARD_INTERFACES = {"lo": ["127.0.0.1/8", "::1/128"], "eth0": ["192.0.2.2/24"],
                       "docker0": ["172.17.0.1/16"]}
STANDARD_ROUTES: list[dict[str, Any]] = [
    {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
    {"dst": "172.17.0.0/16", "dev": "docker0", "prefsrc": "172.17.0.1"},
    {"dst": "192.0.2.0/24", "dev": "eth0", "prefsrc": "192.0.2.2"},
]


def example(rules: str, *containers: dict[str, Any], networks: list[dict[str, Any]] | None = None,
            proxy: bool = True, rules6: str = "") -> AuditContext:
    """An ``AuditContext`` of ``rules`` on the standard host with ``containers``."""
    # the snapshot's dumps: whole ones (iptables-save's), as a snapshot folder's are read
    v4 = parse_save(rules, source="iptables-save.txt", family=Family.IPV4, saved=True)
    v6 = (parse_save(rules6, source="ip6tables-save.txt", family=Family.IPV6, saved=True)
          if rules6 else Ruleset(Family.IPV6))
    snap = Snapshot(
        ruleset=v4, ruleset6=v6, path="<example>",
        addresses=addr_json(STANDARD_INTERFACES), routes=list(STANDARD_ROUTES),
        containers=list(containers), networks=networks or [network_json()],
        meta={"userland_proxy": proxy, "docker_iptables": True, "docker_ip6tables": bool(rules6),
              "sysctl": {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}},
    )
    return AuditContext(snap)
