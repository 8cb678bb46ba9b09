"""The packets ``natlens verify`` tries: every published port from every kind of source, the
ports the NAT rules name, container traffic in and out, then seeded random ones.

Source kinds: ``outside`` (arrives on an interface that is not a Docker bridge, e.g. eth0, from
a documentation-range address or a neighbour), ``container`` (arrives on a bridge from a
container's address) and ``host`` (local origin). The result depends only on the snapshot and
the seed.
"""

from __future__ import annotations

import ipaddress
import random
import re
from dataclasses import dataclass

from natlens.correlate import correlate
from natlens.docker import inventory_from_snapshot
from natlens.errors import NatlensError
from natlens.model import Family, Ruleset
from natlens.netfilter.host import Host
from natlens.netfilter.packet import Packet
from natlens.snapshot import Snapshot
from natlens.verify.topology import Leaf, TopologyPlan

__all__ = ["Probe", "dnat_targets", "generate"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_EXTERNAL4 = ("198.51.100.7", "203.0.113.9")
_EXTERNAL6 = ("2001:db8::7",)
_WELL_KNOWN = (22, 53, 80, 443, 3128, 8080)
_FIRST_SPORT = 20000


@dataclass(frozen=True, slots=True)
class Probe:
    """One packet to try, where it comes from and why it was chosen."""

    packet: Packet
    source: str
    """``outside``, ``container`` or ``host``."""
    why: str


@dataclass(frozen=True, slots=True)
class _Published:
    container: str
    proto: str
    host_ip: IPAddress | None
    host_port: int
    container_ip: IPAddress
    container_port: int


def _published(snap: Snapshot) -> list[_Published]:
    """Each published binding and container address (``natlens.correlate``)."""
    inventory = inventory_from_snapshot(snap)
    if inventory is None:
        return []
    corr = correlate(inventory, snap.rules_for(Family.IPV4), snap.rules_for(Family.IPV6))
    out: list[_Published] = []
    for b in corr.bindings:
        ip = b.host_ip
        host_ip = None if ip is None or ip.is_unspecified else ip
        out.extend(_Published(b.container.name, b.proto, host_ip, b.host_port, target,
                              b.container_port) for target in b.targets)
    return out


def _rule_ports(ruleset: Ruleset) -> list[tuple[str, int]]:
    """(protocol, port) named by ``--dport``/``--dports``/``--to-ports`` in the rules."""
    out: list[tuple[str, int]] = []
    for table in ruleset.tables:
        for rule in table.rules:
            proto = rule.protocol.name if rule.protocol and not rule.protocol.negated else "tcp"
            if proto not in ("tcp", "udp"):
                proto = "tcp"
            texts = [o.args for m in rule.matches for o in m.options
                     if o.name in ("--dport", "--destination-port", "--dports")]
            if rule.target is not None:
                texts += [o.args for o in rule.target.options if o.name == "--to-ports"]
            for args in texts:
                for arg in args:
                    for number in re.findall(r"\d+", arg)[:2]:
                        if 0 < int(number) < 65536:
                            out.append((proto, int(number)))
    return out


def dnat_targets(ruleset: Ruleset) -> list[IPAddress]:
    """Addresses of ``--to-destination`` options (first address of a range)."""
    out: list[IPAddress] = []
    for table in ruleset.tables:
        for rule in table.rules:
            if rule.target is None:
                continue
            for o in rule.target.options:
                if o.name != "--to-destination" or not o.args:
                    continue
                text = o.args[0]
                addr = text[1:].split("]", 1)[0] if text.startswith("[") else (
                    text.split(":", 1)[0] if text.count(":") <= 1 else text)
                try:
                    out.append(ipaddress.ip_address(addr.split("-", 1)[0]))
                except ValueError:
                    continue
    return out


def _rule_sources(ruleset: Ruleset) -> list[IPAddress]:
    out: list[IPAddress] = []
    for table in ruleset.tables:
        for rule in table.rules:
            a = rule.source
            if a is None or a.network.prefixlen == 0 or a.network.is_loopback:
                continue
            net = a.network
            if net.num_addresses > 2:
                out.append(net.network_address + min(9, net.num_addresses - 2))
            else:
                out.append(net.network_address)
    return out


class _Builder:
    def __init__(self, snap: Snapshot, plan: TopologyPlan, rng: random.Random) -> None:
        self.snap = snap
        self.plan = plan
        self.rng = rng
        self.host = Host.from_snapshot(snap)
        self.probes: list[Probe] = []
        self.seen: set[tuple[object, ...]] = set()
        self.six = bool(snap.ruleset6.tables)
        self.outside = [leaf for leaf in plan.leaves if leaf.role == "outside"]
        self.containers = [leaf for leaf in plan.leaves if leaf.role == "container"]
        default = next((r.dev for r in self.host.routes if r.network.prefixlen == 0), None)
        self.outside.sort(key=lambda leaf: leaf.link != default)

    # -- address pools ----------------------------------------------------------------------------

    def families(self) -> tuple[int, ...]:
        return (4, 6) if self.six else (4,)

    def host_addresses(self, version: int) -> list[IPAddress]:
        return [a.ip for link in self.plan.links for a in link.addresses
                if a.version == version and not a.ip.is_link_local]

    def outside_link_addresses(self, version: int) -> list[IPAddress]:
        """The host's own addresses on its outside interfaces (eth0's 192.0.2.2)."""
        names = [leaf.link for leaf in self.outside]
        return [a.ip for name in names for link in self.plan.links if link.name == name
                for a in link.addresses if a.version == version and not a.ip.is_link_local]

    def external(self, version: int) -> list[IPAddress]:
        base = _EXTERNAL4 if version == 4 else _EXTERNAL6
        out: list[IPAddress] = [ipaddress.ip_address(a) for a in base]
        ruleset = self.snap.ruleset if version == 4 else self.snap.ruleset6
        for ip in _rule_sources(ruleset):
            if ip.version == version and not self.plan.router_holds(ip) and \
                    self.plan.leaf_holding(ip) is None and self.plan.connected(ip) is None:
                out.append(ip)
        return out

    def random_external(self, version: int) -> IPAddress:
        if version == 4:
            net = self.rng.choice(("198.51.100.", "203.0.113."))
            return ipaddress.ip_address(f"{net}{self.rng.randrange(2, 250)}")
        return ipaddress.ip_address(f"2001:db8::{self.rng.randrange(2, 0xfff):x}")

    def container_addresses(self, leaf: Leaf, version: int) -> list[IPAddress]:
        return [a.ip for a in leaf.addresses if a.version == version]

    # -- adding -----------------------------------------------------------------------------------

    def add(self, source: str, why: str, *, src: IPAddress, dst: IPAddress, proto: str,
            dport: int | None, in_interface: str | None = None) -> None:
        if src.version != dst.version:
            return
        if proto == "icmp" and dst.version == 6:
            proto = "icmpv6"
        if proto in ("icmp", "icmpv6"):
            dport = None
        key = (source, in_interface, src, dst, proto, dport)
        if key in self.seen:
            return
        if dst.version == 6 and not self.six:
            return
        if dst.version == 6 and source != "host" and not self._routable6(dst):
            return
        self.seen.add(key)
        sport = None if dport is None else _FIRST_SPORT + len(self.probes)
        try:
            packet = Packet(src=src, dst=dst, proto=proto, sport=sport, dport=dport,
                            in_interface=in_interface, local_origin=in_interface is None)
        except NatlensError:
            return
        self.probes.append(Probe(packet, source, why))

    def _routable6(self, dst: IPAddress) -> bool:
        """IPv6 destinations whose route the snapshot knows (ip-route.json is IPv4 only)."""
        return self.plan.router_holds(dst) or self.plan.connected(dst) is not None or \
            self.host.known_routes6

    def from_outside(self, why: str, dst: IPAddress, proto: str, dport: int | None,
                     src: IPAddress | None = None) -> None:
        for leaf in self.outside[:1]:
            s = src or self.rng.choice(self.external(dst.version) or [dst])
            self.add("outside", why, src=s, dst=dst, proto=proto, dport=dport,
                     in_interface=leaf.link)

    def from_container(self, leaf: Leaf, why: str, dst: IPAddress, proto: str,
                       dport: int | None) -> None:
        for src in self.container_addresses(leaf, dst.version)[:1]:
            link = self.plan.connected(dst)
            if link is not None and link.name == leaf.link and self.plan.leaf_holding(dst) is None \
                    and not self.plan.router_holds(dst):
                return  # a container ARPs for such an address and gets no answer
            self.add("container", why, src=src, dst=dst, proto=proto, dport=dport,
                     in_interface=leaf.link)

    def from_host(self, why: str, dst: IPAddress, proto: str, dport: int | None) -> None:
        src: IPAddress | None
        if self.plan.router_holds(dst):
            src = dst
        else:
            route = self.host.route(dst)
            src = self.host.source_address(route.dev if route else None, dst)
        if src is None:
            return
        self.add("host", why, src=src, dst=dst, proto=proto, dport=dport)

    # -- the plan of packets ----------------------------------------------------------------------

    def structured(self) -> None:
        loopback = {4: ipaddress.ip_address("127.0.0.1"), 6: ipaddress.ip_address("::1")}
        for pub in _published(self.snap):
            v = pub.container_ip.version
            why = f"{pub.container} publishes {pub.host_ip or 'any'}:{pub.host_port}/{pub.proto}"
            targets = [pub.host_ip] if pub.host_ip else self.host_addresses(v)[:2]
            for dst in targets:
                self.from_outside(why, dst, pub.proto, pub.host_port)
                self.from_host(why, dst, pub.proto, pub.host_port)
                for leaf in self.containers[:2]:
                    self.from_container(leaf, why, dst, pub.proto, pub.host_port)
            if pub.host_ip is not None and pub.host_ip.is_loopback:
                for dst in self.outside_link_addresses(v)[:1]:
                    self.from_outside(why + " (asked on another address)", dst, pub.proto,
                                      pub.host_port)
            self.from_host(why, loopback[v], pub.proto, pub.host_port)
            self.from_outside(why + " (container address directly)", pub.container_ip,
                              pub.proto, pub.container_port)
            self.from_host(why + " (container address directly)", pub.container_ip, pub.proto,
                           pub.container_port)
        for version in self.families():
            self.structured_family(version)

    def structured_family(self, v: int) -> None:
        ruleset = self.snap.ruleset if v == 4 else self.snap.ruleset6
        ports = sorted(set(_rule_ports(ruleset)))
        for proto, port in ports:
            why = f"port {port}/{proto} named in the rules"
            for dst in self.host_addresses(v)[:1]:
                self.from_outside(why, dst, proto, port)
                for leaf in self.containers[:1]:
                    self.from_container(leaf, why, dst, proto, port)
                    for ext in self.external(v)[:1]:
                        self.from_container(leaf, why + " (to the outside)", ext, proto,
                                            port)
        for target in dnat_targets(ruleset):
            if target.version == v:
                self.from_outside("DNAT target directly", target, "tcp", 80)
        for leaf in self.containers:
            for ext in self.external(v)[:1]:
                self.from_container(leaf, "container to the outside", ext, "tcp", 443)
                self.from_container(leaf, "container to the outside", ext, "udp", 53)
            for other in self.containers:
                if other is leaf:
                    continue
                for dst in self.container_addresses(other, v):
                    self.from_container(leaf, f"{leaf.label} to {other.label}", dst, "tcp",
                                        80)
            for gw in leaf.gateways:
                if gw.version == v:
                    self.from_container(leaf, "container to its gateway", gw, "tcp", 22)
        for ext in self.external(v)[:1]:
            self.from_host("host to the outside", ext, "tcp", 443)
        for dst in self.host_addresses(v)[:1]:
            self.from_outside("ping the host", dst, "icmp", None)
            self.from_outside("outside to a closed port", dst, "tcp", 9)

    def random_one(self) -> None:
        rng = self.rng
        v: int = rng.choice(self.families())
        proto = rng.choices(("tcp", "udp", "icmp"), weights=(7, 2, 1))[0]
        ports = [p for _, p in _rule_ports(self.snap.ruleset if v == 4 else self.snap.ruleset6)]
        pool = [*ports, *_WELL_KNOWN] or list(_WELL_KNOWN)
        dport = rng.choice(pool) if rng.random() < 0.6 else rng.randrange(1024, 65535)
        kind = rng.choice(("outside", "container", "host"))
        containers = [c for c in self.containers if self.container_addresses(c, v)]
        dsts: list[IPAddress] = [*self.host_addresses(v), *self.external(v),
                                 self.random_external(v)]
        for leaf in containers:
            dsts.extend(self.container_addresses(leaf, v))
        dst = rng.choice(dsts)
        why = "random"
        if kind == "container" and containers:
            self.from_container(rng.choice(containers), why, dst, proto, dport)
        elif kind == "host":
            self.from_host(why, dst, proto, dport)
        else:
            src = self.random_external(v) if rng.random() < 0.5 else None
            self.from_outside(why, dst, proto, dport, src=src)


def generate(snap: Snapshot, plan: TopologyPlan, *, count: int = 60, seed: int = 0) -> list[Probe]:
    """At least ``count`` probes: all structured ones, then random ones (at least
    ``max(10, count // 4)`` of them) up to ``count``."""
    b = _Builder(snap, plan, random.Random(seed))
    b.structured()
    target = max(count, len(b.probes) + max(10, count // 4))
    tries = 0
    while len(b.probes) < target and tries < target * 50:
        b.random_one()
        tries += 1
    return b.probes

