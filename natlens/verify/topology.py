"""A throwaway copy of a snapshot's host, made of network namespaces.

Layout (every namespace ``nlv-<pid>-<token>-<role>``, see ``runs``):

* **router** (``-r``): the host. Its interfaces carry the snapshot's names, MAC and addresses:
  each Docker bridge is a real Linux bridge (so ``-i docker0``/``-o docker0`` and
  ``--dst-type LOCAL`` behave, and containers on one bridge talk at layer 2 as they do under
  Docker); each other interface with addresses (eth0 …) is one end of a veth pair; interfaces
  without addresses (ifb0 …) are dummies, down. The snapshot's routes are added, its sysctls
  (``meta.json``: ip_forward, IPv6 forwarding, route_localnet, bridge-nf-call-ip(6)tables) are
  set, and the rules are loaded with ``iptables-restore`` (``ip6tables-restore``) of the backend
  the snapshot was captured with. br_netfilter is *wanted* here: Docker turns it on
  (``bridge-nf-call-iptables=1``) and it is what makes FORWARD see container-to-container
  traffic on one bridge; the bridge sysctls are per network namespace on current kernels.
* **outside** (``-x0``, ``-x1`` …): one per non-bridge interface with addresses, the other end of
  its veth, holding the default gateway's address when it is on that subnet.
* **containers** (``-c0`` …): one per container address on a bridge, a veth port of that bridge
  with the container's MAC and address and a default route via the network's gateway.

Leaves never answer while packets are probed (their ``OUTPUT`` policy is DROP): every packet the
router's counters count is the probe itself, not a SYN-ACK, RST or ICMP error from a leaf. The
connection check that follows (``connect``) lets them answer (``let_leaves_answer``).

The router reaches every leaf address, every route gateway and every other address a probe may be
sent to ("ghosts", e.g. a DNAT to an address no container holds) through permanent neighbour
entries, so no ARP/ND traffic happens during a probe and a packet the rules let through always
leaves an interface where it can be seen. Also set, and noted: ``send_redirects=0`` (no ICMP
redirects for hairpin traffic) and ``addr_gen_mode=1`` with ``nodad`` addresses (no link-local
autoconfiguration or DAD).
"""

from __future__ import annotations

import ipaddress
import platform
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from natlens.errors import NatlensError
from natlens.netfilter.host import Host, Route
from natlens.netfilter.nftchains import iptables_nft_tables
from natlens.snapshot import Snapshot
from natlens.verify import ns as netns
from natlens.verify.kernel_names import (
    check_ifname,
    check_mac,
    check_route_type,
)
from natlens.verify.nftload import NftLoad, nft_load
from natlens.verify.restore import RestoreInput, RestoreInputError, restore_input
from natlens.verify.runs import Run
from natlens.verify.snapshot_checks import check_snapshot, sysctl_settings

