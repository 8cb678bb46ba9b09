"""Docker-aware exposure checks: ``exposed`` (a container port reachable from another host although
it is published on loopback only, or not at all) and ``bypass`` (a published port reachable
although the host's INPUT rules refuse the host port).

Both read the exposure map (``natlens.exposure``: every port, from every ingress, both
families, per source class), decided by simulation. ``exposed``: a container port reached from
another host by routing straight to the container's address (what any neighbour on the same L2
segment, or a router pointed at the host, can do; Docker before 28 let it through for every port
it had an ACCEPT for, 28 drops it in raw PREROUTING unless the network is ``nat-unprotected``),
or a loopback-only port DNATed for another host (also when it sends to 127.0.0.1 itself).
``bypass`` compares the real path of a published port from each host interface (DNAT in
PREROUTING, then FORWARD) with the path the same packet would take if nothing DNATed it
(INPUT), as ufw, firewalld and hand-written INPUT rules expect; and a block written for one
family that the other family's binding walks around.
"""

from __future__ import annotations

from collections.abc import Iterator

from natlens.audit._docker_view import (
    DockerView,
    IPAddress,
    Outcome,
    SharedTraces,
    docker_view,
    exposure_map,
    outcomes,
    shared_traces,
    step_text,
)
from natlens.audit.docker_checks import _describe, _fate, _packet
from natlens.audit.findings import AuditContext, Finding, RuleRef, Severity
from natlens.audit.fixes import command, tool
from natlens.audit.nft_refs import delete_rule, native_only, nft_prerouting_drop, rewrite_kind
from natlens.correlate import PROBE_PORTS, Binding
from natlens.docker import Container
from natlens.exposure import Cell, ExposureMap, Row
from natlens.netfilter import Step, StepKind, Verdict

__all__ = ["PROBE_PORTS", "check_bypass", "check_exposed"]

CIS_BIND = ("CIS Docker Benchmark 5.14 (ex 5.13): bind incoming container traffic to a specific "
            "host interface")
CIS_HOST_NET = "CIS Docker Benchmark 5.9: do not share the host's network namespace"

def _reaches(outs: list[Outcome], target: str) -> Outcome | None:
    return next((o for o in outs if o.verdict is Verdict.ACCEPT and o.final_dst == target), None)


def _published(c: Container) -> tuple[set[tuple[str, int]], dict[tuple[str, int], int]]:
    """(proto, container port) published on some non-loopback address, and those published on
    loopback only (with their host port)."""
    wide = {(p.proto.value, p.container_port + k) for p in c.ports if not p.loopback_only
            for k in range(p.host_end - p.host_start + 1)}
    lo = {(p.proto.value, p.container_port + k): p.host_start + k for p in c.ports
          if p.loopback_only for k in range(p.host_end - p.host_start + 1)}
    return wide, {k: v for k, v in lo.items() if k not in wide}


