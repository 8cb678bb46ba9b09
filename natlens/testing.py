"""Assertions for firewall tests: does a packet reach a container, is it dropped, is a port
really published, is the audit clean?

Each question has a ``check_*`` function that returns an ``Explanation`` (``ok`` and the text
saying why or why not) and an ``assert_*`` wrapper that raises ``AssertionError`` with that
text, so "does it hold" and "why not" come from one code path. The text shows the packet, the
rule that decided (``table:chain#index (file:line)`` and the rule as iptables-save prints it),
where the packet went instead, and the numbered trace::

    from natlens.testing import assert_reaches

    def test_web(natlens_snapshot):
        snap = natlens_snapshot("fixtures/default-bridge-8080")
        assert_reaches(snap, {"in_interface": "eth0", "src": "198.51.100.7",
                              "dst": "192.0.2.2", "dport": 8080}, "172.17.0.2:80")

Nothing here needs pytest; the natlens pytest plugin adds fixtures and explains failed
``trace == trace`` comparisons with ``diff_traces``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from natlens.docker import Container, PublishedPort
from natlens.errors import UsageError, did_you_mean
from natlens.explain import proxy_notes
from natlens.inputs import is_decimal
from natlens.model import Family, Rule
from natlens.netfilter import Branch, Packet, Step, StepKind, Trace, Verdict, simulate
from natlens.netfilter.flow import MatchContext
from natlens.netfilter.matches import mismatches
from natlens.netfilter.packet import endpoint
from natlens.serialize import rule_to_save
from natlens.snapshot import Snapshot, load

if TYPE_CHECKING:
    from natlens.audit import Severity

__all__ = [
    "Explanation",
    "assert_dropped",
    "assert_no_findings",
    "assert_published",
    "assert_reaches",
    "check_dropped",
    "check_no_findings",
    "check_published",
    "check_reaches",
    "diff_traces",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SnapshotLike = Snapshot | str | os.PathLike[str]
PacketLike = Packet | Mapping[str, Any]

OUTSIDE_SOURCE = {4: "198.51.100.7", 6: "2001:db8::7"}
"""Where ``check_published``'s packet comes from by default (documentation addresses)."""

_DNAT_TARGETS = frozenset({"DNAT", "REDIRECT", "NETMAP"})
_MAX_CANDIDATES = 5


@dataclass(frozen=True, slots=True)
class Explanation:
    """The answer of a ``check_*`` function: ``ok`` and the text saying why (or why not).

    Truthy when the check holds; ``str()`` gives the text ``assert_*`` raises with.
    """

    ok: bool
    text: str
    trace: Trace | None = None

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return self.text


# -- inputs -------------------------------------------------------------------------------------


def _snapshot(snap: SnapshotLike) -> Snapshot:
    return snap if isinstance(snap, Snapshot) else load(Path(snap))


_PACKET_FIELDS = ("src", "dst", "proto", "in_interface", "local_origin", "sport", "dport",
                  "icmp_type", "state", "mark")


def _packet(packet: PacketLike) -> Packet:
    if isinstance(packet, Packet):
        return packet
    if not isinstance(packet, Mapping):
        raise UsageError(f"a packet is a natlens.Packet or a mapping of its fields, not "
                         f"{type(packet).__name__}")
    for key in packet:
        if key not in _PACKET_FIELDS:
            raise UsageError(f"unknown packet field {key!r}{did_you_mean(str(key), _PACKET_FIELDS)}"
                             f" (fields: {', '.join(_PACKET_FIELDS)})")
    return Packet(**packet)


