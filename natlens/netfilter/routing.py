"""Routing decisions between the hooks: input route, output route, re-route, loopback.

The input route lookup (``ip_route_input_slow``, ``fib_validate_source`` with accept_local=0;
``ipv6_rcv`` for IPv6) drops martian sources and destinations, delivers an address of the host
locally (INPUT) and forwards anything else by the longest matching route of the ``main`` table
(ip-route(8)) when forwarding is on, unless it came in a link-layer broadcast or multicast frame
(``ip_forward``: ``pkt_type != PACKET_HOST``; natlens takes a packet first addressed to a
broadcast or multicast address as one). Locally generated packets take the output route; OUTPUT's
nat or mangle changes re-route them (``ip_route_me_harder``), and a loopback source may leave
only through ``lo`` (``__mkroute_output``); a packet to a local address loops back through ``lo``
(PREROUTING and INPUT again).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from natlens.model import Rule, Ruleset, TableName
from natlens.netfilter.fastcopy import replace
from natlens.netfilter.host import Host, IPAddress
from natlens.netfilter.pipeline import Stage, hook_stages
from natlens.netfilter.trace import Path, Verdict
from natlens.netfilter.walkstate import Outcome, Run, WalkPath, note

__all__ = ["Router", "localnet_guard"]

_LOOPBACK4 = ipaddress.ip_network("127.0.0.0/8")
_ZERONET = ipaddress.ip_network("0.0.0.0/8")
_LIMITED_BROADCAST = ipaddress.ip_address("255.255.255.255")


def localnet_guard(rulesets: Iterable[Ruleset | None]) -> str | None:
    """``filter:CHAIN#N`` of the rule that guards ``route_localnet=1``, or None: ``-d
    127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate ...DNAT... -j DROP`` (comment
    "block incoming localnet connections"). kube-proxy writes it exactly when it sets
    ``net.ipv4.conf.all.route_localnet=1`` to serve NodePorts on 127.0.0.1 (both under
    ``localhostNodePorts``, IPv4 only: kubernetes ``pkg/proxy/iptables/proxier.go``,
    ``NewProxier`` and ``syncProxyRules``; https://issues.k8s.io/90259), and the rule is dead
    without it (the input route drops a 127/8 destination from another device as martian, see
    ``route_in``). Older kubelets (``kubelet_network_linux.go``) also write it on their own:
    what the rule tells is an assumption, said as one."""
    for rs in rulesets:
        if rs is None:
            continue
        for table in rs.tables:
            if table.name is not TableName.FILTER:
                continue
            for chain in table.chains:
                for n, rule in enumerate(chain.rules, 1):
                    if _guards_localnet(rule):
                        return f"filter:{chain.name}#{n}"
    return None


def _guards_localnet(rule: Rule) -> bool:
    d, s = rule.destination, rule.source
    if d is None or s is None or rule.target_name != "DROP":
        return False
    if d.negated or d.network != _LOOPBACK4 or not s.negated or s.network != _LOOPBACK4:
        return False
    for m in rule.matches:
        state = m.get("--ctstate") if m.module == "conntrack" else None
        if state is not None and state.negated and "DNAT" in state.value.split(","):
            return True
    return False


class Router:
    """The routing stages of a walk (mixed into ``natlens.netfilter.walk.Walker``)."""

    host: Host
    run_: Run
    docker: bool
    localnet: str | None
    """``localnet_guard``'s rule when the snapshot has no ``route_localnet`` sysctl."""

    def _assume_forwarding(self, sysctl: str) -> None:
        """Forwarding is not in the snapshot (no sysctl.txt): assume it on, saying why by what
        the snapshot shows. dockerd turns it on when it starts (moby ``drivers/bridge``,
        ``setupIPForwarding``); without Docker the kernel default 0 may well hold, so the
        assumption says so (state it with sysctl.txt)."""
        if self.docker:
            self.run_.assume(f"IP forwarding enabled ({sysctl}=1: not in the snapshot; dockerd "
                             "sets it, and the snapshot shows Docker)")
        else:
            self.run_.assume(f"IP forwarding enabled ({sysctl}=1: not in the snapshot, which "
                             "shows no Docker to set it; the kernel default is 0)")

    def _martian_source(self, src: IPAddress, in_iface: str | None) -> str | None:
        """Why the input route lookup refuses a packet's source (``ip_route_input_slow``,
        ``fib_validate_source`` with accept_local=0; ``ipv6_rcv`` for IPv6), or None."""
        if in_iface in (None, "lo"):
            return None
        if src.is_multicast:
            return "multicast source"
        if src.version == 6:
            return "loopback source" if src.is_loopback else None
        if src in _ZERONET:
            return "zero network source"
        if src == _LIMITED_BROADCAST:
            return "broadcast source"
        if src in _LOOPBACK4:
            # ip_route_input_slow: a loopback source is martian unless route_localnet is on
            return None if self._route_localnet(in_iface) else "loopback source"
        if self.host.known_addresses and self.host.address_type(src) == "LOCAL":
            self.run_.assume("net.ipv4.conf.*.accept_local=0 (the kernel default)")
            return "a local address of this host"
        return None

    def _not_for_this_host(self, dst: IPAddress) -> str | None:
        """``broadcast``/``multicast`` when a packet first addressed to ``dst`` came in a
        link-layer broadcast or multicast frame (``pkt_type`` not PACKET_HOST), else None."""
        kind = self.host.address_type(dst)
        return kind.lower() if kind in ("BROADCAST", "MULTICAST") else None

    def _route_localnet(self, dev: str) -> bool:
        """``IN_DEV_ROUTE_LOCALNET`` of ``dev``: its own or the ``all`` sysctl is 1; ``all``
        not in the snapshot is inferred from the rule that guards it (``localnet_guard``)."""
        values = (self.host.sysctl_flag(f"net.ipv4.conf.{dev}.route_localnet"),
                  self.host.sysctl_flag("net.ipv4.conf.all.route_localnet"))
        if True in values:
            return True
        if values[1] is None and self.localnet is not None:
            self.run_.assume(f"net.ipv4.conf.all.route_localnet=1: not in the snapshot; "
                             f"inferred from {self.localnet}, the rule kube-proxy adds when it "
                             "sets it (\"block incoming localnet connections\")")
            return True
        if None in values:
            self.run_.assume(f"net.ipv4.conf.{dev}.route_localnet=0 (the kernel default)")
        return False

    def _routes_known(self, version: int) -> bool:
        return self.host.known_routes if version == 4 else self.host.known_routes6

    def _no_route_in(self, path: WalkPath, hook: str) -> Outcome:
        """A received packet to an address with no route: the host answers ICMP destination
        unreachable (REJECT), except IPv4 with forwarding off, which drops it silently.

        Kernel: IPv4 ``ip_route_input_slow`` gives ``dst.input = ip_error``, which sends
        ``ICMP_NET_UNREACH`` only when the input device forwards (net/ipv4/route.c); IPv6
        ``ip6_null_entry``'s ``ip6_pkt_discard`` always sends ``ICMPV6_NOROUTE``
        (net/ipv6/route.c). Both are rate-limited (``icmp_ratelimit``), not modelled. An error
        needs a route back to the sender: ``icmp_send``/``icmpv6_send`` look one up
        (``icmp_route_lookup``, ``icmpv6_route_lookup``) and send nothing when there is none,
        so with the routes known and none back to the source the packet is dropped silently."""
        dst = path.flow.dst
        if dst.version == 4:
            forwarding = self.host.forwarding.get(4)
            if forwarding is False:
                p = note(path, hook, f"no route to {dst}: dropped (net.ipv4.ip_forward=0: "
                                     "ip_error sends no ICMP error)")
                return Outcome(Verdict.DROP, replace(p, kind=Path.FORWARD))
            if forwarding is None:
                self._assume_forwarding("net.ipv4.ip_forward")
        src = path.flow.src
        back = self.host.route(src)
        if self._routes_known(src.version) and not self.host.is_local(src) and (
                back is None or back.kind in ("blackhole", "unreachable", "prohibit")):
            p = note(path, hook, f"no route to {dst}, and none back to {src}: dropped (the "
                                 "ICMP error has no route)")
            return Outcome(Verdict.DROP, replace(p, kind=Path.FORWARD))
        p = note(path, hook, f"no route to {dst}: rejected (ICMP destination unreachable)")
        return Outcome(Verdict.REJECT, replace(p, kind=Path.FORWARD))

    def route_in(self, path: WalkPath) -> Outcome | tuple[WalkPath, tuple[Stage, ...]]:
        flow, host = path.flow, self.host
        hook = "ROUTING"
        dst = flow.dst
        martian = self._martian_source(flow.src, flow.in_iface)
        if martian is not None:
            p = note(path, hook, f"martian source {flow.src} on {flow.in_iface} ({martian}): "
                                  "dropped by the routing code")
            where = Path.LOCAL if host.address_type(dst) == "LOCAL" else Path.FORWARD
            return Outcome(Verdict.DROP, replace(p, kind=where))
        if dst.version == 4 and dst in _LOOPBACK4 and flow.in_iface not in (None, "lo") \
                and not self._route_localnet(flow.in_iface):
            p = note(path, hook, f"martian destination {dst} on {flow.in_iface}: dropped by "
                                  "the routing code")
            return Outcome(Verdict.DROP, replace(p, kind=Path.LOCAL))
        kind = host.address_type(dst)
        if kind in ("LOCAL", "BROADCAST", "MULTICAST"):
            p = note(path, hook, f"{dst} is {'a local address' if kind == 'LOCAL' else kind}: "
                                  "deliver locally (INPUT)")
            return replace(p, kind=Path.LOCAL), (*hook_stages("INPUT"), ("deliver",))
        route = host.route(dst)
        if route is None:
            if self._routes_known(dst.version):
                return self._no_route_in(path, hook)
            off = self._forwarding_off(path, hook)
            if off is not None:
                return off
            self.run_.doubt(f"route to {dst}: not in the snapshot (output interface unknown)")
            p = note(path, hook, f"{dst}: no route known, forwarded via an unknown interface")
            p = replace(p, kind=Path.FORWARD, flow=replace(flow, out_known=False))
            return p, (*hook_stages("FORWARD"), *hook_stages("POSTROUTING"), ("send",))
        if route.kind in ("blackhole", "unreachable", "prohibit"):
            p = note(path, hook, f"route {route}: {route.kind}")
            verdict = Verdict.DROP if route.kind == "blackhole" else Verdict.REJECT
            return Outcome(verdict, replace(p, kind=Path.FORWARD))
        frame = self._not_for_this_host(flow.orig_dst or dst)
        if frame is not None and flow.in_iface not in (None, "lo"):
            self.run_.assume(f"a packet to a {frame} address arrives in a link-layer {frame} "
                             "frame")
            p = note(path, hook, f"forward {dst}: the packet arrived as a link-layer {frame} "
                                 f"(addressed to {flow.orig_dst}); ip_forward drops every packet "
                                 "not addressed to this host's MAC")
            return Outcome(Verdict.DROP, replace(p, kind=Path.FORWARD))
        off = self._forwarding_off(path, hook)
        if off is not None:
            return off
        p = note(path, hook, f"forward {dst}: route {route}")
        p = replace(p, kind=Path.FORWARD, flow=replace(flow, out_iface=route.dev))
        return p, (*hook_stages("FORWARD"), *hook_stages("POSTROUTING"), ("send",))

    def _forwarding_off(self, path: WalkPath, hook: str) -> Outcome | None:
        """The drop of a packet to forward when the snapshot says forwarding is off
        (``ip_forward``: ``IN_DEV_FORWARD``), else None; unknown, it is assumed on."""
        dst = path.flow.dst
        sysctl = (f"net.ipv{dst.version}."
                  f"{'ip_forward' if dst.version == 4 else 'conf.all.forwarding'}")
        forwarding = self.host.forwarding.get(dst.version)
        if forwarding is False:
            p = note(path, hook, f"forward {dst}: {sysctl}=0 (forwarding off): dropped")
            return Outcome(Verdict.DROP, replace(p, kind=Path.FORWARD))
        if forwarding is None:
            self._assume_forwarding(sysctl)
        return None

    def _output_route(self, path: WalkPath, hook: str) -> Outcome | WalkPath:
        flow, host = path.flow, self.host
        dst = flow.dst
        if host.is_local(dst):
            p = note(path, hook, f"{dst} is a local address: output via lo")
            return replace(p, kind=Path.LOCAL, flow=replace(flow, out_iface="lo", out_known=True),
                           routed_dst=dst, routed_mark=flow.mark)
        route = host.route(dst)
        if route is None:
            if self._routes_known(dst.version):
                p = note(path, hook, f"no route to {dst}: the sender gets 'network unreachable'")
                return Outcome(Verdict.DROP, replace(p, kind=Path.OUTPUT))
            self.run_.doubt(f"route to {dst}: not in the snapshot (output interface unknown)")
            p = note(path, hook, f"{dst}: no route known, output interface unknown")
            return replace(p, kind=Path.OUTPUT, flow=replace(flow, out_iface=None,
                                                             out_known=False),
                           routed_dst=dst, routed_mark=flow.mark)
        if route.kind in ("blackhole", "unreachable", "prohibit"):
            p = note(path, hook, f"route {route}: {route.kind}")
            verdict = Verdict.DROP if route.kind == "blackhole" else Verdict.REJECT
            return Outcome(verdict, replace(p, kind=Path.OUTPUT))
        if flow.src.version == 4 and flow.src in _LOOPBACK4 and route.dev is not None \
                and route.dev != "lo" and not self._route_localnet(route.dev):
            # __mkroute_output: a loopback source may not leave by another device (EINVAL)
            # unless route_localnet is on for it, so a 127.0.0.1 packet DNATed off the host
            # is dropped at the re-route
            p = note(path, hook, f"output {dst} via {route.dev} from loopback source "
                                 f"{flow.src}: the route lookup fails (EINVAL), dropped")
            return Outcome(Verdict.DROP, replace(p, kind=path.kind or Path.OUTPUT))
        tied = host.tied_devices(dst) if dst.version == 6 and dst.is_link_local else ()
        if len(tied) > 1:
            self.run_.doubt(f"route to {dst}: a link-local address is on-link on "
                            f"{', '.join(tied)}; the kernel picks by the socket's scope id or "
                            f"the neighbours' reachability (taken: {route.dev})")
        p = note(path, hook, f"output {dst}: route {route}")
        return replace(p, kind=Path.OUTPUT, flow=replace(flow, out_iface=route.dev,
                                                         out_known=True),
                       routed_dst=dst, routed_mark=flow.mark)

    def route_out(self, path: WalkPath) -> Outcome | tuple[WalkPath, tuple[Stage, ...]]:
        result = self._output_route(path, "ROUTING")
        if isinstance(result, Outcome):
            return result
        # re-routing happens inside OUTPUT, after mangle and after NAT (walk.Walker.hook,
        # which drops a packet whose new route fails); the new device counts from POSTROUTING
        return result, (*hook_stages("OUTPUT"), ("reroute",), *hook_stages("POSTROUTING"),
                        ("after_post",))

    def reroute(self, path: WalkPath) -> Outcome | tuple[WalkPath, tuple[Stage, ...]]:
        flow = path.flow
        if flow.dst == path.routed_dst and flow.mark == path.routed_mark:
            return path, ()
        result = self._output_route(path, "REROUTE")
        if isinstance(result, Outcome):
            return result
        return result, ()

    def after_post(self, path: WalkPath) -> Outcome | tuple[WalkPath, tuple[Stage, ...]]:
        if path.kind is not Path.LOCAL:
            return path, (("send",),)
        p = note(path, "LOOPBACK", "looped back through lo: PREROUTING and INPUT again")
        p = replace(p, flow=replace(p.flow, in_iface="lo", out_iface=None))
        return p, (*hook_stages("PREROUTING"), *hook_stages("INPUT"), ("deliver",))