def check_exposed(ctx: AuditContext) -> Iterator[Finding]:
    """Container ports reachable from another host (a host interface of the exposure map,
    ``natlens.exposure``) although they are published on loopback only (high) or not at all
    (medium: the image's EXPOSE ports and one of ``PROBE_PORTS``), by routing to the
    container's address directly; a loopback-only port that a DNAT serves to another host, at
    a host address or at 127.0.0.1 / ::1 itself (high); and (low) containers on the host's
    network namespace.

    >>> from natlens.audit._docker_example import container_json, example
    >>> ctx = example('''*filter
    ... :FORWARD DROP [0:0]
    ... :DOCKER - [0:0]
    ... -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    ... -A FORWARD -o docker0 -j DOCKER
    ... -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
    ... COMMIT
    ... ''', container_json("web", "172.17.0.2", "127.0.0.1:9000:80"))
    >>> for f in check_exposed(ctx):
    ...     print(f)  # doctest: +ELLIPSIS
    [high] exposed: filter DOCKER #1: web's port 80/tcp is published on 127.0.0.1 only (host ...
    """
    view = docker_view(ctx)
    if view is None:
        return
    for c in view.inventory.running:
        if c.network_mode == "host":
            yield Finding(
                kind="exposed", severity=Severity.LOW,
                message=f"{c.name} shares the host's network namespace: every port it listens "
                        "on is a host port, outside Docker's rules (-p is ignored)",
                container=c.name, cis=CIS_HOST_NET,
            )
    emap = exposure_map(ctx)
    if emap is None:
        return
    unpublished: dict[tuple[str, int, str], list[tuple[Cell, Outcome]]] = {}
    for row in emap.rows:
        if row.kind != "container" or row.container is None:
            continue
        owner = view.inventory.container(row.container)
        if owner is None or not (view.ruleset(row.family).tables
                                 or native_only(view.snapshot, row.family)):
            continue
        wide, lo = _published(owner)
        key = (row.proto, row.port)
        if key in wide:
            continue
        for cell, o in _remote_hits(view, emap, row):
            if key in lo:
                yield _loopback_direct(view, owner, cell, o, host_port=lo[key])
                break
            unpublished.setdefault((owner.name, row.family, cell.ingress), []).append((cell, o))
            break
    for (name, family, ingress), hits in unpublished.items():
        cell, o = hits[0]
        ports = ", ".join(f"{h.port}/{h.proto}" for h, _ in hits)
        many = len(hits) > 1
        yield Finding(
            kind="exposed", severity=Severity.MEDIUM,
            message=f"{name}'s unpublished port{'s' if many else ''} {ports} reachable from "
                    f"{ingress} by routing to {cell.dst} directly "
                    f"({'probes' if many else 'a probe'}; other unpublished ports likely are "
                    "too)",
            proto=cell.proto, container=name, rule=_accepting(view, family, o),
            fix=_drop_direct(view, ingress, family, cell.dst),
            cis=CIS_BIND, packet=_packet(cell.packet, o),
        )
    yield from _loopback_via_dnat(view, emap)


def _remote_hits(view: DockerView, emap: ExposureMap, row: Row) -> Iterator[tuple[Cell, Outcome]]:
    """The cells of ``row`` from another host's ingress whose connection reaches the row's
    container, with the outcome of their trace."""
    for cell in emap.cells_of(row):
        if not emap.remote(cell.ingress) or not cell.reachable \
                or cell.target is None or cell.target.kind != "container" or cell.lands is None:
            continue
        o = _reaches(outcomes(view.trace(cell.packet)), cell.lands)
        if o is not None:
            yield cell, o


def _drop_direct(view: DockerView, ingress: str, family: int, dst: IPAddress) -> str:
    """``iptables -t raw -I PREROUTING -i IN -d IP -j DROP``: refuse packets from ``ingress``
    addressed to a container directly. raw PREROUTING runs before DNAT, so only packets sent to
    the container's own address match; published ports (sent to a host address) and replies
    (addressed to the host before un-SNAT) do not. Docker 28+ adds the same rule per
    container ("DROP DIRECT ACCESS", moby libnetwork/drivers/bridge/setup_ip_tables_linux.go).
    On a host whose rules of the family are all native nft, the same drop in nft
    (``nft_prerouting_drop``)."""
    if native_only(view.snapshot, family):
        return nft_prerouting_drop(view.snapshot, family, [
            "iifname", f'"{ingress}"', "ip" if family == 4 else "ip6", "daddr", str(dst)])
    return command([tool(family), "-t", "raw", "-I", "PREROUTING", "-i", ingress,
                    "-d", str(dst), "-j", "DROP"])


def _accepting(view: DockerView, family: int, o: Outcome) -> RuleRef | None:
    """The rule that accepted the packet in FORWARD (the last ACCEPT step, or the policy)."""
    for s in reversed(o.steps):
        if s.hook == "FORWARD" and (s.table == "filter" or s.source == "nft") \
                and s.target in ("ACCEPT", "accept") \
                and s.kind in (StepKind.RULE, StepKind.POLICY):
            return view.ref(family, s)
    return None