@dataclass(frozen=True, slots=True)
class _Dest:
    """An expected destination: an address and, optionally, a port."""

    ip: IPAddress
    port: int | None

    def covers(self, final_dst: str) -> bool:
        """Whether a trace's ``final_dst`` is this destination; a port NAT draws at random
        (``IP:LOW-HIGH``) covers a port only when the range is that one port."""
        head, sep, tail = final_dst.rpartition(":")
        if sep and "-" in tail:
            low, _, high = tail.partition("-")
            ip, _ = _split_endpoint(head if head.startswith("[") or "." in head
                                    else final_dst)
            return ip == self.ip and (self.port is None or low == high == str(self.port))
        ip, port = _split_endpoint(final_dst)
        return ip == self.ip and (self.port is None or port == self.port)

    def __str__(self) -> str:
        return endpoint(self.ip, self.port)


def _split_endpoint(text: str) -> tuple[IPAddress, int | None]:
    """``IP:PORT``, ``[IPv6]:PORT`` or a bare address → (address, port or None)."""
    text = text.strip()
    port_text: str | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise UsageError(f"bad destination {text!r}: expected [IPv6]:PORT")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"bad destination {text!r}: {host!r} is not an IP address (expected "
                         "IP:PORT, [IPv6]:PORT or an address)") from None
    if port_text is None:
        return ip, None
    if not is_decimal(port_text) or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"bad destination {text!r}: port {port_text!r} is not 0..65535")
    return ip, int(port_text)


def _dest(text: object) -> _Dest:
    return _Dest(*_split_endpoint(str(text)))


# -- reading a trace ----------------------------------------------------------------------------


def _outcomes(trace: Trace) -> tuple[Branch, ...]:
    """Every outcome of the trace (one, unless statistic or uncertain matches forked it)."""
    if trace.branches:
        return trace.branches
    return (Branch(1.0, trace.verdict, trace.path, trace.final_dst, trace.final_src,
                   trace.out_interface, trace.steps),)


def _chance(branch: Branch) -> str:
    """``p=0.5 `` for a branch a chance decided (``Branch.chance``), ``doubt: `` for a branch
    of doubt alone, which has no probability (docs/api.md)."""
    return "doubt: " if branch.chance is None else f"p={branch.chance:.4g} "


def _step_line(step: Step) -> str:
    """``filter:DOCKER#1 (file:line)  -A DOCKER ...``; policies and notes in words."""
    if step.kind is StepKind.RULE:
        where = f" ({step.where})" if step.where else ""
        return f"{step.table}:{step.chain}#{step.rule}{where}  {step.text}"
    if step.kind is StepKind.POLICY:
        return f"{step.table}:{step.chain} policy {step.target} (no rule of the chain decided)"
    if step.kind is StepKind.RETURN:
        return f"{step.table}:{step.chain} end of chain, return"
    return f"{step.hook}: {step.text}"


def _decisive(steps: Sequence[Step], verdict: Verdict) -> Step | None:
    """The step that decided the verdict: the dropping rule (or policy, or routing note), or for
    an accepted packet the last filter-table ACCEPT (rule or policy), else the last ACCEPT."""
    if verdict is not Verdict.ACCEPT:
        return steps[-1] if steps else None
    accepts = [s for s in steps if s.kind is StepKind.POLICY
               or (s.kind is StepKind.RULE and s.target == "ACCEPT")]
    filtering = [s for s in accepts if s.table == "filter"]
    if filtering:
        return filtering[-1]
    return accepts[-1] if accepts else None


def _rewrite(steps: Sequence[Step]) -> Step | None:
    """The last rule that rewrote the destination (DNAT, REDIRECT, NETMAP before routing)."""
    found = [s for s in steps if s.kind is StepKind.RULE and s.target in _DNAT_TARGETS
             and s.hook in ("PREROUTING", "OUTPUT")]
    return found[-1] if found else None


def _where_to(b: Branch) -> str:
    via = f" via {b.out_interface}" if b.out_interface else ""
    return f"{b.final_dst} ({b.verdict.value}, path {b.path.value}{via})"


