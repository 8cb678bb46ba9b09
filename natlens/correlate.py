"""Correlation: what Docker publishes, matched with the rules that serve it.

``correlate(inventory, ruleset4, ruleset6)`` returns a ``Correlation``: every published
*binding* (one host port of a running container in one family: container, networks, the
container's addresses of that family, container port, host address and port, protocol) with
the rules that serve it, and every *unpublished* container port worth asking about (the image's
EXPOSE ports and one commonly served port standing for "any other port").

The rules are found by their shape, as Docker writes them (docs "Packet filtering and
firewalls", "Port publishing and mapping"; moby ``integration/network/bridge/iptablesdoc``):

* ``dnat``: a nat rule ``-p PROTO --dport HOST_PORT -j DNAT --to-destination CONTAINER_IP:PORT``
  (in any chain: ``DOCKER`` for Docker's own, elsewhere for hand-written ones);
* ``accept``: a filter rule ``-d CONTAINER_IP -p PROTO --dport CONTAINER_PORT -j ACCEPT``
  (Docker's ``filter DOCKER`` rule per container port);
* ``masquerade``: a nat rule ``-s CONTAINER_IP -d CONTAINER_IP -p PROTO --dport CONTAINER_PORT
  -j MASQUERADE`` (the hairpin rule Docker writes when the userland proxy is off).

Whether the rules really serve the binding is for the simulator to say (``natlens.exposure``,
the audit): correlation only pairs what Docker says with what the rules name. It reads rule
values, never files, and imports nothing above ``natlens.docker`` and ``natlens.model``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from natlens.docker import Container, Inventory, Network, PublishedPort
from natlens.model import Rule, Ruleset, TableName
from natlens.netfilter.packet import endpoint
from natlens.netfilter.targets import parse_nat_range
from natlens.parse.values import parse_port_range

__all__ = [
    "PROBE_PORTS",
    "Binding",
    "ContainerPort",
    "Correlation",
    "IPAddress",
    "RuleAt",
    "bridged",
    "containers",
    "correlate",
    "dnat_target",
    "docker_chain",
    "port_set",
    "routed",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

PROBE_PORTS = (22, 3306, 5432, 6379, 27017, 11211)
"""Ports a container typically serves without publishing them (ssh, databases, caches); the
first one a container neither publishes nor exposes stands for "any unpublished port"."""

_SHARED_NETNS = ("host", "none")


def docker_chain(name: str) -> bool:
    """Whether a chain is Docker's own (``DOCKER``, ``DOCKER-FORWARD``, ...; not DOCKER-USER).

    >>> docker_chain("DOCKER-FORWARD"), docker_chain("DOCKER-USER")
    (True, False)
    """
    return name.startswith("DOCKER") and name != "DOCKER-USER"


def port_set(rule: Rule) -> list[tuple[int, int]] | None:
    """The destination ports a rule's positive ``--dport``/``--dports`` accept, as ranges; None
    when it names none (or only negated ones)."""
    out: list[tuple[int, int]] = []
    named = False
    for m in rule.matches:
        for name in ("--dport", "--dports", "--destination-port", "--destination-ports"):
            opt = m.get(name)
            if opt is None:
                continue
            if opt.negated:
                return None
            named = True
            for part in ",".join(opt.args).split(","):
                try:
                    out.append(parse_port_range(part))
                except ValueError:
                    return None
    return out if named else None


def _in_ports(port: int, ranges: Sequence[tuple[int, int]]) -> bool:
    return any(lo <= port <= hi for lo, hi in ranges)


def dnat_target(rule: Rule, family: int) -> tuple[IPAddress, int | None] | None:
    """``--to-destination`` of a DNAT rule as (address, port); None when absent or unreadable."""
    opt = rule.target.get("--to-destination") if rule.target is not None else None
    if opt is None:
        return None
    try:
        ip, port, _ = parse_nat_range(opt.value, family)
    except ValueError:
        return None
    return None if ip is None else (ip, port)


def routed(net: Network, family: int) -> bool:
    """Whether ``net`` runs in routed mode for ``family`` (no NAT: ports open on the container's
    address, ``com.docker.network.bridge.gateway_mode_ipv4=routed``)."""
    key = "com.docker.network.bridge.gateway_mode_ipv4" if family == 4 else (
        "com.docker.network.bridge.gateway_mode_ipv6")
    return net.option(key) == "routed"


@dataclass(frozen=True, slots=True)
class RuleAt:
    """A rule and where it is: family (4 or 6), table, chain and 1-based index."""

    family: int
    table: str
    chain: str
    index: int
    rule: Rule


@dataclass(frozen=True, slots=True)
class Binding:
    """One published host port of a running container in one family (``4`` or ``6``), with the
    rules that name it (see the module docstring)."""

    container: Container
    port: PublishedPort
    family: int
    host_port: int
    container_port: int
    targets: tuple[IPAddress, ...]
    """The container's addresses of this family on its (NATed) bridge networks."""
    networks: tuple[tuple[Network, IPAddress], ...]
    dnat: tuple[RuleAt, ...] = ()
    """nat DNAT rules to one of ``targets`` at ``container_port``, Docker's chains first."""
    accept: tuple[RuleAt, ...] = ()
    """filter ACCEPT rules for one of ``targets`` at ``container_port``."""
    masquerade: tuple[RuleAt, ...] = ()
    """nat MASQUERADE rules from and to one of ``targets`` (the hairpin rule)."""

    @property
    def proto(self) -> str:
        """``tcp``, ``udp`` or ``sctp``."""
        return self.port.proto.value

    @property
    def host_ip(self) -> IPAddress | None:
        """The host address it is published on; None (or unspecified) for every address."""
        return self.port.host_ip

    @property
    def loopback(self) -> bool:
        """Published on a loopback address only (``-p 127.0.0.1:...``)."""
        return self.port.loopback_only

    @property
    def expected(self) -> frozenset[str]:
        """Where the packets should land: ``IP:PORT`` of each of the container's addresses."""
        return frozenset(endpoint(ip, self.container_port) for ip in self.targets)

    @property
    def label(self) -> str:
        """``natlens-web's 8080/tcp`` (with the address when not every address)."""
        ip = self.port.host_ip
        where = "" if ip is None or ip.is_unspecified else f" on {ip}"
        fam = " (IPv6)" if self.family == 6 else ""
        return f"{self.container.name}'s {self.host_port}/{self.proto}{where}{fam}"


