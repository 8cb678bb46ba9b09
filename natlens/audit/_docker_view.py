"""What the Docker-aware checks share: the inventory (what Docker says), a simulator (what the
rules do) and the probe packets that compare the two.

A *binding* is one published host port of a running container in one address family, with the
addresses the container holds there. A *probe* is a packet from one kind of source: an outside
interface (another host), a neighbour container on the container's own bridge, or the host
itself (``local_origin``). The checks decide by simulation (``natlens.netfilter``), never by
guessing from rule text: where a probe lands is compared with where Docker says it should.

Docker's published-port contract (docs "Packet filtering and firewalls", "Port publishing and
mapping"): a DNAT per host port in ``nat DOCKER`` (reached from PREROUTING and OUTPUT for local
destinations), an ACCEPT per container port in ``filter DOCKER``; with the userland proxy on,
``docker-proxy`` also listens on the host port and serves what the nat rules skip (the host's own
``127.0.0.1``, hairpin traffic from the container's bridge).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from typing import Any

from natlens.audit._rules import chain_ref
from natlens.audit.findings import AuditContext, RuleRef
from natlens.audit.nft_refs import (
    NftDnat,
    is_nft,
    native_tables,
    nft_dnats,
    nft_ref,
    rewrite_kind,
    step_ref,
    unknown_rewrite,
    without_rules,
)
from natlens.correlate import (
    Binding,
    Correlation,
    bridged,
    containers,
    correlate,
    dnat_target,
    docker_chain,
    port_set,
    routed,
)
from natlens.docker import (
    Container,
    DaemonFacts,
    Inventory,
    Network,
    inventory_from_snapshot,
)
from natlens.exposure import ExposureMap
from natlens.exposure import build as build_exposure
from natlens.exposure_share import Sharing
from natlens.model import Family, Rule, Ruleset, TableName
from natlens.netfilter import Host, Packet, Simulator, Step, StepKind, Trace, Verdict
from natlens.netfilter.packet import endpoint
from natlens.snapshot import Snapshot
from natlens.sysctls import switch

__all__ = [
    "NAT_REWRITES",
    "Binding",
    "DockerView",
    "IPAddress",
    "Outcome",
    "Probe",
    "Shared",
    "SharedTraces",
    "dnat_target",
    "docker_chain",
    "docker_view",
    "exposure_map",
    "outcomes",
    "port_set",
    "routed",
    "shared_traces",
    "step_text",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NAT_REWRITES = frozenset({"DNAT", "REDIRECT", "NETMAP"})
"""Targets that rewrite a packet's destination."""

SPORT = 40000
"""Source port of every probe (an ephemeral port no rule is written for)."""

_ASSUMED_HOST = {4: ipaddress.ip_address("203.0.113.2"),
                 6: ipaddress.ip_address("2001:db8:ffff::2")}
_OUTSIDE_SOURCES = {
    4: tuple(ipaddress.ip_address(a) for a in ("198.51.100.7", "203.0.113.77", "100.64.7.7")),
    6: tuple(ipaddress.ip_address(a) for a in ("2001:db8:7::7", "2001:db8:77::7")),
}
_SHARED_NETNS = ("host", "none")


def step_text(step: Step) -> str:
    """``nat:DOCKER#3`` for a rule step, ``filter:FORWARD policy DROP`` for a policy."""
    if step.kind is StepKind.POLICY:
        return f"{step.table}:{step.chain} policy {step.target}"
    if step.kind is StepKind.RETURN:
        return f"{step.table}:{step.chain} return"
    return f"{step.table}:{step.chain}#{step.rule}"


@dataclass(frozen=True, slots=True)
class Probe:
    """A probe packet and the kind of source it stands for (``eth0``, ``docker0``, ``host``)."""

    source: str
    packet: Packet


