"""Connections the rules let start but that can never be established (kind ``hairpin-blocked``).

The simulator's trace answers for a connection's first packet; its ``connection`` part says
whether the reply can come back (``natlens.netfilter.connection``). Two Docker-shaped ways fail
although the first packet is accepted:

* a host process connects to ``127.0.0.1`` / ``::1`` and OUTPUT's DNAT sends the connection to a
  container: the loopback source cannot leave ``lo`` (IPv6 never, IPv4 only with
  ``route_localnet=1`` and a MASQUERADE that rewrites it: what Docker sets up without the userland
  proxy);
* a container connects to its own published port through the host's DNAT and no SNAT rewrites
  its source (Docker's ``-s IP -d IP --dport P -j MASQUERADE`` hairpin rule is missing).

Probes are built from the DNAT rules of the nat table (their protocol and destination port) and,
for the hairpin, from the Docker inventory.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

from natlens.audit._docker_view import (
    SPORT,
    DockerView,
    Probe,
    docker_view,
    exposure_map,
    outcomes,
    shared_traces,
)
from natlens.audit.docker_checks import _describe
from natlens.audit.findings import AuditContext, Finding, RuleRef, Severity
from natlens.audit.fixes import command, tool
from natlens.audit.nft_refs import nft_dnats, nft_ref, rewrite_kind
from natlens.correlate import Binding
from natlens.exposure import Cell
from natlens.inputs import is_decimal as _decimal
from natlens.model import Family, TableName
from natlens.netfilter import Packet, Simulator, Step, StepKind, Trace

__all__ = ["check_hairpin_from_network", "check_loopback_dnat", "check_published_connections"]

_MAX_PROBES = 64
_LOOPBACK = {Family.IPV4: ipaddress.ip_address("127.0.0.1"),
             Family.IPV6: ipaddress.ip_address("::1")}


@dataclass(frozen=True, slots=True)
class _Dnat:
    """A DNAT rule naming one TCP/UDP port: its protocol and port, the rule to blame, and
    ``key``, what ``_step_key`` gives for a trace step of that rule."""

    proto: str
    port: int
    ref: RuleRef
    key: tuple[object, ...]


def _step_key(step: Step) -> tuple[object, ...]:
    """An iptables rule step as (False, None, table, chain, position), an nft one as (True,
    family, table, chain, handle)."""
    nft = step.source == "nft"
    return (nft, step.family if nft else None, step.table, step.chain, step.rule)


def _dnat_ports(ctx: AuditContext, family: Family) -> Iterator[_Dnat]:
    """Each DNAT rule of ``family`` naming one TCP/UDP port: the iptables nat table's in table
    order, then the native nft tables' (``nft_refs.nft_dnats``)."""
    rs = ctx.snapshot.ruleset if family is Family.IPV4 else ctx.snapshot.ruleset6
    table = rs.get(TableName.NAT)
    for chain, index in ctx.index(rs.family)[TableName.NAT.value].rewrites \
            if table is not None else ():
        assert table is not None
        rule = table[chain].rules[index - 1]
        protocol = rule.protocol
        if rule.target_name != "DNAT" or protocol is None or protocol.negated \
                or protocol.name not in ("tcp", "udp"):
            continue
        dport = rule.option("--dport")
        if dport is not None and not dport.negated and _decimal(dport.value):
            yield _Dnat(protocol.name, int(dport.value),
                        RuleRef.of(rule, TableName.NAT, index, rs.family),
                        (False, None, TableName.NAT.value, chain, index))
    nft = ctx.snapshot.nft
    for d in nft_dnats(ctx.snapshot):
        if d.family != (4 if family is Family.IPV4 else 6) or d.proto not in ("tcp", "udp") \
                or d.dport is None:
            continue
        r = d.rule
        yield _Dnat(d.proto, d.dport, nft_ref(r, d.family, nft.source if nft else None),
                    (True, r.family.value, r.table, r.chain, r.handle))


def _dnat_step(trace: Trace) -> Step | None:
    """The trace's DNAT step (iptables or nft), if any."""
    return next((s for s in trace.steps if rewrite_kind(s) == "DNAT" and s.table and s.chain
                 and s.rule), None)