@dataclass(frozen=True, slots=True)
class ContainerPort:
    """A container port that no binding publishes, in one family: an EXPOSE port of the image
    (``exposed``) or the stand-in for any other port (one of ``PROBE_PORTS``)."""

    container: Container
    family: int
    proto: str
    port: int
    networks: tuple[tuple[Network, IPAddress], ...]
    exposed: bool


@dataclass(frozen=True, slots=True)
class Correlation:
    """Every binding and every unpublished container port of an inventory (see ``correlate``)."""

    inventory: Inventory
    bindings: tuple[Binding, ...]
    unpublished: tuple[ContainerPort, ...]

    def for_container(self, name: str) -> tuple[Binding, ...]:
        """The bindings of container ``name``."""
        return tuple(b for b in self.bindings if b.container.name == name)


def containers(inventory: Inventory) -> Iterator[Container]:
    """Running containers with their own network namespace."""
    for c in inventory.running:
        if c.network_mode in _SHARED_NETNS or c.network_mode.startswith("container:"):
            continue
        yield c


def bridged(inventory: Inventory, c: Container,
            family: int) -> tuple[tuple[Network, IPAddress], ...]:
    """The container's (network, address) pairs of ``family`` on bridge networks."""
    out: list[tuple[Network, IPAddress]] = []
    for ep in c.networks:
        net = inventory.network(ep.name) or inventory.network(ep.network_id)
        if net is None or net.driver != "bridge" or net.bridge is None:
            continue
        ip = ep.ipv4 if family == 4 else ep.ipv6
        if ip is not None:
            out.append((net, ip))
    return tuple(out)


_Shaped = tuple[RuleAt, str, list[tuple[int, int]]]
"""A rule with a positive protocol and destination ports: (where, protocol, port ranges)."""


class _PortIndex:
    """Rules of one table and family with a positive protocol and ``--dport``, looked up by
    (protocol, port): single ports in a dict, ranges in a list (scanned)."""

    def __init__(self) -> None:
        self.by_port: dict[tuple[str, int], list[_Shaped]] = {}
        self.wide: list[_Shaped] = []
        self.to_address: dict[tuple[str, int, IPAddress], list[tuple[int, _Shaped]]] = {}
        """Single-port rules with a positive one-address destination, by (protocol, port,
        address), each with its position among the rules added (``find_to``)."""
        self.to_any: dict[tuple[str, int], list[tuple[int, _Shaped]]] = {}
        """The other single-port rules, by (protocol, port)."""
        self.wide_at: list[tuple[int, _Shaped]] = []
        self.added = 0

    def add(self, at: RuleAt) -> None:
        rule = at.rule
        if rule.protocol is None or rule.protocol.negated:
            return
        ports = port_set(rule)
        if ports is None:
            return
        entry = (at, rule.protocol.name, ports)
        seq = self.added
        self.added += 1
        d = rule.destination
        single = d.network.network_address if d is not None and not d.negated \
            and d.network.num_addresses == 1 else None
        if all(lo == hi for lo, hi in ports) and len(ports) <= 64:
            for p in dict.fromkeys(lo for lo, _ in ports):
                self.by_port.setdefault((rule.protocol.name, p), []).append(entry)
                if single is not None:
                    self.to_address.setdefault((rule.protocol.name, p, single), []).append(
                        (seq, entry))
                else:
                    self.to_any.setdefault((rule.protocol.name, p), []).append((seq, entry))
        else:
            self.wide.append(entry)
            self.wide_at.append((seq, entry))

    def find(self, proto: str, port: int) -> Iterator[RuleAt]:
        for at, p, ports in (*self.by_port.get((proto, port), ()), *self.wide):
            if p == proto and _in_ports(port, ports):
                yield at

    def find_to(self, proto: str, port: int, targets: Sequence[IPAddress]) -> Iterator[RuleAt]:
        """``find(proto, port)`` less the rules whose one-address destination is none of
        ``targets`` (without scanning them: a port every container serves has one such
        rule per container)."""
        found = [*self.to_any.get((proto, port), ())]
        for t in dict.fromkeys(targets):
            found += self.to_address.get((proto, port, t), ())
        found.sort(key=lambda e: e[0])
        for _, (at, p, ports) in (*found, *self.wide_at):
            if p == proto and _in_ports(port, ports):
                yield at


