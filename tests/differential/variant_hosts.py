"""Docker hosts for the real-world case variants: rules, Docker JSON and the namespace topology.

A ``DockerHost`` names what a user's host differs in: its interfaces and routes, its Docker
networks (bridge name, subnet) and containers (address, published ports with host address and
port), and the Docker era of the filter rules (27: FORWARD jumps to DOCKER-USER and
DOCKER-ISOLATION-STAGE-1 and holds the per-bridge rules; 28/29: FORWARD jumps to DOCKER-USER and
DOCKER-FORWARD, per-bridge rules in DOCKER-CT / DOCKER-BRIDGE / DOCKER; as libnetwork's
iptables code writes them). ``rules()`` gives the iptables-restore text Docker would leave,
``docker_json()`` what ``docker inspect`` / ``docker network inspect`` print, and ``topology()``
the ``diff_harness.Topology`` whose router has the same interfaces, addresses and routes (each
bridge a veth whose peer namespace plays the containers).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from diff_harness import Topology

__all__ = ["Ctr", "DockerHost", "Net"]


@dataclass(frozen=True)
class Net:
    """A Docker bridge network."""

    name: str
    subnet: str
    bridge: str

    @property
    def gateway(self) -> str:
        return str(next(ipaddress.ip_network(self.subnet).hosts()))

    @property
    def id(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()


@dataclass(frozen=True)
class Ctr:
    """A container on ``net`` with published ports ``(proto, container port, host address,
    host port)`` (host address ``""`` = every address)."""

    name: str
    net: str
    ip: str
    ports: tuple[tuple[str, int, str, int], ...] = ()

    @property
    def id(self) -> str:
        return hashlib.sha256(("c" + self.name).encode()).hexdigest()


@dataclass(frozen=True)
class DockerHost:
    """Host interfaces (name -> CIDR), default route ``(gateway, interface)``, other routes
    ``(prefix, interface, gateway)``, Docker networks and containers, Docker era (27 or 28)."""

    ifaces: dict[str, str]
    default: tuple[str, str]
    nets: tuple[Net, ...] = ()
    ctrs: tuple[Ctr, ...] = ()
    era: int = 28
    routes: tuple[tuple[str, str, str | None], ...] = ()
    sysctls: tuple[str, ...] = field(default=())

    def net(self, name: str) -> Net:
        return next(n for n in self.nets if n.name == name)

    # -- the namespace -------------------------------------------------------------------------

    def topology(self) -> Topology:
        links = dict(self.ifaces)
        for n in self.nets:
            links[n.bridge] = f"{n.gateway}/{ipaddress.ip_network(n.subnet).prefixlen}"
        return Topology(links, self.default, self.routes, (), True, self.sysctls)

    # -- Docker's rules ------------------------------------------------------------------------

    def nat_rules(self) -> list[str]:
        """The nat table's ``-A`` lines (without the table and chain lines)."""
        out = ["-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
               "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"]
        out += [f"-A POSTROUTING -s {n.subnet} ! -o {n.bridge} -j MASQUERADE" for n in self.nets]
        out += [f"-A DOCKER -i {n.bridge} -j RETURN" for n in self.nets]
        for c in self.ctrs:
            br = self.net(c.net).bridge
            for proto, cport, hip, hport in c.ports:
                dst = f"-d {hip}/32 " if hip else ""
                out.append(f"-A DOCKER {dst}! -i {br} -p {proto} -m {proto} --dport {hport} "
                           f"-j DNAT --to-destination {c.ip}:{cport}")
        return out

    def filter_rules(self, *, user_jump: bool = True, forward_jump: bool = True,
                     user_return: bool = True) -> list[str]:
        """The filter table's Docker ``-A`` lines; ``user_jump``/``forward_jump``: whether
        FORWARD jumps to DOCKER-USER / DOCKER-FORWARD (era 28); ``user_return``: era 27's
        ``-A DOCKER-USER -j RETURN`` (a user who fills DOCKER-USER replaces it)."""
        out = ["-A FORWARD -j DOCKER-USER"] if user_jump else []
        accept = []
        for c in self.ctrs:
            br = self.net(c.net).bridge
            for proto, cport, _hip, _hport in c.ports:
                accept.append(f"-A DOCKER -d {c.ip}/32 ! -i {br} -o {br} -p {proto} -m {proto} "
                              f"--dport {cport} -j ACCEPT")
        iso = []
        for n in self.nets:
            iso.append(f"-A DOCKER-ISOLATION-STAGE-1 -i {n.bridge} ! -o {n.bridge} "
                       "-j DOCKER-ISOLATION-STAGE-2")
        iso += [f"-A DOCKER-ISOLATION-STAGE-2 -o {n.bridge} -j DROP" for n in self.nets]
        if self.era >= 28:
            if forward_jump:
                out.append("-A FORWARD -j DOCKER-FORWARD")
            out += accept
            out += [f"-A DOCKER ! -i {n.bridge} -o {n.bridge} -j DROP" for n in self.nets]
            out += [f"-A DOCKER-BRIDGE -o {n.bridge} -j DOCKER" for n in self.nets]
            out += [f"-A DOCKER-CT -o {n.bridge} -m conntrack --ctstate RELATED,ESTABLISHED "
                    "-j ACCEPT" for n in self.nets]
            out += ["-A DOCKER-FORWARD -j DOCKER-CT",
                    "-A DOCKER-FORWARD -j DOCKER-ISOLATION-STAGE-1",
                    "-A DOCKER-FORWARD -j DOCKER-BRIDGE"]
            out += [f"-A DOCKER-FORWARD -i {n.bridge} -j ACCEPT" for n in self.nets]
            out += iso
        else:
            out.append("-A FORWARD -j DOCKER-ISOLATION-STAGE-1")
            for n in self.nets:
                out += [f"-A FORWARD -o {n.bridge} -m conntrack --ctstate RELATED,ESTABLISHED "
                        "-j ACCEPT", f"-A FORWARD -o {n.bridge} -j DOCKER",
                        f"-A FORWARD -i {n.bridge} ! -o {n.bridge} -j ACCEPT",
                        f"-A FORWARD -i {n.bridge} -o {n.bridge} -j ACCEPT"]
            out += accept
            out += [*iso[:len(self.nets)], "-A DOCKER-ISOLATION-STAGE-1 -j RETURN"]
            out += [*iso[len(self.nets):], "-A DOCKER-ISOLATION-STAGE-2 -j RETURN"]
            if user_return:
                out.append("-A DOCKER-USER -j RETURN")
        return out

    def chains(self) -> list[str]:
        """Docker's filter chains."""
        names = ["DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER"]
        if self.era >= 28:
            names += ["DOCKER-BRIDGE", "DOCKER-CT", "DOCKER-FORWARD"]
        return sorted(names)

    def rules(self, *, forward_policy: str = "DROP", user_jump: bool = True,
              forward_jump: bool = True, filter_chains: Sequence[str] = (),
              filter_before: Sequence[str] = (), filter_after: Sequence[str] = (),
              nat_chains: Sequence[str] = (), nat_before: Sequence[str] = (),
              nat_after: Sequence[str] = (), input_policy: str = "ACCEPT",
              nat: bool = True, user_return: bool = True) -> str:
        """The iptables-restore text: Docker's filter (and nat) rules with the user's own chains
        and rules before and after them."""
        lines = ["*filter", f":INPUT {input_policy} [0:0]", f":FORWARD {forward_policy} [0:0]",
                 ":OUTPUT ACCEPT [0:0]"]
        lines += [f":{c} - [0:0]" for c in (*self.chains(), *filter_chains)]
        lines += [*filter_before,
                  *self.filter_rules(user_jump=user_jump, forward_jump=forward_jump,
                                     user_return=user_return),
                  *filter_after, "COMMIT"]
        if nat:
            lines += ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]",
                      ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]", ":DOCKER - [0:0]"]
            lines += [f":{c} - [0:0]" for c in nat_chains]
            lines += [*nat_before, *self.nat_rules(), *nat_after, "COMMIT"]
        return "\n".join(lines) + "\n"

    # -- docker inspect ------------------------------------------------------------------------

    def docker_json(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(``docker inspect`` of the containers, ``docker network inspect`` of the
        networks)."""
        containers = []
        for c in self.ctrs:
            n = self.net(c.net)
            bindings: dict[str, list[dict[str, str]]] = {}
            for proto, cport, hip, hport in c.ports:
                bindings.setdefault(f"{cport}/{proto}", []).append(
                    {"HostIp": hip or "0.0.0.0", "HostPort": str(hport)})
            containers.append({
                "Id": c.id, "Name": f"/{c.name}",
                "State": {"Status": "running", "Running": True, "Pid": 1000},
                "HostConfig": {"NetworkMode": n.name, "PortBindings": {
                    k: [{"HostIp": "" if b["HostIp"] == "0.0.0.0" else b["HostIp"],
                         "HostPort": b["HostPort"]} for b in v] for k, v in bindings.items()}},
                "Config": {"Image": "example/image", "ExposedPorts": {k: {} for k in bindings}},
                "NetworkSettings": {"Ports": bindings, "Networks": {n.name: {
                    "NetworkID": n.id, "EndpointID": c.id[::-1], "Gateway": n.gateway,
                    "IPAddress": c.ip,
                    "IPPrefixLen": ipaddress.ip_network(n.subnet).prefixlen}}}})
        networks = []
        for n in self.nets:
            networks.append({
                "Name": n.name, "Id": n.id, "Scope": "local", "Driver": "bridge",
                "EnableIPv6": False,
                "IPAM": {"Driver": "default", "Config": [{"Subnet": n.subnet,
                                                          "Gateway": n.gateway}]},
                "Internal": False,
                "Containers": {c.id: {"Name": c.name, "EndpointID": c.id[::-1],
                                      "IPv4Address": f"{c.ip}/"
                                      f"{ipaddress.ip_network(n.subnet).prefixlen}",
                                      "IPv6Address": ""}
                               for c in self.ctrs if c.net == n.name},
                "Options": {"com.docker.network.bridge.name": n.bridge}, "Labels": {}})
        return containers, networks