def check_loopback_dnat(ctx: AuditContext) -> Iterator[Finding]:
    """A DNAT that OUTPUT applies to a host process's connection to the loopback address,
    sending it to an address off the host where it cannot be established (kind
    ``hairpin-blocked``, medium: ``localhost:PORT`` does not work on the host itself).
    """
    snap = ctx.snapshot
    sim = ctx.simulator if isinstance(ctx.simulator, Simulator) else snap.simulator
    # Docker writes a loopback DNAT (no '! -d 127.0.0.0/8') only without the userland proxy,
    # and then turns route_localnet on: without the sysctl in the snapshot, report only what
    # fails even with it on. The trace's own evidence counts as the sysctl does: kube-proxy's
    # guard rule tells route_localnet=1 (``Simulator.localnet``, ``routing.localnet_guard``),
    # and the simulator's traces then say so.
    found = snap.sysctl or snap.meta.get("sysctl")  # sysctl.txt over meta.json
    sysctl: dict[str, object] = dict(found) if isinstance(found, Mapping) else {}
    localnet_known = any(k.endswith(".route_localnet") for k in sysctl) \
        or sim.localnet is not None
    lenient: Simulator | None = None
    probes = 0
    for fam in (Family.IPV4, Family.IPV6):
        lo = _LOOPBACK[fam]
        seen: set[tuple[str, int]] = set()
        if probes >= _MAX_PROBES:
            break
        for dnat in _dnat_ports(ctx, fam):
            proto, port = dnat.proto, dnat.port
            if probes >= _MAX_PROBES:
                break
            if (proto, port) in seen:
                continue
            seen.add((proto, port))
            probes += 1
            packet = Packet(local_origin=True, src=lo, dst=lo, proto=proto, dport=port,
                            sport=40000)
            trace = sim.trace(packet)
            if fam is Family.IPV4 and not localnet_known:
                if lenient is None:
                    on = {**sysctl, "net.ipv4.conf.all.route_localnet": "1"}
                    lenient = replace(snap, meta={**snap.meta, "sysctl": on},
                                      sysctl={k: str(v) for k, v in on.items()}).simulator
                trace = lenient.trace(packet)
            conn = trace.connection
            step = _dnat_step(trace)
            if conn is None or conn.established is not False or step is None:
                continue
            if _step_key(step) != dnat.key:
                continue
            shown = f"[{lo}]:{port}" if fam is Family.IPV6 else f"{lo}:{port}"
            yield Finding(
                kind="hairpin-blocked", severity=Severity.MEDIUM,
                message=(f"a host process connecting to {shown}/{proto} is DNATed to "
                         f"{trace.final_dst} but the connection cannot be established: "
                         f"{conn.why}"),
                proto=proto, host_port=port,
                rule=dnat.ref,
                fix=None,
                packet=packet.to_dict(),
            )


def check_published_connections(ctx: AuditContext) -> Iterator[Finding]:
    """Each published port of each running container, probed as ``check_published_ports``
    does and from the container itself: a probe whose first packet reaches the container but
    whose connection cannot be established makes the port unreachable from that source (kind
    ``hairpin-blocked``: medium, low for a reply the snapshot cannot decide is not reported).
    """
    view = docker_view(ctx)
    if view is None:
        return
    shared = shared_traces(ctx)
    for b in view.bindings():
        if not view.managed(b.family):
            continue
        probes = view.probes(b)
        dst = next((p.packet.dst for p in probes if not p.packet.local_origin), None)
        for net, own in b.networks:
            if dst is not None and net.bridge is not None:
                probes.append(Probe(f"{b.container.name} itself", Packet(
                    in_interface=net.bridge, src=own, dst=dst, proto=b.proto, sport=SPORT,
                    dport=b.host_port)))
        for probe in probes:
            if shared is not None and shared.real(b.container.name, probe.packet) is not None:
                continue  # a shared outcome is certain: refused, or an established connection
            trace = view.trace(probe.packet)
            conn = trace.connection
            if trace.branches or trace.verdict.value != "ACCEPT" or conn is None \
                    or conn.established is not False or trace.final_dst not in b.expected:
                continue
            step = _dnat_step(trace)
            yield Finding(
                kind="hairpin-blocked", severity=Severity.MEDIUM,
                message=(f"{b.label} from {probe.source}: the first packet reaches "
                         f"{trace.final_dst} but the connection cannot be established: "
                         f"{conn.why}"),
                proto=b.proto, host_port=b.host_port, container=b.container.name,
                rule=view.ref(b.family, step) if step is not None else None,
                packet=probe.packet.to_dict(),
            )