def _decided_lines(b: Branch, indent: str) -> list[str]:
    lines = []
    decisive = _decisive(b.steps, b.verdict)
    what = "accepted by" if b.verdict is Verdict.ACCEPT else (
        "dropped by" if b.verdict is Verdict.DROP else "rejected by")
    if decisive is None:
        lines.append(f"{indent}{what}: no rule (no rule or policy met the packet)")
    else:
        lines.append(f"{indent}{what}: {_step_line(decisive)}")
    rewrite = _rewrite(b.steps)
    if rewrite is not None:
        detail = f"  [{rewrite.detail}]" if rewrite.detail else ""
        lines.append(f"{indent}destination set by: {_step_line(rewrite)}{detail}")
    else:
        lines.append(f"{indent}destination set by: no rule (no DNAT/REDIRECT matched: "
                     "destination unchanged)")
    if b.assumed:
        lines.append(f"{indent}assuming: {'; '.join(b.assumed)}")
    return lines


def _trace_block(trace: Trace) -> list[str]:
    return ["trace:", *(f"  {line}" for line in str(trace).split("\n"))]


# -- why not: the rules that would have sent the packet there ------------------------------------


def _address_range_covers(text: str, ip: IPAddress) -> bool:
    low, _, high = text.replace("[", "").replace("]", "").partition("-")
    try:
        lo = ipaddress.ip_address(low)
        hi = ipaddress.ip_address(high) if high else lo
    except ValueError:
        return False
    if not lo.version == hi.version == ip.version:
        return False
    return int(lo) <= int(ip) <= int(hi)


def _port_range_covers(text: str, port: int) -> bool:
    low, _, high = text.partition("-")
    if not is_decimal(low) or not is_decimal(high or low):
        return False
    return int(low) <= port <= int(high or low)


def _dnat_covers(rule: Rule, dests: Sequence[_Dest]) -> bool:
    """Whether ``rule`` DNATs to one of ``dests`` (first address/port range of
    ``--to-destination``, as iptables-extensions(8) writes it)."""
    target = rule.target
    if target is None or target.name != "DNAT":
        return False
    option = target.get("--to-destination")
    if option is None:
        return False
    value = option.value
    ports: str | None = None
    if value.startswith("["):
        addrs, _, rest = value[1:].partition("]")
        ports = rest[1:] if rest.startswith(":") else None
    elif value.count(":") == 1:
        addrs, ports = value.split(":")
    else:
        addrs = value
    ports = ports.partition("/")[0] if ports else None
    for d in dests:
        if not _address_range_covers(addrs, d.ip):
            continue
        if d.port is None or ports is None or _port_range_covers(ports, d.port):
            return True
    return False


def _why_not(snap: Snapshot, packet: Packet, dests: Sequence[_Dest], fired: set[tuple[
        str | None, str | None, int | None]]) -> list[str]:
    """The DNAT rules that send traffic to ``dests``, each with why it did not catch
    ``packet`` (``natlens.netfilter.mismatches``, the simulator's own reasons)."""
    nat = snap.rules_for(_family(packet)).get("nat")
    if nat is None:
        return [f"  no nat table: no rule sends traffic to {_names(dests)}"]
    hook = "OUTPUT" if packet.local_origin else "PREROUTING"
    host = snap.host
    found: list[str] = []
    total = 0
    for chain in nat.chains:
        for index, rule in enumerate(chain.rules, 1):
            if not _dnat_covers(rule, dests):
                continue
            total += 1
            if total > _MAX_CANDIDATES:
                continue
            where = f" ({rule.origin.source}:{rule.origin.line})" if rule.origin else ""
            found.append(f"  nat:{chain.name}#{index}{where}  {rule_to_save(rule, counters=False)}")
            if ("nat", chain.name, index) in fired:
                found.append("    matched (see the trace), but a later rule changed the outcome")
                continue
            ctx = MatchContext(host, chain.name if chain.builtin else hook, "nat")
            reasons = mismatches(rule, packet, ctx)
            if reasons:
                found.extend(f"    why not: {r}" for r in reasons)
            else:
                found.append("    matches this packet on its own, but the packet never got to it "
                             "(its chain was not entered, or an earlier rule decided)")
    if total == 0:
        return [f"  no DNAT rule sends traffic to {_names(dests)}"]
    if total > _MAX_CANDIDATES:
        found.append(f"  ... and {total - _MAX_CANDIDATES} more")
    return [f"rules that DNAT to {_names(dests)}:", *found]