def _loopback_direct(view: DockerView, c: Container, cell: Cell, o: Outcome, *,
                     host_port: int) -> Finding:
    """A port published on loopback only (``host_port``), reached at the container's
    address from another host."""
    pkt = cell.packet
    family = cell.family
    return Finding(
        kind="exposed", severity=Severity.HIGH,
        message=f"{c.name}'s port {cell.port}/{cell.proto} is published on 127.0.0.1 only "
                f"(host port {host_port}), but a packet {_describe(pkt)} is "
                f"{_fate(view, family, o)}: anyone routing {pkt.dst} via this host reaches it",
        proto=cell.proto, host_port=host_port, container=c.name,
        rule=_accepting(view, family, o), fix=_drop_direct(view, cell.ingress, family, cell.dst),
        cis=CIS_BIND, packet=_packet(pkt, o),
    )


def _loopback_via_dnat(view: DockerView, emap: ExposureMap) -> Iterator[Finding]:
    """A port published on loopback only that a DNAT serves to another host: at a host
    address, or at the loopback address itself (Docker's DNAT matches any input interface;
    the kernel routes the rewritten packet, kernel ``ip_route_input_slow`` only sees the new
    destination)."""
    for row in emap.rows:
        b = row.binding
        if b is None or not b.loopback:
            continue
        for cell, o in _remote_hits(view, emap, row):
            if o.final_dst not in b.expected:
                continue
            rw = o.rewrite
            ref = view.ref(b.family, rw) if rw is not None else None
            pkt = cell.packet
            if pkt.dst.is_loopback:
                loopback = "127.0.0.0/8" if b.family == 4 else "::1/128"
                fix: str | None = nft_prerouting_drop(view.snapshot, b.family, [
                    "iifname", "!=", '"lo"', "ip" if b.family == 4 else "ip6", "daddr",
                    loopback]) if native_only(view.snapshot, b.family) else command(
                    [tool(b.family), "-t", "raw", "-I", "PREROUTING", "!", "-i", "lo", "-d",
                     loopback, "-j", "DROP"])
                how = (f"a packet {_describe(pkt)} (another host routing the loopback "
                       "address via this one)")
            else:
                fix = delete_rule(ref) if ref is not None and ref.index else None
                how = f"a packet {_describe(pkt)}"
            yield Finding(
                kind="exposed", severity=Severity.HIGH,
                message=f"{b.label} is published for the host only, but {how} is "
                        f"DNATed to {o.final_dst} and accepted",
                proto=b.proto, host_port=b.host_port, container=b.container.name,
                rule=ref, fix=fix, cis=CIS_BIND, packet=_packet(pkt, o),
            )
            break


def check_bypass(ctx: AuditContext) -> Iterator[Finding]:
    """Published ports that reach their container from another host although the host's INPUT
    rules (ufw, firewalld, hand-written; any backend) would refuse the host port, from every
    host interface of the exposure map: the cell's packet is simulated again with the DNAT
    rules it met deleted (INPUT). Also a port that a filtering rule refuses on one family and
    that the other family's binding serves from the same interface (an IPv4-only block).

    >>> from natlens.audit._docker_example import DOCKER_NAT_8080, container_json, example
    >>> ctx = example(DOCKER_NAT_8080 + '''*filter
    ... :INPUT DROP [0:0]
    ... :FORWARD ACCEPT [0:0]
    ... -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
    ... COMMIT
    ... ''', container_json("web", "172.17.0.2", "8080:80"))
    >>> for f in check_bypass(ctx):
    ...     print(f)  # doctest: +ELLIPSIS
    [medium] bypass: filter INPUT #0: web's 8080/tcp is reachable from eth0 ...
    """
    view = docker_view(ctx)
    emap = exposure_map(ctx)
    if view is None or emap is None:
        return
    shared = shared_traces(ctx)
    for row in emap.rows:
        b = row.binding
        if b is None or b.loopback:
            continue
        for ingress in emap.ingresses:
            if not emap.remote(ingress):
                continue
            if shared is not None and _bypass_quiet(shared, emap, row, b, ingress):
                continue
            hit = next(((c, o) for c, o in _remote_hits(view, emap, row)
                        if c.ingress == ingress and not c.dst.is_loopback
                        and o.final_dst in b.expected), None)
            if hit is not None:
                yield from _bypass_input(view, b, ingress, *hit)
    yield from _bypass_family(view, emap)