def check_hairpin_from_network(ctx: AuditContext) -> Iterator[Finding]:
    """A published port that another host reaches but that the containers of its own network
    cannot (kind ``hairpin-blocked``, medium), read from the exposure map: ``--icc=false``
    without the userland proxy, isolation rules, a DOCKER-USER drop of the bridge. Connections
    whose first packet gets through but whose reply cannot return are
    ``check_published_connections``'s.
    """
    view = docker_view(ctx)
    emap = exposure_map(ctx)
    if view is None or emap is None:
        return
    for row in emap.rows:
        b = row.binding
        if b is None or b.loopback or not view.managed(b.family):
            continue
        if not any(c.reachable for c in emap.cells_of(row) if emap.remote(c.ingress)):
            continue
        for net, _ in b.networks:
            bridge = net.bridge
            cells = emap.cells_of(row, bridge) if bridge is not None else []
            if not cells or any(c.reachable is not False or c.lands is not None for c in cells):
                continue
            cell = cells[0]
            d = cell.decided_by
            outs = outcomes(view.trace(cell.packet))
            last = outs[0].decider if outs else None
            # an nft rule is named by its table's family, which only the trace step holds
            step = last if d is not None and d.source == "nft" else _decider_step(cell)
            ref = view.ref(b.family, step) if step is not None else None
            fix = None
            if last is not None and last.hook == "INPUT" and bridge is not None \
                    and last.source == "nft" and last.family and last.table and last.chain:
                # the same accept in the nft chain that refuses it, ahead of the refusing rule
                at = ["position", str(last.rule)] if last.kind is StepKind.RULE \
                    and last.rule is not None else []
                fix = command(["nft", "insert", "rule", last.family, last.table, last.chain,
                               *at, "iifname", f'"{bridge}"', b.proto, "dport",
                               str(b.host_port), "accept"])
            elif last is not None and last.hook == "INPUT" and bridge is not None:
                # the hairpin goes to docker-proxy on the host: let the bridge reach the port
                fix = command([tool(b.family), "-t", "filter", "-I", "INPUT", "-i", bridge,
                               "-p", b.proto, "-m", b.proto, "--dport", str(b.host_port),
                               "-j", "ACCEPT"])
            elif last is not None and last.hook == "FORWARD" and bridge is not None \
                    and outs[0].final_dst in b.expected:
                fix = _accept_hairpin_nft(last, b, bridge, outs[0].final_dst) \
                    if last.source == "nft" else _accept_hairpin(view, b, bridge,
                                                                 outs[0].final_dst)
            yield Finding(
                kind="hairpin-blocked", severity=Severity.MEDIUM,
                message=(f"{b.label} is reachable from other hosts but not from its own "
                         f"network {net.name} ({bridge}): {_describe(cell.packet)} is "
                         f"{cell.why or 'refused'}"
                         f"{f' ({d})' if d is not None and str(d) not in cell.why else ''}, "
                         "so its neighbours cannot use the published port at the host's "
                         "address"),
                proto=b.proto, host_port=b.host_port, container=b.container.name,
                rule=ref, fix=fix, packet=cell.packet.to_dict(),
            )


def _accept_hairpin(view: DockerView, b: Binding, bridge: str, lands: str) -> str | None:
    """``iptables -I DOCKER-USER -i BR -o BR -d IP -p tcp -m tcp --dport C -m conntrack
    --ctstate DNAT -j ACCEPT``: let the bridge's containers through to the container's port
    when they came by the published port (DNAT, iptables-extensions(8) "conntrack"), ahead of
    ``--icc=false``'s ``-i BR -o BR -j DROP``; the replies pass FORWARD's RELATED,ESTABLISHED
    accept. None without a DOCKER-USER chain (Docker 29's nftables backend)."""
    table = view.ruleset(b.family).get(TableName.FILTER)
    if table is None or "DOCKER-USER" not in table:
        return None
    ip = lands.rpartition(":")[0].strip("[]")
    return command([tool(b.family), "-t", "filter", "-I", "DOCKER-USER", "-i", bridge, "-o",
                    bridge, "-d", ip, "-p", b.proto, "-m", b.proto, "--dport",
                    str(b.container_port), "-m", "conntrack", "--ctstate", "DNAT", "-j",
                    "ACCEPT"])


def _accept_hairpin_nft(d: Step, b: Binding, bridge: str, lands: str) -> str | None:
    """``_accept_hairpin`` where an nft rule drops the hairpin: ``nft insert rule FAMILY TABLE
    CHAIN position HANDLE iifname BR oifname BR ip daddr IP tcp dport C ct status dnat accept``,
    just ahead of the dropping rule (nft(8) ``insert rule ... position``: before that handle;
    ``ct status dnat``: connections a DNAT made). None for a policy (no rule to go before: the
    accept goes at the chain's end) or a step of no rule."""
    if d.kind is not StepKind.RULE or d.rule is None or not d.family or not d.table \
            or not d.chain:
        return None
    ip = lands.rpartition(":")[0].strip("[]")
    l3 = "ip6" if b.family == 6 else "ip"
    return command(["nft", "insert", "rule", d.family, d.table, d.chain, "position",
                    str(d.rule), "iifname", f'"{bridge}"', "oifname", f'"{bridge}"', l3,
                    "daddr", ip,
                    b.proto, "dport", str(b.container_port), "ct", "status", "dnat", "accept"])


def _decider_step(cell: Cell) -> Step | None:
    d = cell.decided_by
    if d is None or d.table is None or d.chain is None:
        return None
    if d.index is None:
        return Step(hook="FORWARD", table=d.table, chain=d.chain, rule=None,
                    target=d.text.removeprefix("policy "), text=d.text, kind=StepKind.POLICY)
    return Step(hook="FORWARD", table=d.table, chain=d.chain, rule=d.index, target="DROP",
                text=d.text)
