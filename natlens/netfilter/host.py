"""The host a packet meets: its interfaces, local addresses and routes.

Built from ``ip -j addr show`` and ``ip -j route show`` (iproute2's JSON output). The routing
decision follows the kernel's FIB: an address of the host (the ``local`` routing table, which also
holds all of 127.0.0.0/8 on ``lo``) is delivered locally; anything else takes the longest matching
route of the ``main`` table (ip-route(8)). ``-m addrtype`` asks the same ``local`` table
(``inet_addr_type``; iptables-extensions(8), addrtype): LOCAL for host addresses, BROADCAST for
subnet broadcasts, MULTICAST for 224.0.0.0/4 and ff00::/8, UNICAST otherwise.

Where the snapshot lacks these files, the Docker networks (``docker network inspect``) supply
bridge names and gateways; every such derivation is recorded in ``Host.assumptions``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

from natlens.errors import SnapshotError
from natlens.netfilter.listeners import Listeners
from natlens.schemas import validate
from natlens.sysctls import switch

__all__ = ["Host", "HostFiles", "Route", "bridge_name", "with_assumed"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LOOPBACK4 = ipaddress.ip_network("127.0.0.0/8")
_LOOPBACK6 = ipaddress.ip_network("::1/128")
_MULTICAST4 = ipaddress.ip_network("224.0.0.0/4")
_MULTICAST6 = ipaddress.ip_network("ff00::/8")
_LIMITED_BROADCAST = ipaddress.ip_address("255.255.255.255")
_ZERO4 = ipaddress.ip_network("0.0.0.0/8")


class HostFiles(Protocol):
    """The parsed files a host is built from (``natlens.snapshot.Snapshot`` has them): the JSON
    of ``ip -j addr``, ``ip -j route``, ``docker network inspect`` (None when absent) and
    ``meta.json``."""

    @property
    def addresses(self) -> Sequence[Any] | None: ...
    @property
    def routes(self) -> Sequence[Any] | None: ...
    @property
    def networks(self) -> Sequence[Any] | None: ...
    @property
    def meta(self) -> Mapping[str, Any]: ...
    @property
    def routes6(self) -> Sequence[Any] | None: ...
    @property
    def sysctl(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class Route:
    """One route of the main table. ``kind`` is ip-route(8)'s type: unicast, blackhole, ..."""

    network: IPNetwork
    dev: str | None
    gateway: IPAddress | None = None
    prefsrc: IPAddress | None = None
    metric: int = 0
    kind: str = "unicast"

    def __str__(self) -> str:
        parts = [str(self.network) if self.network.prefixlen else "default"]
        if self.kind != "unicast":
            parts.insert(0, self.kind)
        if self.gateway is not None:
            parts.append(f"via {self.gateway}")
        if self.dev is not None:
            parts.append(f"dev {self.dev}")
        return " ".join(parts)


def bridge_name(network: Mapping[str, Any]) -> str:
    """The Linux bridge of a Docker bridge network: its option, else ``br-<id[:12]>``."""
    options = network.get("Options") or {}
    name = options.get("com.docker.network.bridge.name")
    if isinstance(name, str) and name:
        return name
    if network.get("Name") == "bridge":
        return "docker0"
    return f"br-{str(network.get('Id', ''))[:12]}"