def _bypass_quiet(shared: SharedTraces, emap: ExposureMap, row: Row, b: Binding,
                  ingress: str) -> bool:
    """Whether ``check_bypass`` certainly reports nothing for ``b`` from ``ingress``, decided
    from shared outcomes (``SharedTraces``): the first cell that reaches the container has no
    DNAT to delete, or without it INPUT does not refuse the packet. False when an outcome on
    the way is not shared: the cells are judged by their own traces."""
    name = b.container.name
    expected = {shared.norm(name, b.family, ip, b.container_port) for ip in b.targets}
    for cell in emap.cells_of(row, ingress):
        if not emap.remote(cell.ingress) or not cell.reachable or cell.target is None \
                or cell.target.kind != "container" or cell.lands is None:
            continue
        s = shared.real(name, cell.packet)
        if s is None:
            return False
        if s.verdict is not Verdict.ACCEPT \
                or s.final_dst != shared.norm_endpoint(name, b.family, cell.lands) \
                or cell.dst.is_loopback or s.final_dst not in expected:
            continue
        if not s.dnats:
            return True
        w = shared.what_if(name, cell.packet, s.dnats)
        return w is not None and not w[0]
    return True


def _bypass_input(view: DockerView, b: Binding, ingress: str, cell: Cell,
                  real: Outcome) -> Iterator[Finding]:
    pkt = cell.packet
    dnats = [r for s in real.steps if rewrite_kind(s) == "DNAT"
             for r in [view.ref(b.family, s)] if r is not None]
    if not dnats:
        return
    as_if = outcomes(view.without(b.family, dnats).trace(pkt))
    refused = next((o for o in as_if if o.verdict is not Verdict.ACCEPT and o.decider
                    is not None and o.decider.hook == "INPUT"), None)
    if refused is None:
        return
    d = refused.decider
    assert d is not None
    ref = view.ref(b.family, d)
    names_port = ref is not None and d.kind is StepKind.RULE and str(b.host_port) in ref.text
    yield Finding(
        kind="bypass", severity=Severity.HIGH if names_port else Severity.MEDIUM,
        message=f"{b.label} is reachable from {ingress} although INPUT refuses the "
                f"host port: {_describe(pkt)} is {_fate(view, b.family, real)} "
                f"({_dnat_text(real)}); without the DNAT it would be "
                f"{_fate(view, b.family, refused)}"
                f"{'' if ref is not None or d.kind is StepKind.POLICY else ' by ' + step_text(d)}"
                " (the whole paths are in the finding's packet)",
        proto=b.proto, host_port=b.host_port, container=b.container.name, rule=ref,
        related=tuple(dnats),
        fix=_forward_block(view, b.family, ingress, b.proto, b.host_port, real=real),
        cis=CIS_BIND,
        packet=_packet(pkt, real, trace_without_dnat=refused.path_text(),
                       verdict_without_dnat=refused.verdict.value),
    )


