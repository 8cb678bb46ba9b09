"""The exposure map: who can open a connection to each port of the host, from where.

``exposure(snapshot) -> ExposureMap``. *Rows* are the ports worth asking about:

* every published host port (one ``natlens.correlate.Binding``: container, family, host port);
* every container port, published or not (``Correlation.unpublished``: the image's EXPOSE
  ports and one commonly served port that stands for "any other port"), at the container's own
  address (direct routing, as a neighbour on the LAN or a router pointed at the host can do);
* every host service that ``ss.txt`` lists (docker-proxy's sockets belong to the published
  ports).

*Ingresses* are where a connection can start: each host interface that is not a container
bridge or a bridge port and has an address (``eth0``, a LAN, ``wg0``, ``tailscale0``), the
host itself (``local``), and each Docker network (its bridge: the other containers). For each
row, ingress and family the map holds one *cell* per source class and destination address:

* destinations: the ingress interface's own addresses (the host's primary addresses for
  ``local`` and the Docker networks, plus the network's gateway for host services), the
  loopback address (``127.0.0.1``/``::1``, from another host too: Docker's DNAT matches any
  input interface, and ``route_localnet`` decides the rest, ``sysctl.txt``) and, for container
  ports, the container's own address on each of its networks;
* source classes: the source prefixes that the rules which can see the packet name (``-s``,
  positive or negated, in rules whose verdict counts: ACCEPT, DROP, REJECT, RETURN, DNAT, a jump
  to a chain holding such rules) split the ingress's possible sources into classes of addresses
  that every such rule treats alike (as fffuu's service matrices, Diekmann et al., "Verified
  iptables firewall analysis", 2016); one representative address per class is simulated.

Each cell is decided by the snapshot's prepared simulator (``Snapshot.simulator``, built once
for the whole map): a connection gets through (``reachable``) when the first packet is
accepted, lands on a socket or a container, and the trace's ``connection`` part says the reply
comes back through the same conntrack entry. ``decided_by`` is the rule or policy that accepted
(the last filtering ACCEPT) or refused (the step that dropped) the packet.

The JSON form (``ExposureMap.to_dict``) is DESIGN.md's "Exposure map" contract.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from natlens.correlate import Binding, ContainerPort, Correlation, correlate, port_set
from natlens.docker import Inventory, Network, inventory_from_snapshot
from natlens.exposure_share import Sharing, Values
from natlens.model import Family, Rule, Ruleset
from natlens.netfilter import Packet, Simulator, Step, StepKind, Trace, Verdict
from natlens.netfilter.fastcopy import replace
from natlens.netfilter.host import Host
from natlens.parse.collector import collector_off
from natlens.parse.hostfiles import Listener
from natlens.snapshot import STATED_ADDRESSES, Snapshot

__all__ = [
    "Cell",
    "Decider",
    "ExposureMap",
    "Landing",
    "Row",
    "build",
    "exposure",
    "source_classes",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SPORT = 40000
"""Source port of every representative packet (an ephemeral port no rule is written for)."""

MAX_CLASSES = 16
"""Source classes per (row, ingress, family) at most; more are merged and noted."""

_LOOPBACK: dict[int, IPAddress] = {4: ipaddress.ip_address("127.0.0.1"),
                                   6: ipaddress.ip_address("::1")}
_ASSUMED_HOST: dict[int, IPAddress] = {4: ipaddress.ip_address("203.0.113.2"),
                                       6: ipaddress.ip_address("2001:db8:ffff::2")}
_OUTSIDE: dict[int, tuple[IPAddress, ...]] = {
    4: tuple(ipaddress.ip_address(a) for a in ("198.51.100.7", "203.0.113.77", "100.64.7.7")),
    6: tuple(ipaddress.ip_address(a) for a in ("2001:db8:7::7", "2001:db8:77::7")),
}
_ALL: dict[int, IPNetwork] = {4: ipaddress.ip_network("0.0.0.0/0"),
                              6: ipaddress.ip_network("::/0")}
_NOT_REMOTE: dict[int, tuple[IPNetwork, ...]] = {
    4: (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("0.0.0.0/8"),
        ipaddress.ip_network("224.0.0.0/3")),
    6: (ipaddress.ip_network("::1/128"), ipaddress.ip_network("::/128"),
        ipaddress.ip_network("ff00::/8")),
}
"""Sources no packet from another host carries (loopback, "this network", multicast and
reserved): left out of the source classes of a remote ingress."""
_ALWAYS_OUT = frozenset(n for nets in _NOT_REMOTE.values() for n in nets)
_DECIDING = frozenset({"ACCEPT", "DROP", "REJECT", "RETURN", "DNAT", "REDIRECT", "NETMAP",
                       "TPROXY", "NFQUEUE", "QUEUE", "SNAT", "MASQUERADE"})
"""Targets whose match can change whether a connection gets through or where it lands (SNAT
and MASQUERADE: whether the reply comes back)."""
_FILTERING = frozenset({"INPUT", "FORWARD", "OUTPUT"})


@dataclass(frozen=True, slots=True)
class Decider:
    """The rule or policy that decided a cell: ``index`` None for a policy; ``source``,
    ``table``, ``chain`` and ``index`` all None for the routing code (``text`` its note)."""

    source: str | None
    table: str | None
    chain: str | None
    index: int | None
    text: str

    @classmethod
    def of(cls, step: Step) -> Decider:
        """The decider named by a trace step."""
        return cls(step.source, step.table, step.chain,
                   step.rule if step.kind is StepKind.RULE else None, step.text)

    def to_dict(self) -> dict[str, Any]:
        """``{"source","table","chain","index","text"}``."""
        return {"source": self.source, "table": self.table, "chain": self.chain,
                "index": self.index, "text": self.text}

    def __str__(self) -> str:
        if self.chain is None:  # the routing decision (a martian, no route): its note
            return self.text
        where = f"{self.table}:{self.chain}"
        return f"{where}#{self.index}" if self.index is not None else (
            f"{where} {self.text}")


@dataclass(frozen=True, slots=True)
class Landing:
    """Where a connection lands: ``container`` (name), ``proxy`` (docker-proxy, named by the
    container it serves) or ``host`` (the listening process, or the socket when ss shows no
    process)."""

    kind: str
    name: str

    def to_dict(self) -> dict[str, str]:
        """``{"kind","name"}``."""
        return {"kind": self.kind, "name": self.name}


@dataclass(frozen=True, slots=True)
class Row:
    """One port of the map. ``kind``: ``published`` (a binding's host port), ``container`` (a
    container port at the container's address) or ``service`` (a host socket from ss.txt)."""

    kind: str
    family: int
    proto: str
    port: int
    label: str
    container: str | None = None
    binding: Binding | None = None
    published: bool = False
    """For a container row: whether some binding publishes this port."""
    addresses: tuple[tuple[Network, IPAddress], ...] = ()
    """For a container row: the container's (network, address) pairs of this family."""
    listener: Listener | None = None


@dataclass(frozen=True, slots=True)
class Cell:
    """One (row, ingress, family, source class, destination) of the map and its answer.

    ``reachable`` is None when the snapshot cannot tell (uncertain matches, unknown sockets).
    ``packet`` is the representative packet that was simulated; ``why`` says in words what
    decided (the connection's reply, an unknown socket, ...).
    """

    row: Row
    ingress: str
    family: int
    sources: tuple[str, ...]
    dst: IPAddress
    proto: str
    port: int
    reachable: bool | None
    lands: str | None
    target: Landing | None
    decided_by: Decider | None
    packet: Packet
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON cell of DESIGN.md."""
        return {"ingress": self.ingress, "family": self.family, "sources": list(self.sources),
                "dst": str(self.dst), "proto": self.proto, "port": self.port,
                "reachable": self.reachable, "lands": self.lands,
                "target": self.target.to_dict() if self.target is not None else None,
                "decided_by": self.decided_by.to_dict() if self.decided_by is not None
                else None}


@dataclass(frozen=True, slots=True)
class ExposureMap:
    """Every cell of the map (rows in order, ingresses in ``ingresses`` order) and notes."""

    rows: tuple[Row, ...]
    ingresses: tuple[str, ...]
    cells: tuple[Cell, ...]
    notes: tuple[str, ...] = ()
    networks: Mapping[str, str] = field(default_factory=dict)
    """Bridge name → Docker network name, for the ingresses that are Docker networks."""
    sharing: Sharing | None = field(default=None, compare=False, repr=False)
    """The classes of containers whose cells shared decisions (None: every cell traced)."""
    _by_row: dict[int, list[Cell]] = field(default_factory=dict, init=False, repr=False,
                                           compare=False)
    """``cells_of``'s index: the cells of each row, by the identity of a row of ``rows``
    (filled on first use; the map holds its rows, so an identity stays theirs)."""

    def to_dict(self) -> dict[str, Any]:
        """``{"cells": [...], "notes": [...]}`` (DESIGN.md)."""
        return {"cells": [c.to_dict() for c in self.cells], "notes": list(self.notes)}

    def cells_of(self, row: Row, ingress: str | None = None) -> list[Cell]:
        """The cells of ``row`` (from ``ingress`` when given), in map order."""
        by_row = self._by_row
        if not by_row and self.cells:
            for c in self.cells:
                by_row.setdefault(id(c.row), []).append(c)
        found = [c for c in by_row.get(id(row), ()) if c.row is row]
        return found if ingress is None else [c for c in found if c.ingress == ingress]

    def remote(self, ingress: str) -> bool:
        """Whether ``ingress`` is another host's (a host interface, not local nor a network)."""
        return ingress != "local" and ingress not in self.networks


# -- building ------------------------------------------------------------------------------------


def exposure(snapshot: Any) -> ExposureMap:
    """The exposure map of ``snapshot`` (a ``natlens.Snapshot``), decided by its simulator."""
    return build(snapshot, inventory_from_snapshot(snapshot), snapshot.simulator)


def build(snapshot: Any, inventory: Inventory | None, simulator: Simulator, *,
          correlation: Correlation | None = None,
          trace: Callable[[Packet], Trace] | None = None, share: bool = True) -> ExposureMap:
    """The exposure map from its parts: ``snapshot`` gives the rules, sockets and meta,
    ``inventory`` the containers (None: host services only), ``simulator`` decides each cell
    (prepared once; the audit passes its own, and ``trace``: its cache of traces).
    ``share``: reuse a cell's decision for the cells of containers the rules cannot tell
    apart (``natlens.exposure_share``; the map is the same either way, only faster)."""
    # The cells allocate millions of small acyclic objects (traces, steps, packets) next to
    # the snapshot's model: full collections walking the 100k-rule model took a third of the
    # time on big hosts (as in ``natlens.audit.audit``).
    with collector_off():
        return _Builder(snapshot, inventory, simulator, correlation, trace=trace,
                        share=share).run()


def _rulesets(snapshot: Any, family: int) -> list[Ruleset]:
    fam = Family.IPV4 if family == 4 else Family.IPV6
    out = [snapshot.rules_for(fam)]
    other = snapshot.other_backend if family == 4 else getattr(snapshot, "other_backend6", None)
    if other is not None:
        out.append(other)
    return out


class _Builder:
    """One map's state: the host, the rows, the trace cache (one trace per distinct packet)."""

    def __init__(self, snapshot: Any, inventory: Inventory | None, sim: Simulator,
                 correlation: Correlation | None, *,
                 trace: Callable[[Packet], Trace] | None = None, share: bool = True) -> None:
        self._trace = trace
        self._share = share
        self.sharing: Sharing | None = None
        self.snapshot = snapshot
        self.inventory = inventory
        self.sim = sim
        self.host: Host = sim.host
        self.notes: list[str] = []
        self.corr = correlation if correlation is not None or inventory is None else correlate(
            inventory, snapshot.rules_for(Family.IPV4), snapshot.rules_for(Family.IPV6))
        nets = inventory.networks if inventory is not None else ()
        self.docker_bridges = {n.bridge: n for n in nets if n.bridge and n.driver == "bridge"}
        self.bridges = set(self.docker_bridges) | set(self.host.bridges)
        self.traces: dict[Packet, Trace] = {}
        self.holders: dict[IPAddress, str] = {}
        if inventory is not None:
            for c in inventory.running:
                for ip in c.addresses:
                    self.holders.setdefault(ip, c.name)
        self.sockets: tuple[Listener, ...] | None = getattr(snapshot, "sockets", None)
        self.proxy = inventory is not None and inventory.daemon.userland_proxy is not False
        self._filters: dict[int, _SourceRules] | None = None
        self._stated_on: str | None = None
        """The outside interface assumed to hold the --host-addr addresses when the snapshot
        names no interface with an address (``external``)."""
        self._universes: dict[tuple[str, int], list[IPNetwork] | None] = {}
        self._spans: dict[tuple[str, int], list[tuple[int, int]]] = {}
        self._inside: dict[tuple[str, int], dict[IPNetwork, bool]] = {}
        self._taken: dict[str, set[IPAddress]] = {}
        self._primary: dict[tuple[int, tuple[str, ...]], IPAddress | None] = {}
        self._net_texts: dict[IPNetwork, str] = {}
        self._packets: dict[tuple[str, int, str], Packet] = {}
        self._landings: dict[tuple[str, str], tuple[Landing | None, bool | None, str]] = {}
        self._classes: dict[tuple[str, int, frozenset[IPNetwork]],
                            list[tuple[tuple[str, ...], IPAddress]]] = {}
        self._by_port: dict[tuple[int, int], list[Binding]] | None = None
        """Bindings by (host port, family), in order (``_published_by``)."""
        self._seen: dict[tuple[str, int, str], tuple[list[_Sourced], set[IPNetwork]]] = {}
        """Per (ingress, family, protocol): the source rules that can see such a packet and
        name a prefix inside the ingress's universe."""

    def filters(self) -> dict[int, _SourceRules]:
        """The source-prefix rules of each family (4, 6), prefiltered on first use: a map
        with no cell to probe never reads the rules (on a cached snapshot, never unpickles
        every chain)."""
        if self._filters is None:
            nft_prefixes = _nft_sources(getattr(self.snapshot, "nft", None))
            self._filters = {f: _SourceRules(_rulesets(self.snapshot, f),
                                             nft_prefixes.get(f, ())) for f in (4, 6)}
        return self._filters

    # -- ingresses and addresses ----------------------------------------------------------------

    def external(self) -> list[str]:
        host = self.host
        if not host.known_addresses:
            self.notes.append("host addresses unknown (no ip-addr.json): one outside interface "
                              "'eth0' assumed, at 203.0.113.2 / 2001:db8:ffff::2")
            return ["eth0" if "eth0" not in self.bridges else "ext0"]
        out = []
        for i in host.interfaces:
            if i in ("lo", STATED_ADDRESSES) or i in self.bridges or i in host.masters:
                continue  # the addresses --host-addr states are on no interface in particular
            if any(not a.ip.is_loopback and not a.ip.is_link_local
                   for a in host.addresses.get(i, ())):
                out.append(i)
        if not out and host.addresses.get(STATED_ADDRESSES):
            self._stated_on = "eth0" if "eth0" not in self.bridges else "ext0"
            self.notes.append(f"outside interface unknown (no ip-addr.json): one outside "
                              f"interface '{self._stated_on}' assumed, at the addresses given "
                              f"with --host-addr")
            out.append(self._stated_on)
        return out

    def addresses_of(self, iface: str, family: int) -> list[IPAddress]:
        if not self.host.known_addresses:
            return [_ASSUMED_HOST[family]]
        if iface == self._stated_on:
            iface = STATED_ADDRESSES
        return [a.ip for a in self.host.addresses.get(iface, ())
                if a.ip.version == family and not a.ip.is_link_local and not a.ip.is_loopback]

    def primary(self, family: int, externals: Sequence[str]) -> IPAddress | None:
        """The host's address on its default route's interface (else on the first external
        interface that has one) in ``family``; kept per (family, externals)."""
        key = (family, tuple(externals))
        if key not in self._primary:
            self._primary[key] = self._primary_of(family, externals)
        return self._primary[key]

    def _primary_of(self, family: int, externals: Sequence[str]) -> IPAddress | None:
        default = next((r.dev for r in (self.host.routes if family == 4 else self.host.routes6)
                        if r.network.prefixlen == 0 and r.dev in externals), None)
        for iface in ([default] if default else []) + list(externals):
            found = self.addresses_of(iface, family)
            if found:
                return found[0]
        return None

    # -- rows -----------------------------------------------------------------------------------

    def rows(self) -> list[Row]:
        out: list[Row] = []
        corr = self.corr
        if corr is not None:
            for b in corr.bindings:
                ip = b.host_ip
                where = "" if ip is None or ip.is_unspecified else f"{_ip_text(ip)}:"
                out.append(Row("published", b.family, b.proto, b.host_port,
                               f"{where}{b.host_port}/{b.proto} -> {b.container.name}:"
                               f"{b.container_port}", container=b.container.name, binding=b))
            seen: set[tuple[str, int, str, int]] = set()
            for b in corr.bindings:
                key = (b.container.name, b.family, b.proto, b.container_port)
                if key in seen:
                    continue
                seen.add(key)
                nets = tuple((n, a) for n, a in b.networks)
                out.append(Row("container", b.family, b.proto, b.container_port,
                               f"{b.container.name}:{b.container_port}/{b.proto}",
                               container=b.container.name, published=True, addresses=nets))
            for u in corr.unpublished:
                key = (u.container.name, u.family, u.proto, u.port)
                if key in seen:
                    continue
                seen.add(key)
                out.append(_unpublished_row(u))
        for s in self.sockets or ():
            if s.process == "docker-proxy" or s.proto not in ("tcp", "udp"):
                continue
            fams = (4, 6) if s.address is None or (s.address.version == 6
                                                   and s.address.is_unspecified) else (
                s.address.version,)
            # ss prints users:(...) only for a socket whose owner's /proc/PID/fd it may read
            # (ss(8) -p); a kernel socket has no owner. Say so rather than print "?", which
            # the table's legend uses for "cannot tell".
            name = s.process or "(process unknown)"
            at = "" if s.address is None or s.address.is_unspecified else (
                f"{_ip_text(s.address)}:")
            if s.process is None:
                self.notes.append(f"ss.txt names no process for {at}{s.port}/{s.proto}: ss "
                                  "shows the process of a socket only when it may read its "
                                  "owner's /proc/PID/fd (root, in the host's PID namespace), "
                                  "and a kernel socket has none; it is listed as a host "
                                  "service")
            for fam in fams:
                out.append(Row("service", fam, s.proto, s.port, f"{at}{s.port}/{s.proto} "
                               f"{name}", listener=s))
        if self.sockets is None:
            self.notes.append("no ss.txt: host services unknown; a connection delivered to the "
                              "host counts as served only where docker-proxy listens")
        return out

    # -- cells ----------------------------------------------------------------------------------

    def run(self) -> ExposureMap:
        externals = self.external()
        ingresses = [*externals, "local", *sorted(self.docker_bridges)]
        rows = self.rows()
        if not rows:
            snap = self.snapshot
            uncovered = uncovered_dnat(snap)
            if uncovered is not None:
                self.notes.insert(0, self._uncovered_note(uncovered, externals))
        if self._share and self.corr is not None and self.inventory is not None:
            self.sharing = self._sharing(rows)
        cells: list[Cell] = []
        for row in rows:
            for ingress in ingresses:
                cells.extend(self.row_cells(row, ingress, externals))
        networks = {b: n.name for b, n in self.docker_bridges.items()}
        return ExposureMap(tuple(rows), tuple(ingresses), tuple(cells),
                           tuple(dict.fromkeys(self.notes)), networks, self.sharing)

    def _sharing(self, rows: Sequence[Row]) -> Sharing:
        """The classes of containers whose cells may share decisions (their values: the
        addresses of each family and the published host ports; every other row's port and
        the source port must be none of them)."""
        assert self.corr is not None
        assert self.inventory is not None
        ports: dict[tuple[str, int], list[int]] = {}
        for b in self.corr.bindings:
            ports.setdefault((b.container.name, b.family), []).append(b.host_port)
        containers: list[tuple[str, dict[int, Values]]] = []
        for c in self.inventory.running:
            per: dict[int, Values] = {}
            for fam in (4, 6):
                pairs = [(n.name, ip) for n in c.networks
                         for ip in ((n.ipv4,) if fam == 4 else (n.ipv6,))
                         if ip is not None]
                per[fam] = (tuple(n for n, _ in pairs), tuple(ip for _, ip in pairs),
                            tuple(dict.fromkeys(ports.get((c.name, fam), ()))))
            containers.append((c.name, per))
        others = {SPORT, 49152} | {r.port for r in rows if r.kind != "published"}
        return Sharing(self.sim, containers, others)

    def _uncovered_note(self, u: UncoveredDnat, externals: Sequence[str]) -> str:
        """The note for the nat DNAT rules a map without rows does not cover, with a ``natlens
        trace`` command that runs as printed once PATH is filled in: the example rule's
        interface, protocol and single destination address when it names them, else the
        first outside interface, tcp and the host's primary address."""
        iface = u.iface or (externals[0] if externals else "eth0")
        dst = u.dst or self.primary(u.family, externals) or _ASSUMED_HOST[u.family]
        src = "198.51.100.7" if u.family == 4 else "2001:db8:100::7"
        port = "" if u.port is None else f" --dport {u.port}"
        rules = "rule" if u.count == 1 else "rules"
        return (f"the nat table has {u.count} DNAT {rules} the map does not cover (it maps the "
                f"ports docker-containers.json publishes and the services ss.txt lists, not "
                f"e.g. kube-proxy NodePorts): check a port with `natlens trace PATH --in "
                f"{iface} --src {src} --dst {dst} --proto {u.proto}{port}`")

    def destinations(self, row: Row, ingress: str, externals: Sequence[str]) -> list[IPAddress]:
        fam = row.family
        if row.kind == "container":
            return [ip for _, ip in row.addresses]
        lo = _LOOPBACK[fam]
        if ingress in self.docker_bridges:
            out: list[IPAddress] = []
            if row.kind == "service":
                out += [g for g in self.docker_bridges[ingress].gateways if g.version == fam]
            p = self.primary(fam, externals)
            if p is not None:
                out.append(p)
            dsts = out
        elif ingress == "local":
            p = self.primary(fam, externals)
            dsts = ([p] if p is not None else []) + [lo]
        else:
            dsts = [*self.addresses_of(ingress, fam)[:1], lo]
        wanted = row.binding.host_ip if row.binding is not None else (
            row.listener.address if row.listener is not None else None)
        if wanted is not None and not wanted.is_unspecified and wanted.version == fam \
                and wanted not in dsts and ingress == "local":
            dsts.append(wanted)
        return list(dict.fromkeys(dsts))

    def row_cells(self, row: Row, ingress: str, externals: Sequence[str]) -> Iterator[Cell]:
        fam = row.family
        dsts = self.destinations(row, ingress, externals)
        if not dsts:
            return
        universe = self.universe(ingress, fam, row)
        if universe is None:
            return
        for dst in dsts:
            classes: list[tuple[tuple[str, ...], IPAddress]]
            if ingress == "local":
                classes = [((), dst)]
            else:
                classes = self.classes(ingress, fam, row, dst, universe)
            for sources, src in classes:
                yield self.decide(row, ingress, sources, self.packet(ingress, src, dst, row))

    def packet(self, ingress: str, src: IPAddress, dst: IPAddress, row: Row) -> Packet:
        """The cell's packet: the first of each (ingress, family, protocol) made by
        ``Packet``, the others as copies of it with their addresses and port (what ``Packet``
        would check holds: one family, a port of a protocol that has ports)."""
        key = (ingress, dst.version, row.proto)
        template = self._packets.get(key)
        if template is None or src.version != dst.version or not 0 <= row.port <= 65535:
            if ingress == "local":
                pkt = Packet(local_origin=True, src=src, dst=dst, proto=row.proto,
                             sport=SPORT, dport=row.port)
            else:
                pkt = Packet(in_interface=ingress, src=src, dst=dst, proto=row.proto,
                             sport=SPORT, dport=row.port)
            self._packets.setdefault(key, pkt)
            return pkt
        return replace(template, src=src, dst=dst, dport=row.port)

    def universe(self, ingress: str, fam: int, row: Row) -> list[IPNetwork] | None:
        """The sources a packet at ``ingress`` may carry (``_universe``, once per ingress and
        family)."""
        key = (ingress, fam)
        if key not in self._universes:
            self._universes[key] = self._universe(ingress, fam)
        return self._universes[key]

    def _universe(self, ingress: str, fam: int) -> list[IPNetwork] | None:
        """The sources a packet at ``ingress`` may carry: a Docker network's subnets; for a
        host interface the addresses whose route back leaves through it (its routes, more
        specific routes through other devices cut out), or, when no route names it, every
        address not routed elsewhere. Loopback and reserved sources are left out: a source
        routed back through another interface is spoofed (rp_filter; and the reply would not
        return this way)."""
        if ingress in self.docker_bridges:
            subnets = [s for s in self.docker_bridges[ingress].subnets if s.version == fam]
            return subnets or None
        routes = [r for r in (self.host.routes if fam == 4 else self.host.routes6)
                  if r.kind in ("unicast", None, "") and r.dev]
        elsewhere = [a.network for iface, addrs in self.host.addresses.items()
                     if iface != ingress for a in addrs
                     if a.ip.version == fam and not a.ip.is_link_local]
        elsewhere += [s for n in self.docker_bridges.values() for s in n.subnets
                      if s.version == fam]
        elsewhere += [r.network for r in routes if r.dev != ingress]
        mine = [r.network for r in routes if r.dev == ingress]
        own = [a.network for a in self.host.addresses.get(ingress, ())
               if a.ip.version == fam and not a.ip.is_link_local and not a.ip.is_loopback]
        start = list(ipaddress.collapse_addresses(  # type: ignore[type-var]
            mine + own)) or [_ALL[fam]]
        found = _excluding(start, [*_NOT_REMOTE[fam], *elsewhere])
        return found or None

    def classes(self, ingress: str, fam: int, row: Row, dst: IPAddress,
                universe: list[IPNetwork]) -> list[tuple[tuple[str, ...], IPAddress]]:
        dsts = [dst, *(ip for _, ip in row.addresses)]
        if row.binding is not None:
            dsts += list(row.binding.targets)
        ports = {row.port} | ({row.binding.container_port} if row.binding is not None else set())
        spans = self._spans.get((ingress, fam))
        if spans is None:
            spans = self._spans[(ingress, fam)] = _merged(
                (int(u.network_address), int(u.broadcast_address)) for u in universe)
            self._inside[(ingress, fam)] = {}
        starts = [lo for lo, _ in spans]
        memo = self._inside[(ingress, fam)]

        def inside(p: IPNetwork) -> bool:
            """Whether ``p`` overlaps the universe (its spans are sorted and disjoint: the
            last one starting at or below ``p``'s end is the only one to ask)."""
            found = memo.get(p)
            if found is None:
                at = bisect.bisect_right(starts, int(p.broadcast_address)) - 1
                found = memo[p] = at >= 0 and spans[at][1] >= int(p.network_address)
            return found

        filters = self.filters()[fam]
        known = self._seen.get((ingress, fam, row.proto))
        if known is None:  # rules whose prefix lies outside the universe never count here
            kept = [r for r in filters.seen_from(ingress, row.proto) if inside(r.network)]
            known = self._seen[(ingress, fam, row.proto)] = (kept, {r.network for r in kept})
        seen, inside_seen = known
        prefixes = frozenset(
            p for p in filters.prefixes(ingress, row.proto, ports, dsts, seen)
            if p in inside_seen or inside(p))
        key = (ingress, fam, prefixes)
        cached = self._classes.get(key)
        if cached is not None:
            return cached
        found = source_classes(universe, prefixes)
        if len(found) > MAX_CLASSES:
            self.notes.append(f"{ingress}: {len(found)} source classes for {row.label}; the "
                              f"first {MAX_CLASSES} are simulated")
            found = found[:MAX_CLASSES]
        out = []
        for nets in found:
            src = self.representative(nets, ingress, fam, row)
            shown: tuple[str, ...] = () if len(found) == 1 else tuple(
                self._text_of(n) for n in nets)
            out.append((shown, src))
        self._classes[key] = out
        return out

    def _text_of(self, net: IPNetwork) -> str:
        """``str(net)``, kept (an IPv6 network's text costs ~10 us; a class's CIDRs recur)."""
        text = self._net_texts.get(net)
        if text is None:
            text = self._net_texts[net] = str(net)
        return text

    def representative(self, nets: Sequence[IPNetwork], ingress: str, fam: int,
                       row: Row) -> IPAddress:
        """An address of the class: for a Docker network a free address (not the row's
        container, not the gateway); elsewhere one in none of the host's or Docker's
        networks when the class allows it."""
        if ingress in self.docker_bridges:
            net = self.docker_bridges[ingress]
            taken = self._taken.get(ingress)
            if taken is None:
                taken = self._taken[ingress] = self.holders.keys() | set(net.gateways) | {
                    a for sub in net.subnets
                    for a in (sub.network_address, sub.broadcast_address)}
            for n in sorted(nets, key=lambda x: -x.num_addresses):
                top = int(n.broadcast_address) if fam == 4 else int(n.network_address) + 0xFFFE
                lo = int(n.network_address)
                for k in range(1, 16):
                    ip = ipaddress.ip_address(top - k) if top - k >= lo else None
                    if ip is not None and ip not in taken and ip in n:
                        return ip
            return nets[0].network_address
        local: list[IPNetwork] = [ipaddress.ip_network(a.ip) for addrs in
                                  self.host.addresses.values() for a in addrs
                                  if a.ip.version == fam]
        local += [s for n in self.docker_bridges.values() for s in n.subnets if s.version == fam]
        for ip in _OUTSIDE[fam]:
            if any(ip in n for n in nets) and not any(ip in n for n in local):
                return ip
        for n in nets:
            for candidate in (n.network_address + 7 if n.num_addresses > 8 else n.network_address,
                              n.network_address):
                if not any(candidate in x for x in local):
                    return candidate
        return nets[0].network_address

    def trace(self, pkt: Packet) -> Trace:
        if self._trace is not None:
            return self._trace(pkt)
        found = self.traces.get(pkt)
        if found is None:
            found = self.traces[pkt] = self.sim.trace(pkt)
        return found

    def decide(self, row: Row, ingress: str, sources: tuple[str, ...], pkt: Packet) -> Cell:
        share = self.sharing
        key = share.key(row.container, pkt) if share is not None else None
        if key is not None:
            assert share is not None
            assert row.container is not None
            found = share.done.get(key)
            if found is not None:
                verdict, final_dst, path, d = share.unpack(row.container, pkt.family, found)
                decider = d if d is None else Decider(*d) if isinstance(d, tuple) else \
                    Decider.of(d)
                return self.decided(row, ingress, sources, pkt, (verdict, final_dst, path),
                                    d=decider, trace=None)
        trace = self.trace(pkt)
        verdict, final_dst, path, steps, certain = _certain(trace)
        if not certain:
            return Cell(row, ingress, row.family, sources, pkt.dst, row.proto, row.port,
                        None, None, None, None, pkt, "the rules' outcome depends on what the "
                        "snapshot cannot tell: " + "; ".join(trace.uncertain[:2]))
        step = _refusing(steps) if verdict is not Verdict.ACCEPT else _accepting(steps)
        if key is not None:
            assert share is not None
            assert row.container is not None
            summary = share.summarize(row.container, pkt, trace, verdict=verdict,
                                      final_dst=final_dst, path=path, decider=step)
            if summary is not None:
                share.done[key] = summary
        return self.decided(row, ingress, sources, pkt, (verdict, final_dst, path),
                            d=Decider.of(step) if step is not None else None, trace=trace)

    def decided(self, row: Row, ingress: str, sources: tuple[str, ...], pkt: Packet,
                outcome: tuple[Verdict, str, str], *, d: Decider | None,
                trace: Trace | None) -> Cell:
        """The cell of a certain ``outcome`` (verdict, final destination, path) decided by
        ``d``; ``trace`` None: the connection is established (a shared decision)."""
        verdict, final_dst, path = outcome
        def cell(reachable: bool | None, lands: str | None, target: Landing | None,
                 decided_by: Decider | None, why: str) -> Cell:
            return Cell(row, ingress, row.family, sources, pkt.dst, row.proto, row.port,
                        reachable, lands, target, decided_by, pkt, why)

        if verdict is not Verdict.ACCEPT:
            done = "rejected" if verdict is Verdict.REJECT else "dropped"
            why = done if d is None else str(d) if d.chain is None else f"{done} by {d}"
            return cell(False, None, None, d, why)
        found = self._landings.get((final_dst, path))
        if found is None:
            found = self._landings[(final_dst, path)] = self.landing(final_dst, path)
        landing, listening, why = found
        conn = trace.connection if trace is not None else None
        reachable: bool | None = listening
        if conn is not None and conn.established is False and listening is not False:
            reachable, why = False, conn.why  # (nothing listening: the landing says so)
        elif conn is not None and conn.established is None and reachable:
            reachable, why = None, conn.why
        return cell(reachable, final_dst, landing, d, why)

    def landing(self, final_dst: str, path: str) -> tuple[Landing | None, bool | None, str]:
        """Who holds ``final_dst`` (``IP:PORT``), whether something listens there, and why."""
        ip_text, _, port_text = final_dst.rpartition(":")
        try:
            ip = ipaddress.ip_address(ip_text.strip("[]"))
            port = int(port_text)
        except ValueError:
            return None, None, f"lands at {final_dst}"
        if path in ("forward", "output"):
            name = self.holders.get(ip)
            if name is not None:
                return Landing("container", name), True, f"forwarded to {name}"
            return None, None, f"forwarded to {final_dst}, no container of the snapshot"
        if path != "local":
            return None, None, f"sent to {final_dst}"
        for s in self.sockets or ():
            if s.port != port or (s.address is not None and not s.address.is_unspecified
                                  and s.address != ip):
                continue
            if s.address is not None and s.address.version != ip.version and not (
                    s.address.version == 6 and s.address.is_unspecified):
                continue
            if s.process == "docker-proxy":
                owner = self._published_by(ip, port)
                return Landing("proxy", owner or "docker-proxy"), True, "docker-proxy listens"
            return Landing("host", s.process or str(final_dst)), True, \
                f"{s.process or 'a host process'} listens"
        if self.sockets is None and self.proxy:
            owner = self._published_by(ip, port)
            if owner is not None:
                return Landing("proxy", owner), True, "docker-proxy listens (userland proxy on)"
        if self.sockets is None:
            return None, None, f"delivered to the host at {final_dst}; no ss.txt to say " \
                "whether anything listens"
        return None, False, f"delivered to the host at {final_dst}; nothing listens there"

    def _published_by(self, ip: IPAddress, port: int) -> str | None:
        if self._by_port is None:
            self._by_port = {}
            for b in self.corr.bindings if self.corr is not None else ():
                self._by_port.setdefault((b.host_port, b.family), []).append(b)
        for b in self._by_port.get((port, ip.version), ()):
            hip = b.host_ip
            if hip is None or hip.is_unspecified or hip == ip:
                return b.container.name
        return None


@dataclass(frozen=True, slots=True)
class UncoveredDnat:
    """The nat DNAT rules of a snapshot (``count``, over both families) and an example port
    to trace: the first nat rule that names a ``--dport`` and may lead to DNAT, with its
    ``family`` (4 or 6), ``proto`` (tcp, udp or sctp: tcp when the rule names none), single
    destination address ``dst`` and input interface ``iface`` (``eth+``: ``eth0``) when it
    names them."""

    count: int
    family: int = 4
    port: int | None = None
    proto: str = "tcp"
    dst: str | None = None
    iface: str | None = None


def uncovered_dnat(snapshot: Any) -> UncoveredDnat | None:
    """The nat DNAT rules of ``snapshot`` (a ``Snapshot`` or rulesets) and an example port to
    trace (``UncoveredDnat``), None without DNAT rules; kept with a ``Snapshot``
    (``Snapshot.derived``). The map's rows never cover them unless Docker's rules do, hence
    a map without rows notes them, and ``natlens report`` prints that note."""
    if isinstance(snapshot, Snapshot):
        return snapshot.derived("exposure.uncovered_dnat/2", _uncovered_dnat)
    return _uncovered_dnat(snapshot)


def _example(rule: Rule, family: int, port: int) -> UncoveredDnat:
    proto = rule.protocol
    name = proto.name.lower() if proto is not None and not proto.negated else "tcp"
    d = rule.destination
    dst = (str(d.network.network_address) if d is not None and not d.negated and d.mask is None
           and d.network.num_addresses == 1 else None)
    i = rule.in_interface
    iface = None
    if i is not None and not i.negated and i.name != "+":  # eth+: its first name, eth0
        iface = f"{i.name[:-1]}0" if i.name.endswith("+") else i.name
    return UncoveredDnat(0, family, port, name if name in ("tcp", "udp", "sctp") else "tcp",
                         dst, iface)


def _uncovered_dnat(snapshot: Any) -> UncoveredDnat | None:
    """The nat DNAT rules of a snapshot, for a map without rows: rules the map's rows
    (Docker's published and container ports and host services) do not cover, e.g.
    kube-proxy's NodePorts, and an example port to trace (``UncoveredDnat``); None without DNAT
    rules. Read over every nat rule, hence kept with a snapshot (``Snapshot.derived``: a cached
    snapshot answers it without reading its chains)."""
    count = 0
    example: UncoveredDnat | None = None
    for family in (4, 6):
        for ruleset in _rulesets(snapshot, family):
            nat = ruleset.get("nat")
            for chain in nat.chains if nat is not None else ():
                for rule in chain.rules:
                    name = rule.target_name
                    if name == "DNAT":
                        count += 1
                    if example is None and name is not None and name not in _NOT_A_WAY_IN:
                        ports = port_set(rule)
                        if ports:
                            example = _example(rule, family, ports[0][0])
    if not count:
        return None
    if example is None:
        return UncoveredDnat(count)
    return replace(example, count=count)


_NOT_A_WAY_IN = frozenset({"RETURN", "ACCEPT", "DROP", "REJECT", "MASQUERADE", "SNAT", "MARK",
                           "CONNMARK", "LOG", "NFLOG", "REDIRECT"})
"""nat targets after which a ``--dport`` is not an example of a port DNAT may serve."""


def _unpublished_row(u: ContainerPort) -> Row:
    return Row("container", u.family, u.proto, u.port,
               f"{u.container.name}:{u.port}/{u.proto}"
               f"{' (EXPOSE)' if u.exposed else ' (any other)'}",
               container=u.container.name, published=False, addresses=u.networks)


def _ip_text(ip: IPAddress) -> str:
    return f"[{ip}]" if ip.version == 6 else str(ip)


def _certain(trace: Trace) -> tuple[Verdict, str, str, tuple[Step, ...], bool]:
    """(verdict, final destination, path, steps, certain) of a trace: uncertain when it rests
    on rules the input does not show, or when the branches that rest on no assumption end
    differently (statistic branches of one verdict and destination agree)."""
    if not trace.branches:
        return (trace.verdict, trace.final_dst, trace.path.value, trace.steps,
                not trace.rests_on_unseen)
    real = [b for b in trace.branches if not b.assumed]
    if not real:
        return trace.verdict, trace.final_dst, trace.path.value, trace.steps, False
    first = real[0]
    same = all(b.verdict is first.verdict and b.path is first.path and (
        first.verdict is not Verdict.ACCEPT or b.final_dst == first.final_dst) for b in real)
    return first.verdict, first.final_dst, first.path.value, first.steps, same and len(
        real) == len(trace.branches)


def _refusing(steps: Sequence[Step]) -> Step | None:
    """The step that refused a packet: the last rule or policy when it drops or rejects,
    else the routing decision noted after it (a martian, no route: ``ip_route_input_slow``
    drops before any hook does), the routing note itself, whose decider has no chain."""
    last = None
    for i, s in enumerate(steps):
        if s.kind in (StepKind.RULE, StepKind.POLICY):
            last = i
    start = 0 if last is None else last + 1
    if last is None or steps[last].target.upper() not in ("DROP", "REJECT"):
        routing = [s for s in steps[start:] if s.kind is StepKind.NOTE and s.hook == "ROUTING"]
        if routing:
            return routing[-1]
    return steps[last] if last is not None else None


def _accepting(steps: Sequence[Step]) -> Step | None:
    """The last ACCEPT of a filtering hook (INPUT, FORWARD, OUTPUT) outside nat tables."""
    found = None
    for s in steps:
        if s.kind in (StepKind.RULE, StepKind.POLICY) and s.target == "ACCEPT" \
                and s.hook in _FILTERING and s.table not in ("nat", "raw", "mangle"):
            found = s
    return found


# -- source classes ------------------------------------------------------------------------------


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive integer spans, sorted, overlapping and touching ones joined."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _excluding(nets: list[IPNetwork], holes: Iterable[IPNetwork]) -> list[IPNetwork]:
    out = list(nets)
    for hole in holes:
        nxt: list[IPNetwork] = []
        for n in out:
            if n.version != hole.version or not n.overlaps(hole):
                nxt.append(n)
            elif hole.supernet_of(n):  # type: ignore[arg-type]
                # a less specific hole (another device's default route) leaves n whole,
                # unless it is a hole no source may come from at all
                if hole not in _ALWAYS_OUT:
                    nxt.append(n)
            else:
                nxt.extend(n.address_exclude(hole))  # type: ignore[arg-type]
        out = nxt
    return sorted(out)


def source_classes(universe: Sequence[IPNetwork],
                   prefixes: Iterable[IPNetwork]) -> list[list[IPNetwork]]:
    """Split ``universe`` into classes of addresses that every prefix of ``prefixes`` treats
    alike (each address of a class is in the same prefixes), each class as sorted CIDRs; the
    class holding the most addresses first.

    >>> u = [ipaddress.ip_network("0.0.0.0/0")]
    >>> [[str(n) for n in c] for c in source_classes(u, [ipaddress.ip_network("10.0.0.0/8")])]
    [['0.0.0.0/5', '8.0.0.0/7', '11.0.0.0/8', '12.0.0.0/6', '16.0.0.0/4', '32.0.0.0/3', \
'64.0.0.0/2', '128.0.0.0/1'], ['10.0.0.0/8']]
    """
    if not universe:
        return []
    version = universe[0].version
    # One sweep over the boundaries of the prefixes and of the universe, keeping the set of
    # prefixes that hold the current address: O((P + U) log (P + U) + the nesting depth at each
    # boundary), where testing every prefix at every boundary was O(P²) (a 10,000-entry block
    # list: minutes).
    delta: dict[int, list[tuple[int, int]]] = {}  # boundary -> [(+1 starts / -1 ends, index)]
    for i, p in enumerate(q for q in set(prefixes) if q.version == version):
        delta.setdefault(int(p.network_address), []).append((1, i))
        delta.setdefault(int(p.broadcast_address) + 1, []).append((-1, i))
    for n in universe:
        delta.setdefault(int(n.network_address), []).append((1, -1))
        delta.setdefault(int(n.broadcast_address) + 1, []).append((-1, -1))
    groups: dict[frozenset[int], list[tuple[int, int]]] = {}
    active: set[int] = set()
    inside = 0  # how many universe networks hold the current address
    points = sorted(delta)
    for here, following in itertools.pairwise(points):
        for step, index in delta[here]:
            if index < 0:
                inside += step
            elif step > 0:
                active.add(index)
            else:
                active.discard(index)
        if inside > 0:
            groups.setdefault(frozenset(active), []).append((here, following - 1))
    make = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    bits = 32 if version == 4 else 128
    classes: list[tuple[int, list[IPNetwork]]] = []
    for parts in groups.values():  # each one's spans ascending and disjoint (the sweep's order)
        size = 0
        joined: list[list[int]] = []
        for lo, hi in parts:
            size += hi - lo + 1
            if joined and joined[-1][1] + 1 == lo:
                joined[-1][1] = hi
            else:
                joined.append([lo, hi])
        # the fewest CIDRs covering the class, ascending (what collapse_addresses of
        # summarize_address_range gives, with integers instead of address objects)
        nets: list[IPNetwork] = [make((start, bits - k)) for lo, hi in joined
                                 for start, k in _cidrs(lo, hi, bits)]
        classes.append((size, nets))
    classes.sort(key=lambda c: (-c[0], c[1][0]))
    return [c for _, c in classes]


def _cidrs(lo: int, hi: int, bits: int) -> Iterator[tuple[int, int]]:
    """The aligned blocks ``(start, log2 size)`` that cover ``lo..hi`` exactly, fewest first
    to last (each the largest aligned block starting where the previous one ended)."""
    while lo <= hi:
        k = min((lo & -lo).bit_length() - 1 if lo else bits, (hi - lo + 1).bit_length() - 1)
        yield lo, k
        lo += 1 << k


@dataclass(frozen=True, slots=True)
class _Sourced:
    """A rule naming a source prefix: what else it requires of the packet."""

    network: IPNetwork
    in_interface: str | None
    in_negated: bool
    proto: str | None
    ports: frozenset[int] | None
    destination: IPNetwork | None
    dst_negated: bool


class _SourceRules:
    """The rules of one family that name a source prefix and whose verdict counts (see the
    module docstring), prefiltered once per map."""

    def __init__(self, rulesets: Sequence[Ruleset], nft: Iterable[IPNetwork] = ()) -> None:
        self.nft = tuple(dict.fromkeys(nft))
        """Source prefixes of native nftables rules (``ip saddr``/``ip6 saddr``), kept for
        every cell: their interface, protocol and destination conditions are not read."""
        self.rules: list[_Sourced] = []
        """Rules without a single-address destination (scanned for every cell)."""
        self.by_dst: dict[IPAddress, list[_Sourced]] = {}
        """Rules with a positive single-address destination (Docker's hairpin MASQUERADE per
        container port), by that address."""
        for rs in rulesets:
            for table in rs.tables:
                deciding = _deciding_chains(table.chains)
                for chain in table.chains:
                    for rule in chain.rules:
                        s = rule.source
                        if s is None:
                            continue
                        t = rule.target_name
                        if t is None or (t not in _DECIDING and t not in deciding):
                            continue
                        r = _sourced(rule, s.network)
                        d = r.destination
                        if d is not None and not r.dst_negated and d.num_addresses == 1:
                            self.by_dst.setdefault(d.network_address, []).append(r)
                        else:
                            self.rules.append(r)

    def seen_from(self, ingress: str, proto: str) -> list[_Sourced]:
        """The rules of ``rules`` whose interface and protocol let a packet from ``ingress``
        of ``proto`` through (what ``prefixes`` checks first)."""
        return [r for r in self.rules if _sees(r, ingress, proto)]

    def prefixes(self, ingress: str, proto: str, ports: set[int],
                 dsts: Sequence[IPAddress], seen: Sequence[_Sourced] | None = None,
                 ) -> list[IPNetwork]:
        """The source prefixes of the rules that can see a packet from ``ingress`` of
        ``proto`` to one of ``ports`` at one of ``dsts``. ``seen``: ``seen_from(ingress,
        proto)``, or part of it that the caller knows is all that matters, computed once."""
        out: list[IPNetwork] = list(self.nft)
        near = [r for d in dict.fromkeys(dsts) for r in self.by_dst.get(d, ())]
        for r in (*(self.seen_from(ingress, proto) if seen is None else seen),
                  *(r for r in near if _sees(r, ingress, proto))):
            if r.ports is not None and not (r.ports & ports):
                continue
            if r.destination is not None and not r.dst_negated and not any(
                    d in r.destination for d in dsts if d.version == r.destination.version):
                continue
            out.append(r.network)
        return out


def _sees(r: _Sourced, ingress: str, proto: str) -> bool:
    """Whether rule ``r``'s interface and protocol conditions let a packet from ``ingress``
    of ``proto`` through."""
    if r.in_interface is not None and _iface_match(r.in_interface, ingress) == r.in_negated:
        return False
    return r.proto is None or r.proto == proto


def _nft_sources(nft: Any) -> dict[int, list[IPNetwork]]:
    """The source prefixes native nftables rules compare with (``ip saddr 10.0.0.0/8``,
    ``ip6 saddr { ... }``, ranges), per IP version; nft(8) "PAYLOAD EXPRESSION"."""
    out: dict[int, list[IPNetwork]] = {4: [], 6: []}
    if nft is None:
        return out
    for rule in nft.rules():
        for st in rule.statements:
            if st.kind != "match" or not isinstance(st.body, Mapping):
                continue
            left = st.body.get("left")
            payload = left.get("payload") if isinstance(left, Mapping) else None
            if not isinstance(payload, Mapping) or payload.get("field") != "saddr":
                continue
            for net in _nft_networks(st.body.get("right")):
                out[net.version].append(net)
    return out


def _nft_networks(value: Any) -> list[IPNetwork]:
    """The networks an nft JSON right-hand side names (address, prefix, range, set)."""
    try:
        if isinstance(value, str):
            return [ipaddress.ip_network(value, strict=False)]
        if isinstance(value, Mapping):
            if "prefix" in value:
                p = value["prefix"]
                return [ipaddress.ip_network(f"{p['addr']}/{p['len']}", strict=False)]
            if "range" in value:
                lo, hi = (ipaddress.ip_address(v) for v in value["range"])
                return list(ipaddress.summarize_address_range(lo, hi))
            if "set" in value:
                return [n for item in value["set"] for n in _nft_networks(item)]
        if isinstance(value, (list, tuple)):
            return [n for item in value for n in _nft_networks(item)]
    except (ValueError, TypeError, KeyError):
        return []
    return []


def _iface_match(pattern: str, name: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("+") else name == pattern


def _sourced(rule: Rule, network: IPNetwork) -> _Sourced:
    i = rule.in_interface
    p = rule.protocol
    d = rule.destination
    ports: frozenset[int] | None = None
    ranges = port_set(rule)
    if ranges is not None and sum(hi - lo + 1 for lo, hi in ranges) <= 4096:
        ports = frozenset(x for lo, hi in ranges for x in range(lo, hi + 1))
    return _Sourced(network, i.name if i is not None else None, bool(i is not None and i.negated),
                    p.name if p is not None and not p.negated else None, ports,
                    d.network if d is not None else None, bool(d is not None and d.negated))


def _deciding_chains(chains: Iterable[Any]) -> set[str]:
    """User chains holding (directly or through their own jumps) a rule whose target counts."""
    body = {c.name: {r.target_name for r in c.rules if r.target_name} for c in chains}
    callers: dict[str, list[str]] = {}  # chain -> chains jumping to it
    for name, targets in body.items():
        for target in targets:
            callers.setdefault(target, []).append(name)
    deciding = {name for name, targets in body.items() if targets & _DECIDING}
    todo = list(deciding)
    while todo:  # up the jumps, once per chain (a fixpoint pass per level was O(depth²))
        for caller in callers.get(todo.pop(), ()):
            if caller not in deciding:
                deciding.add(caller)
                todo.append(caller)
    return deciding
