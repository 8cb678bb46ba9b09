"""Checks on what Docker was asked for but never serves, and on allows that never see their
traffic:

* ``missing`` (low): a running container's ``HostConfig.PortBindings`` asks for a host port that
  Docker never published (``NetworkSettings.Ports`` lacks it: a port requested on an
  ``--internal`` network, where Docker binds nothing), and the exposure map shows nothing
  serving it from any host interface;
* ``ineffective`` (medium): an ACCEPT in DOCKER-USER or FORWARD that a raw-table DROP makes
  dead (Docker 28+ drops packets routed to a container's address directly in raw PREROUTING,
  ``-d CONTAINER ! -i BRIDGE -j DROP``, before DOCKER-USER runs): a packet the rule was written
  for is simulated, dropped in raw, and simulated again without the raw rule to show that the
  allow would then apply.

Docker's behaviour: docs "Packet filtering and firewalls" (Docker 28 "direct routing" drops,
``nat-unprotected``), moby ``libnetwork/drivers/bridge/setup_ip_tables_linux.go``; internal
networks publish nothing (docs "Networking overview", ``--internal``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from natlens.audit._docker_view import DockerView, docker_view, exposure_map, outcomes
from natlens.audit.docker_checks import _describe, _packet
from natlens.audit.findings import AuditContext, Finding, RuleRef, Severity
from natlens.audit.fixes import command, delete_spec, rule_spec, tool
from natlens.audit.graph_checks import docker_own
from natlens.audit.nft_chains import reached_from
from natlens.audit.nft_refs import (
    NftMatches,
    delete_rule,
    native_tables,
    nft_matches,
    nft_ref,
)
from natlens.correlate import IPAddress, port_set
from natlens.model import Family, Rule, TableName
from natlens.netfilter import Packet, StepKind, Verdict
from natlens.nft.model import Rule as NftRule

__all__ = ["check_raw_dropped_allows", "check_unserved_requests"]

_USER_CHAINS = ("DOCKER-USER", "FORWARD")


def check_unserved_requests(ctx: AuditContext) -> Iterator[Finding]:
    """Ports a running container asks for that Docker never published (low ``missing``)."""
    view = docker_view(ctx)
    emap = exposure_map(ctx)
    if view is None or emap is None:
        return
    served = {(c.row.proto, c.row.port) for c in emap.cells
              if c.row.kind == "published" and c.reachable and emap.remote(c.ingress)}
    for c in view.containers():
        bound = {(p.proto.value, p.container_port) for p in c.ports}
        for req in c.requested:
            key = (req.proto.value, req.container_port)
            if key in bound or any((req.proto.value, hp) in served for hp in req.host_ports):
                continue
            internal = [ep.name for ep in c.networks
                        if (n := view.inventory.network(ep.name)) is not None and n.internal]
            why = (f"Docker publishes nothing on internal network{'s' if len(internal) > 1 else ''}"
                   f" {', '.join(internal)}" if internal else
                   "Docker did not publish it (NetworkSettings.Ports lacks it)")
            yield Finding(
                kind="missing", severity=Severity.LOW,
                message=f"{c.name} asks for {req} (HostConfig.PortBindings) but {why}: nothing "
                        f"serves host port {req.host_start}/{req.proto.value} from any "
                        "interface; drop the -p, or attach the container to a network that "
                        "publishes ports",
                proto=req.proto.value, host_port=req.host_start, container=c.name,
            )


def check_raw_dropped_allows(ctx: AuditContext) -> Iterator[Finding]:
    """ACCEPT rules in DOCKER-USER/FORWARD that a raw-table DROP (Docker 28's direct-routing
    drop) keeps from ever seeing their packets (``ineffective``); in native nft tables, an
    accept the forward hook reaches that a prerouting rule drops first."""
    view = docker_view(ctx)
    emap = exposure_map(ctx)
    if view is None or emap is None:
        return
    ingress = next((i for i in emap.ingresses if emap.remote(i)), None)
    for family in (4, 6):
        fam = Family.IPV4 if family == 4 else Family.IPV6
        rs = view.ruleset(family)
        raw = rs.get(TableName.RAW)
        table = rs.get(TableName.FILTER)
        if raw is None or table is None or not any(
                r.target_name == "DROP" for ch in raw.chains for r in ch.rules):
            continue
        for name in _USER_CHAINS:
            chain = table.get(name)
            for index, rule in enumerate(chain.rules if chain is not None else (), 1):
                if rule.target_name != "ACCEPT":
                    continue
                own = frozenset(a.ip for addrs in view.host.addresses.values() for a in addrs)
                pkt = _witness(rule, family, ingress, own)
                if pkt is None:
                    continue
                yield from _raw_dropped(view, fam, RuleRef.of(rule, TableName.FILTER, index, fam),
                                        rule, pkt)
    yield from _raw_dropped_nft(view, ingress)


def _raw_dropped_nft(view: DockerView, ingress: str | None) -> Iterator[Finding]:
    """``check_raw_dropped_allows`` for native nft tables: an ``accept`` in a chain the forward
    hook reaches, whose packets a prerouting rule drops first (nft runs every prerouting base
    chain before the forward hook, netfilter's hook order)."""
    own = frozenset(a.ip for addrs in view.host.addresses.values() for a in addrs)
    source = view.snapshot.nft.source if view.snapshot.nft is not None else None
    for table in native_tables(view.snapshot):
        if table.name.startswith("docker"):
            continue  # Docker 29's own table: its accepts serve DNATed traffic
        forward = reached_from(table, "forward")
        for chain in table.chains:
            if chain.name not in forward or docker_own(chain.name):
                continue  # Docker's chains' accepts serve the DNATed packets, not direct ones
            for rule in chain.rules:
                if not any(st.kind == "accept" for st in rule.statements):
                    continue
                m = nft_matches(rule)
                if m.daddr is None or m.other:
                    continue
                family = m.daddr.version
                if table.family.value not in ("inet", "ip" if family == 4 else "ip6"):
                    continue
                pkt = _nft_witness(m, family, ingress, own)
                if pkt is not None:
                    yield from _raw_dropped_nft_rule(view, family, nft_ref(rule, family, source),
                                                     rule, m=m, pkt=pkt)


def _nft_witness(m: NftMatches, family: int, ingress: str | None,
                 own: frozenset[IPAddress]) -> Packet | None:
    """``_witness`` for an nft rule's plain matches."""
    if m.daddr is None:
        return None
    iface = m.iif[0] if m.iif is not None and not m.iif[1] and not m.iif[0].endswith("*") \
        else ingress
    if iface is None:
        return None
    s = m.saddr
    if s is not None and s.version == family:
        src = s.network_address + (1 if s.num_addresses > 2 else 0)
        for step in range(2, min(s.num_addresses - 1, 8)):
            if src not in own:
                break
            src = s.network_address + step
    else:
        src = ipaddress.ip_address("198.51.100.7" if family == 4 else "2001:db8:7::7")
    d = m.daddr
    dst = d.network_address if d.num_addresses == 1 else d.network_address + 1
    return Packet(in_interface=iface, src=src, dst=dst, proto=m.proto or "tcp", sport=40000,
                  dport=m.dport or 80)


def _raw_dropped_nft_rule(view: DockerView, family: int, ref: RuleRef, rule: NftRule, *,
                          m: NftMatches, pkt: Packet) -> Iterator[Finding]:
    outs = outcomes(view.trace(pkt))
    if not outs or any(o.verdict is Verdict.ACCEPT for o in outs):
        return
    d = outs[0].decider
    if d is None or d.source != "nft" or d.hook != "PREROUTING" or d.kind is not StepKind.RULE:
        return
    drop_ref = view.ref(family, d)
    if drop_ref is None:
        return
    key = (rule.family.value, rule.table, rule.chain, rule.handle)
    as_if = outcomes(view.without(family, [drop_ref]).trace(pkt))
    if not any(s.source == "nft" and s.kind is StepKind.RULE
               and (s.family, s.table, s.chain, s.rule) == key for o in as_if for s in o.steps):
        return
    words = [st.text for st in rule.statements if st.kind == "match"]
    how = (f"; to let it through, accept it before that rule first (nft insert rule "
           f"{d.family} {d.table} {d.chain} position {d.rule} {' '.join(words)} accept: a "
           "direct route to the container, which exposes that port)" if m.oif is None else "")
    yield Finding(
        kind="ineffective", severity=Severity.MEDIUM,
        message=f"this allow never sees its packets: {_describe(pkt)} is dropped first by "
                f"{drop_ref.where} (the prerouting hook runs before forward; Docker 28+ drops "
                "direct routing to containers there); without that rule it would be accepted "
                f"here. The fix deletes the dead allow{how}",
        proto=pkt.proto, rule=ref, related=(drop_ref,), fix=delete_rule(ref),
        packet=_packet(pkt, outs[0]),
    )


def _witness(rule: Rule, family: int, ingress: str | None,
             own: frozenset[IPAddress] = frozenset()) -> Packet | None:
    """A new connection the rule was written for, from another host (a source in the rule's
    ``-s`` that is none of the host's addresses ``own``: the kernel drops a packet from
    another host claiming one of them as martian); None when the rule names no single
    destination it could be checked with."""
    d = rule.destination
    if d is None or d.negated or d.network.version != family:
        return None
    i = rule.in_interface
    iface = i.name if i is not None and not i.negated and not i.name.endswith("+") else ingress
    if iface is None:
        return None
    s = rule.source
    if s is not None and not s.negated and s.network.version == family:
        src = s.network.network_address + (1 if s.network.num_addresses > 2 else 0)
        for step in range(2, min(s.network.num_addresses - 1, 8)):
            if src not in own:
                break
            src = s.network.network_address + step
    else:
        src = ipaddress.ip_address("198.51.100.7" if family == 4 else "2001:db8:7::7")
    proto = rule.protocol.name if rule.protocol is not None and not rule.protocol.negated \
        and rule.protocol.name in ("tcp", "udp", "sctp") else "tcp"
    ports = port_set(rule)
    dst = d.network.network_address if d.network.num_addresses == 1 else (
        d.network.network_address + 1)
    return Packet(in_interface=iface, src=src, dst=dst, proto=proto, sport=40000,
                  dport=ports[0][0] if ports else 80)


def _raw_dropped(view: DockerView, fam: Family, ref: RuleRef, rule: Rule,
                 pkt: Packet) -> Iterator[Finding]:
    family = 4 if fam is Family.IPV4 else 6
    outs = outcomes(view.trace(pkt))
    if not outs or any(o.verdict is Verdict.ACCEPT for o in outs):
        return
    d = outs[0].decider
    if d is None or d.table != "raw" or d.kind is not StepKind.RULE:
        return
    raw_ref = view.ref(family, d)
    if raw_ref is None:
        return
    as_if = outcomes(view.without(family, [raw_ref]).trace(pkt))
    met = any(s.table == "filter" and s.chain == ref.chain and s.rule == ref.index
              and s.kind is StepKind.RULE for o in as_if for s in o.steps)
    if not met:
        return
    spec = rule_spec(ref)
    words = spec[:spec.index("-j")] if "-j" in spec else spec
    how = (f"; to let it through, accept it in raw first ({tool(family)} -t raw -I PREROUTING "
           f"{' '.join(words)} -j ACCEPT: a direct route to the container, which exposes "
           "that port)" if "-o" not in words and "--out-interface" not in words else "")
    yield Finding(
        kind="ineffective", severity=Severity.MEDIUM,
        message=f"this allow never sees its packets: {_describe(pkt)} is dropped first by "
                f"{raw_ref.where} (raw PREROUTING runs before DOCKER-USER; Docker 28+ drops "
                "direct routing to containers there); without that rule it would be accepted "
                f"here. The fix deletes the dead allow{how}",
        proto=pkt.proto, rule=ref, related=(raw_ref,), fix=command(delete_spec(ref)),
        packet=_packet(pkt, outs[0]),
    )