def _bypass_family(view: DockerView, emap: ExposureMap) -> Iterator[Finding]:
    """A published port that a filtering rule (not a policy) refuses from an interface for
    some sources in one family, while the other family's binding of the same container port
    serves every source from that interface: the block was written for one family only."""
    by_port: dict[tuple[str, str, int, int], Row] = {}
    for row in emap.rows:
        b = row.binding
        if b is not None and not b.loopback:
            by_port.setdefault((b.container.name, b.proto, b.container_port, b.family), row)
    for (name, proto, cport, family), row in by_port.items():
        other = by_port.get((name, proto, cport, 10 - family))
        b = row.binding
        if other is None or b is None or other.binding is None:
            continue
        for ingress in emap.ingresses:
            if not emap.remote(ingress):
                continue
            mine = [c for c in emap.cells_of(row, ingress) if not c.dst.is_loopback]
            theirs = [c for c in emap.cells_of(other, ingress) if not c.dst.is_loopback]
            blocked = [c for c in mine if c.reachable is False and c.lands is None
                       and c.decided_by is not None and c.decided_by.index is not None]
            if not blocked or not theirs or not all(c.reachable for c in theirs):
                continue
            ob = other.binding
            d = blocked[0].decided_by
            assert d is not None
            if d.source == "nft":  # the trace step names the nft table's family
                outs = outcomes(view.trace(blocked[0].packet))
                last = outs[0].decider if outs else None
                ref = view.ref(family, last) if last is not None else None
            else:
                ref = view.ref(family, Step(hook="FORWARD", table=d.table, chain=d.chain,
                                            rule=d.index, target="DROP", text=d.text))
            fam = "IPv6" if family == 4 else "IPv4"
            yield Finding(
                kind="bypass", severity=Severity.HIGH,
                message=f"{ob.label} is reachable from {ingress} from every source, although "
                        f"{'IPv4' if family == 4 else 'IPv6'} refuses the same port "
                        f"({blocked[0].packet.src} {_describe(blocked[0].packet)} is refused "
                        f"by {d}): the block has no {fam} counterpart",
                proto=proto, host_port=ob.host_port, container=name, rule=ref,
                fix=_forward_block(view, ob.family, ingress, proto, ob.host_port,
                                   real=next(iter(outcomes(view.trace(theirs[0].packet))),
                                             None)),
                cis=CIS_BIND, packet=_packet(theirs[0].packet),
            )
            break


def _forward_block(view: DockerView, family: int, ingress: str, proto: str, port: int, *,
                   real: Outcome | None) -> str:
    """The command that drops new connections from ``ingress`` to published host ``port``
    where FORWARD sees them (after DNAT, so matched by the port before it: iptables
    ``--ctorigdstport``, nft ``ct original proto-dst``): ``iptables -I DOCKER-USER`` (or
    FORWARD) when the family has iptables filter rules, else ``nft insert rule`` at the top of
    the first native forward base chain ``real`` (the connection's path) passes, which ends
    the packet before any later chain (nft(8): drop is final)."""
    table = view.ruleset(family).get("filter")
    if (table is None or "FORWARD" not in table) and real is not None:
        s = next((s for s in real.steps if s.source == "nft" and s.hook == "FORWARD"
                  and s.family and s.table and s.chain), None)
        if s is not None and s.family and s.table and s.chain:
            return command(["nft", "insert", "rule", s.family, s.table, s.chain, "iifname",
                            f'"{ingress}"', "meta", "l4proto", proto, "ct", "original",
                            "proto-dst", str(port), "drop"])
    return command([tool(family), "-t", "filter", "-I", _user_chain(view, family), "-i",
                    ingress, "-p", proto, "-m", "conntrack", "--ctorigdstport", str(port),
                    "--ctdir", "ORIGINAL", "-j", "DROP"])


def _user_chain(view: DockerView, family: int) -> str:
    """Where a user's filter for forwarded traffic goes: DOCKER-USER when the family's filter
    table has it (Docker writes it first in FORWARD), else FORWARD itself."""
    table = view.ruleset(family).get("filter")
    return "DOCKER-USER" if table is not None and "DOCKER-USER" in table else "FORWARD"


def _dnat_text(o: Outcome) -> str:
    """``DNAT by nat:DOCKER#2, accepted by filter:DOCKER#1``: the steps that matter of a path
    that reached the container."""
    rw = o.rewrite
    acc = next((s for s in reversed(o.steps) if s.hook == "FORWARD" and s.target
                in ("ACCEPT", "accept") and s.kind in (StepKind.RULE, StepKind.POLICY)), None)
    parts = [f"DNAT by {step_text(rw)}" if rw is not None else "no DNAT"]
    if acc is not None:
        parts.append(f"accepted by {step_text(acc)}")
    return ", ".join(parts)