@dataclass(frozen=True, slots=True)
class Outcome:
    """One certain way a probe ends (statistic branches each count; uncertain ones do not)."""

    verdict: Verdict
    path: str
    final_dst: str
    out_interface: str | None
    steps: tuple[Step, ...]

    @property
    def rewrite(self) -> Step | None:
        """The nat step that rewrote the destination (DNAT, REDIRECT, NETMAP; an nft rule's
        ``dnat``/``redirect``), if any."""
        return next((s for s in self.steps if rewrite_kind(s) is not None), None)

    @property
    def decider(self) -> Step | None:
        """The step that dropped or rejected the packet (None when it was accepted)."""
        if self.verdict is Verdict.ACCEPT:
            return None
        real = [s for s in self.steps if s.kind is not StepKind.NOTE]
        return real[-1] if real else None

    def path_text(self) -> list[str]:
        """The rule steps as ``table:chain#n`` (what a finding's packet shows)."""
        return [step_text(s) for s in self.steps if s.kind in (StepKind.RULE, StepKind.POLICY)]


def outcomes(trace: Trace) -> list[Outcome]:
    """The certain outcomes of a trace.

    Without ``branches`` every fork of the walk ended alike, so the trace's outcome is certain
    even when some match was undecidable. With branches, those that rest on an assumption about
    an undecidable match are left out (statistic branches stay: each happens). A trace through
    a part of the ruleset the input does not show has no certain outcome, nor one through an
    iptables-nft NAT target read from nft JSON (``nft_refs.unknown_rewrite``: its mapping is not
    in the JSON).
    """
    if trace.rests_on_unseen and not trace.branches:
        return []
    if any(unknown_rewrite(s) for s in trace.steps):
        return []  # an iptables-nft NAT target read from nft JSON: where it goes is unknown
    if not trace.branches:
        return [Outcome(trace.verdict, trace.path.value, trace.final_dst, trace.out_interface,
                        trace.steps)]
    return [Outcome(b.verdict, b.path.value, b.final_dst, b.out_interface, b.steps)
            for b in trace.branches
            if not b.assumed and not any(unknown_rewrite(s) for s in b.steps)]


def _forwarding(meta: dict[str, Any], family: int) -> bool:
    sysctl = meta.get("sysctl")
    if not isinstance(sysctl, dict):
        return True
    key = "net.ipv4.ip_forward" if family == 4 else "net.ipv6.conf.all.forwarding"
    return switch(key, sysctl.get(key)) is not False  # the kernel's reading (natlens.sysctls)