class _Rules:
    """The DNAT, ACCEPT and MASQUERADE rules of one family, indexed by (protocol, port)."""

    def __init__(self, ruleset: Ruleset | None, family: int) -> None:
        self.family = family
        self.dnat, self.accept, self.masquerade = _PortIndex(), _PortIndex(), _PortIndex()
        if ruleset is None:
            return
        for table_name, wanted in ((TableName.NAT, ("DNAT", "MASQUERADE")),
                                   (TableName.FILTER, ("ACCEPT",))):
            table = ruleset.get(table_name)
            for chain in table.chains if table is not None else ():
                for index, rule in enumerate(chain.rules, 1):
                    name = rule.target_name
                    if name is None or name not in wanted:
                        continue
                    at = RuleAt(family, table_name.value, chain.name, index, rule)
                    {"DNAT": self.dnat, "MASQUERADE": self.masquerade,
                     "ACCEPT": self.accept}[name].add(at)

    def dnats(self, proto: str, host_port: int, targets: Sequence[IPAddress],
              container_port: int) -> tuple[RuleAt, ...]:
        found = []
        for at in self.dnat.find(proto, host_port):
            dest = dnat_target(at.rule, self.family)
            if dest is None:
                continue
            ip, port = dest
            if ip in targets and (port or host_port) == container_port:
                found.append(at)
        found.sort(key=lambda r: (not docker_chain(r.chain), r.chain, r.index))
        return tuple(found)

    def accepts(self, proto: str, port: int, targets: Sequence[IPAddress],
                index: _PortIndex) -> tuple[RuleAt, ...]:
        out = []
        for at in index.find_to(proto, port, targets):
            d = at.rule.destination
            if d is None or d.negated or not any(t in d.network for t in targets
                                                 if t.version == d.network.version):
                continue
            if index is self.masquerade:
                s = at.rule.source
                if s is None or s.negated or not any(t in s.network for t in targets
                                                     if t.version == s.network.version):
                    continue
            out.append(at)
        return tuple(out)


def correlate(inventory: Inventory, ruleset4: Ruleset | None,
              ruleset6: Ruleset | None = None) -> Correlation:
    """Pair every published port of ``inventory``'s running containers with the rules of
    ``ruleset4`` / ``ruleset6`` that name it; list the unpublished ports too.

    A binding exists per family the port is bound in (``-p 8080:80`` binds 0.0.0.0 and ::;
    ``-p 127.0.0.1:8080:80`` IPv4 only) where the container holds an address on a NATed bridge
    network; one per host port of a range.

    >>> from natlens.docker import Inventory
    >>> correlate(Inventory.from_json([], []), None).bindings
    ()
    """
    rules = {4: _Rules(ruleset4, 4), 6: _Rules(ruleset6, 6)}
    bindings: list[Binding] = []
    unpublished: list[ContainerPort] = []
    for c in containers(inventory):
        for p in c.ports:
            ip = p.host_ip
            for fam in ((4, 6) if ip is None else (ip.version,)):
                nets = tuple((n, a) for n, a in bridged(inventory, c, fam) if not routed(n, fam))
                if not nets:
                    continue
                targets = tuple(a for _, a in nets)
                r = rules[fam]
                for offset, hp in enumerate(p.host_ports):
                    cport = p.container_port + (offset if p.host_end > p.host_start else 0)
                    bindings.append(Binding(
                        c, p, fam, hp, cport, targets, nets,
                        dnat=r.dnats(p.proto.value, hp, targets, cport),
                        accept=r.accepts(p.proto.value, cport, targets, r.accept),
                        masquerade=r.accepts(p.proto.value, cport, targets, r.masquerade)))
        published = {(p.proto.value, p.container_port + k) for p in c.ports
                     for k in range(p.host_end - p.host_start + 1)}
        image = [p for p in c.exposed if p not in published]
        taken = published | set(image)
        generic = next(("tcp", p) for p in PROBE_PORTS if ("tcp", p) not in taken)
        for fam in (4, 6):
            nets = bridged(inventory, c, fam)
            if not nets:
                continue
            for proto, port in image:
                unpublished.append(ContainerPort(c, fam, proto, port, nets, exposed=True))
            unpublished.append(ContainerPort(c, fam, generic[0], generic[1], nets,
                                             exposed=False))
    return Correlation(inventory, tuple(bindings), tuple(unpublished))