def _names(dests: Sequence[_Dest]) -> str:
    return " or ".join(str(d) for d in dests)


def _family(packet: Packet) -> Family:
    return Family.IPV6 if packet.family == 6 else Family.IPV4


# -- reaches / dropped --------------------------------------------------------------------------


def _reaches(snap: Snapshot, packet: Packet, dests: Sequence[_Dest], all_branches: bool,
             label: str | None = None) -> Explanation:
    trace = simulate(snap, packet)
    outcomes = _outcomes(trace)
    hits = [b.verdict is Verdict.ACCEPT and any(d.covers(b.final_dst) for d in dests)
            for b in outcomes]
    ok = all(hits) if all_branches else any(hits)
    target = label or _names(dests)
    lines = [f"{packet!r} {'reaches' if ok else 'does not reach'} {target}"]
    if len(outcomes) == 1:
        b = outcomes[0]
        if ok or not any(d.covers(b.final_dst) for d in dests):
            lines.append(f"  it went to {_where_to(b)}{'' if ok else ' instead'}")
        else:
            lines.append(f"  it was headed there but not accepted: {_where_to(b)}")
        lines.extend(_decided_lines(b, "  "))
    else:
        need = "every branch" if all_branches else "at least one branch"
        lines.append(f"  {len(outcomes)} branches, {need} must reach {target}:")
        for n, (b, hit) in enumerate(zip(outcomes, hits, strict=True), 1):
            lines.append(f"  {n}. {_chance(b)}to {_where_to(b)}: "
                         f"{'reaches' if hit else 'MISSES'}")
            lines.extend(_decided_lines(b, "       "))
    if not ok and not any(any(d.covers(b.final_dst) for d in dests) for b in outcomes):
        fired = {(s.table, s.chain, s.rule) for b in outcomes for s in b.steps}
        lines.extend(_why_not(snap, packet, dests, fired))
    lines.extend(f"note: {n}" for n in proxy_notes(snap, trace))
    lines.extend(_trace_block(trace))
    return Explanation(ok, "\n".join(lines), trace)


def check_reaches(snap: SnapshotLike, packet: PacketLike, destination: str, *,
                  all_branches: bool = True) -> Explanation:
    """Is ``packet`` accepted with final destination ``destination``?

    ``destination`` is ``IP:PORT``, ``[IPv6]:PORT`` or a bare address (any port). When
    statistic or uncertain matches fork the trace, ``all_branches`` says whether every branch
    must get there (default) or one is enough.
    """
    return _reaches(_snapshot(snap), _packet(packet), (_dest(destination),), all_branches)


def assert_reaches(snap: SnapshotLike, packet: PacketLike, destination: str, *,
                   all_branches: bool = True) -> None:
    """Assert ``check_reaches``: the packet is accepted and ends up at ``destination``."""
    __tracebackhide__ = True
    result = check_reaches(snap, packet, destination, all_branches=all_branches)
    if not result.ok:
        raise AssertionError(result.text)


def check_dropped(snap: SnapshotLike, packet: PacketLike, *,
                  all_branches: bool = True) -> Explanation:
    """Is ``packet`` dropped or rejected (in every branch, or in one with
    ``all_branches=False``)?"""
    snapshot, pkt = _snapshot(snap), _packet(packet)
    trace = simulate(snapshot, pkt)
    outcomes = _outcomes(trace)
    hits = [b.verdict is not Verdict.ACCEPT for b in outcomes]
    ok = all(hits) if all_branches else any(hits)
    lines = [f"{pkt!r} {'is dropped' if ok else 'is not dropped'}"]
    if len(outcomes) == 1:
        b = outcomes[0]
        lines.append(f"  {b.verdict.value}" + ("" if ok else f": it goes to {_where_to(b)}"))
        lines.extend(_decided_lines(b, "  "))
    else:
        need = "every branch" if all_branches else "at least one branch"
        lines.append(f"  {len(outcomes)} branches, {need} must drop it:")
        for n, (b, hit) in enumerate(zip(outcomes, hits, strict=True), 1):
            lines.append(f"  {n}. {_chance(b)}{_where_to(b)}: "
                         f"{'dropped' if hit else 'NOT DROPPED'}")
            lines.extend(_decided_lines(b, "       "))
    lines.extend(f"note: {n}" for n in proxy_notes(snapshot, trace))
    lines.extend(_trace_block(trace))
    return Explanation(ok, "\n".join(lines), trace)


