"""Walk a packet through the netfilter hooks of a host: ``Simulator`` and ``simulate``.

At each hook the packet meets every base chain registered there, lowest priority first, from
every rule source: the iptables tables of the main backend and of the other one (raw -300,
mangle -150, nat -100/+100, filter 0, security 50; ``include/uapi/linux/netfilter_ipv4.h``)
and the native nftables base chains at their own priority (``pipeline``). ACCEPT ends one base
chain, DROP/REJECT the packet; nat chains run inside the NAT step of their hook for a
connection's first packet only, until one maps it (``nf_nat_inet_fn``). Between the hooks come
the routing decisions (``routing``): local or forwarded after PREROUTING, re-routing after
OUTPUT's nat or mangle, a local destination looped back through ``lo`` (PREROUTING, INPUT).

Modules: ``pipeline`` (hooks, priorities, sources, base chains), ``prepared`` (iptables rules
compiled and indexed), ``nftchains`` (native nftables as base chains), ``routing``, ``walk``
(chains and rules; nft chains through ``natlens.nft.walk_chain``), ``walkstate`` (paths of one
trace). Matches the snapshot cannot decide, ``-m statistic`` and an order of equal priorities
that changes the outcome fork the walk; each outcome becomes a ``Branch`` of the trace.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Protocol

from natlens.derived import KeepsDerived, derived
from natlens.model import Address, Family, Interface, Ruleset
from natlens.netfilter.connection import connection_of
from natlens.netfilter.conntrack import needs_conntrack, without_nat
from natlens.netfilter.fastcopy import replace
from natlens.netfilter.flow import Flow, MatchContext, ReverseNat
from natlens.netfilter.host import Host, IPAddress, IPNetwork, Route, with_assumed
from natlens.netfilter.listeners import Listeners
from natlens.netfilter.nftchains import (
    NftPipelineParts,
    iptables_nft_tables,
    nft_needs_conntrack,
    nft_parts,
)
from natlens.netfilter.nftcomplete import complete_from_nft, dump_backend
from natlens.netfilter.packet import Packet, endpoint
from natlens.netfilter.pipeline import (
    HOOK_TABLES,
    NatStep,
    Pipeline,
    Source,
    Stage,
    build,
    hook_stages,
    iptables_base_chains,
    iptables_source,
)
from natlens.netfilter.prepared import CompiledRule, PreparedChain, PreparedRuleset, prepare
from natlens.netfilter.routing import localnet_guard
from natlens.netfilter.trace import Branch, Path, StepKind, Trace, Verdict
from natlens.netfilter.walk import ContextKey, Walker
from natlens.netfilter.walkstate import Outcome, Run, WalkPath, note
from natlens.nft import CompiledTable, NftRuleset
from natlens.nft.masquerade import masquerade_conditions
from natlens.parse.collector import collector_off

__all__ = [
    "HOOK_TABLES",
    "CompiledRule",
    "PreparedChain",
    "PreparedRuleset",
    "Simulator",
    "prepare",
    "simulate",
]


class SnapshotValues(KeepsDerived, Protocol):
    """What the simulator reads from a snapshot (``natlens.snapshot.Snapshot`` has it); the
    facts it reads from every rule are kept with it (``natlens.derived``)."""

    @property
    def host(self) -> Host: ...
    @property
    def ruleset(self) -> Ruleset: ...
    @property
    def ruleset6(self) -> Ruleset: ...
    @property
    def backend(self) -> str | None: ...
    @property
    def other_backend(self) -> Ruleset | None: ...
    @property
    def other_backend6(self) -> Ruleset | None: ...
    @property
    def nft(self) -> NftRuleset | None: ...


class HasSimulator(Protocol):
    """A value that owns a ``Simulator`` (``natlens.snapshot.Snapshot``)."""

    @property
    def simulator(self) -> Simulator: ...


class Simulator:
    """A prepared host + rulesets; ``trace(packet)`` runs one packet."""

    def __init__(self, host: Host, ruleset: Ruleset, ruleset6: Ruleset | None = None, *,
                 index: bool = True, backend: str | None = None,
                 other: Ruleset | None = None, other6: Ruleset | None = None,
                 nft: NftRuleset | None = None) -> None:
        """``ruleset``/``ruleset6`` are the main iptables dumps (their ``backend``, or
        ``backend``, says which: ``nf_tables`` or ``legacy``); ``other``/``other6`` the other
        backend's dumps, whose tables the kernel runs too; ``nft`` the native nftables ruleset
        (``nft -j list ruleset``), minus the tables an nf_tables iptables dump names (which
        complete the chains such a dump shows in part: ``nftcomplete``)."""
        self.host = host
        self.index = index
        # an nf_tables dump's tables are in nf_tables: with no backend said, a dump whose tables
        # the nft JSON holds was iptables-nft's
        main = dump_backend(backend, ruleset, ruleset6, nft)
        self.backend = main
        self._nft_owned = iptables_nft_tables(main, ruleset, ruleset6, other, other6)
        six = ruleset6 if ruleset6 is not None else Ruleset(Family.IPV6)
        compiled: dict[tuple[str, str], CompiledTable] = {}
        self.completions = {v: complete_from_nft(rs, nft, main, self._nft_owned, compiled)
                            for v, rs in ((4, ruleset), (6, six))} if nft is not None else {}
        """Per IP version, the chains a dump shows in part completed from the nft JSON
        (``nftcomplete``); their ``notes`` say which."""
        self.v4 = prepare(ruleset, index=index, shown_elsewhere=self._elsewhere(4))
        self.v6 = prepare(six, index=index, shown_elsewhere=self._elsewhere(6))
        for v, prepared in ((4, self.v4), (6, self.v6)):
            if v in self.completions:
                prepared.complete(self.completions[v].tails)
        self.other4 = prepare(other, index=index) if other is not None else None
        self.other6 = prepare(other6, index=index) if other6 is not None else None
        self.nft: NftPipelineParts | None = None
        self._nft_ruleset = nft
        if nft is not None:
            self.nft = nft_parts(nft, self._nft_owned)
        self.docker = _docker_present(host, (ruleset, ruleset6, other, other6), nft)
        """Whether the snapshot shows Docker (``_docker_present``): what the assumptions say of
        sysctls dockerd sets (IP forwarding)."""
        self.localnet = localnet_guard((ruleset, other)) \
            if host.sysctl_flag(_ROUTE_LOCALNET) is None else None
        """The rule that tells ``net.ipv4.conf.all.route_localnet=1`` when the snapshot has no
        such sysctl (``routing.localnet_guard``), else None."""
        self.owner: KeepsDerived | None = None
        """The snapshot whose rules these are (set by ``from_snapshot``): what reads every rule
        is computed once per snapshot and kept with it (``natlens.derived``). What-if copies
        (``without``) share it: the index of routing rules reads each prepared ruleset's whole
        ``source``, which a what-if keeps."""
        self._build()

    def _elsewhere(self, version: int) -> frozenset[str]:
        found = self.completions.get(version)
        return found.elsewhere if found is not None else frozenset()

    def _build(self) -> None:
        """The host per family (routes inferred from Docker's rules when unknown) and the
        pipelines of base chains."""
        self._hosts = {
            v: self._with_inferred_routes(self.host, prepared, _docker_masquerades(
                prepared, self._nft_ruleset, v, self._nft_owned))
            for v, prepared in ((4, self.v4), (6, self.v6))}
        main = iptables_source(self.backend)
        other_backend = {"nf_tables": "legacy", "legacy": "nf_tables"}.get(self.backend or "")
        self.pipelines: dict[int, Pipeline] = {}
        self._conntrack_off: dict[int, str] = {}
        # the iptables rulesets by the ``source`` their trace steps carry
        self._by_source: dict[int, dict[str, PreparedRuleset]] = {4: {}, 6: {}}
        self._routing: dict[tuple[int, str], str] | None = None
        """``_routing_rule``'s index (``_routing_rules``), built on first use."""
        for version, prepared, other in ((4, self.v4, self.other4), (6, self.v6, self.other6)):
            family = "ip" if version == 4 else "ip6"
            self._by_source[version][main.value] = prepared
            handles = {t: h for (f, t), h in (self.nft.registered.items() if self.nft else ())
                       if f == family}
            chains = list(iptables_base_chains(
                prepared, main, handles if main is Source.IPTABLES_NFT else None))
            if other is not None:
                source = iptables_source(other.source.backend or other_backend)
                if source is main and source is Source.IPTABLES:
                    source = Source.IPTABLES_LEGACY
                chains.extend(iptables_base_chains(
                    other, source, handles if source is Source.IPTABLES_NFT else None))
                self._by_source[version][source.value] = other
            if self.nft is not None:
                chains.extend(self.nft.chains)
            pipeline = build(version, chains)
            if not needs_conntrack((prepared.source, other.source if other is not None
                                    else None)) and not (
                    self._nft_ruleset is not None and nft_needs_conntrack(
                        self._nft_ruleset, version, self._nft_owned)):
                if any(isinstance(e, NatStep) for hp in pipeline.hooks.values()
                       for e in hp.entries):
                    self._conntrack_off[version] = _CONNTRACK_OFF
                pipeline = without_nat(pipeline)
            self.pipelines[version] = pipeline
        self._has_chains = {v: any(p.chains()) for v, p in self.pipelines.items()}
        # match contexts of the simulator's own hosts, shared by every trace (a trace whose
        # host carries an assumption builds its own)
        self._contexts: dict[int, dict[ContextKey, MatchContext]] = {4: {}, 6: {}}

    def without(self, family: int, gone: Mapping[tuple[str, str], Collection[int]]) -> Simulator:
        """A simulator of the same host with the main ``family`` rules ``gone[(table, chain)]``
        (1-based positions) deleted: what ``Simulator(host, ruleset minus those rules)`` does,
        without compiling the ruleset again (a what-if costs O(deleted rules))."""
        sim = copy.copy(self)
        sim.v4 = self.v4.without(gone) if family == 4 else self.v4
        sim.v6 = self.v6.without(gone) if family == 6 else self.v6
        sim._build()
        return sim

    def listening_everywhere(self) -> Simulator:
        """A simulator of the same host and rules with a socket on every address and port of
        the host (``natlens verify`` starts a responder where each trace lands): no connection
        delivered to the host is refused for want of one (``connection.connection_of``)."""
        sim = copy.copy(self)
        sim.host = replace(self.host, listeners=Listeners(everywhere=True))
        sim._build()
        return sim

    @classmethod
    def from_snapshot(cls, snap: SnapshotValues) -> Simulator:
        """Prepare the simulator of a ``natlens.snapshot.Snapshot`` (any value with its
        ``host``, ``ruleset`` and ``ruleset6``)."""
        sim = cls(snap.host, snap.ruleset, snap.ruleset6, backend=snap.backend,
                  other=snap.other_backend, other6=snap.other_backend6, nft=snap.nft)
        sim.owner = snap
        return sim

    @staticmethod
    def _with_inferred_routes(host: Host, prepared: PreparedRuleset,
                              found: Iterable[tuple[str, IPNetwork, str]]) -> Host:
        """Docker's masquerade rules (``found``: bridge, network, where,
        ``_docker_masquerades``) name the bridge networks: each is one of ``Host.segments``
        (the rule's author has this host masquerade NET towards every other interface, so it
        is the gateway of NET on BRIDGE), and a connected route (said so) where the snapshot
        shows none: without ip-route.json, or with one that lacks it while the host's
        addresses, which would tell whether the bridge holds NET (``Host.from_json`` then
        derives the route from its address), are unknown (a partial capture, a paste)."""
        known_routes = host.known_routes if prepared.family is Family.IPV4 else host.known_routes6
        derive_routes = not (known_routes and host.known_addresses)
        have = {r.network for r in (host.routes + host.routes6)}
        for name, network, where in found:
            if network not in host.segments.get(name, ()):
                host = replace(host, segments=MappingProxyType({
                    **host.segments, name: (*host.segments.get(name, ()), network)}))
            if network in have or not derive_routes:
                continue
            known = host.route(network.network_address)
            if known_routes and known is not None and known.network.prefixlen >= \
                    network.prefixlen:
                continue  # ip-route.json routes it already (a narrower route of its own)
            host = with_assumed(host, routes=(Route(network, name),), note=(
                f"route {network} dev {name} inferred from {where}" + (
                    " (not in ip-route.json)" if known_routes else "")))
            have.add(network)
        return host

    # -- public ---------------------------------------------------------------------------------

    def host_for(self, family: int) -> Host:
        """The host the walks of ``family`` (4 or 6) see: the snapshot's host with the routes
        inferred from Docker's MASQUERADE rules when the snapshot has none (``host`` is the
        snapshot's as given). Raises ``KeyError`` for another family."""
        return self._hosts[family]

    def trace(self, packet: Packet, *, dst_local: bool | None = None,
              via: str | None = None, reverse_nat: ReverseNat | None = None) -> Trace:
        """Simulate ``packet``; see the module docstring for the semantics.

        The cyclic garbage collector is paused while the walk runs (``collector_off``): a walk
        allocates in proportion to the rules it meets and frees nothing before it ends, so
        collections during it only rescan the loaded rules (a third of a trace on a big host)
        and make deep walks superlinear (benchmarks/bench_nft.py, bench_worst.py deep-trace).

        For the reply of a traced connection, ``packet`` is the reply as it arrives (addressed
        to the connection's source after its source NAT) and ``reverse_nat`` the connection's
        mapping, applied at the NAT step of each hook (``Flow.reverse_nat``); its destination
        after that is the original source: ``dst_local`` says whether that is an address of
        the host when the host's addresses are not known, and ``via`` the interface that
        reaches it when the host's routes do not say (the one the original packet came in
        on)."""
        with collector_off():
            return self._walk(packet, dst_local, via, reverse_nat)

    def _walk(self, packet: Packet, dst_local: bool | None, via: str | None,
              reverse_nat: ReverseNat | None) -> Trace:
        pipeline = self.pipelines[packet.family]
        host = self._hosts[packet.family]
        target = reverse_nat.dst[0] if reverse_nat is not None and reverse_nat.dst else None
        unknown = reverse_nat.dst_unknown if reverse_nat is not None else None
        if target is not None and not host.known_addresses and not host.is_local(packet.dst) \
                and packet.in_interface is not None and unknown is None:
            # the reply comes to the address the connection's source NAT chose: the host's
            host = with_assumed(host, local=(packet.dst, packet.in_interface))
        end = packet.dst if target is None else target
        if via is not None:
            known = host.route(end)
            if known is None or (known.network.prefixlen == 0
                                 and not self._routes_known(host, packet)):
                prefix = end.max_prefixlen
                host = with_assumed(host, routes=(Route(ipaddress.ip_network(
                    f"{end}/{prefix}"), via),))
        run = Run()
        for a in host.assumptions:
            run.assume(a)
        if packet.family == 6 and not host.known_routes6 and host.known_addresses:
            run.assume("IPv6 routes derived from interface addresses (ip-route.json holds IPv4 "
                       "routes only)")
        hosts = self._destination_hosts(host, packet if target is None else replace(
            packet, dst=target), run, dst_local)
        if packet.family in self._conntrack_off:
            run.assume(self._conntrack_off[packet.family])
        if not self._has_chains[packet.family]:
            run.assume(f"no {'ip6tables' if packet.family == 6 else 'iptables'} rules in the "
                       "snapshot: every hook accepts")
        flow = Flow.from_packet(packet)
        if reverse_nat is not None:  # the connection's status bits (IPS_SRC_NAT, IPS_DST_NAT)
            flow = replace(flow, reverse_nat=reverse_nat, snat=reverse_nat.dst is not None,
                           dnat=reverse_nat.src is not None, dst_unknown=unknown)
        if unknown is not None:
            run.assume(f"the reply arrives addressed to {unknown}, which the snapshot does not "
                       "tell: rules before the NAT step that match its destination are read "
                       "both ways")
        if packet.local_origin:
            todo: tuple[Stage, ...] = (("route_out",),)
        else:
            todo = (*hook_stages("PREROUTING"), ("route_in",))
        outcomes = []
        refused = _ipv6_receive(packet)
        if refused is not None:
            p = note(WalkPath(flow), "ROUTING", refused)
            outcomes.append(Outcome(Verdict.DROP, replace(p, kind=Path.LOCAL)))
            hosts = hosts[:1]
        readings = []
        for h, assumed in hosts if refused is None else ():
            start = WalkPath(flow, assumed=assumed)
            shared = self._contexts[packet.family] if h is self._hosts[packet.family] else None
            readings.append(Walker(pipeline, h, run, shared, docker=self.docker,
                                   localnet=self.localnet).run(start, todo))
        if len(readings) == 2 and _same_outcomes(*readings):
            # whether the destination is the host's own did not matter: one reading, no doubt
            readings = [[_without_first_assumption(o) for o in readings[0]]]
            run.uncertain = {u: None for u in run.uncertain
                             if not u.startswith(_ADDRESSES_UNKNOWN)}
        elif len(readings) == 2:
            readings = self._headline_first(readings, packet.dst if target is None else target,
                                            packet.family, run)
        for found in readings:  # within a reading, the paths resting on fewer unlikely
            outcomes.extend(sorted(found, key=_unlikeliness))  # assumptions first (stable)
        trace = _assemble(packet, outcomes, run)
        if packet.state == "new":  # a reply (established) is traced without asking again
            seen = hosts[0][0]
            if self.localnet is not None and packet.family == 4:  # as the walk read it
                seen = replace(seen, sysctls=MappingProxyType({**seen.sysctls,
                                                                _ROUTE_LOCALNET: "1"}))
            trace = replace(trace, connection=connection_of(trace, seen, self.trace))
        return trace

    @staticmethod
    def _routes_known(host: Host, packet: Packet) -> bool:
        return host.known_routes if packet.family == 4 else host.known_routes6

    @staticmethod
    def _destination_hosts(host: Host, packet: Packet, run: Run,
                           dst_local: bool | None = None) -> list[tuple[Host, tuple[str, ...]]]:
        """The hosts to walk: just ``host`` when it tells whether the destination is one of its
        addresses; else (no ip-addr.json) both readings, each an assumption of its branches,
        the more likely first (``_container_side``). ``-m addrtype`` then reads LOCAL
        consistently with each."""
        if host.known_addresses or packet.local_origin or host.is_local(packet.dst):
            return [(host, ())]
        if packet.dst.is_multicast or packet.dst == ipaddress.ip_address("255.255.255.255"):
            return [(host, ())]
        r = host.route(packet.dst)
        if r is not None and r.network.prefixlen > 0:
            return [(host, ())]
        assert packet.in_interface is not None
        if dst_local is not None:
            return [(with_assumed(host, local=(packet.dst, packet.in_interface)) if dst_local
                     else replace(host, not_local=host.not_local | {packet.dst}), ())]
        run.doubt(f"{_ADDRESSES_UNKNOWN}: whether {packet.dst} is an address of this host "
                  f"decides the path; {_STATE_ADDRESSES}")
        run.outcomes += 1
        local = with_assumed(host, local=(packet.dst, packet.in_interface))
        elsewhere = replace(host, not_local=host.not_local | {packet.dst})
        readings: list[tuple[Host, tuple[str, ...]]] = [
            (elsewhere, (f"{packet.dst} is not an address of this host",)),
            (local, (f"{packet.dst} is an address of this host",))]
        # A container's packet to an unknown address is most likely egress; a packet from
        # another interface is most likely addressed to the host (headline first), unless the
        # rules say otherwise (``_headline_first``, after the walks).
        return readings if _container_side(host, packet.in_interface) else readings[::-1]

    def _headline_first(self, readings: list[list[Outcome]], dst: IPAddress, family: int,
                        run: Run) -> list[list[Outcome]]:
        """Order the two readings of a destination whose locality is unknown (each a list of
        outcomes, the reading's assumption first in each ``assumed``) so the one the rules
        speak of comes first: when the walks of only one reading meet an iptables rule that
        names ``dst`` itself (``-d ADDR/32``, ``-d ADDR/128``, not negated), the ruleset's
        author wrote that rule for packets to ``dst`` on that reading's path, and a rule for a
        path the address never takes would be dead. kube-proxy's ``KUBE-SERVICES`` names each
        ClusterIP on the forwarding path (nat PREROUTING for any destination, filter FORWARD's
        REJECT of a service without endpoints) and never as a host address; Docker names a
        host address only after ``-m addrtype --dst-type LOCAL`` (its ``DOCKER`` chain), so the
        local reading names it. When neither walk meets such a rule but a rule elsewhere names
        ``dst`` alone with an output interface (``-d ADDR/32 -o IF``: Docker's ``DOCKER``
        chain for a container's published port, reached or not), the author routes ``dst``
        out of IF, so the forwarding reading leads (``_routing_rule``). Otherwise the order
        stays (``_destination_hosts``). The uncertain line about the address says which
        reading leads and why."""
        not_local = (f"{dst} is not an address of this host",)
        named = [self._naming_rule(found, dst, family) for found in readings]
        if named[0] is None and named[1] is None:
            routed = self._routing_rule(dst, family)
            if routed is None:
                return readings
            named = [routed if found[0].path.assumed[:1] == not_local else None
                     for found in readings]
            whose = f"a rule naming it with an output interface ({routed})"
        elif named[0] is not None and named[1] is not None:
            return readings
        else:
            whose = ("the only reading whose path meets a rule naming it "
                     f"({named[0] or named[1]})")
        lead = 0 if named[0] is not None else 1
        local = readings[lead][0].path.assumed[:1] == (f"{dst} is an address of this host",)
        said = f"{_ADDRESSES_UNKNOWN}: whether {dst} is an address of this host decides the path"
        why = (f"{said}; the headline takes it as {'one' if local else 'not one'}, {whose}; "
               f"{_STATE_ADDRESSES}")
        run.uncertain = {(why if u.startswith(said) else u): None for u in run.uncertain}
        return readings if lead == 0 else readings[::-1]

    def _routing_rule(self, dst: IPAddress, family: int) -> str | None:
        """``table:chain#N`` of the first iptables rule of the ruleset whose destination match
        is ``dst`` alone (not negated) and that names an output interface (``-o IF``, not
        negated): a rule written for packets to ``dst`` routed out of IF. None when none."""
        if self._routing is None:
            # reads every rule: kept with the snapshot (a warm trace of a 100k-rule dump would
            # load every chain from the cache again, issue 13)
            self._routing = derived(self.owner, "engine.routing_rules/1", self._routing_rules)
        return self._routing.get((family, str(dst)))

    def _routing_rules(self) -> dict[tuple[int, str], str]:
        """(family, address) -> ``table:chain#N`` of the first iptables rule (in the order of
        ``_by_source``, tables, chains, rules) whose destination match is that one address
        alone, not negated, and that names an output interface, not negated."""
        found: dict[tuple[int, str], str] = {}
        for family, sources in self._by_source.items():
            for source in sources.values():
                for table in source.source.tables:
                    for chain in table.chains:
                        for n, rule in enumerate(chain.rules, 1):
                            d, out = rule.destination, rule.out_interface
                            if out is None or out.negated or d is None or d.negated \
                                    or d.mask is not None \
                                    or d.network.prefixlen != d.network.max_prefixlen:
                                continue
                            found.setdefault((family, str(d.network.network_address)),
                                             f"{table.name.value}:{chain.name}#{n}")
        return found

    def _naming_rule(self, found: list[Outcome], dst: IPAddress, family: int) -> str | None:
        """``table:chain#N`` of the first iptables rule on the steps of ``found`` whose
        destination match is ``dst`` alone, or None."""
        sources = self._by_source[family]
        for o in found:
            for step in o.path.steps:
                if step.kind is not StepKind.RULE or step.rule is None or step.table is None \
                        or step.chain is None or step.source not in sources:
                    continue
                chain = sources[step.source].chain(step.table, step.chain)
                if chain is None or not 0 < step.rule <= len(chain.rules):
                    continue
                d = chain.rules[step.rule - 1].rule.destination
                if d is not None and not d.negated and d.mask is None \
                        and d.network.prefixlen == d.network.max_prefixlen \
                        and d.network.network_address == dst:
                    return f"{step.table}:{step.chain}#{step.rule}"
        return None


def _ipv6_receive(packet: Packet) -> str | None:
    """Why ``ip6_rcv_core`` drops an IPv6 packet from another interface before PREROUTING
    (RFC 4291 2.5.3: a loopback source or destination received on a device that is not the
    loopback), or None."""
    if packet.family != 6 or packet.local_origin or packet.in_interface == "lo":
        return None
    if packet.dst.is_loopback or packet.src.is_loopback:
        return (f"loopback address {packet.dst if packet.dst.is_loopback else packet.src} on "
                f"{packet.in_interface}: dropped by ip6_rcv_core before PREROUTING")
    return None


def _unlikeliness(o: Outcome) -> int:
    """How many of the outcome's assumptions contradict the snapshot (``WalkPath.unlikely``)."""
    return o.path.unlikely


def _same_outcomes(one: list[Outcome], other: list[Outcome]) -> bool:
    """Whether two readings of the destination end alike (verdict, path, flow, chance)."""
    def signature(found: list[Outcome]) -> list[tuple[object, ...]]:
        return sorted((o.verdict.value, str(o.path.kind), str(o.path.flow), o.path.prob)
                      for o in found)
    return signature(one) == signature(other)


def _without_first_assumption(o: Outcome) -> Outcome:
    return Outcome(o.verdict, o.path.but(assumed=o.path.assumed[1:]))


_ADDRESSES_UNKNOWN = "host addresses unknown (no ip-addr.json)"
_ROUTE_LOCALNET = "net.ipv4.conf.all.route_localnet"
_STATE_ADDRESSES = "state them with --host-addr IP or --iface NAME=IP/PREFIX"

_DOCKER_BRIDGE = re.compile(r"^(docker\d+|br-[0-9a-f]{12})$")
_DOCKER_CHAINS = frozenset({"DOCKER", "DOCKER-USER", "DOCKER-FORWARD"})
"""Chains dockerd's iptables backend makes (moby ``libnetwork/iptables``, ``drivers/bridge``)."""
_DOCKER_NFT_TABLE = "docker-bridges"
"""The table of dockerd's nftables backend (Docker 29, moby ``libnetwork/internal/nftables``)."""


def _docker_present(host: Host, rulesets: tuple[Ruleset | None, ...],
                    nft: NftRuleset | None) -> bool:
    """Whether the snapshot shows Docker: its networks' bridges (``docker network inspect``),
    a chain its iptables backend makes in any dump, or its nftables table."""
    if host.bridges:
        return True
    if any(chain.name in _DOCKER_CHAINS for rs in rulesets if rs is not None
           for table in rs.tables for chain in table.chains):
        return True
    return nft is not None and any(t.name == _DOCKER_NFT_TABLE for t in nft.tables)


def _docker_segment(source: Address | None, out: Interface | None) -> tuple[str, IPNetwork] | None:
    """``(BRIDGE, NET)`` when a masquerade rule's conditions are Docker's ``-s NET ! -o BRIDGE``
    (``BRIDGE`` one exact name), else None: the one criterion for both rule forms
    (``_docker_masquerades``). Docker writes it for each NAT-mode bridge network (moby
    ``drivers/bridge``; nftables: ``oifname != BRIDGE ip saddr NET masquerade``)."""
    if source is None or source.negated or source.mask is not None \
            or out is None or not out.negated or out.name.endswith("+"):
        return None
    return out.name, source.network


def _docker_masquerades(prepared: PreparedRuleset, nft: NftRuleset | None, version: int,
                        skip: Collection[tuple[str, str]]) -> Iterator[tuple[str, IPNetwork, str]]:
    """``(BRIDGE, NET, where)`` of each masquerade rule of IP ``version`` that
    ``_docker_segment`` reads as Docker's: iptables ``nat:POSTROUTING`` rules of ``prepared``,
    then the rules of ``nft``'s simulated tables that see ``version`` (``masquerade`` is valid
    only in postrouting nat chains: nft_masq_validate), minus the iptables-nft tables ``skip``
    holds. ``where`` names the rule for the assumption the route becomes."""
    post = prepared.chain("nat", "POSTROUTING")
    for cr in post.rules if post is not None else ():
        r = cr.rule
        seg = _docker_segment(r.source, r.out_interface) \
            if r.target_name == "MASQUERADE" else None
        if seg is not None:
            yield (*seg, f"nat:POSTROUTING rule {cr.index} (Docker's MASQUERADE rule)")
    for table in nft.tables if nft is not None else ():
        if not table.simulated or not table.family.sees(version) \
                or (table.family.value, table.name) in skip:
            continue
        for rule in (r for c in table.chains for r in c.rules):
            conds = masquerade_conditions(rule)
            seg = _docker_segment(*conds) if conds is not None else None
            if seg is not None and seg[1].version == version:
                yield (*seg, f"{table.label} {rule.chain} rule handle {rule.handle} "
                              "(Docker's masquerade rule)")


_CONNTRACK_OFF = (
    "no rule in the snapshot turns conntrack on (no NAT target, no conntrack, state or connmark "
    "match, no CONNMARK or CT): the nat chains see no packet (nf_nat_inet_fn needs a conntrack "
    "entry), unless something outside the snapshot (nft tables, IPVS, Open vSwitch) enables it")


def _container_side(host: Host, iface: str) -> bool:
    """Whether ``iface`` is a container bridge (a known bridge, the bridge of a network Docker's
    MASQUERADE rule names (``Host.segments``), or named as Docker names its bridges:
    ``docker0``, ``br-<network id[:12]>``)."""
    return host.is_bridge(iface) or iface in host.segments \
        or _DOCKER_BRIDGE.match(iface) is not None


# -- assembling the trace -----------------------------------------------------------------------


def _result_of(o: Outcome) -> Branch:
    f = o.path.flow
    kind = o.path.kind
    if kind is None:
        kind = Path.OUTPUT if f.local_origin else Path.FORWARD
    out = f.out_iface if kind is not Path.LOCAL or f.local_origin else None
    if kind is Path.LOCAL and f.local_origin:
        out = "lo"
    return Branch(
        probability=o.path.prob,
        verdict=o.verdict,
        path=kind,
        final_dst=endpoint(f.dst, f.dport, f.dport_range),
        final_src=endpoint(f.src, f.sport, f.sport_range),
        out_interface=out,
        steps=o.path.steps,
        assumed=o.path.assumed,
    )


def _assemble(packet: Packet, outcomes: list[Outcome], run: Run) -> Trace:
    branches = [_result_of(o) for o in outcomes]
    first = branches[0]
    signatures = {(b.verdict, b.path, b.final_dst, b.final_src, b.out_interface)
                  for b in branches}
    merged: list[Branch] = []
    if len(signatures) > 1:
        groups: dict[tuple[object, ...], Branch] = {}
        for b in branches:
            key = (b.verdict, b.path, b.final_dst, b.final_src, b.out_interface, b.assumed)
            if key in groups:
                g = groups[key]
                groups[key] = replace(g, probability=g.probability + b.probability)
            else:
                groups[key] = b
        merged = list(groups.values())
    return Trace(
        packet=packet,
        verdict=first.verdict,
        path=first.path,
        final_dst=first.final_dst,
        final_src=first.final_src,
        out_interface=first.out_interface,
        steps=first.steps,
        branches=tuple(merged),
        uncertain=tuple(run.uncertain),
        assumptions=tuple(run.assumptions),
    )


# -- entry point --------------------------------------------------------------------------------

def simulate(snapshot: HasSimulator, packet: Packet) -> Trace:
    """Trace ``packet`` through ``snapshot`` (a ``natlens.Snapshot``; IPv6 packets walk its
    ``ruleset6``).

    The snapshot owns its ``Simulator`` (``Snapshot.simulator``, built on first use), so later
    packets reuse the prepared rules.
    """
    return snapshot.simulator.trace(packet)