class DockerView:
    """The inventory, the simulator and the probe sources of one audit (see module docstring)."""

    def __init__(self, ctx: AuditContext, inventory: Inventory, sim: Simulator) -> None:
        self.ctx = ctx
        self.snapshot = ctx.snapshot
        self.inventory = inventory
        self.sim = sim
        self.host: Host = sim.host
        self.proxy: bool = inventory.daemon.userland_proxy is not False
        """docker-proxy serves published ports too (Docker's default when not known)."""
        self.bridges = {n.bridge for n in inventory.networks if n.bridge} | set(self.host.bridges)
        self.outside = self._outside_interface()
        self._holders = self._endpoint_holders()
        self._correlation: Correlation | None = None
        self._traces: dict[Packet, Trace] = {}
        self._outside_sources: dict[int, IPAddress] = {}
        self._dnats: dict[tuple[int, int], tuple[Rule, tuple[IPAddress, int | None] | None]] = {}
        """``dnat``'s memo, by the rule's identity (the rule is kept: the identity stays its)."""
        self._nft_what_ifs: dict[frozenset[tuple[str, str, int]], Simulator] = {}
        self._nft_dnats: list[NftDnat] | None = None
        """``without``'s simulators of the snapshot minus some nft rules."""

    # -- the host -------------------------------------------------------------------------------

    def _outside_interface(self) -> str:
        host = self.host
        if not host.known_addresses:
            return "eth0" if "eth0" not in self.bridges else "ext0"
        candidates = [
            i for i in host.interfaces
            if i != "lo" and i not in self.bridges and i not in host.masters
            and any(not a.ip.is_loopback and not a.ip.is_link_local
                    for a in host.addresses.get(i, ()))]
        default = next((r.dev for r in host.routes if r.network.prefixlen == 0 and r.dev), None)
        if default in candidates:
            return str(default)
        return candidates[0] if candidates else "eth0"

    def host_address(self, family: int) -> IPAddress | None:
        """The outside interface's address of ``family`` (assumed when the snapshot has none)."""
        if not self.host.known_addresses:
            return _ASSUMED_HOST[family]
        for a in self.host.addresses.get(self.outside, ()):
            if a.ip.version == family and not a.ip.is_link_local and not a.ip.is_loopback:
                return a.ip
        return None

    def outside_source(self, family: int) -> IPAddress:
        """An address of another host: in none of the host's or Docker's networks."""
        found = self._outside_sources.get(family)
        if found is None:
            found = self._outside_sources[family] = self._outside_source(family)
        return found

    def _outside_source(self, family: int) -> IPAddress:
        nets: list[IPNetwork] = [a.network for addrs in self.host.addresses.values()
                                 for a in addrs if a.ip.version == family]
        nets += [s for n in self.inventory.networks for s in n.subnets if s.version == family]
        for ip in _OUTSIDE_SOURCES[family]:
            if not any(ip in n for n in nets):
                return ip
        return _OUTSIDE_SOURCES[family][-1]

    def forwarding(self, family: int) -> bool:
        """Whether the host forwards ``family`` packets (meta.json sysctl; assumed on)."""
        return _forwarding(self.snapshot.meta, family)

    def ruleset(self, family: int) -> Ruleset:
        """The iptables (4) or ip6tables (6) rules."""
        return self.snapshot.rules_for(Family.IPV4 if family == 4 else Family.IPV6)

    def managed(self, family: int) -> bool:
        """Whether the daemon writes this family's rules (``--iptables``/``--ip6tables``)."""
        daemon = self.inventory.daemon
        flag = daemon.iptables if family == 4 else daemon.ip6tables
        if flag is not None:
            return flag
        nat = self.ruleset(family).get(TableName.NAT)
        if nat is not None and "DOCKER" in nat:
            return True
        # native nft: Docker 29's own table (``docker-bridges``), or Docker's chains written
        # as nft (a translated or hand-made ruleset)
        want = ("inet", "ip" if family == 4 else "ip6")
        return any(t.family.value in want and (t.name.startswith("docker") or any(
            c.name == "DOCKER" for c in t.chains)) for t in native_tables(self.snapshot))

    # -- who holds an address -------------------------------------------------------------------

    def _endpoint_holders(self) -> dict[IPAddress, str]:
        held: dict[IPAddress, str] = {}
        for c in self.inventory.running:
            for ip in c.addresses:
                held.setdefault(ip, c.name)
        # `docker network inspect` also lists endpoints that are no container (ingress-sbox, lb-*)
        for net in self.inventory.networks:
            for name, ip in net.endpoints:
                held.setdefault(ip, name)
        return held

    def holder(self, ip: IPAddress) -> str | None:
        """Name of the running container (or network endpoint) holding ``ip``, or None."""
        return self._holders.get(ip)

    def docker_network_of(self, ip: IPAddress) -> Network | None:
        """The Docker network whose subnet contains ``ip``."""
        return next((n for n in self.inventory.networks
                     if any(ip in s for s in n.subnets if s.version == ip.version)), None)

    # -- rules ----------------------------------------------------------------------------------

    def rule(self, family: int, table: str, chain: str, index: int) -> Rule | None:
        """The rule at ``index`` (1-based) of ``table``/``chain``."""
        t = self.ruleset(family).get(table)
        c = t.get(chain) if t is not None else None
        if c is None or not 1 <= index <= len(c.rules):
            return None
        return c.rules[index - 1]

    def dnat(self, rule: Rule, family: int) -> tuple[IPAddress, int | None] | None:
        """``dnat_target(rule, family)``, read once per rule (the stale and dead-first checks
        read every DNAT rule)."""
        key = (id(rule), family)
        found = self._dnats.get(key)
        if found is None:
            found = self._dnats[key] = (rule, dnat_target(rule, family))
        return found[1]

    def ref(self, family: int, step: Step) -> RuleRef | None:
        """The RuleRef of a trace step (the chain's declaration for a policy; for an nft step
        table ``FAMILY NAME`` and index the rule's handle, ``natlens.audit.nft_refs``)."""
        fam = Family.IPV4 if family == 4 else Family.IPV6
        if step.table is None or step.chain is None:
            return None
        rules = self._ruleset_of(family, step)
        if rules is None:  # an nft step: named as nft names it
            nft = self.snapshot.nft
            return step_ref(step, family, nft.source if nft is not None else self.snapshot.path)
        if step.kind is StepKind.POLICY:
            t = rules.get(step.table)
            chain = t.get(step.chain) if t is not None else None
            if t is None or chain is None:
                return None
            return chain_ref(chain, t, fam)
        if step.rule is None:
            return None
        t = rules.get(step.table)
        c = t.get(step.chain) if t is not None else None
        if c is None or not 1 <= step.rule <= len(c.rules):
            return None
        return RuleRef.of(c.rules[step.rule - 1], step.table, step.rule, fam)

    def _ruleset_of(self, family: int, step: Step) -> Ruleset | None:
        """The iptables rules a step was walked in: the other backend's dump for a step of
        that backend (``iptables-legacy`` when the main dump is nf_tables, and the reverse),
        None for an nft step, else the main dump."""
        source = getattr(step, "source", None)
        if source == "nft":
            return None
        snap = self.snapshot
        other = {"legacy": "iptables-legacy", "nf_tables": "iptables-nft"}.get(
            snap.other_backend_name or "")
        if source is not None and source == other:
            found = snap.other_backend if family == 4 else snap.other_backend6
            if found is not None:
                return found
        return self.ruleset(family)

    def native_dnats(self) -> list[NftDnat]:
        """``nft_refs.nft_dnats`` of the snapshot, read once."""
        if self._nft_dnats is None:
            self._nft_dnats = list(nft_dnats(self.snapshot))
        return self._nft_dnats

    def docker_rules(self, b: Binding) -> list[RuleRef]:
        """The DNAT rules that serve binding ``b`` as Docker writes them: proto and host port,
        ``--to-destination`` one of the container's addresses and its port (any nat chain;
        ``natlens.correlate``), then the native nft rules that do (``nft_refs.nft_dnats``)."""
        fam = Family.IPV4 if b.family == 4 else Family.IPV6
        found = [RuleRef.of(r.rule, TableName.NAT, r.index, fam) for r in b.dnat]
        nft = self.snapshot.nft
        # native nft: a ``dnat to`` one of the container's addresses and its port, for the
        # host port (``tcp dport N``)
        found.extend(nft_ref(d.rule, b.family, nft.source if nft is not None else None)
                     for d in self.native_dnats()
                     if d.family == b.family and d.address in b.targets
                     and d.port in (b.container_port, None) and d.proto == b.proto
                     and d.dport == b.host_port)
        return found

    # -- containers and probes ------------------------------------------------------------------

    def bridged(self, c: Container, family: int) -> tuple[tuple[Network, IPAddress], ...]:
        """The container's (network, address) pairs of ``family`` on bridge networks."""
        return bridged(self.inventory, c, family)

    def containers(self) -> Iterator[Container]:
        """Running containers with their own network namespace."""
        return containers(self.inventory)

    @property
    def correlation(self) -> Correlation:
        """Bindings and unpublished ports with their rules (``natlens.correlate``, built once)."""
        if self._correlation is None:
            self._correlation = correlate(self.inventory, self.ruleset(4), self.ruleset(6))
        return self._correlation

    def bindings(self) -> Iterator[Binding]:
        """Every published host port of every running container, per family it is bound in."""
        return iter(self.correlation.bindings)

    def neighbour(self, net: Network, family: int) -> IPAddress | None:
        """A free address on ``net`` (another container's, as far as the rules can tell)."""
        for subnet in net.subnets:
            if subnet.version != family or subnet.num_addresses < 8:
                continue
            top = int(subnet.broadcast_address) if family == 4 else (
                int(subnet.network_address) + 0xFFFE)
            for k in range(1, 16):
                ip = ipaddress.ip_address(top - k)
                if ip not in self._holders and ip not in net.gateways:
                    return ip
        return None

    def probes(self, b: Binding) -> list[Probe]:
        """The probes of binding ``b``: outside, a neighbour on each of the container's bridges,
        the host itself (for a loopback binding: the host only)."""
        out: list[Probe] = []
        ip = b.port.host_ip
        if b.loopback:
            assert ip is not None
            out.append(Probe("host", Packet(local_origin=True, src=ip, dst=ip, proto=b.proto,
                                            sport=SPORT, dport=b.host_port)))
            return out
        dst = ip if ip is not None and not ip.is_unspecified else self.host_address(b.family)
        if dst is None:
            return out
        out.append(Probe(self.outside, Packet(
            in_interface=self.outside, src=self.outside_source(b.family), dst=dst,
            proto=b.proto, sport=SPORT, dport=b.host_port)))
        for net, _ in b.networks:
            src = self.neighbour(net, b.family)
            if src is not None and net.bridge is not None:
                out.append(Probe(net.bridge, Packet(in_interface=net.bridge, src=src, dst=dst,
                                                    proto=b.proto, sport=SPORT,
                                                    dport=b.host_port)))
        out.append(Probe("host", Packet(local_origin=True, src=dst, dst=dst, proto=b.proto,
                                        sport=SPORT, dport=b.host_port)))
        return out

    def trace(self, packet: Packet) -> Trace:
        """Simulate ``packet`` on this snapshot (each packet once: checks probe alike)."""
        found = self._traces.get(packet)
        if found is None:
            found = self._traces[packet] = self.sim.trace(packet)
        return found

    def without(self, family: int, refs: Sequence[RuleRef]) -> Simulator:
        """A simulator of the same host with the rules ``refs`` deleted (a what-if): iptables
        rules by position, native nft rules by handle (``is_nft``; a simulator of the snapshot
        without them, built once per set of rules)."""
        fam = Family.IPV4.value if family == 4 else Family.IPV6.value
        gone: dict[tuple[str, str], set[int]] = {}
        handles: set[tuple[str, str, int]] = set()
        for r in refs:
            if is_nft(r):
                handles.add((r.table, r.chain, r.index))
            elif r.family == fam:
                gone.setdefault((r.table, r.chain), set()).add(r.index)
        sim = self._without_nft(frozenset(handles)) if handles else self.sim
        return sim.without(family, gone)

    def _without_nft(self, handles: frozenset[tuple[str, str, int]]) -> Simulator:
        found = self._nft_what_ifs.get(handles)
        if found is None:
            nft = self.snapshot.nft
            assert nft is not None  # an nft RuleRef comes from an nft step
            found = self._nft_what_ifs[handles] = Simulator.from_snapshot(
                dc_replace(self.snapshot, nft=without_rules(nft, handles)))
        return found