def assert_dropped(snap: SnapshotLike, packet: PacketLike, *, all_branches: bool = True) -> None:
    """Assert ``check_dropped``: the verdict is DROP or REJECT."""
    __tracebackhide__ = True
    result = check_dropped(snap, packet, all_branches=all_branches)
    if not result.ok:
        raise AssertionError(result.text)


# -- published ----------------------------------------------------------------------------------


def _port_spec(port: int | str) -> tuple[int, str]:
    """``8080``, ``"8080"`` or ``"8080/udp"`` → (8080, proto)."""
    text = str(port)
    number, _, proto = text.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise UsageError(f"bad port {port!r}: protocol {proto!r} is not tcp, udp or sctp")
    if isinstance(port, bool) or not is_decimal(number) or not 0 < int(number) <= 65535:
        raise UsageError(f"bad port {port!r}: expected a port number 1..65535, optionally with "
                         "/tcp, /udp or /sctp")
    return int(number), proto


def _find_container(snap: Snapshot, name: str) -> Container | str:
    inventory = snap.inventory
    if inventory is None:
        return (f"{snap.path} has no Docker data (docker-containers.json): natlens cannot tell "
                "what containers publish")
    found = inventory.container(name)
    if found is None and len(name) >= 4:
        by_id = [c for c in inventory.containers if c.id.startswith(name)]
        found = by_id[0] if len(by_id) == 1 else None
    if found is not None:
        return found
    names = [c.name for c in inventory.containers]
    return (f"no container {name!r} in {snap.path}{did_you_mean(name, names)} "
            f"(containers: {', '.join(names) or 'none'})")


def _outside(snap: Snapshot, binding: PublishedPort | None, *, family: int, src: str | None,
             in_interface: str | None, dst: str | None) -> tuple[Packet | None, str]:
    """The packet from outside to the host port, or None and why it cannot be made."""
    host = snap.host
    source = ipaddress.ip_address(src or OUTSIDE_SOURCE[family])
    iface = in_interface
    if iface is None:  # where replies to ``src`` leave: the route to it, else a default route
        route = host.route(source)
        defaults = [r for r in (*host.routes, *host.routes6) if r.network.prefixlen == 0]
        if (route is None or route.dev is None) and defaults:
            route = defaults[0]
        iface = route.dev if route is not None else None
    address: IPAddress | None = None
    if dst is not None:
        address = ipaddress.ip_address(dst.strip("[]"))
    elif (binding is not None and binding.host_ip is not None
          and not binding.host_ip.is_unspecified and not binding.host_ip.is_loopback
          and binding.host_ip.version == family):
        address = binding.host_ip
    else:
        address = host.primary_address(iface, family)
    if iface is None or address is None:
        return None, (f"the host's outside {'interface' if iface is None else 'address'} is "
                      f"unknown (the snapshot lacks ip-addr.json/ip-route.json): pass "
                      f"in_interface= and dst=")
    return Packet(in_interface=iface, src=source, dst=address, proto="tcp"), ""


