"""Docker-aware exposure checks: ``exposed`` (a container port reachable from another host although
it is published on loopback only, or not at all) and ``bypass`` (a published port reachable
although the host's INPUT rules refuse the host port).

Both decide by simulation. ``exposed`` routes a packet from the outside interface straight to
the container's address (what any neighbour on the same L2 segment, or a router pointed at the
host, can do; Docker before 28 let it through for every port it had an ACCEPT for, 28 drops it in
raw PREROUTING unless the network is ``nat-unprotected``). ``bypass`` compares the real path of a
published port (DNAT in PREROUTING, then FORWARD) with the path the same packet would take if
nothing DNATed it (INPUT), as ufw, firewalld and hand-written INPUT rules expect.
"""

from __future__ import annotations

from collections.abc import Iterator

from natlens.audit._docker_view import (
    DockerView,
    IPAddress,
    Outcome,
    docker_view,
    outcomes,
)
from natlens.audit.docker_checks import _describe, _fate, _packet
from natlens.audit.findings import AuditContext, Finding, RuleRef, Severity
from natlens.docker import Container
from natlens.netfilter import Packet, StepKind, Verdict
from natlens.netfilter.packet import endpoint

__all__ = ["PROBE_PORTS", "check_bypass", "check_exposed"]

CIS_BIND = ("CIS Docker Benchmark 5.14 (ex 5.13): bind incoming container traffic to a specific "
            "host interface")
CIS_HOST_NET = "CIS Docker Benchmark 5.9: do not share the host's network namespace"

PROBE_PORTS = (22, 3306, 5432, 6379, 27017, 11211)
"""Ports a container typically serves without publishing them (ssh, databases, caches); the
first one a container neither publishes nor exposes stands for "any unpublished port"."""


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
    """Container ports reachable from an outside interface by routing to the container's address
    directly: high for a port published on 127.0.0.1 only, medium for ports not published at all
    (probed: the image's EXPOSE ports and one of ``PROBE_PORTS``). Also a loopback-only port
    that a DNAT serves from outside, and (low) containers on the host's network namespace.

    >>> from natlens.audit._docker_example import container_json, example
    >>> ctx = example('''*filter
    ... :FORWARD DROP [0:0]
    ... :DOCKER - [0:0]
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
                fix=f"run {c.name} on a bridge network and publish only what it serves",
            )
    for c in view.containers():
        wide, lo = _published(c)
        image = [p for p in c.exposed if p not in wide and p not in lo]
        taken = wide | set(lo) | set(image)
        generic = next(("tcp", p) for p in PROBE_PORTS if ("tcp", p) not in taken)
        for family in (4, 6):
            if not view.forwarding(family) or not view.ruleset(family).tables:
                continue
            src = view.outside_source(family)
            for net, ip in view.bridged(c, family):
                if net.internal:
                    continue
                for (proto, port), hport in sorted(lo.items()):
                    yield from _probe_direct(view, c, src, ip, proto=proto, port=port,
                                             host_port=hport)
                unpublished: list[tuple[str, int, Packet, Outcome]] = []
                for proto, port in [*image, generic]:
                    pkt = Packet(in_interface=view.outside, src=src, dst=ip, proto=proto,
                                 sport=40000, dport=port)
                    o = _reaches(outcomes(view.trace(pkt)), endpoint(ip, port))
                    if o is not None:
                        unpublished.append((proto, port, pkt, o))
                if unpublished:
                    proto, port, pkt, o = unpublished[0]
                    ports = ", ".join(f"{p}/{pr}" for pr, p, _, _ in unpublished)
                    yield Finding(
                        kind="exposed", severity=Severity.MEDIUM,
                        message=f"{c.name}'s unpublished port{'s' if len(unpublished) > 1 else ''}"
                                f" {ports} reachable from {view.outside} by routing to {ip} "
                                f"directly ({'probes' if len(unpublished) > 1 else 'a probe'}"
                                "; other unpublished ports likely are too)",
                        proto=proto, container=c.name, rule=_accepting(view, family, o),
                        fix=f"drop it in DOCKER-USER: {_tool(family)} -I DOCKER-USER -i "
                            f"{view.outside} -d {ip} -m conntrack --ctstate NEW "
                            "! --ctstatus DNAT -j DROP (or upgrade to Docker 28+, which drops "
                            "direct routing in raw PREROUTING)",
                        cis=CIS_BIND, packet=_packet(pkt, o),
                    )
    yield from _loopback_via_dnat(view)


def _tool(family: int) -> str:
    return "ip6tables" if family == 6 else "iptables"


def _accepting(view: DockerView, family: int, o: Outcome) -> RuleRef | None:
    """The rule that accepted the packet in FORWARD (the last ACCEPT step, or the policy)."""
    for s in reversed(o.steps):
        if s.hook == "FORWARD" and s.table == "filter" and s.target == "ACCEPT" and \
                s.kind in (StepKind.RULE, StepKind.POLICY):
            return view.ref(family, s)
    return None


def _probe_direct(view: DockerView, c: Container, src: IPAddress, ip: IPAddress, *,
                  proto: str, port: int, host_port: int) -> Iterator[Finding]:
    """A port published on loopback only (``host_port``), probed at the container's address."""
    family = ip.version
    pkt = Packet(in_interface=view.outside, src=src, dst=ip, proto=proto, sport=40000,
                 dport=port)
    o = _reaches(outcomes(view.trace(pkt)), endpoint(pkt.dst, port))
    if o is None:
        return
    yield Finding(
        kind="exposed", severity=Severity.HIGH,
        message=f"{c.name}'s port {port}/{proto} is published on 127.0.0.1 only (host port "
                f"{host_port}), but a packet {_describe(pkt)} is {_fate(view, family, o)}: "
                f"anyone routing {pkt.dst} via this host reaches it",
        proto=proto, host_port=host_port, container=c.name, rule=_accepting(view, family, o),
        fix=f"drop direct routing in DOCKER-USER ({_tool(family)} -I DOCKER-USER -i "
            f"{view.outside} -d {pkt.dst} -m conntrack --ctstate NEW ! --ctstatus DNAT -j DROP)"
            " or upgrade to Docker 28+",
        cis=CIS_BIND, packet=_packet(pkt, o),
    )


