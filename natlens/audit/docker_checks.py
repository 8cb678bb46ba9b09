"""Docker-aware checks on published ports: ``stale``, ``shadowed``, ``mismatch``, ``missing`` and
``ineffective`` (rules that never see the traffic they name).

Each check compares what the Docker Engine says (``natlens.docker.Inventory``) with where the
simulator sends probe packets (``natlens.audit._docker_view``): for every published port, a packet
from an outside interface, from a neighbour container and from the host itself. Docker's rule
layout (20.10 to 29: ``nat DOCKER`` DNATs, ``filter DOCKER`` ACCEPTs, DOCKER-USER first in
FORWARD) is described in its docs "Packet filtering and firewalls" and moby's
``integration/network/bridge/iptablesdoc``; none of the checks depends on one era's rule text.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from natlens.audit._docker_view import (
    Binding,
    DockerView,
    Outcome,
    Probe,
    SharedTraces,
    dnat_target,
    docker_chain,
    docker_view,
    outcomes,
    port_set,
    shared_traces,
)
from natlens.audit.findings import AuditContext, Finding, RuleRef, Severity
from natlens.audit.fixes import command, rule_spec, tool
from natlens.audit.nft_refs import (
    NftDnat,
    delete_rule,
    is_nft,
    nft_ref,
    replace_rule,
    rewrite_kind,
)
from natlens.audit.reach import reached_elsewhere
from natlens.inputs import is_decimal
from natlens.model import Family, Rule, Table, TableName
from natlens.netfilter import Host, Packet, Simulator, Step, StepKind, Verdict
from natlens.netfilter.packet import endpoint

__all__ = [
    "check_docker_user_ports",
    "check_published_ports",
    "check_stale_dnat",
    "check_unknown_interfaces",
]

CIS_USERLAND_PROXY = "CIS Docker Benchmark 2.16 (ex 2.15): disable the userland proxy"


def _delete(ref: RuleRef) -> str:
    """``iptables -t nat -D DOCKER ! -i docker0 ...`` (by specification, safe to re-run); for an
    nft rule ``nft delete rule FAMILY TABLE CHAIN handle N``."""
    return delete_rule(ref)


def _packet(packet: Packet, outcome: Outcome | None = None, **extra: object) -> dict[str, object]:
    out: dict[str, object] = dict(packet.to_dict())
    if outcome is not None:
        out["verdict"] = outcome.verdict.value
        out["final_dst"] = outcome.final_dst
        out["trace"] = outcome.path_text()
    out.update(extra)
    return out


def _fate(view: DockerView, family: int, o: Outcome) -> str:
    """``forwarded towards 172.17.0.99:80 via docker0 and dropped by filter FORWARD policy DROP``
    and the like: what happened to a probe, in words."""
    if o.verdict is Verdict.ACCEPT:
        return (f"forwarded to {o.final_dst} via {o.out_interface}" if o.path == "forward"
                 else f"delivered to {o.final_dst} on the host" if o.path == "local"
                 else f"sent to {o.final_dst}")
    d = o.decider
    by = ""
    if d is not None:
        ref = view.ref(family, d)
        # an nft policy: "inet filter forward" as nft names the chain; a legacy step: marked
        table = f"{d.family} {d.table}" if d.source == "nft" and d.family else d.table
        mark = " (iptables-legacy)" if d.source == "iptables-legacy" else ""
        by = f" by {ref.where}{mark}" if ref is not None and d.kind is StepKind.RULE else (
            f" by {table} {d.chain} policy {d.target}{mark}" if d.kind is StepKind.POLICY
            else "")
    verb = "rejected" if o.verdict is Verdict.REJECT else "dropped"
    if o.path == "forward" and o.out_interface:
        return f"forwarded towards {o.final_dst} via {o.out_interface} and {verb}{by}"
    return f"{verb}{by}"


# -- stale ---------------------------------------------------------------------------------------


def _witnesses(view: DockerView, family: int, rule: Rule) -> Iterator[Packet]:
    """Packets that should meet ``rule`` (a nat rule): from outside and from the host."""
    proto = rule.protocol.name if rule.protocol is not None and not rule.protocol.negated and \
        rule.protocol.name in ("tcp", "udp", "sctp") else "tcp"
    ports = port_set(rule)
    dport = ports[0][0] if ports else None
    dst = view.host_address(family)
    d = rule.destination
    if d is not None and not d.negated and d.network.version == family:
        net = d.network
        dst = net.network_address if net.num_addresses == 1 else net.network_address + 1
    if dst is None:
        return
    src = view.outside_source(family)
    s = rule.source
    if s is not None and not s.negated and s.network.version == family:
        src = s.network.network_address if s.network.num_addresses == 1 else (
            s.network.network_address + 1)
    iface = view.outside
    i = rule.in_interface
    if i is not None and not i.negated and not i.name.endswith("+"):
        iface = i.name
    elif i is not None and i.negated and i.name == iface:
        iface = "eth9"
    yield Packet(in_interface=iface, src=src, dst=dst, proto=proto, sport=40000, dport=dport)
    if i is None or i.negated:
        yield Packet(local_origin=True, src=view.host_address(family) or dst, dst=dst,
                     proto=proto, sport=40000, dport=dport)


def check_stale_dnat(ctx: AuditContext) -> Iterator[Finding]:
    """DNAT rules that send traffic to an address no container (nor Docker endpoint) holds, in
    Docker's chains or into a Docker network: left behind by a crash or written by hand.

    >>> from natlens.audit._docker_example import container_json, example
    >>> ctx = example('''*nat
    ... :PREROUTING ACCEPT [0:0]
    ... :DOCKER - [0:0]
    ... -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
    ... -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8090 -j DNAT --to-destination 172.17.0.99:80
    ... COMMIT
    ... ''', container_json("web", "172.17.0.2"))
    >>> for f in check_stale_dnat(ctx):
    ...     print(f)  # doctest: +ELLIPSIS
    [high] stale: nat DOCKER #1: DNAT tcp/8090 to 172.17.0.99:80, an address no container holds...
    """
    view = docker_view(ctx)
    if view is None:
        return
    for family in (4, 6):
        fam = Family.IPV4 if family == 4 else Family.IPV6
        nat = view.ruleset(family).get(TableName.NAT)
        if nat is None:
            continue
        for chain in nat.chains:
            for index, rule in enumerate(chain.rules, 1):
                if rule.target_name != "DNAT":
                    continue
                dest = view.dnat(rule, family)
                if dest is None:
                    continue
                ip, port = dest
                if view.holder(ip) is not None or view.host.is_local(ip):
                    continue
                net = view.docker_network_of(ip)
                if net is None and not docker_chain(chain.name):
                    continue  # a DNAT to another machine: not Docker's business
                ref = RuleRef.of(rule, TableName.NAT, index, fam)
                ports = port_set(rule)
                proto = rule.protocol.name if rule.protocol is not None else None
                hport = ports[0][0] if ports and ports[0][0] == ports[0][1] else None
                what = f"{proto}/{hport}" if proto and hport else (proto or "all traffic")
                subnet = next((str(x) for x in (net.subnets if net is not None else ())
                               if ip in x), "")
                inside = (f" (in Docker network {net.name}, {subnet})" if net is not None
                          else "")
                msg = (f"DNAT {what} to {endpoint(ip, port)}, an address no container "
                       f"holds{inside}")
                pkt: dict[str, object] | None = None
                for witness in _witnesses(view, family, rule):
                    hit = [o for o in outcomes(view.trace(witness)) if any(
                        s.kind is StepKind.RULE and (s.table, s.chain, s.rule) ==
                        ("nat", chain.name, index) for s in o.steps)]
                    if hit:
                        msg += f"; a packet {_describe(witness)} is {_fate(view, family, hit[0])}"
                        pkt = _packet(witness, hit[0])
                        break
                yield Finding(
                    kind="stale", severity=Severity.HIGH, message=msg, proto=proto,
                    host_port=hport, rule=ref,
                    fix=_delete(ref),
                    packet=pkt,
                )
    yield from _stale_nft(view)


def _nft_witnesses(view: DockerView, d: NftDnat) -> Iterator[Packet]:
    """``_witnesses`` for a native nft DNAT rule (its ``iifname``, ``daddr`` and port)."""
    family = d.family
    dst = d.daddr if d.daddr is not None and d.daddr.version == family \
        else view.host_address(family)
    if dst is None:
        return
    proto = d.proto or "tcp"
    iface = view.outside
    if d.in_interface is not None:
        name, negated = d.in_interface
        if not negated and not name.endswith("*"):
            iface = name
        elif negated and name == iface:
            iface = "eth9"
    yield Packet(in_interface=iface, src=view.outside_source(family), dst=dst, proto=proto,
                 sport=40000, dport=d.dport)
    if d.in_interface is None or d.in_interface[1]:
        yield Packet(local_origin=True, src=view.host_address(family) or dst, dst=dst,
                     proto=proto, sport=40000, dport=d.dport)


def _stale_nft(view: DockerView) -> Iterator[Finding]:
    """``check_stale_dnat`` for the DNAT rules of native nft tables (an nftables.conf, Docker
    29's nftables backend): the same judgement, the rule named and deleted as nft does."""
    nft = view.snapshot.nft
    for d in view.native_dnats():
        ip = d.address
        if view.holder(ip) is not None or view.host.is_local(ip):
            continue
        net = view.docker_network_of(ip)
        ref = nft_ref(d.rule, d.family, nft.source if nft is not None else None)
        if net is None and not _docker_dnat(ref):
            continue  # a DNAT to another machine: not Docker's business
        hport = d.dport
        what = f"{d.proto}/{hport}" if d.proto and hport else (d.proto or "all traffic")
        subnet = next((str(x) for x in (net.subnets if net is not None else ()) if ip in x), "")
        inside = f" (in Docker network {net.name}, {subnet})" if net is not None else ""
        msg = f"DNAT {what} to {endpoint(ip, d.port)}, an address no container holds{inside}"
        pkt: dict[str, object] | None = None
        key = (d.rule.family.value, d.rule.table, d.rule.chain, d.rule.handle)
        for witness in _nft_witnesses(view, d):
            hit = [o for o in outcomes(view.trace(witness)) if any(
                s.kind is StepKind.RULE and s.source == "nft"
                and (s.family, s.table, s.chain, s.rule) == key for s in o.steps)]
            if hit:
                msg += f"; a packet {_describe(witness)} is {_fate(view, d.family, hit[0])}"
                pkt = _packet(witness, hit[0])
                break
        yield Finding(kind="stale", severity=Severity.HIGH, message=msg, proto=d.proto,
                      host_port=hport, rule=ref, fix=delete_rule(ref), packet=pkt)


def _describe(p: Packet) -> str:
    where = "from the host" if p.local_origin else f"from {p.in_interface}"
    return f"{where} to {endpoint(p.dst, p.dport)}/{p.proto}"


# -- published ports: shadowed, mismatch, missing -------------------------------------------------


@dataclass
class _Verdicts:
    """What the probes of one binding found. ``primary`` classifies the first probe (from
    outside; from the host for a loopback binding): ``served``, ``proxied`` (delivered to the
    host port unchanged, where docker-proxy listens), ``unserved``, ``dropped`` (DNATed right,
    then dropped by Docker's chains or FORWARD's policy), ``filtered`` (dropped by someone
    else's rule, on purpose), ``caught`` (rewritten elsewhere), or None when uncertain."""

    primary: str | None = None
    primary_item: tuple[Probe, Outcome] | None = None
    served: list[str] = field(default_factory=list)
    proxied: list[str] = field(default_factory=list)
    reached: list[str] = field(default_factory=list)
    """Sources that still reach the container (directly or through docker-proxy), in order."""
    caught: dict[tuple[object, ...], tuple[Step, list[tuple[Probe, Outcome]]]] = field(
        default_factory=dict)
    """The probes a rule rewrote elsewhere, by that rule (source, family, table, chain,
    position or handle): its first step and the probes."""


def _classify(view: DockerView, b: Binding, probe: Probe, o: Outcome) -> str:
    d = o.decider
    rw = o.rewrite
    return _class_of(
        view, o.verdict, o.path, expected=o.final_dst in b.expected,
        decider=None if d is None else (d.kind, d.hook, d.table, d.chain, d.source),
        rewrite=rw is not None and rw.chain is not None and rw.rule is not None,
        at_probe=o.final_dst == endpoint(probe.packet.dst, probe.packet.dport))


def _class_of(view: DockerView, verdict: Verdict, path: str, *, expected: bool,
              decider: tuple[StepKind, str, str | None, str | None, str | None] | None,
              rewrite: bool, at_probe: bool) -> str:
    """How a probe of a binding ended (``_Verdicts``), from what ``_classify`` reads of its
    outcome: whether it landed where expected, the decider's (kind, hook, table, chain,
    source), whether a nat rule rewrote it, whether it landed at the probe's own destination."""
    if expected:
        if verdict is Verdict.ACCEPT:
            return "served"
        # FORWARD's policy, or the drop policy of a native nft chain on the forward hook (an
        # /etc/nftables.conf next to Docker): nothing accepts the published port there
        if decider is not None:
            kind, hook, _, chain, source = decider
            if (kind is StepKind.POLICY and (
                    chain == "FORWARD" or (source == "nft" and hook == "FORWARD"))) \
                    or (chain is not None and docker_chain(chain)):
                return "dropped"
        return "filtered"  # DOCKER-USER or another rule of the administrator's
    if rewrite:
        return "caught"
    if path == "local" and at_probe:
        return "proxied" if view.proxy and verdict is Verdict.ACCEPT else "unserved"
    return "filtered" if verdict is not Verdict.ACCEPT else "unserved"


def _quiet(view: DockerView, shared: SharedTraces, b: Binding) -> bool:
    """Whether ``_report_binding`` certainly reports nothing for ``b``, decided from the
    probes' shared outcomes (``SharedTraces``): no probe caught by another rule, and the first
    probe served (or filtered by the administrator, or proxied for a loopback binding). False
    when some probe's outcome is not shared: the binding is judged by its own traces."""
    name = b.container.name
    expected = {shared.norm(name, b.family, ip, b.container_port) for ip in b.targets}
    primary = None
    for n, probe in enumerate(view.probes(b)):
        s = shared.real(name, probe.packet)
        if s is None:
            return False
        p = probe.packet
        cls = _class_of(view, s.verdict, s.path, expected=s.final_dst in expected,
                        decider=s.decider, rewrite=s.rewrite,
                        at_probe=s.final_dst == shared.norm(name, b.family, p.dst, p.dport))
        if cls == "caught":
            return False
        if n == 0:
            primary = cls
    return primary is None or primary in ("served", "filtered") or (
        primary == "proxied" and b.loopback)


def _judge(view: DockerView, b: Binding) -> _Verdicts:
    v = _Verdicts()
    for n, probe in enumerate(view.probes(b)):
        outs = outcomes(view.trace(probe.packet))
        if not outs:
            continue  # the outcome rests on assumptions: nothing certain to report
        o = outs[0]
        cls = _classify(view, b, probe, o)
        if n == 0:
            v.primary, v.primary_item = cls, (probe, o)
        if cls == "served":
            v.served.append(probe.source)
            v.reached.append(probe.source)
        elif cls == "proxied":
            v.proxied.append(probe.source)
            v.reached.append(probe.source)
        elif cls == "caught":
            rw = o.rewrite
            if rw is not None and rw.chain is not None and rw.rule is not None:
                key = (rw.source, rw.family, rw.table, rw.chain, rw.rule)
                v.caught.setdefault(key, (rw, []))[1].append((probe, o))
    return v


def _names(sources: list[str]) -> str:
    """``eth0, docker0 and the host``."""
    names = list(dict.fromkeys("the host" if s == "host" else s for s in sources))
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _sources(items: list[tuple[Probe, Outcome]]) -> str:
    return _names([p.source for p, _ in items])


def check_published_ports(ctx: AuditContext) -> Iterator[Finding]:
    """Each published port of each running container, probed from outside, from a neighbour
    container and from the host: ``shadowed`` when an earlier rule catches it before Docker's
    DNAT, ``mismatch`` when the DNAT for the port goes to another address or port, ``missing``
    when no rule serves it (medium when docker-proxy alone does) or FORWARD drops it.

    >>> from natlens.audit._docker_example import container_json, example
    >>> ctx = example('''*nat
    ... :PREROUTING ACCEPT [0:0]
    ... :OUTPUT ACCEPT [0:0]
    ... :DOCKER - [0:0]
    ... -A PREROUTING -i eth0 -p tcp -m tcp --dport 8081 -j REDIRECT --to-ports 3128
    ... -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
    ... -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 172.17.0.3:80
    ... COMMIT
    ... ''', container_json("api", "172.17.0.3", "8081:80"))
    >>> [f.kind for f in check_published_ports(ctx)]
    ['shadowed']
    """
    view = docker_view(ctx)
    if view is None:
        return
    shared = shared_traces(ctx)
    for b in view.bindings():
        if not view.managed(b.family):
            continue  # Docker writes no rules for this family: docker-proxy serves it by design
        if shared is not None and _quiet(view, shared, b):
            continue
        yield from _report_binding(view, b)


def _report_binding(view: DockerView, b: Binding) -> Iterator[Finding]:
    v = _judge(view, b)
    mine = view.docker_rules(b)
    fam = b.family
    for step, items in v.caught.values():
        ref = view.ref(fam, step)
        target = rewrite_kind(step)
        if ref is None or target is None:
            continue
        chain = step.chain or ""
        others = [r for r in mine if (r.table, r.chain, r.index) != (ref.table, chain, ref.index)]
        if not others and is_nft(ref):
            others = _served_by(view, b, v)
        probe, o = items[0]
        lands = o.final_dst
        tail = (f"; from {_names(v.reached)} it still reaches {b.container.name}"
                if v.reached else "")
        if others:
            docker_ref = others[0]
            yield Finding(
                kind="shadowed", severity=Severity.HIGH,
                message=f"{b.label} is caught from {_sources(items)} by {ref.where} "
                        f"({target} to {lands}) before {docker_ref.where} can DNAT "
                        f"it to {', '.join(sorted(b.expected))}{tail}",
                proto=b.proto, host_port=b.host_port, container=b.container.name, rule=ref,
                related=(docker_ref,),
                fix=_delete(ref),
                packet=_packet(probe.packet, o),
            )
        elif _docker_dnat(ref) and target == "DNAT":
            yield Finding(
                kind="mismatch", severity=Severity.HIGH,
                message=f"{b.label} is DNATed by {ref.where} to {lands}, but "
                        f"{b.container.name} is at {', '.join(sorted(b.expected))}",
                proto=b.proto, host_port=b.host_port, container=b.container.name, rule=ref,
                fix=_redirect(ref, sorted(b.expected)[0]) or _delete(ref),
                packet=_packet(probe.packet, o),
            )
        elif not mine:
            yield Finding(
                kind="missing", severity=Severity.HIGH,
                message=f"{b.label} has no DNAT to {b.container.name}; traffic from "
                        f"{_sources(items)} is caught by {ref.where} ({target} to "
                        f"{lands}) instead",
                proto=b.proto, host_port=b.host_port, container=b.container.name, rule=ref,
                packet=_packet(probe.packet, o),
            )
    if v.primary_item is None or v.caught:
        return
    if v.primary in ("unserved", "dropped") and reached_elsewhere(view, b):
        return  # blocked from the probed interface only: the port is not missing
    probe, o = v.primary_item
    src = "the host" if probe.source == "host" else probe.source
    what = ("has no DNAT rule" if not mine else
            f"never reaches Docker's DNAT ({mine[0].where}) from {src}")
    if v.primary == "proxied" and not b.loopback:
        yield Finding(
            kind="missing", severity=Severity.MEDIUM,
            message=f"{b.label} {what}: docker-proxy alone serves it (from "
                    f"{_names(v.proxied)}); the container sees the proxy's address, not the "
                    "client's, and DOCKER-USER never sees the traffic",
            proto=b.proto, host_port=b.host_port, container=b.container.name,
            related=tuple(mine[:1]), cis=CIS_USERLAND_PROXY,
            packet=_packet(probe.packet, o),
        )
    elif v.primary == "unserved":
        yield Finding(
            kind="missing", severity=Severity.HIGH,
            message=f"{b.label} {what} and nothing forwards it: a packet "
                    f"{_describe(probe.packet)} is {_fate(view, fam, o)}"
                    + ("" if view.proxy else " (userland proxy off)"),
            proto=b.proto, host_port=b.host_port, container=b.container.name,
            related=tuple(mine[:1]), packet=_packet(probe.packet, o),
        )
    elif v.primary == "dropped":
        d = o.decider
        blame = view.ref(fam, d) if d is not None else None
        yield Finding(
            kind="missing", severity=Severity.HIGH,
            message=f"{b.label} is DNATed to {o.final_dst}, but FORWARD has no ACCEPT for it: "
                    f"from {src} it is {_fate(view, fam, o)}",
            proto=b.proto, host_port=b.host_port, container=b.container.name, rule=blame,
            related=tuple(mine[:1]),
            fix=_accept_dnat(d, o, b.proto, fam) if d is not None else None,
            packet=_packet(probe.packet, o),
        )


def _served_by(view: DockerView, b: Binding, v: _Verdicts) -> list[RuleRef]:
    """The rules that DNAT ``b``'s probes to the container where no rule caught them (from the
    host, say, when a PREROUTING rule catches the outside probe): Docker's DNAT as the simulator
    met it, for rules ``natlens.correlate`` does not read (native nft tables)."""
    caught = {id(o) for _, items in v.caught.values() for _, o in items}
    for probe in view.probes(b):
        for o in outcomes(view.trace(probe.packet)):
            rw = o.rewrite
            if id(o) in caught or rw is None or o.final_dst not in b.expected:
                continue
            ref = view.ref(b.family, rw)
            if ref is not None:
                return [ref]
    return []


def _docker_dnat(ref: RuleRef) -> bool:
    """Whether ``ref`` sits where Docker writes its DNATs: one of its chains, or (Docker 29's
    nftables backend) its own nft table (``ip docker-bridges``)."""
    if is_nft(ref):
        return docker_chain(ref.chain) or ref.table.partition(" ")[2].startswith("docker")
    return docker_chain(ref.chain)


_NFT_DNAT_TO = re.compile(r"\bdnat ((?:ip6? )?to )\S+")


def _redirect(ref: RuleRef, endpoint: str) -> str | None:
    """``iptables -t nat -R CHAIN N ... --to-destination ENDPOINT``: the DNAT rule at ``ref``
    pointed at the container's real address and port (deleting it would leave the port to
    docker-proxy alone); None when the rule has no ``--to-destination``. For an nft rule,
    ``nft replace rule ... handle N`` with its ``dnat to`` sent to ``ENDPOINT``."""
    if is_nft(ref):
        new, n = _NFT_DNAT_TO.subn(lambda m: f"dnat {m.group(1)}{endpoint}", ref.text, count=1)
        return replace_rule(ref, new) if n else None
    spec = rule_spec(ref)
    if "--to-destination" not in spec[:-1]:
        return None
    i = spec.index("--to-destination")
    return command([tool(ref.family), "-t", ref.table, "-R", ref.chain, str(ref.index),
                    *spec[:i + 1], endpoint, *spec[i + 2:]])


def _accept_dnat(d: Step, o: Outcome, proto: str, family: int) -> str | None:
    """An accept for the DNATed connection ahead of the forward policy that drops it, when that
    policy is not Docker's own chain: a native nft chain (nft(8) ``insert rule``) or the other
    iptables backend's FORWARD. Matching ``ct status dnat`` / ``--ctstate DNAT`` keeps it to
    connections a DNAT rule made; None for Docker's own FORWARD (Docker writes that)."""
    ip, _, port = o.final_dst.rpartition(":")
    ip = ip.strip("[]")
    if d.kind is not StepKind.POLICY or not ip or not is_decimal(port) or o.out_interface is None:
        return None
    if d.source == "nft" and d.family and d.table and d.chain:
        l3 = "ip6" if family == 6 else "ip"
        return command(["nft", "insert", "rule", d.family, d.table, d.chain, "oifname",
                        o.out_interface, l3, "daddr", ip, proto, "dport", port, "ct", "status",
                        "dnat", "accept"])
    if d.source == "iptables-legacy" and d.chain == "FORWARD":
        return command([tool(family, "legacy"), "-t", "filter", "-I", "FORWARD", "-o",
                        o.out_interface, "-d", ip, "-p", proto, "-m", proto, "--dport", port,
                        "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"])
    return None


# -- ineffective -------------------------------------------------------------------------------


def _forward_chains(view: DockerView, family: int) -> list[str]:
    """Filter chains FORWARD reaches that are not Docker's own (FORWARD, DOCKER-USER, ...)."""
    filt = view.ruleset(family).get(TableName.FILTER)
    if filt is None or "FORWARD" not in filt:
        return []
    return _forward_chains_of(filt)


def _ctorig_fix(ref: RuleRef) -> str | None:
    """``iptables -t filter -R CHAIN N ...`` with the rule's ``[-m tcp] --dport P`` replaced by
    ``-m conntrack --ctorigdstport P --ctdir ORIGINAL`` (the port before DNAT,
    iptables-extensions(8) "conntrack"); None when the rule names no plain ``--dport``."""
    spec = rule_spec(ref)
    for i, word in enumerate(spec[:-1]):
        if word != "--dport" or (i and spec[i - 1] == "!"):
            continue
        start = i - 2 if i >= 2 and spec[i - 2] == "-m" and spec[i - 1] in _PORT_MODULES else i
        new = [*spec[:start], "-m", "conntrack", "--ctorigdstport", spec[i + 1],
               "--ctdir", "ORIGINAL", *spec[i + 2:]]
        return command([tool(ref.family), "-t", ref.table, "-R", ref.chain, str(ref.index),
                        *new])
    return None


_PORT_MODULES = frozenset({"tcp", "udp", "sctp"})


def check_docker_user_ports(ctx: AuditContext) -> Iterator[Finding]:
    """Rules in FORWARD's chains (DOCKER-USER above all) written for a published *host* port:
    FORWARD sees the packet only after DNAT, with the container's port, so the rule never applies
    to it (it matches other traffic to that port instead). Decided by simulating the published
    port's packet through the chain. Without a container inventory the DNAT rules stand for
    the published ports (``_docker_user_ports_rules_only``).

    >>> from natlens.audit._docker_example import DOCKER_NAT_8080, container_json, example
    >>> ctx = example(DOCKER_NAT_8080 + '''*filter
    ... :FORWARD DROP [0:0]
    ... :DOCKER-USER - [0:0]
    ... -A FORWARD -j DOCKER-USER
    ... -A FORWARD -o docker0 -j ACCEPT
    ... -A DOCKER-USER -p tcp -m tcp --dport 8080 -j DROP
    ... COMMIT
    ... ''', container_json("web", "172.17.0.2", "8080:80"))
    >>> [f.rule.where for f in check_docker_user_ports(ctx)]
    ['filter DOCKER-USER #1']
    """
    view = docker_view(ctx)
    if view is None:
        yield from _docker_user_ports_rules_only(ctx)
        return
    for family in (4, 6):
        filt = view.ruleset(family).get(TableName.FILTER)
        if filt is None:
            continue
        bindings = [b for b in view.bindings() if b.family == family and not b.loopback]
        if not bindings:
            continue
        by_port = sorted((b.host_port, i) for i, b in enumerate(bindings))
        for chain_name in _forward_chains(view, family):
            for index, rule in enumerate(filt[chain_name].rules, 1):
                yield from _user_port_rule(view, family, chain_name, index, rule,
                                           bindings=bindings, by_port=by_port)


def _user_port_rule(view: DockerView, family: int, chain_name: str, index: int, rule: Rule, *,
                    bindings: list[Binding], by_port: list[tuple[int, int]],
                    ) -> Iterator[Finding]:
    """``by_port``: (host port, position in ``bindings``), sorted: the bindings whose host port
    is in the rule's ranges are found by binary search, then taken in ``bindings`` order."""
    fam = Family.IPV4 if family == 4 else Family.IPV6
    ports = port_set(rule)
    if ports is None or (rule.match("conntrack") is not None and rule.option("--ctorigdstport")):
        return
    proto = rule.protocol.name if rule.protocol is not None and not rule.protocol.negated else None
    hits: list[tuple[Binding, Packet, Outcome]] = []
    named = sorted({i for lo, hi in ports
                    for _, i in by_port[bisect.bisect_left(by_port, (lo, -1)):
                                        bisect.bisect_right(by_port, (hi, len(bindings)))]})
    for b in (bindings[i] for i in named):
        if proto not in (None, b.proto):
            continue
        if any(lo <= b.container_port <= hi for lo, hi in ports):
            continue  # after DNAT the port still matches
        for probe in view.probes(b)[:1]:
            for o in outcomes(view.trace(probe.packet)):
                if o.final_dst not in b.expected or o.path != "forward":
                    continue
                passed = any(s.chain == chain_name and s.table == "filter" for s in o.steps)
                matched = any(s.kind is StepKind.RULE and (s.table, s.chain, s.rule) ==
                              ("filter", chain_name, index) for s in o.steps)
                if passed and not matched:
                    hits.append((b, probe.packet, o))
                    break
    if not hits:
        return
    ref = RuleRef.of(rule, TableName.FILTER, index, fam)
    b, pkt, o = hits[0]
    names = ", ".join(dict.fromkeys(f"{h.container.name}'s {h.host_port}/{h.proto} (seen as "
                                    f"{h.targets[0]}:{h.container_port})" for h, _, _ in hits))
    sev = Severity.MEDIUM if rule.target_name in ("DROP", "REJECT", "ACCEPT") else Severity.LOW
    yield Finding(
        kind="ineffective", severity=sev,
        message=f"written for published host port {b.host_port}/{b.proto}, but FORWARD sees "
                f"{names} only after DNAT: the rule never applies to it (the packet is "
                f"{_fate(view, family, o)}); it hits forwarded traffic whose real destination "
                f"port is {b.host_port} instead",
        proto=b.proto, host_port=b.host_port, container=b.container.name, rule=ref,
        fix=_ctorig_fix(ref), packet=_packet(pkt, o),
    )


_RULES_ONLY_DST = {4: "203.0.113.2", 6: "2001:db8:ffff::2"}
_RULES_ONLY_SRC = {4: "198.51.100.7", 6: "2001:db8:7::7"}


def _docker_user_ports_rules_only(ctx: AuditContext) -> Iterator[Finding]:
    """``check_docker_user_ports`` without a container inventory (rules only, ``report -``):
    each nat DNAT rule with one ``--dport`` (the published port) and a ``--to-destination``
    port (the container's) stands for a binding. A FORWARD-reachable filter rule naming the
    published port but not the container's is reported when the simulated packet (from an
    outside interface to that port) is DNATed by that very rule and passes the filter chain
    without the rule matching it. Rules matching ``--ctorigdstport`` are right and skipped."""
    sim = ctx.simulator if isinstance(ctx.simulator, Simulator) else ctx.snapshot.simulator
    for family in (4, 6):
        fam = Family.IPV4 if family == 4 else Family.IPV6
        rules = ctx.snapshot.rules_for(fam)
        nat, filt = rules.get(TableName.NAT), rules.get(TableName.FILTER)
        if nat is None or filt is None or "FORWARD" not in filt:
            continue
        dnats: list[tuple[str, int, int, int, str, Rule]] = []
        for chain in nat.chains:
            for index, rule in enumerate(chain.rules, 1):
                ports = port_set(rule)
                target = dnat_target(rule, family) if rule.target_name == "DNAT" else None
                proto = rule.protocol.name if rule.protocol is not None and \
                    not rule.protocol.negated else None
                if target is None or target[1] is None or ports is None or len(ports) != 1 \
                        or ports[0][0] != ports[0][1] or proto not in ("tcp", "udp", "sctp"):
                    continue
                dnats.append((chain.name, index, ports[0][0], target[1],
                              endpoint(target[0], target[1]), rule))
        chains = _forward_chains_of(filt)
        for chain_name in chains:
            for index, rule in enumerate(filt[chain_name].rules, 1):
                yield from _rules_only_rule(sim, family, chain_name, index, rule, dnats=dnats)


def _outside_end(host: Host, family: int) -> tuple[str, ipaddress.IPv4Address
                                                   | ipaddress.IPv6Address]:
    """(interface, address) a probe from another host arrives on: the first non-loopback,
    non-bridge interface with a global address of ``family`` (``--host-addr``, ``--iface``,
    ip-addr.json), else ``eth0`` at the documentation address ``_RULES_ONLY_DST``."""
    for name, addrs in host.addresses.items():
        if name == "lo" or name in host.bridges or name.startswith(("docker", "br-")):
            continue
        for a in addrs:
            if a.ip.version == family and not a.ip.is_loopback and not a.ip.is_link_local:
                return name, a.ip
    return "eth0", ipaddress.ip_address(_RULES_ONLY_DST[family])


def _forward_chains_of(filt: Table) -> list[str]:
    """Filter chains FORWARD reaches that are not Docker's own (``_forward_chains``)."""
    seen: list[str] = []
    todo = ["FORWARD"]
    while todo:
        name = todo.pop(0)
        if name in seen or name not in filt:
            continue
        seen.append(name)
        for rule in filt[name].rules:
            t = rule.target_name
            if rule.jumps_to_chain and t is not None and not docker_chain(t):
                todo.append(t)
    return seen


def _rules_only_rule(sim: Simulator, family: int, chain_name: str, index: int, rule: Rule, *,
                     dnats: list[tuple[str, int, int, int, str, Rule]]) -> Iterator[Finding]:
    """One filter rule against the DNAT rules ``dnats``: (nat chain, index, host port,
    container port, ``IP:PORT`` target, rule)."""
    fam = Family.IPV4 if family == 4 else Family.IPV6
    ports = port_set(rule)
    if ports is None or (rule.match("conntrack") is not None and rule.option("--ctorigdstport")):
        return
    proto = rule.protocol.name if rule.protocol is not None and not rule.protocol.negated else None
    for nat_chain, nat_index, host_port, container_port, target, dnat in dnats:
        dproto = dnat.protocol.name if dnat.protocol is not None else None
        if proto not in (None, dproto) or dproto is None:
            continue
        if not any(lo <= host_port <= hi for lo, hi in ports) or \
                any(lo <= container_port <= hi for lo, hi in ports):
            continue
        iface, dst = _outside_end(sim.host, family)
        packet = Packet(in_interface=iface, src=ipaddress.ip_address(_RULES_ONLY_SRC[family]),
                        dst=dst, proto=dproto, sport=40000, dport=host_port)
        trace = sim.trace(packet)
        # rules-only input cannot tell the host's addresses: a branch that assumes the probe's
        # destination is the host's own (addrtype LOCAL) is the very premise of a published port
        ways = [Outcome(b.verdict, b.path.value, b.final_dst, b.out_interface, b.steps)
                for b in trace.branches] if trace.branches else outcomes(trace)
        for o in ways:
            dnatted = any(s.kind is StepKind.RULE and (s.table, s.chain, s.rule) ==
                          ("nat", nat_chain, nat_index) for s in o.steps)
            passed = any(s.chain == chain_name and s.table == "filter" for s in o.steps)
            matched = any(s.kind is StepKind.RULE and (s.table, s.chain, s.rule) ==
                          ("filter", chain_name, index) for s in o.steps)
            if o.path != "forward" or o.final_dst != target or not dnatted or not passed \
                    or matched:
                continue
            ref = RuleRef.of(rule, TableName.FILTER, index, fam)
            nat_ref = RuleRef.of(dnat, TableName.NAT, nat_index, fam)
            sev = Severity.MEDIUM if rule.target_name in ("DROP", "REJECT", "ACCEPT") else (
                Severity.LOW)
            yield Finding(
                kind="ineffective", severity=sev,
                message=f"written for published host port {host_port}/{dproto}, but "
                        f"{nat_ref.where} DNATs it to {target} and FORWARD sees the packet "
                        f"only after DNAT, with port {container_port}: the rule never applies "
                        f"to it; it hits forwarded traffic whose real destination port is "
                        f"{host_port} instead (ports read from the DNAT rule: no container "
                        "inventory)",
                proto=dproto, host_port=host_port, rule=ref, related=(nat_ref,),
                fix=_ctorig_fix(ref), packet=_packet(packet, o),
            )
            return


def check_unknown_interfaces(ctx: AuditContext) -> Iterator[Finding]:
    """Rules whose ``-i``/``-o`` names an interface the host does not have (one finding per
    interface, the first rule to blame and the others related). Only when the snapshot lists the
    host's interfaces (``ip-addr.json``); Docker's bridges count as present. Needs no Docker
    data.

    >>> from natlens.audit._docker_example import example
    >>> ctx = example('''*filter
    ... :INPUT ACCEPT [0:0]
    ... -A INPUT -i wg0 -p udp -m udp --dport 51820 -j ACCEPT
    ... COMMIT
    ... ''')
    >>> [f.message for f in check_unknown_interfaces(ctx)]  # doctest: +ELLIPSIS
    ['1 rule matches interface wg0, which the host does not have...']
    """
    view = docker_view(ctx)
    host = view.host if view is not None else Host.from_snapshot(ctx.snapshot)
    if not host.known_addresses:
        return
    present = set(host.interfaces) | set(host.bridges) | set(host.masters)
    if view is not None:
        present |= view.bridges
    for rs in ctx.rulesets():
        by_iface: dict[str, list[RuleRef]] = {}
        for table in rs.tables:
            for chain in table.chains:
                for index, rule in enumerate(chain.rules, 1):
                    for iface in (rule.in_interface, rule.out_interface):
                        if iface is None or iface.negated:
                            continue
                        name = iface.name
                        known = (any(p.startswith(name[:-1]) for p in present)
                                 if name.endswith("+") else name in present)
                        if not known:
                            refs = by_iface.setdefault(name, [])
                            ref = RuleRef.of(rule, table.name, index, rs.family)
                            if ref not in refs:
                                refs.append(ref)
        for name, refs in by_iface.items():
            n = len(refs)
            yield Finding(
                kind="ineffective", severity=Severity.LOW,
                message=f"{n} rule{'' if n == 1 else 's'} match{'es' if n == 1 else ''} "
                        f"interface {name}, which the host does not have (not in ip-addr.json): "
                        "they never see a packet until it appears",
                rule=refs[0], related=tuple(refs[1:]),
            )
