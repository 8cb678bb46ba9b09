"""What the other iptables backend does to packets: the same packets simulated with and
without its tables.

For each built-in chain of the other backend's dump, packets are made from its rules (protocol,
port, addresses and input interface the rule names) and, when its policy drops, one packet that
reaches the policy. Each packet is traced twice: through the whole pipeline (both backends and
native nftables) and through the pipeline without the other backend. A packet whose verdict or
final addresses differ shows what those tables do (``natlens.netfilter.pipeline``: ACCEPT in one
base chain does not stop a later one, DROP in any ends the packet).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from natlens.inputs import is_decimal as _decimal
from natlens.model import Family, Rule, Ruleset, TargetKind
from natlens.netfilter import Packet, Simulator, StepKind, Trace
from natlens.netfilter.host import Host
from natlens.netfilter.pipeline import HOOK_TABLES

__all__ = ["BackendEffect", "backend_effects"]

_OUTSIDE4 = ipaddress.ip_address("203.0.113.9")
_OUTSIDE6 = ipaddress.ip_address("2001:db8:ffff::9")
_CLIENT4 = ipaddress.ip_address("198.51.100.7")
_CLIENT6 = ipaddress.ip_address("2001:db8:fffe::7")
_PER_RULE = 16
_TERMINAL = {"ACCEPT", "DROP", "REJECT", "DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP"}


@dataclass(frozen=True, slots=True)
class BackendEffect:
    """A packet the other backend changes: ``with_it`` and ``without`` are its traces with and
    without the other backend's tables; ``decided_by`` the other backend's step that decided."""

    packet: Packet
    with_it: Trace
    without: Trace
    decided_by: str

    def describe(self) -> str:
        """``tcp 198.51.100.7 -> 203.0.113.9:22 in eth0: DROP (legacy filter:FORWARD#1), ACCEPT
        without those rules``."""
        def fate(t: Trace) -> str:
            return t.verdict.value if t.verdict.value != "ACCEPT" else f"ACCEPT to {t.final_dst}"

        p = self.packet
        where = "from this host" if p.local_origin else f"in {p.in_interface}"
        port = f":{p.dport}" if p.dport is not None else ""
        return (f"{p.proto} {p.src} -> {p.dst}{port} {where}: {fate(self.with_it)} "
                f"({self.decided_by}), {fate(self.without)} without those rules")


def _first_host(network: ipaddress.IPv4Network | ipaddress.IPv6Network
                ) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return network.network_address + 1 if network.num_addresses > 2 else network.network_address


def _packets(rule: Rule | None, hook: str, host: Host, version: int) -> Iterator[Packet]:
    """Packets through ``hook`` that ``rule`` matches as far as its simple fields tell: from
    each interface of the host (bridges included: containers reach the host too) to each local
    address (INPUT, PREROUTING) or to an outside address; none when the rule names something
    a made-up packet cannot have."""
    outside = _OUTSIDE4 if version == 4 else _OUTSIDE6
    client = _CLIENT4 if version == 4 else _CLIENT6
    locals_ = [a.ip for iface, addrs in host.addresses.items() if iface != "lo"
               for a in addrs if a.ip.version == version and not a.ip.is_link_local]
    proto, src, dst, iface = "tcp", client, None, None
    dport: int | None = 22
    if rule is not None:
        if rule.protocol is not None:
            if rule.protocol.negated or rule.protocol.name not in ("tcp", "udp", "icmp",
                                                                   "icmpv6", "all"):
                return
            proto = "tcp" if rule.protocol.name == "all" else rule.protocol.name
        for m in rule.matches:
            opt = m.get("--dport") or m.get("--dports")
            if opt is not None and not opt.negated:
                first = opt.value.split(",")[0].split(":")[0]
                if _decimal(first):
                    dport = int(first)
        if rule.source is not None and not rule.source.negated:
            src = _first_host(rule.source.network)
        if rule.destination is not None and not rule.destination.negated:
            dst = _first_host(rule.destination.network)
        if rule.in_interface is not None and not rule.in_interface.negated \
                and not rule.in_interface.name.endswith("+"):
            iface = rule.in_interface.name
        if src.version != version or (dst is not None and dst.version != version):
            return
    if proto in ("icmp", "icmpv6"):
        dport = None
    sport = None if dport is None else 40000
    if hook == "OUTPUT" or (hook == "POSTROUTING" and iface is None and rule is not None
                            and rule.source is None):
        yield Packet(src=locals_[0] if locals_ else client, dst=dst or outside, proto=proto,
                     dport=dport, sport=sport, local_origin=True)
        return
    ifaces = [iface] if iface is not None else [i for i in host.interfaces if i != "lo"] \
        or ["eth0"]
    if dst is not None:
        dsts = [dst]
    elif hook in ("PREROUTING", "INPUT"):
        dsts = locals_ or [outside]
    else:
        dsts = [outside]
    for i in ifaces:
        here = src
        if rule is None or rule.source is None:  # a neighbour on that interface's subnet
            nets = [a.network for a in host.addresses.get(i, ()) if a.version == version
                    and a.network.num_addresses > 4 and not a.ip.is_link_local]
            if nets:
                own = {a.ip for a in host.addresses.get(i, ())}
                here = next(h for h in (nets[0].network_address + 2,
                                        nets[0].network_address + 3) if h not in own)
        for d in dsts:
            yield Packet(in_interface=i, src=here, dst=d, proto=proto, dport=dport, sport=sport)


def _decider(trace: Trace, source: str) -> str | None:
    for step in reversed(trace.steps):
        if step.source == source and step.kind in (StepKind.RULE, StepKind.POLICY):
            where = f"{step.table}:{step.chain}"
            return f"{where}#{step.rule}" if step.kind is StepKind.RULE else \
                f"{where} policy {step.target}"
    return None


def backend_effects(full: Simulator, without: Simulator, other: Ruleset, source: str,
                    *, limit: int = 3) -> Iterator[BackendEffect]:
    """Up to ``limit`` packets whose fate the ``other`` backend's tables change (``source``:
    their trace source, ``iptables-legacy`` or ``iptables-nft``)."""
    version = 6 if other.family is Family.IPV6 else 4
    host = full.host
    seen: set[Packet] = set()
    found = 0
    for table in other.tables:
        for chain in table.chains:
            hook = chain.name
            if not chain.builtin or hook not in HOOK_TABLES \
                    or table.name.value not in HOOK_TABLES[hook]:
                continue
            candidates: list[Rule | None] = [
                r for r in chain.rules
                if r.target is not None and (r.target.name in _TERMINAL
                                             or r.target.kind is TargetKind.CHAIN)]
            if chain.policy not in (None, "ACCEPT"):
                candidates.append(None)
            for rule in candidates:
                effect = _first_effect(full, without, _packets(rule, hook, host, version),
                                       seen, source)
                if effect is None:
                    continue
                yield effect
                found += 1
                if found >= limit:
                    return


def _first_effect(full: Simulator, without: Simulator, packets: Iterable[Packet],
                  seen: set[Packet], source: str) -> BackendEffect | None:
    """The first of ``packets`` (at most ``_PER_RULE``) whose fate differs."""
    for n, packet in enumerate(packets):
        if n >= _PER_RULE:
            break
        if packet in seen:
            continue
        seen.add(packet)
        a, b = full.trace(packet), without.trace(packet)
        if (a.verdict, a.final_dst, a.final_src) != (b.verdict, b.final_dst, b.final_src):
            return BackendEffect(packet, a, b, _decider(a, source) or "its rules")
    return None