@dataclass(frozen=True, slots=True)
class Host:
    """Interfaces, their addresses, bridge ports and routes of one host.

    ``addresses`` maps an interface to its addresses (with prefix length); ``broadcasts`` holds
    the IPv4 subnet broadcast addresses; ``masters`` maps a bridge port to its bridge;
    ``known_addresses`` is False when the host's own addresses were not in the snapshot (then only
    loopback and Docker gateways are known to be local).
    """

    interfaces: tuple[str, ...] = ("lo",)
    addresses: Mapping[str, tuple[IPInterface, ...]] = field(
        default_factory=lambda: MappingProxyType({}))
    routes: tuple[Route, ...] = ()
    routes6: tuple[Route, ...] = ()
    broadcasts: frozenset[IPAddress] = frozenset()
    masters: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    bridges: frozenset[str] = frozenset()
    known_addresses: bool = True
    known_routes: bool = True
    known_routes6: bool = True
    assumptions: tuple[str, ...] = ()
    forwarding: Mapping[int, bool] = field(default_factory=lambda: MappingProxyType({}))
    """IP forwarding per IP version (4, 6) as meta.json's sysctls say; absent when unknown."""
    not_local: frozenset[IPAddress] = frozenset()
    hairpin_ports: bool | None = None
    """Whether the bridge ports send a frame back out of the port it came in by (hairpin
    mode): dockerd turns it on for its containers' ports without the userland proxy
    (meta.json ``userland_proxy`` false); None when unknown."""
    """Addresses a trace assumes are not the host's although its addresses are unknown."""
    sysctls: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """meta.json's ``sysctl`` values (``net.ipv4.conf.all.route_localnet``, ...), as text."""
    segments: Mapping[str, tuple[IPNetwork, ...]] = field(
        default_factory=lambda: MappingProxyType({}))
    """The subnets of each Docker bridge network's bridge (``docker network inspect``; the
    simulator adds those Docker's MASQUERADE rules name, iptables or nftables): a segment
    dockerd made, whose gateway is the host itself (``unlikely_out``)."""
    not_source: frozenset[IPAddress] = frozenset()
    """Addresses ``inet_select_addr`` passes over: ip-addr.json marks them ``secondary`` or of
    a scope narrower than ``global`` (``host``, ``link``)."""
    listeners: Listeners | None = None
    """The sockets listening on the host (``ss.txt``; ``docker-proxy`` on published ports),
    None when the snapshot tells nothing of them."""
    _local: Mapping[IPAddress, str] = field(
        default_factory=lambda: MappingProxyType({}), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        local: dict[IPAddress, str] = {}
        for iface, addrs in self.addresses.items():
            for a in addrs:
                local.setdefault(a.ip, iface)
        object.__setattr__(self, "_local", MappingProxyType(local))

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_snapshot(cls, snap: HostFiles) -> Host:
        """The host of a snapshot; missing files are derived from Docker networks and noted."""
        host = cls.from_json(snap.addresses, snap.routes, snap.networks, routes6=snap.routes6)
        listeners = Listeners.of(getattr(snap, "sockets", None), getattr(snap, "inventory", None))
        if listeners is not None:
            host = replace(host, listeners=listeners)
        proxy = snap.meta.get("userland_proxy")
        if isinstance(proxy, bool):
            host = replace(host, hairpin_ports=not proxy)
        sysctl = snap.sysctl or snap.meta.get("sysctl")
        if not isinstance(sysctl, Mapping):
            return host
        forwarding: dict[int, bool] = {}
        for version, key in ((4, "net.ipv4.ip_forward"), (6, "net.ipv6.conf.all.forwarding")):
            flag = switch(key, sysctl.get(key))
            if flag is not None:
                forwarding[version] = flag
        return replace(host, forwarding=MappingProxyType(forwarding),
                       sysctls=MappingProxyType({str(k): str(v).strip()
                                                 for k, v in sysctl.items()}))

    def sysctl_flag(self, *names: str) -> bool | None:
        """The first of the sysctls ``names`` the snapshot has, as the kernel reads it (any
        non-zero integer → True, ``"0"`` → False: ``natlens.sysctls.switch``), or None when it
        has none of them (or only values the kernel would not take)."""
        for name in names:
            flag = switch(name, self.sysctls.get(name))
            if flag is not None:
                return flag
        return None

    @classmethod
    def from_json(
        cls,
        addresses: Sequence[Any] | None,
        routes: Sequence[Any] | None,
        networks: Sequence[Any] | None = None,
        *,
        routes6: Sequence[Any] | None = None,
    ) -> Host:
        """Build from ``ip -j addr``, ``ip -j route`` (``routes6``: ``ip -j -6 route``) and
        ``docker network inspect`` JSON.

        Raises ``SnapshotJsonError`` when a value does not fit ``natlens.schemas`` (a snapshot's
        loader has checked its files already, naming them).
        """
        for kind, name, value in (("addresses", "ip-addr", addresses), ("routes", "ip-route",
                                  routes), ("routes", "ip-route6", routes6),
                                  ("networks", "docker-networks", networks)):
            if value is not None:
                validate(kind, list(value) if isinstance(value, tuple) else value,
                         source=f"<{name} JSON>")
        assumptions: list[str] = []
        ifaces: dict[str, list[IPInterface]] = {"lo": []}
        masters: dict[str, str] = {}
        broadcasts: set[IPAddress] = set()
        bridges: set[str] = set()
        not_source: set[IPAddress] = set()
        no_prefix_route: set[IPInterface] = set()
        if addresses is not None:
            _read_addresses(addresses, ifaces, masters, broadcasts, not_source=not_source,
                            no_prefix_route=no_prefix_route)
            bridges.update(masters.values())
        else:
            assumptions.append("ip-addr.json missing: local addresses are loopback and Docker "
                               "network gateways only")
        if not any(a.ip.version == 4 and a.ip.is_loopback for a in ifaces["lo"]):
            ifaces["lo"].append(ipaddress.ip_interface("127.0.0.1/8"))
        if not any(a.ip.version == 6 and a.ip.is_loopback for a in ifaces["lo"]):
            ifaces["lo"].append(ipaddress.ip_interface("::1/128"))
        docker_routes = _docker_networks(networks or (), ifaces, bridges, broadcasts,
                                         assumptions, derive=addresses is None)
        route_list: list[Route] = []
        if routes is not None:
            route_list = _read_routes(routes)
        else:
            assumptions.append("ip-route.json missing: routes derived from interface addresses "
                               "(no default route known)")
        route6 = [r for r in route_list if r.network.version == 6]
        route_list = [r for r in route_list if r.network.version == 4]
        if routes6 is not None:  # ``ip -j -6 route``: "default" is ::/0 there
            route6 += _read_routes([{**r, "dst": "::/0"} if isinstance(r, dict)
                                    and r.get("dst") == "default" else r for r in routes6])
        have = {r.network for r in route_list} | {r.network for r in route6}
        for iface, addrs in ifaces.items():
            for a in addrs:
                if a.ip.is_loopback or a.network in have or a in no_prefix_route:
                    continue
                if a.network.version == 6:
                    route6.append(Route(a.network, iface, prefsrc=a.ip))
                elif routes is None:
                    route_list.append(Route(a.network, iface, prefsrc=a.ip))
                elif a.network.prefixlen < 32:
                    # fib_add_ifaddr adds the prefix route of every primary address: a capture
                    # without it is partial (a paste, an edited file), not a host without it
                    route = Route(a.network, iface, prefsrc=a.ip)
                    route_list.append(route)
                    assumptions.append(f"route {route} derived from address {a} of {iface} "
                                       "(the kernel adds it with the address; not in "
                                       "ip-route.json)")
                else:
                    continue
                have.add(a.network)
        for r in docker_routes:
            if r.network not in have:
                if routes is not None:
                    assumptions.append(f"route {r} derived from Docker network (not in "
                                       "ip-route.json)")
                (route6 if r.network.version == 6 else route_list).append(r)
                have.add(r.network)
        return cls(
            interfaces=tuple(ifaces),
            addresses=MappingProxyType({k: tuple(v) for k, v in ifaces.items()}),
            routes=tuple(route_list),
            routes6=tuple(route6),
            broadcasts=frozenset(broadcasts),
            masters=MappingProxyType(masters),
            bridges=frozenset(bridges),
            known_addresses=addresses is not None,
            known_routes=routes is not None,
            known_routes6=routes6 is not None
            or any(r.network.version == 6 for r in _read_routes(routes or ())),
            assumptions=tuple(assumptions),
            not_source=frozenset(not_source),
            segments=MappingProxyType(_segments(docker_routes)),
        )

    # -- questions the simulator asks -----------------------------------------------------------

    def is_local(self, ip: IPAddress) -> bool:
        """Whether ``ip`` is an address of this host (incl. all of 127.0.0.0/8)."""
        if ip in self._local:
            return True
        return ip in _LOOPBACK4 if ip.version == 4 else ip in _LOOPBACK6

    def may_be_local(self, ip: IPAddress) -> bool:
        """Whether ``ip``, not a known address of the host, could still be one (the host's
        addresses are unknown and no assumption excludes it)."""
        return not self.known_addresses and ip not in self.not_local and not self.is_local(ip)

    def local_interface(self, ip: IPAddress) -> str | None:
        """The interface holding local address ``ip`` (``lo`` for loopback), or None."""
        iface = self._local.get(ip)
        if iface is not None:
            return iface
        if (ip in _LOOPBACK4) if ip.version == 4 else (ip in _LOOPBACK6):
            return "lo"
        return None

    def address_type(self, ip: IPAddress, dev: str | None = None) -> str:
        """``-m addrtype`` type of ``ip``: LOCAL, BROADCAST, MULTICAST or UNICAST.

        With ``dev`` (``--limit-iface-in/out``) a local address counts as LOCAL only on the
        interface that holds it (loopback addresses on ``lo``), as ``inet_dev_addr_type`` does.
        """
        if ip.version == 4:
            if ip == _LIMITED_BROADCAST or ip in _ZERO4:
                return "BROADCAST"
            if ip in _MULTICAST4:
                return "MULTICAST"
        elif ip in _MULTICAST6:
            return "MULTICAST"
        # The local table's ``local`` route wins over a ``broadcast`` route for the same address
        # (a /32 whose brd is the address itself, as DHCP and VPN interfaces set it):
        # fib_add_ifaddr adds the local route first; ``ip route get`` answers ``local``.
        holder = self.local_interface(ip)
        if holder is not None and (dev is None or dev == holder):
            return "LOCAL"
        if ip.version == 4 and ip in self.broadcasts:
            return "BROADCAST"
        return "UNICAST"

    def route(self, dst: IPAddress) -> Route | None:
        """Longest-prefix match in the main table (lowest metric wins a tie), or None."""
        best: Route | None = None
        for r in self.routes if dst.version == 4 else self.routes6:
            if dst in r.network and (
                best is None
                or r.network.prefixlen > best.network.prefixlen
                or (r.network.prefixlen == best.network.prefixlen and r.metric < best.metric)
            ):
                best = r
        return best

    def tied_devices(self, dst: IPAddress) -> tuple[str, ...]:
        """The devices of every route as good as ``route(dst)`` (same prefix length and
        metric): more than one for a link-local ``fe80::/64`` present on several interfaces,
        where the kernel picks by the socket's scope id or the neighbours' reachability
        (``rt6_select``, net/ipv6/route.c), which a snapshot does not show."""
        best = self.route(dst)
        if best is None:
            return ()
        devs: dict[str, None] = {}
        for r in self.routes if dst.version == 4 else self.routes6:
            if (r.network.prefixlen == best.network.prefixlen and r.metric == best.metric
                    and dst in r.network and r.dev is not None):
                devs.setdefault(r.dev, None)
        return tuple(devs)

    def primary_address(self, iface: str | None, version: int) -> IPAddress | None:
        """The first address of ``version`` on ``iface`` (what REDIRECT picks)."""
        if iface is None:
            return None
        for a in self.addresses.get(iface, ()):
            if a.ip.version == version and not (version == 6 and a.ip.is_link_local):
                return a.ip
        return None

    def source_address(self, out_iface: str | None, dst: IPAddress) -> IPAddress | None:
        """The source address the kernel picks to reach ``dst`` via ``out_iface``.

        The route's ``prefsrc`` when it has one, else the interface address in the subnet of the
        next hop (the gateway, or ``dst`` itself), else the interface's first address
        (``inet_select_addr``): the source of a locally generated packet. MASQUERADE, which
        ignores the route's ``src``, is ``masquerade_source``.
        """
        r = self.route(dst)
        if r is not None and r.prefsrc is not None and (out_iface is None or r.dev == out_iface):
            return r.prefsrc
        if dst.version == 6:
            return self._select_ipv6(out_iface, dst)
        nexthop = r.gateway if r is not None and r.gateway is not None else dst
        # inet_select_addr(dev, nexthop, RT_SCOPE_UNIVERSE): host-scope addresses (127/8) never
        # qualify; an address in the next hop's subnet first, else the device's first one, else
        # the first usable address of any device in device order (lo's 127.0.0.1 is skipped).
        usable = [a for a in self.addresses.get(out_iface or "", ())
                  if a.ip.version == 4 and not a.ip.is_loopback]
        for a in usable:
            if nexthop in a.network:
                return a.ip
        if usable:
            return usable[0].ip
        for iface in self.interfaces:
            for other in self.addresses.get(iface, ()):
                ip = other.ip
                if ip.version == 4 and not ip.is_loopback and not ip.is_link_local:
                    return ip
        return None

    def masquerade_source(self, out_iface: str, dst: IPAddress) -> tuple[IPAddress, str] | None:
        """The address MASQUERADE gives a packet to ``dst`` routed out of ``out_iface``, with
        the interface that holds it; None when the host has no address to give (the kernel
        drops the packet, "ate my IP address").

        IPv4 (``nf_nat_masquerade_ipv4``, net/netfilter/nf_nat_masquerade.c): ``inet_select_addr
        (out, nexthop, RT_SCOPE_UNIVERSE)`` (net/ipv4/devinet.c) takes a primary global-scope
        address of ``out_iface`` in the next hop's subnet (the route's gateway, else ``dst``),
        else its first one, else the first primary global-scope address of any device in device
        order; the route's ``src`` (prefsrc) plays no part. Addresses in ``not_source``, 127/8
        and (for the other devices) 169.254/16 are passed over. IPv6 (``ipv6_dev_get_saddr``)
        weighs every interface's addresses, the outgoing one's first (``_select_ipv6``).
        Only what the snapshot shows: when ``known_addresses`` is False the caller must not
        take another interface's address for the kernel's choice."""
        if dst.version == 6:
            ip = self._select_ipv6(out_iface, dst)
            return None if ip is None else (ip, self._local.get(ip, out_iface))
        r = self.route(dst)
        nexthop = r.gateway if r is not None and r.gateway is not None else dst
        own = [a for a in self.addresses.get(out_iface, ()) if a.ip.version == 4
               and not a.ip.is_loopback and a.ip not in self.not_source]
        for a in own:
            if nexthop in a.network:
                return a.ip, out_iface
        if own:
            return own[0].ip, out_iface
        for iface in self.interfaces:
            for other in self.addresses.get(iface, ()):
                ip = other.ip
                if ip.version == 4 and not ip.is_loopback and not ip.is_link_local \
                        and ip not in self.not_source:
                    return ip, iface
        return None

    def route_source(self, out_iface: str, dst: IPAddress) -> tuple[IPAddress, Route] | None:
        """The address a link route of ``out_iface`` names as its ``src`` for the next hop
        towards ``dst`` (the route's gateway, else ``dst``), with that route: the kernel gives
        the prefix route of each primary address that address as prefsrc (``fib_add_ifaddr``,
        net/ipv4/fib_frontend.c), so when ip-addr.json is missing it is the best guess at the
        address ``inet_select_addr`` takes on ``out_iface``. None without such a route."""
        r = self.route(dst)
        nexthop = r.gateway if r is not None and r.gateway is not None else dst
        links = [link for link in (self.routes if dst.version == 4 else self.routes6)
                 if link.dev == out_iface and link.gateway is None and link.prefsrc is not None
                 and link.network.prefixlen and nexthop in link.network]
        if not links:
            return None
        best = max(links, key=lambda link: link.network.prefixlen)
        assert best.prefsrc is not None
        return best.prefsrc, best

    def _select_ipv6(self, out_iface: str | None, dst: IPAddress) -> IPAddress | None:
        """RFC 6724 source selection as ``ipv6_dev_get_saddr`` does it, for the rules that
        decide on one host: the destination itself when local, then matching scope, the
        outgoing interface, and the longest common prefix."""
        candidates: list[tuple[int, int, int, IPAddress]] = []
        for iface in self.interfaces:
            for a in self.addresses.get(iface, ()):
                ip = a.ip
                if ip.version != 6:
                    continue
                if ip == dst:
                    return ip
                if ip.is_loopback or (ip.is_link_local != dst.is_link_local):
                    continue
                common = _common_prefix(int(ip), int(dst))
                candidates.append((0 if iface == out_iface else 1, -common, len(candidates), ip))
        return min(candidates)[3] if candidates else None

    def unlikely_out(self, name: str, dst: IPAddress) -> str | None:
        """Why a packet to ``dst`` whose route the snapshot lacks most likely does not leave by
        interface ``name`` (an exact ``-o`` name), or None.

        ``name`` is the bridge of a Docker bridge network (``segments``: from ``docker network
        inspect``, or from Docker's MASQUERADE rule, ``Simulator.host_for``) and ``dst`` lies in
        none of its subnets: the host is that segment's gateway and a route to another
        network through it would need a router on the segment, which nothing in the snapshot
        shows; the kernel routes such a packet by the host's other routes (its default route,
        fib_lookup), not back out of the bridge. Only the data say which interfaces these
        are; an interface no Docker network names (a bridge enslaving the uplink, say) is never
        unlikely."""
        nets = tuple(n for n in self.segments.get(name, ()) if n.version == dst.version)
        if not nets or any(dst in n for n in nets):
            return None
        return (f"{dst} is outside {name}'s {', '.join(map(str, nets))}, a network "
                "whose gateway is this host")

    def is_bridge(self, iface: str | None) -> bool:
        """Whether ``iface`` is a Linux bridge (a master of ports, or a Docker bridge network)."""
        return iface is not None and iface in self.bridges

    def knows(self, iface: str) -> bool:
        """Whether the snapshot names this interface."""
        return iface in self.addresses


def _common_prefix(a: int, b: int) -> int:
    return 128 - (a ^ b).bit_length()


def _read_addresses(data: Sequence[Any], ifaces: dict[str, list[IPInterface]],
                    masters: dict[str, str], broadcasts: set[IPAddress], *,
                    not_source: set[IPAddress], no_prefix_route: set[IPInterface]) -> None:
    """Read ``ip -j addr`` into the sets given: ``not_source`` the secondary and not-global
    addresses, ``no_prefix_route`` those added ``noprefixroute`` (no connected route)."""
    for entry in data:
        if entry == {}:
            continue  # `ip -j -4 addr` prints {} for a link without IPv4 addresses
        if not isinstance(entry, dict) or not isinstance(entry.get("ifname"), str):
            raise SnapshotError(f"ip-addr.json: entry without 'ifname': {entry!r:.80}")
        name = entry["ifname"]
        addrs = ifaces.setdefault(name, [])
        if isinstance(entry.get("master"), str):
            masters[name] = entry["master"]
        for info in entry.get("addr_info") or ():
            if info.get("family") not in ("inet", "inet6") or "local" not in info:
                continue
            try:
                iface = ipaddress.ip_interface(f"{info['local']}/{info.get('prefixlen', 32)}")
            except ValueError:
                raise SnapshotError(f"ip-addr.json: bad address {info.get('local')!r} on "
                                    f"{name}") from None
            addrs.append(iface)
            if info.get("secondary") is True or info.get("scope", "global") != "global":
                not_source.add(iface.ip)
            if info.get("noprefixroute") is True:
                no_prefix_route.add(iface)
            if isinstance(info.get("broadcast"), str):
                broadcasts.add(ipaddress.ip_address(info["broadcast"]))
            if iface.version == 4 and iface.network.prefixlen < 31:
                # fib_add_ifaddr: the all-ones host of a prefix shorter than /31 is a broadcast
                # route in the local table whether or not the address was added with ``brd``
                broadcasts.add(iface.network.broadcast_address)


def _read_routes(data: Sequence[Any]) -> list[Route]:
    out: list[Route] = []
    for entry in data:
        if not isinstance(entry, dict) or "dst" not in entry:
            raise SnapshotError(f"ip-route.json: entry without 'dst': {entry!r:.80}")
        dst = entry["dst"]
        try:
            net: IPNetwork = (ipaddress.ip_network("0.0.0.0/0") if dst == "default"
                              else ipaddress.ip_network(dst, strict=False))
            gateway = ipaddress.ip_address(entry["gateway"]) if "gateway" in entry else None
            prefsrc = ipaddress.ip_address(entry["prefsrc"]) if "prefsrc" in entry else None
        except ValueError:
            raise SnapshotError(f"ip-route.json: bad route {entry!r:.80}") from None
        if dst == "default" and gateway is not None and gateway.version == 6:
            net = ipaddress.ip_network("::/0")
        out.append(Route(net, entry.get("dev"), gateway, prefsrc,
                         int(entry.get("metric", 0)), str(entry.get("type", "unicast"))))
    return out


def _docker_networks(networks: Sequence[Any], ifaces: dict[str, list[IPInterface]],
                     bridges: set[str], broadcasts: set[IPAddress], assumptions: list[str],
                     *, derive: bool) -> list[Route]:
    routes: list[Route] = []
    for net in networks:
        if not isinstance(net, dict) or net.get("Driver") != "bridge":
            continue
        name = bridge_name(net)
        bridges.add(name)
        for cfg in (net.get("IPAM") or {}).get("Config") or ():
            subnet_text = cfg.get("Subnet")
            if not subnet_text:
                continue
            try:
                subnet = ipaddress.ip_network(subnet_text, strict=False)
            except ValueError:
                continue
            gw_text = cfg.get("Gateway")
            gw: IPAddress
            if gw_text:
                gw = ipaddress.ip_address(gw_text)
            elif subnet.num_addresses <= 2:
                assumptions.append(f"Docker network {net.get('Name')!r}: subnet {subnet} has no "
                                   "address for a gateway: ignored")
                continue
            else:
                gw = ipaddress.ip_address(int(subnet.network_address) + 1)
                if derive:
                    assumptions.append(f"Docker network {net.get('Name')!r}: no gateway given, "
                                       f"assumed {gw} (the subnet's first address)")
            iface = ipaddress.ip_interface(f"{gw}/{subnet.prefixlen}")
            known = ifaces.get(name)
            if known is None or (derive and iface not in known):
                if not derive:
                    assumptions.append(f"bridge {name} of Docker network {net.get('Name')!r} "
                                       f"is not in ip-addr.json: assumed {iface}")
                ifaces.setdefault(name, []).append(iface)
                if derive:
                    assumptions.append(f"{iface} on {name} from Docker network "
                                       f"{net.get('Name')!r}")
                if subnet.version == 4 and subnet.prefixlen < 31:
                    broadcasts.add(subnet.broadcast_address)
            routes.append(Route(subnet, name, prefsrc=gw if gw.version == 4 else None))
    return routes


def _segments(docker_routes: list[Route]) -> dict[str, tuple[IPNetwork, ...]]:
    """Bridge name -> the subnets of its Docker networks (``Host.segments``)."""
    found: dict[str, tuple[IPNetwork, ...]] = {}
    for r in docker_routes:
        if r.dev is not None:
            found[r.dev] = (*found.get(r.dev, ()), r.network)
    return found


def with_assumed(host: Host, *, local: tuple[IPAddress, str] | None = None,
                 routes: tuple[Route, ...] = (), note: str | None = None) -> Host:
    """A copy of ``host`` with an assumed local address and/or extra routes, noted."""
    addresses = dict(host.addresses)
    interfaces = list(host.interfaces)
    if local is not None:
        ip, iface = local
        prefix = 32 if ip.version == 4 else 128
        addresses[iface] = (*addresses.get(iface, ()), ipaddress.ip_interface(f"{ip}/{prefix}"))
        if iface not in interfaces:
            interfaces.append(iface)
    v4 = tuple(r for r in routes if r.network.version == 4)
    v6 = tuple(r for r in routes if r.network.version == 6)
    # replace() keeps every other field (forwarding, sysctls, ...) and re-runs __post_init__.
    return replace(
        host,
        interfaces=tuple(interfaces),
        addresses=MappingProxyType(addresses),
        routes=host.routes + v4,
        routes6=host.routes6 + v6,
        assumptions=host.assumptions + ((note,) if note else ()),
    )