@dataclass(frozen=True, slots=True)
class Shared:
    """What the checks read of the one certain outcome of a packet's trace, with the
    container's values as positions (``natlens.exposure_share``: the same for every container
    of its class whose packet is the same up to the exchange of the two containers' values).

    ``final_dst``: ``(ip, port)``, each ``("a", i)``/``("p", i)`` for the container's i-th
    address/host port, else the value; ``decider``: (kind, hook, table, chain, source) of the
    step that refused the packet (None when accepted); ``rewrite``: a nat rule rewrote the
    destination; ``dnats``: the DNAT rules met, ``("own", k)`` for the container's k-th owned
    rule, else ``(table, chain, index)``.
    """

    verdict: Verdict
    path: str
    final_dst: tuple[Any, Any]
    decider: tuple[StepKind, str, str | None, str | None, str | None] | None
    rewrite: bool
    dnats: tuple[tuple[Any, ...], ...]


_UNSHARED = object()
"""A memo entry: the class's traces cannot be shared (doubt, branches, unproven values)."""


def _clean(trace: Trace) -> bool:
    """A trace without doubt or branches, whose connection (when accepted) is established:
    the traces ``natlens.exposure_share`` shares between containers."""
    if trace.branches or trace.uncertain or trace.rests_on_unseen:
        return False
    conn = trace.connection
    return trace.verdict is not Verdict.ACCEPT or conn is None or conn.established is True