def check_published(snap: SnapshotLike, container: str, port: int | str, *, family: int = 4,
                    src: str | None = None, in_interface: str | None = None,
                    dst: str | None = None) -> Explanation:
    """Does ``container`` (name or id) publish host port ``port`` (``8080`` or ``"8080/udp"``),
    and does a packet from outside to that host port reach the container's port?

    The packet comes from ``src`` (default 198.51.100.7, or 2001:db8::7 with ``family=6``) on
    the interface the host routes ``src`` through, to the binding's host address or else that
    interface's address; ``in_interface`` and ``dst`` override them. A port published on
    loopback only is not reachable from outside and fails.
    """
    snapshot = _snapshot(snap)
    host_port, proto = _port_spec(port)
    if family not in (4, 6):
        raise UsageError(f"family must be 4 or 6, not {family!r}")
    spec = f"{host_port}/{proto}"
    found = _find_container(snapshot, container)
    if isinstance(found, str):
        return Explanation(False, f"{container} does not publish {spec}: {found}")
    bindings = [b for b in found.ports if b.proto.value == proto and host_port in b.host_ports]
    usable = [b for b in bindings if b.host_ip is None
              or (b.host_ip.version == family and not b.host_ip.is_loopback)]
    head: list[str] = []
    problems: list[str] = []
    published = ", ".join(str(b) for b in found.ports) or "nothing"
    if not found.running:
        problems.append(f"{found.name} is {found.state}: Docker has set up no rules for it")
    if not bindings:
        problems.append(f"Docker lists no binding of host port {spec} (it publishes "
                        f"{published})")
        by_container = [b for b in found.ports if b.container_port == host_port
                        and b.proto.value == proto]
        if by_container:
            problems.append(f"{spec} is its container port; the host port is "
                            f"{by_container[0].host_start}")
    elif not usable:
        problems.append(f"{found.name} publishes {spec} only as "
                        f"{', '.join(str(b) for b in bindings)}: not on an IPv{family} address "
                        "reachable from outside")
    candidates = usable or bindings
    binding = candidates[0] if candidates else None
    addresses = [a for a in found.addresses if a.version == family]
    if not addresses:
        problems.append(f"{found.name} has no IPv{family} address")
        return Explanation(False, "\n".join([f"{found.name} does not publish {spec}",
                                             *(f"  {p}" for p in problems)]))
    packet, why = _outside(snapshot, binding, family=family, src=src,
                           in_interface=in_interface, dst=dst)
    if packet is None:
        problems.append(why)
        return Explanation(False, "\n".join([f"{found.name} does not publish {spec}",
                                             *(f"  {p}" for p in problems)]))
    packet = Packet(in_interface=packet.in_interface, src=packet.src, dst=packet.dst,
                    proto=proto, dport=host_port)
    container_port = binding.container_port if binding is not None else None
    dests = tuple(_Dest(a, container_port) for a in addresses)
    label = f"{found.name} ({_names(dests)})"
    reach = _reaches(snapshot, packet, dests, True, label)
    ok = reach.ok and not problems
    if ok:
        head.append(f"{found.name} publishes {spec} ({binding}) and a packet from outside "
                    "reaches it")
    elif not problems:
        head.append(f"{found.name} publishes {spec} ({binding}) according to Docker, but a "
                    "packet from outside does not reach it")
    else:
        head.append(f"{found.name} does not publish {spec}")
        head.extend(f"  {p}" for p in problems)
    return Explanation(ok, "\n".join([*head, reach.text]), reach.trace)


def assert_published(snap: SnapshotLike, container: str, port: int | str, *, family: int = 4,
                     src: str | None = None, in_interface: str | None = None,
                     dst: str | None = None) -> None:
    """Assert ``check_published``: Docker says the port is published and the rules agree."""
    __tracebackhide__ = True
    result = check_published(snap, container, port, family=family, src=src,
                             in_interface=in_interface, dst=dst)
    if not result.ok:
        raise AssertionError(result.text)


# -- audit --------------------------------------------------------------------------------------


def _severity(value: Severity | str) -> Severity:
    from natlens.audit import Severity  # noqa: PLC0415  (the audit is heavier than the rest)

    if isinstance(value, Severity):
        return value
    names = [s.value for s in Severity]
    text = str(value).lower()
    if text not in names:
        raise UsageError(f"unknown severity {value!r}{did_you_mean(text, names)} "
                         f"(one of {', '.join(names)})")
    return Severity(text)