__all__ = ["GHOST_MAC", "Leaf", "Link", "PlanRules", "Topology", "TopologyPlan", "plan",
           "plan_rules"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

GHOST_MAC = "02:6e:6c:76:ff:01"
"""Where the router sends packets for addresses nobody in the topology holds."""

_DEFAULT_SYSCTL = {
    "net.ipv4.ip_forward": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
}
_OUR_SYSCTL = {
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.send_redirects": "0",
}


class TopologyError(NatlensError):
    """The snapshot cannot be mirrored (e.g. no interfaces), or building it failed."""


@dataclass(frozen=True, slots=True)
class Link:
    """One interface of the router."""

    name: str
    kind: str
    """``bridge``, ``veth`` (to an outside leaf) or ``dummy``."""
    mac: str | None
    addresses: tuple[IPInterface, ...]


@dataclass(frozen=True, slots=True)
class Leaf:
    """A namespace hanging off one router interface."""

    ns: str
    role: str
    """``outside`` or ``container``."""
    label: str
    link: str
    """The router interface it is attached to (the bridge for a container)."""
    port: str | None
    """The bridge port in the router (containers only)."""
    mac: str
    addresses: tuple[IPInterface, ...]
    gateways: tuple[IPAddress, ...] = ()

    def holds(self, ip: IPAddress) -> bool:
        """Whether one of the leaf's addresses is ``ip``."""
        return any(a.ip == ip for a in self.addresses)


@dataclass(frozen=True, slots=True)
class TopologyPlan:
    """Everything needed to build the namespaces, decided from the snapshot alone."""

    prefix: str
    router: str
    links: tuple[Link, ...]
    leaves: tuple[Leaf, ...]
    routes: tuple[Route, ...]
    sysctl: tuple[tuple[str, str], ...]
    backend: str
    """``nf_tables`` or ``legacy``."""
    rules4: RestoreInput | None
    rules6: RestoreInput | None
    neighbours: tuple[tuple[IPAddress, str, str], ...] = ()
    """(address, router interface, MAC) entries made permanent."""
    notes: tuple[str, ...] = ()
    hairpin: bool = False
    """Hairpin mode on the bridge ports (Docker sets it when the userland proxy is off)."""
    other_backend: str = ""
    """The other iptables backend whose dumps are loaded too (``other4``/``other6``)."""
    other4: RestoreInput | None = None
    other6: RestoreInput | None = None
    nft: NftLoad | None = None
    """The snapshot's native nftables tables (``nft -j -f``), with a counter per rule."""

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Every namespace of the plan, router first."""
        return (self.router, *(leaf.ns for leaf in self.leaves))

    def link(self, name: str) -> Link | None:
        """The router interface called ``name``."""
        for link in self.links:
            if link.name == name:
                return link
        return None

    def leaf_holding(self, ip: IPAddress) -> Leaf | None:
        """The leaf that has address ``ip``."""
        for leaf in self.leaves:
            if leaf.holds(ip):
                return leaf
        return None

    def router_holds(self, ip: IPAddress) -> bool:
        """Whether ``ip`` is an address of the router (incl. loopback)."""
        if ip.is_loopback:
            return True
        return any(a.ip == ip for link in self.links for a in link.addresses)

    def connected(self, ip: IPAddress) -> Link | None:
        """The router interface whose subnet holds ``ip`` (longest prefix)."""
        best: tuple[int, Link] | None = None
        for link in self.links:
            for a in link.addresses:
                if (a.version == ip.version and not a.ip.is_link_local and ip in a.network
                        and (best is None or a.network.prefixlen > best[0])):
                    best = (a.network.prefixlen, link)
        return best[1] if best else None


# -- planning -----------------------------------------------------------------------------------


def _macs(addresses: list[Any] | None) -> dict[str, str]:
    """The MAC of each Ethernet interface (``check_snapshot`` has refused bad ones)."""
    out: dict[str, str] = {}
    for entry in addresses or ():
        if isinstance(entry, dict) and isinstance(entry.get("ifname"), str):
            mac = entry.get("address")
            if entry.get("link_type", "ether") != "ether" or not isinstance(mac, str):
                continue
            try:
                out[entry["ifname"]] = check_mac(mac)
            except ValueError:
                continue  # all zeros: no address of its own
    return out


def _backend(snap: Snapshot, notes: list[str]) -> str:
    meta = snap.meta.get("iptables_backend")
    if meta in ("nf_tables", "legacy"):
        return str(meta)
    if snap.ruleset.backend in ("nf_tables", "legacy"):
        return str(snap.ruleset.backend)
    notes.append("iptables backend unknown (no meta.json): using nf_tables, this system's default")
    return "nf_tables"


def _sysctl(snap: Snapshot, notes: list[str]) -> list[tuple[str, str]]:
    given = snap.meta.get("sysctl")
    values: dict[str, str] = {}
    if isinstance(given, dict) and given:
        settings = sysctl_settings(snap, notes)
        for key, setting in settings.items():
            if setting is None:
                notes.append(f"{key} unknown on the snapshot's host: left at the namespace's "
                             "default")
            else:
                values[key] = setting
        for key, value in _DEFAULT_SYSCTL.items():
            if key not in settings:
                values[key] = value
                notes.append(f"{key} not in meta.json: set to {value} (Docker's setting)")
    else:
        values.update(_DEFAULT_SYSCTL)
        if snap.ruleset6.tables:
            values["net.ipv6.conf.all.forwarding"] = "1"
        notes.append("no sysctl values in meta.json: forwarding and bridge-nf-call-iptables on "
                     "(as Docker sets them), route_localnet off")
    values.update(_OUR_SYSCTL)
    # global switches first: net.ipv6.conf.all.forwarding resets every interface's value
    return sorted(values.items(), key=lambda kv: (".all." not in kv[0], kv[0]))


def _container_addresses(snap: Snapshot) -> list[tuple[str, str, IPInterface, str]]:
    """(container name, network name, address, MAC) of every running container on a network."""
    out: list[tuple[str, str, IPInterface, str]] = []
    for c in snap.containers or ():
        if not isinstance(c, dict):
            continue
        state = c.get("State") or {}
        if isinstance(state, dict) and state.get("Running") is False:
            continue
        name = str(c.get("Name") or c.get("Id", "?")[:12]).lstrip("/")
        nets = ((c.get("NetworkSettings") or {}).get("Networks")) or {}
        for net_name, info in nets.items():
            if not isinstance(info, dict):
                continue
            mac = str(info.get("MacAddress") or "")
            for key, plen_key in (("IPAddress", "IPPrefixLen"),
                                  ("GlobalIPv6Address", "GlobalIPv6PrefixLen")):
                addr = info.get(key)
                if not addr:
                    continue
                plen = int(info.get(plen_key) or 0) or (64 if ":" in str(addr) else 16)
                try:
                    iface = ipaddress.ip_interface(f"{addr}/{plen}")
                except ValueError:
                    continue
                out.append((name, str(net_name), iface, mac))
    return out


def _connected_route(r: Route, links: list[Link]) -> bool:
    """A route the kernel makes itself for an interface address (not to be added again)."""
    if r.gateway is not None or r.kind != "unicast":
        return False
    return any(link.name == r.dev and any(a.network == r.network for a in link.addresses)
               for link in links)


def plan(snap: Snapshot, *, extra_addresses: Iterable[IPAddress] = (),
         link_local: Iterable[tuple[IPAddress, str]] = (),
         prefix: str | None = None) -> TopologyPlan:
    """Decide the namespaces for ``snap``. ``extra_addresses``: destinations probes will use
    (those nobody holds become ghosts); ``link_local``: (link-local address, interface) of
    probe senders nobody holds (ghosts on that interface, so an ICMP error the router sends
    them leaves it and is seen); ``prefix``: the run's namespace marker (default: a new run's,
    see ``runs``).

    Raises ``SnapshotError`` naming file and JSON path (or ``TopologyError``) for any interface
    name, MAC address, route type, sysctl or rule the kernel would refuse, before anything is
    built.
    """
    notes: list[str] = []
    check_snapshot(snap)
    prefix = prefix or Run.new().prefix
    host = Host.from_snapshot(snap)
    notes.extend(host.assumptions)
    macs = _macs(snap.addresses)
    ports = set(host.masters)
    links: list[Link] = []
    for name in host.interfaces:
        if name == "lo" or name in ports:
            continue
        addrs = tuple(host.addresses.get(name, ()))
        if host.is_bridge(name):
            kind = "bridge"
        elif addrs:
            kind = "veth"
        else:
            kind = "dummy"
        try:
            check_ifname(name)
        except ValueError as exc:
            raise TopologyError(f"{snap.path}: {exc}") from None
        links.append(Link(name, kind, macs.get(name), addrs))
    if not any(link.kind != "dummy" for link in links):
        raise TopologyError(f"{snap.path}: no interface with addresses to mirror (verify needs a "
                            "snapshot folder with ip-addr.json or docker-networks.json)")
    leaves: list[Leaf] = []
    gateways = {r.gateway for r in (*host.routes, *host.routes6) if r.gateway is not None}
    n_out = 0
    for link in links:
        if link.kind != "veth":
            continue
        picked: list[IPInterface] = []
        for version in (4, 6):
            mine = [a for a in link.addresses if a.version == version and not a.ip.is_link_local]
            if not mine:
                continue
            net = mine[0].network
            used = {a.ip for a in link.addresses}
            pick = next((g for g in sorted(gateways, key=str) if g.version == version
                         and g in net and g not in used), None)
            if pick is None:
                hosts = (h for h in (net.network_address + 1, net.broadcast_address - 1)
                         if h not in used)
                pick = next(hosts, None)
            if pick is not None:
                picked.append(ipaddress.ip_interface(f"{pick}/{net.prefixlen}"))
        leaves.append(Leaf(ns=f"{prefix}x{n_out}", role="outside", label=f"{link.name} peer",
                           link=link.name, port=None, mac=f"02:6e:6c:76:01:{n_out:02x}",
                           addresses=tuple(picked)))
        n_out += 1
    by_key: dict[tuple[str, str], list[IPInterface]] = {}
    mac_of: dict[tuple[str, str], str] = {}
    bridge_of: dict[tuple[str, str], str] = {}
    for cname, net_name, addr, mac in _container_addresses(snap):
        bridge = None
        for link in links:
            if link.kind == "bridge" and any(a.version == addr.version and addr.ip in a.network
                                             for a in link.addresses):
                bridge = link.name
                break
        if bridge is None:
            notes.append(f"container {cname}: {addr.ip} on network {net_name} is on no bridge "
                         "of the snapshot: not mirrored")
            continue
        key = (cname, net_name)
        by_key.setdefault(key, []).append(addr)
        mac_of.setdefault(key, mac)
        bridge_of.setdefault(key, bridge)
    for n, (key, addrs_c) in enumerate(by_key.items()):
        bridge = bridge_of[key]
        link_b = next(link for link in links if link.name == bridge)
        gws = tuple(a.ip for a in link_b.addresses if not a.ip.is_link_local and any(
            a.version == c.version and a.ip in c.network for c in addrs_c))
        mac = mac_of[key] or f"02:6e:6c:76:02:{n:02x}"
        leaves.append(Leaf(ns=f"{prefix}c{n}", role="container", label=key[0], link=bridge,
                           port=f"nlvp{n}", mac=mac, addresses=tuple(addrs_c), gateways=gws))
    neighbours: list[tuple[IPAddress, str, str]] = []
    seen: set[IPAddress] = set()
    for leaf in leaves:
        for a in leaf.addresses:
            neighbours.append((a.ip, leaf.link, leaf.mac))
            seen.add(a.ip)
    draft = TopologyPlan(prefix=prefix, router=f"{prefix}r", links=tuple(links),
                         leaves=tuple(leaves), routes=(), sysctl=(), backend="", rules4=None,
                         rules6=None)
    for ip in sorted({*gateways, *extra_addresses}, key=lambda a: (a.version, int(a))):
        if ip in seen or draft.router_holds(ip) or ip.is_multicast or ip.is_unspecified:
            continue
        link_c = draft.connected(ip)
        if link_c is None or link_c.kind == "dummy":
            continue
        if ip.version == 4 and any(a.version == 4 and ip == a.network.broadcast_address
                                   for a in link_c.addresses):
            continue
        neighbours.append((ip, link_c.name, GHOST_MAC))
        seen.add(ip)
    for ip, name in sorted(set(link_local), key=lambda a: (a[0].version, int(a[0]), a[1])):
        link_l = draft.link(name)
        if ip.is_link_local and ip not in seen and link_l is not None \
                and link_l.kind != "dummy":
            neighbours.append((ip, name, GHOST_MAC))
            seen.add(ip)
    routes = tuple(r for r in (*host.routes, *host.routes6) if not _connected_route(r, links)
                   and (r.dev is None or r.kind != "unicast"
                        or any(link.name == r.dev for link in links)))
    for r in routes:
        try:
            check_route_type(r.kind)
            if r.dev is not None:
                check_ifname(r.dev)
        except ValueError as exc:
            raise TopologyError(f"{snap.path}: route {r.network}: {exc}") from None
    backend = _backend(snap, notes)
    rules = plan_rules(snap, backend)
    hairpin = snap.meta.get("userland_proxy") is False
    if hairpin:
        notes.append("userland proxy off (meta.json): hairpin mode on every bridge port, as "
                     "Docker sets it")
    return TopologyPlan(
        hairpin=hairpin,
        prefix=prefix,
        router=f"{prefix}r",
        links=tuple(links),
        leaves=tuple(leaves),
        routes=routes,
        sysctl=tuple(_sysctl(snap, notes)),
        backend=backend,
        rules4=rules.rules4,
        rules6=rules.rules6,
        other_backend=rules.other_backend,
        other4=rules.other4,
        other6=rules.other6,
        nft=rules.nft,
        neighbours=tuple(neighbours),
        notes=tuple(notes),
    )


@dataclass(frozen=True, slots=True)
class PlanRules:
    """The rules a plan loads: the main backend's dumps, the other backend's, native nft."""

    rules4: RestoreInput | None
    rules6: RestoreInput | None
    other_backend: str = ""
    other4: RestoreInput | None = None
    other6: RestoreInput | None = None
    nft: NftLoad | None = None


def plan_rules(snap: Snapshot, backend: str) -> PlanRules:
    """Every rule source of ``snap`` in loadable form (``backend``: the main dumps' backend).
    Raises ``TopologyError`` for a rule ``iptables-restore`` could not take."""
    other_backend = snap.other_backend_name or (
        "legacy" if backend == "nf_tables" else "nf_tables")
    try:
        rules4 = restore_input(snap.ruleset) if snap.ruleset.tables else None
        rules6 = restore_input(snap.ruleset6) if snap.ruleset6.tables else None
        other4 = restore_input(snap.other_backend) \
            if snap.other_backend is not None and snap.other_backend.tables else None
        other6 = restore_input(snap.other_backend6) \
            if snap.other_backend6 is not None and snap.other_backend6.tables else None
    except RestoreInputError as exc:
        raise TopologyError(str(exc)) from None
    nft = None
    if snap.nft_json is not None:
        nft = nft_load(snap.nft_json, iptables_nft_tables(
            backend, snap.ruleset, snap.ruleset6, snap.other_backend, snap.other_backend6))
    return PlanRules(rules4, rules6, other_backend if other4 or other6 else "", other4,
                     other6, nft)


# -- building -----------------------------------------------------------------------------------


_EMPTY_TABLES = "".join(
    f"*{table}\n" + "".join(f":{c} ACCEPT [0:0]\n" for c in chains) + "COMMIT\n"
    for table, chains in (
        ("raw", ("PREROUTING", "OUTPUT")),
        ("mangle", ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")),
        ("nat", ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")),
        ("filter", ("INPUT", "FORWARD", "OUTPUT")),
        ("security", ("INPUT", "FORWARD", "OUTPUT"))))
"""iptables-restore input that empties the five tables (each is replaced as a whole)."""


def tool(name: str, backend: str) -> str:
    """The ``iptables-restore``-like binary of ``backend`` (``iptables-nft-save`` …)."""
    family, _, verb = name.partition("-")
    special = f"{family}-{'nft' if backend == 'nf_tables' else 'legacy'}-{verb}"
    if shutil.which(special):
        return special
    if shutil.which(name):
        return name
    raise TopologyError(f"{special}: command not found (iptables is needed for verify)")


def _addr_args(a: IPInterface) -> list[str]:
    args = [str(a)]
    if a.version == 4 and a.network.prefixlen < 31:
        args += ["brd", "+"]
    if a.version == 6:
        args.append("nodad")
    return args


def _route_args(r: Route) -> list[str]:
    args: list[str] = []
    if r.kind != "unicast":
        args.append(r.kind)
    args.append(str(r.network))
    if r.gateway is not None:
        args += ["via", str(r.gateway)]
    if r.dev is not None and r.kind == "unicast":
        args += ["dev", r.dev]
    if r.prefsrc is not None:
        args += ["src", str(r.prefsrc)]
    if r.metric:
        args += ["metric", str(r.metric)]
    return args


def _bridge_sysctls_per_netns(release: str | None = None) -> bool:
    """Whether ``net.bridge.bridge-nf-call-*`` belong to each network namespace (Linux 5.3,
    "netfilter: bridge: namespace bridge netfilter sysctls"); before, they were host-wide and
    verify must not write them.

    >>> _bridge_sysctls_per_netns("5.2.21"), _bridge_sysctls_per_netns("6.1.0-13-amd64")
    (False, True)
    """
    m = re.match(r"(\d+)\.(\d+)", release or platform.release())
    return m is not None and (int(m.group(1)), int(m.group(2))) >= (5, 3)


_LEAF_RULES = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\nCOMMIT\n"
_ANSWERING_LEAF_RULES = _LEAF_RULES.replace(":OUTPUT DROP", ":OUTPUT ACCEPT")
_NS_SYSCTL = (("net.ipv6.conf.default.addr_gen_mode", "1"),
              ("net.ipv6.conf.all.addr_gen_mode", "1"),
              ("net.ipv6.conf.default.accept_dad", "0"),
              ("net.ipv6.conf.default.accept_ra", "0"),
              # before any interface exists: a device copies ``default`` when it is created,
              # and the kernel sends a redirect if ``all`` OR the device says so
              # (IN_DEV_TX_REDIRECTS is IN_DEV_ORCONF), so ``_OUR_SYSCTL`` alone comes too late
              ("net.ipv4.conf.default.send_redirects", "0"))


@dataclass
class Topology:
    """The namespaces of a plan; a context manager that builds and always removes them.

    Every command is an argv list (``ip link add name NAME ...``), never an ``ip -batch`` script
    or a shell line: a name is one argument whatever it holds, and ``plan`` has already checked
    it against the kernel's rules. The run's namespaces are recorded (``runs.Run.record``)
    before the first is created, so an interruption at any point leaves nothing unaccounted for.
    """

    plan: TopologyPlan
    run: Run | None = None
    notes: list[str] = field(default_factory=list)

    def __enter__(self) -> Topology:
        try:
            self.build()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.teardown()

    # -- build steps ----------------------------------------------------------------------------

    def build(self) -> None:
        """Create every namespace, interface, address, route, sysctl and rule of the plan."""
        p = self.plan
        if self.run is None:
            self.run = Run.from_prefix(p.prefix)
        try:
            self.run.record(p.namespaces)
        except OSError as exc:
            raise TopologyError(f"{self.run.state}: cannot record the run's namespaces: "
                                f"{exc.strerror}") from None
        for name in p.namespaces:
            if netns.exists(name):
                netns.delete(name)
            netns.add(name)
            for key, value in _NS_SYSCTL:
                netns.write_sysctl(name, key, value)
            netns.run(["ip", "link", "set", "dev", "lo", "up"], ns=name)
        r = p.router
        # interfaces in the snapshot's order: the kernel picks addresses by device order in
        # places (MASQUERADE out of lo takes the first device's address, inet_select_addr)
        for link in p.links:
            mac = ["address", link.mac] if link.mac else []
            if link.kind == "bridge":
                self._ip(r, "link", "add", "name", link.name, *mac, "type", "bridge",
                         "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0")
            elif link.kind == "veth":
                leaf_o = next(leaf for leaf in p.leaves if leaf.link == link.name)
                self._ip(r, "link", "add", "name", link.name, *mac, "type", "veth", "peer",
                         "name", "eth0", "address", leaf_o.mac, "netns", leaf_o.ns)
            else:
                self._placeholder(link)
        for leaf in p.leaves:
            if leaf.role == "container" and leaf.port is not None:
                self._ip(r, "link", "add", "name", leaf.port, "type", "veth", "peer", "name",
                         "eth0", "address", leaf.mac, "netns", leaf.ns)
                self._ip(r, "link", "set", "dev", leaf.port, "master", leaf.link)
                if p.hairpin:
                    self._ip(r, "link", "set", "dev", leaf.port, "type", "bridge_slave",
                             "hairpin", "on")
        for link in p.links:
            for a in link.addresses:
                self._ip(r, "addr", "add", *_addr_args(a), "dev", link.name)
        for link in p.links:
            if link.kind != "dummy":
                self._ip(r, "link", "set", "dev", link.name, "up")
        for leaf in p.leaves:
            if leaf.port:
                self._ip(r, "link", "set", "dev", leaf.port, "up")
        for leaf in p.leaves:
            for a in leaf.addresses:
                self._ip(leaf.ns, "addr", "add", *_addr_args(a), "dev", "eth0")
            self._ip(leaf.ns, "link", "set", "dev", "eth0", "up")
            for gw in leaf.gateways:
                self._ip(leaf.ns, f"-{gw.version}", "route", "add", "default", "via", str(gw))
            for family in ("iptables", "ip6tables"):
                netns.run([tool(f"{family}-restore", p.backend)], ns=leaf.ns, stdin=_LEAF_RULES)
        for route in p.routes:
            args = _route_args(route)
            try:
                netns.run(["ip", f"-{route.network.version}", "route", "replace", *args], ns=r)
            except netns.CommandError as exc:
                self.notes.append(f"route {route}: not added ({exc})")
        for key, value in p.sysctl:
            if key.startswith("net.bridge.") and not _bridge_sysctls_per_netns():
                self.notes.append(f"sysctl {key}={value}: not set (host-wide before Linux 5.3)")
            elif not netns.write_sysctl(r, key, value):
                self.notes.append(f"sysctl {key}={value}: not available in the namespace")
        for ip, dev, lladdr in p.neighbours:
            self._ip(r, "neigh", "replace", str(ip), "lladdr", lladdr, "dev", dev, "nud",
                     "permanent")
        self.load_rules()

    def load_rules(self) -> None:
        """Load the plan's rules into the router in the order natlens assumes they were
        registered (among equal priorities the chain registered last runs first): the
        iptables-legacy dumps, then the nf_tables dumps and the native nftables tables
        (``nft -j -f``) in the order of their nft handles (``NftLoad.first``)."""
        p = self.plan
        dumps = [(p.backend, "iptables", p.rules4), (p.backend, "ip6tables", p.rules6),
                 (p.other_backend, "iptables", p.other4),
                 (p.other_backend, "ip6tables", p.other6)]
        dumps.sort(key=lambda d: d[0] != "legacy")
        native_first = p.nft is not None and p.nft.first
        for n, (backend, family, rules) in enumerate(dumps):
            if native_first and backend != "legacy" and n == next(
                    i for i, d in enumerate(dumps) if d[0] != "legacy"):
                self._load_nft()
                native_first = False
            if rules is not None:
                self._restore(tool(f"{family}-restore", backend), rules)
        if p.nft is not None and not p.nft.first:
            self._load_nft()

    def _load_nft(self) -> None:
        p = self.plan
        assert p.nft is not None
        try:
            netns.run(["nft", "-j", "-f", "-"], ns=p.router, stdin=p.nft.text)
        except netns.CommandError as exc:
            raise TopologyError(f"{p.router}: nft -j -f refused the snapshot's nftables "
                                f"tables: {exc.stderr.strip()[:300]}") from None

    def let_leaves_answer(self) -> None:
        """Set every leaf's ``OUTPUT`` policy to ACCEPT (IPv4 and IPv6), for real connections
        after the packet probes."""
        for leaf in self.plan.leaves:
            for family in ("iptables", "ip6tables"):
                netns.run([tool(f"{family}-restore", self.plan.backend)], ns=leaf.ns,
                          stdin=_ANSWERING_LEAF_RULES)

    def reset_rules(self) -> None:
        """Remove every rule from the router, of both iptables backends and nftables (each
        table restored empty with ACCEPT policies; ``nft flush ruleset``)."""
        r = self.plan.router
        for backend in ("legacy", "nf_tables"):
            for family in ("iptables", "ip6tables"):
                netns.run([tool(f"{family}-restore", backend)], ns=r, stdin=_EMPTY_TABLES)
        netns.run(["nft", "flush", "ruleset"], ns=r)

    def _ip(self, ns: str, *args: str) -> None:
        netns.run(["ip", *args], ns=ns)

    def _restore(self, program: str, rules: RestoreInput) -> None:
        """Load ``rules`` into the router; a refusal names the snapshot line (one line)."""
        try:
            netns.run([program], ns=self.plan.router, stdin=rules.text)
        except netns.CommandError as exc:
            raise TopologyError(rules.explain(exc.stderr, program)) from None

    def _placeholder(self, link: Link) -> None:
        """An interface without addresses: a dummy, else an ifb (kernels without dummy), down."""
        mac = ["address", link.mac] if link.mac else []
        for kind in ("dummy", "ifb"):
            try:
                self._ip(self.plan.router, "link", "add", "name", link.name, *mac, "type", kind)
                return
            except netns.CommandError:
                continue
        self.notes.append(f"{link.name}: no dummy or ifb interface type in this kernel, "
                          "left out")

    def teardown(self) -> None:
        """Remove every namespace of the run (recorded or carrying its marker) and its state
        file; safe to call twice, and not cut short by a second signal (``runs.shielded``)."""
        if self.run is not None:
            self.run.remove()