class SharedTraces:
    """Outcomes shared between containers the rules cannot tell apart: the classes of the
    exposure map's ``Sharing`` (its module docstring gives the proof and the exactness
    conditions), applied to the checks' own packets and to what-if simulators that delete the
    DNAT rules a packet met (the same rules up to the exchange: a class's owned rules keep
    their slots among the common ones, so the proof holds for the pruned rulesets too).
    Only clean traces (``_clean``) are shared; every other lookup answers None and the check
    traces its packet itself."""

    def __init__(self, view: DockerView, sharing: Sharing) -> None:
        self.view = view
        self.sharing = sharing
        self._real: dict[tuple[Any, ...], object] = {}
        self._what_if: dict[tuple[Any, ...], object] = {}

    def norm(self, container: str, family: int, ip: Any, port: Any) -> tuple[Any, Any]:
        """``(ip, port)`` with ``container``'s values as positions; another container's value
        becomes ``("x", value)`` (equal to no position)."""
        fam = self.sharing.families[family]
        o = fam.addr_owner.get(ip)
        if o is not None:
            ip = ("a", o[1]) if o[0] == container else ("x", ip)
        po = fam.port_owner.get(port)
        if po is not None:
            port = ("p", po[1]) if po[0] == container else ("x", port)
        return ip, port

    def norm_endpoint(self, container: str, family: int, text: str) -> tuple[Any, Any]:
        """``IP:PORT`` text as ``norm`` gives it (``("x", text)`` when it does not parse)."""
        parsed = _endpoint(text)
        if parsed is None:
            return ("x", text), None
        return self.norm(container, family, *parsed)

    def real(self, container: str, packet: Packet) -> Shared | None:
        """The shared outcome of ``packet`` (a packet of ``container``'s cells or probes)."""
        key = self.sharing.key(container, packet)
        if key is None:
            return None
        found = self._real.get(key)
        if found is None:
            found = self._real[key] = self._summarize(container, packet)
        return found if isinstance(found, Shared) else None

    def _summarize(self, container: str, packet: Packet) -> object:
        trace = self.view.trace(packet)
        if not _clean(trace):
            return _UNSHARED
        fam = self.sharing.families[packet.family]
        parsed = _endpoint(trace.final_dst)
        if parsed is None:
            return _UNSHARED
        final = self.norm(container, packet.family, *parsed)
        if any(isinstance(v, tuple) and v[0] == "x" for v in final):
            return _UNSHARED
        o = outcomes(trace)[0]
        d = o.decider
        rw = o.rewrite
        dnats: list[tuple[Any, ...]] = []
        for s in o.steps:
            if s.kind is not StepKind.RULE or s.table != "nat" or s.target != "DNAT":
                continue
            if self.view.ref(packet.family, s) is None or s.chain is None or s.rule is None:
                return _UNSHARED
            owned = fam.by_rule.get((s.table, s.chain, s.rule))
            if owned is None:
                dnats.append((s.table, s.chain, s.rule))
                continue
            mine = fam.owned[container][owned[1]] if owned[0] == container else None
            if mine is None or s.text != mine.text or s.rule != mine.index:
                return _UNSHARED
            dnats.append(("own", owned[1]))
        return Shared(o.verdict, o.path, final,
                      None if d is None else (d.kind, d.hook, d.table, d.chain, d.source),
                      rw is not None and rw.chain is not None and rw.rule is not None,
                      tuple(dnats))

    def what_if(self, container: str, packet: Packet, dnats: tuple[tuple[Any, ...], ...],
                ) -> tuple[bool, bool] | None:
        """Of ``packet``'s trace with the rules ``dnats`` (``Shared.dnats`` of ``container``)
        deleted: (refused in INPUT, accepted after an accepting rule step in INPUT); None when
        not shared."""
        key = self.sharing.key(container, packet)
        if key is None:
            return None
        key = (key, dnats)
        found = self._what_if.get(key)
        if found is None:
            found = self._what_if[key] = self._without(container, packet, dnats)
        return found if isinstance(found, tuple) else None

    def _without(self, container: str, packet: Packet, dnats: tuple[tuple[Any, ...], ...],
                 ) -> object:
        fam = self.sharing.families[packet.family]
        gone: dict[tuple[str, str], set[int]] = {}
        for d in dnats:
            if d[0] == "own":
                o = fam.owned[container][d[1]]
                gone.setdefault((o.table, o.chain), set()).add(o.index)
            else:
                gone.setdefault((d[0], d[1]), set()).add(d[2])
        trace = self.view.sim.without(packet.family, gone).trace(packet)
        if not _clean(trace):
            return _UNSHARED
        o = outcomes(trace)[0]
        decider = o.decider
        refused = o.verdict is not Verdict.ACCEPT and decider is not None \
            and decider.hook == "INPUT"
        allowed = o.verdict is Verdict.ACCEPT and any(
            s.kind is StepKind.RULE and s.hook == "INPUT" and s.target in ("ACCEPT", "accept")
            for s in o.steps)
        return refused, allowed