def check_no_findings(snap: SnapshotLike, min_severity: Severity | str = "medium", *,
                      ignore: Iterable[str] = ()) -> Explanation:
    """Does the audit find nothing at or above ``min_severity`` (kinds in ``ignore`` aside)?"""
    from natlens.audit import KINDS, audit  # noqa: PLC0415
    from natlens.report import to_table  # noqa: PLC0415

    snapshot = _snapshot(snap)
    threshold = _severity(min_severity)
    skip = frozenset(ignore)
    for kind in skip - set(KINDS):
        raise UsageError(f"unknown finding kind {kind!r}{did_you_mean(kind, KINDS)}")
    found = [f for f in audit(snapshot) if f.severity >= threshold and f.kind not in skip]
    where = f"{snapshot.path}: "
    if not found:
        return Explanation(True, f"{where}no findings at or above {threshold.value}")
    count = f"{len(found)} finding{'' if len(found) == 1 else 's'}"
    lines = [f"{where}{count} at or above {threshold.value}"]
    for f in found:
        lines.append(f"  {f}")
        if f.rule is not None and f.rule.index:
            at = f" ({f.rule.source}:{f.rule.line})" if f.rule.source and f.rule.line else ""
            lines.append(f"    rule {f.rule.table}:{f.rule.chain}#{f.rule.index}{at}  "
                         f"{f.rule.text}")
    lines.append("")
    lines.append(to_table(found).rstrip("\n"))
    return Explanation(False, "\n".join(lines))


def assert_no_findings(snap: SnapshotLike, min_severity: Severity | str = "medium", *,
                       ignore: Iterable[str] = ()) -> None:
    """Assert ``check_no_findings``; the failure shows the findings table."""
    __tracebackhide__ = True
    result = check_no_findings(snap, min_severity, ignore=ignore)
    if not result.ok:
        raise AssertionError(result.text)


# -- comparing traces ---------------------------------------------------------------------------


_RESULT_FIELDS = ("verdict", "path", "final_dst", "final_src", "out_interface", "branches",
                  "uncertain", "assumptions")


def diff_traces(left: Trace, right: Trace) -> list[str]:
    """Where two traces part: the packets, the first differing step, then the outcomes.

    The pytest plugin shows these lines for a failed ``assert trace == other``.
    """
    lines: list[str] = []
    if left.packet != right.packet:
        lines.append(f"packets differ: {left.packet!r} != {right.packet!r}")
    for n, (a, b) in enumerate(zip(left.steps, right.steps, strict=False), 1):
        if a != b:
            lines.append(f"first difference at step {n}:")
            lines.append(f"  left:  {_step_line(a)}" + (f"  [{a.detail}]" if a.detail else ""))
            lines.append(f"  right: {_step_line(b)}" + (f"  [{b.detail}]" if b.detail else ""))
            break
    else:
        if len(left.steps) != len(right.steps):
            shorter = min(len(left.steps), len(right.steps))
            side, longer = ("left", left) if len(left.steps) > shorter else ("right", right)
            lines.append(f"the first {shorter} steps agree; {side} goes on with step "
                         f"{shorter + 1}: {_step_line(longer.steps[shorter])}")
    for name in _RESULT_FIELDS:
        a_value, b_value = getattr(left, name), getattr(right, name)
        if a_value == b_value:
            continue
        if name == "branches":
            lines.append(f"branches differ: {len(a_value)} != {len(b_value)} "
                         f"({'; '.join(x.summary() for x in a_value) or 'none'} vs "
                         f"{'; '.join(x.summary() for x in b_value) or 'none'})")
        else:
            shown = [v.value if isinstance(v, Enum) else v for v in (a_value, b_value)]
            lines.append(f"{name}: {shown[0]!r} != {shown[1]!r}")
    return lines