def _loopback_via_dnat(view: DockerView) -> Iterator[Finding]:
    """A port published on loopback only that a DNAT serves from outside at the host address."""
    for b in view.bindings():
        if not b.loopback:
            continue
        dst = view.host_address(b.family)
        if dst is None:
            continue
        pkt = Packet(in_interface=view.outside, src=view.outside_source(b.family), dst=dst,
                     proto=b.proto, sport=40000, dport=b.host_port)
        outs = outcomes(view.trace(pkt))
        o = next((x for x in outs if x.verdict is Verdict.ACCEPT and x.final_dst in b.expected),
                 None)
        if o is None:
            continue
        rw = o.rewrite
        yield Finding(
            kind="exposed", severity=Severity.HIGH,
            message=f"{b.label} is published on {b.port.host_ip} only, but a packet "
                    f"{_describe(pkt)} is DNATed to {o.final_dst} and accepted",
            proto=b.proto, host_port=b.host_port, container=b.container.name,
            rule=view.ref(b.family, rw) if rw is not None else None,
            fix="remove the DNAT that serves it from outside, or publish it on purpose",
            cis=CIS_BIND, packet=_packet(pkt, o),
        )


def check_bypass(ctx: AuditContext) -> Iterator[Finding]:
    """Published ports that reach their container from outside although the host's INPUT rules
    (ufw, firewalld, hand-written) would refuse the host port: the packet is simulated twice,
    as it really goes (DNAT, FORWARD) and with the DNAT rules it met deleted (INPUT).

    >>> from natlens.audit._docker_example import container_json, example
    >>> ctx = example('''*nat
    ... :PREROUTING ACCEPT [0:0]
    ... :DOCKER - [0:0]
    ... -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
    ... -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
    ... COMMIT
    ... *filter
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
    if view is None:
        return
    for b in view.bindings():
        if b.loopback:
            continue
        probes = view.probes(b)
        if not probes or probes[0].source != view.outside:
            continue
        pkt = probes[0].packet
        real = next((o for o in outcomes(view.trace(pkt))
                     if o.verdict is Verdict.ACCEPT and o.final_dst in b.expected), None)
        if real is None:
            continue
        dnats = [r for s in real.steps if s.kind is StepKind.RULE and s.table == "nat"
                 and s.target == "DNAT" for r in [view.ref(b.family, s)] if r is not None]
        if not dnats:
            continue
        as_if = outcomes(view.without(b.family, dnats).trace(pkt))
        refused = next((o for o in as_if if o.verdict is not Verdict.ACCEPT and o.decider
                        is not None and o.decider.hook == "INPUT"), None)
        if refused is None:
            continue
        d = refused.decider
        assert d is not None
        ref = view.ref(b.family, d)
        names_port = ref is not None and d.kind is StepKind.RULE and str(b.host_port) in ref.text
        yield Finding(
            kind="bypass", severity=Severity.HIGH if names_port else Severity.MEDIUM,
            message=f"{b.label} is reachable from {view.outside} although INPUT refuses the "
                    f"host port: {_describe(pkt)} is {_fate(view, b.family, real)} "
                    f"({' -> '.join(real.path_text())}); without the DNAT it would be "
                    f"{_fate(view, b.family, refused)} "
                    f"({' -> '.join(refused.path_text())})",
            proto=b.proto, host_port=b.host_port, container=b.container.name, rule=ref,
            related=tuple(dnats),
            fix=f"filter published ports in DOCKER-USER ({_tool(b.family)} -I DOCKER-USER -i "
                f"{view.outside} -p {b.proto} -m conntrack --ctorigdstport {b.host_port} "
                "--ctdir ORIGINAL -j DROP), or publish on 127.0.0.1 only",
            cis=CIS_BIND,
            packet=_packet(pkt, real, trace_without_dnat=refused.path_text(),
                           verdict_without_dnat=refused.verdict.value),
        )