def _endpoint(text: str) -> tuple[IPAddress, int] | None:
    """``IP:PORT`` / ``[IP]:PORT`` as (address, port); None for any other text."""
    ip_text, _, port_text = text.rpartition(":")
    try:
        ip = ipaddress.ip_address(ip_text.strip("[]"))
        port = int(port_text)
    except ValueError:
        return None
    return (ip, port) if endpoint(ip, port) == text else None


def shared_traces(ctx: AuditContext) -> SharedTraces | None:
    """The shared outcomes of ``ctx`` (built once, kept in ``ctx.derived``); None without a
    Docker view or when the exposure map shares nothing."""
    if "shared_traces" in ctx.derived:
        cached = ctx.derived["shared_traces"]
        return cached if isinstance(cached, SharedTraces) else None
    view = docker_view(ctx)
    emap = exposure_map(ctx) if view is not None else None
    found = None
    if view is not None and emap is not None and isinstance(emap.sharing, Sharing):
        found = SharedTraces(view, emap.sharing)
    ctx.derived["shared_traces"] = found
    return found


def exposure_map(ctx: AuditContext) -> ExposureMap | None:
    """The exposure map of ``ctx`` (the caller's, or built once from the Docker view and kept
    in ``ctx.derived``); None when the snapshot has no Docker data."""
    cached = ctx.derived.get("exposure")
    if isinstance(cached, ExposureMap):
        return cached
    view = docker_view(ctx)
    if view is None:
        return None
    emap = build_exposure(ctx.snapshot, view.inventory, view.sim,
                          correlation=view.correlation, trace=view.trace)
    ctx.derived["exposure"] = emap
    return emap


def _inventory(snap: Snapshot) -> Inventory | None:
    """The snapshot's inventory: the one ``natlens.load`` built when it is still the snapshot's
    (same source, same daemon facts), else built again from its Docker files."""
    inv = snap.inventory
    if isinstance(inv, Inventory) and inv.source == snap.path \
            and inv.daemon == DaemonFacts.from_meta(snap.meta):
        return inv
    return inventory_from_snapshot(snap)


def docker_view(ctx: AuditContext) -> DockerView | None:
    """The view of ``ctx`` (built once per context, kept in ``ctx.derived``); None when the
    snapshot has no Docker data."""
    if "docker_view" in ctx.derived:
        cached = ctx.derived["docker_view"]
        return cached if isinstance(cached, DockerView) else None
    inv = ctx.inventory if isinstance(ctx.inventory, Inventory) else _inventory(ctx.snapshot)
    view: DockerView | None = None
    if inv is not None:
        sim = ctx.simulator if isinstance(ctx.simulator, Simulator) else (
            ctx.snapshot.simulator)
        view = DockerView(ctx, inv, sim)
    ctx.derived["docker_view"] = view
    return view
