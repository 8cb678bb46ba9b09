"""Rules written for a published *host* port in a place that never sees it (kind ``ineffective``).

A published port's packet is DNATed in PREROUTING and forwarded: INPUT never sees it, and every
forward-hook rule sees the container's address and port. Two checks, decided by simulation on
the exposure map's cells (iptables, either backend, and native nftables alike):

* ``check_input_allows``: an ACCEPT in INPUT (iptables, or an nft chain on the input hook, e.g.
  ``ufw allow 8080``, ``tcp dport 8080 accept``) for a published port: the cell's packet, run
  again with the DNAT rules it met deleted, is accepted by that rule; the real packet never
  meets it. Medium (with a fix deleting it) when FORWARD refuses the port and no cell of the
  map meets the rule (it opens nothing); low when FORWARD accepts the port anyway (deleting
  it would not close the port) or when other cells meet it (docker-proxy, containers).
  A DROP/REJECT in INPUT for a published port is ``bypass`` (natlens.audit.exposure).
* ``check_nft_forward_ports``: a native nft rule on the forward hook matching the host port
  (``tcp dport 8080 drop``): a packet routed to the container's address with the host port
  meets it, the published port's packet (container port after DNAT) does not. The nft
  counterpart of ``check_docker_user_ports`` (iptables' DOCKER-USER).

Semantics: iptables-extensions(8) "conntrack" (``--ctorigdstport``), nft(8) "CONNTRACK
EXPRESSIONS" (``ct original proto-dst``), net/ipv4/ip_input.c / ip_forward.c (a DNATed packet
to a container takes the forward path).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import replace

from natlens.audit._docker_view import (
    DockerView,
    Outcome,
    SharedTraces,
    docker_view,
    exposure_map,
    outcomes,
    shared_traces,
)
from natlens.audit.docker_checks import _describe, _fate, _packet
from natlens.audit.findings import AuditContext, Finding, RuleRef, Severity
from natlens.audit.fixes import command, delete_spec
from natlens.audit.nft_refs import rewrite_kind
from natlens.correlate import Binding, port_set
from natlens.exposure import Cell
from natlens.inputs import is_decimal
from natlens.model import Family, TableName
from natlens.netfilter import Step, StepKind, Verdict

__all__ = ["check_input_allows", "check_nft_forward_ports"]

_ACCEPT = frozenset({"ACCEPT", "accept"})
_VERDICTS = frozenset({"ACCEPT", "accept", "DROP", "drop", "REJECT", "reject"})


def _names_port(text: str, port: int) -> bool:
    """Whether rule text (iptables-save or nft form) matches destination port ``port`` by
    name: ``--dport 8080``, ``--dports 80,8080``, ``dport 8080``, ``dport { 80, 8080 }``,
    a range containing it."""
    for m in re.finditer(r"(?:--dports?|--destination-ports?|\bdport)\s+(\{[^}]*\}|\S+)", text):
        for word in re.split(r"[\s,{}]+", m.group(1)):
            lo, sep, hi = word.replace("-", ":").partition(":")
            if is_decimal(lo) and (int(lo) <= port <= int(hi) if sep and is_decimal(hi)
                                 else int(lo) == port):
                return True
    return False


def _same(a: Step, b: Step) -> bool:
    return (a.source, a.family, a.table, a.chain, a.rule) == (
        b.source, b.family, b.table, b.chain, b.rule)


def _nft_ref(view: DockerView, family: int, step: Step) -> RuleRef:
    """A RuleRef for an nft rule: table ``FAMILY NAME``, index its handle, text its nft form."""
    fam = Family.IPV4 if family == 4 else Family.IPV6
    file, _, json_path = (step.where or "").rpartition(": $")  # nft-ruleset.json: $.nftables[3]
    return RuleRef(table=f"{step.family} {step.table}", chain=str(step.chain),
                   index=step.rule or 0, text=step.text, source=view.snapshot.path,
                   family=fam.value, json_path=f"${json_path}" if file else None)


def _ref(view: DockerView, family: int, step: Step) -> RuleRef | None:
    return _nft_ref(view, family, step) if step.source == "nft" else view.ref(family, step)


def _delete(ref: RuleRef, step: Step) -> str:
    if step.source == "nft":
        return command(["nft", "delete", "rule", str(step.family), str(step.table),
                        str(step.chain), "handle", str(step.rule)])
    return command(delete_spec(ref))


def _forwarded(view: DockerView, b: Binding, cell: Cell) -> Outcome | None:
    """The outcome of ``cell``'s packet when it is DNATed to ``b``'s container and forwarded."""
    for o in outcomes(view.trace(cell.packet)):
        if o.path == "forward" and o.final_dst in b.expected:
            return o
    return None


def _bindings_cells(view: DockerView) -> Iterator[tuple[Binding, Cell]]:
    emap = exposure_map(view.ctx)
    if emap is None:
        return
    for row in emap.rows:
        b = row.binding
        if b is None or b.loopback:
            continue
        for cell in emap.cells_of(row):
            if emap.remote(cell.ingress) and not cell.dst.is_loopback:
                yield b, cell


def _meets(view: DockerView, step: Step) -> bool:
    """Whether any cell of the map meets the rule of ``step`` (so deleting it changes a cell)."""
    emap = exposure_map(view.ctx)
    if emap is None:
        return True
    return any(_same(s, step) and s.kind is StepKind.RULE
               for cell in emap.cells for o in outcomes(view.trace(cell.packet))
               for s in o.steps)


def _allowed_ports(view: DockerView) -> list[tuple[int, int]] | None:
    """The destination ports any iptables ACCEPT rule names (both families, both backends);
    None when the snapshot has native nft tables (their rules are not scanned: every port is a
    candidate)."""
    snap = view.snapshot
    if snap.nft is not None:
        return None
    out: list[tuple[int, int]] = []
    for rs in (snap.ruleset, snap.ruleset6, snap.other_backend, snap.other_backend6):
        table = rs.get(TableName.FILTER) if rs is not None else None
        for chain in table.chains if table is not None else ():
            for rule in chain.rules:
                if rule.target_name == "ACCEPT":
                    out.extend(port_set(rule) or ())
    return out


class _PortIndex:
    """Port ranges (inclusive ``(lo, hi)`` pairs) merged into sorted disjoint ones:
    ``port in index`` is a binary search instead of a scan of every range."""

    def __init__(self, ranges: list[tuple[int, int]]) -> None:
        merged: list[list[int]] = []
        for lo, hi in sorted(ranges):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        self._lo = [lo for lo, _ in merged]
        self._hi = [hi for _, hi in merged]

    def __contains__(self, port: int) -> bool:
        i = bisect.bisect_right(self._lo, port) - 1
        return i >= 0 and port <= self._hi[i]


def _allows_quiet(shared: SharedTraces, b: Binding, cell: Cell) -> bool:
    """Whether ``check_input_allows`` certainly reports nothing for ``cell``, decided from
    shared outcomes (``SharedTraces``): its packet is not forwarded to the container, met no
    DNAT, or without the DNAT no INPUT rule accepts it. False when an outcome is not shared."""
    name = b.container.name
    s = shared.real(name, cell.packet)
    if s is None:
        return False
    expected = {shared.norm(name, b.family, ip, b.container_port) for ip in b.targets}
    if s.path != "forward" or s.final_dst not in expected or not s.dnats:
        return True
    w = shared.what_if(name, cell.packet, s.dnats)
    return w is not None and not w[1]


def check_input_allows(ctx: AuditContext) -> Iterator[Finding]:
    """INPUT ACCEPT rules (iptables or nft) for a published host port that its packets never
    meet (see the module docstring).

    >>> from natlens.audit._docker_example import DOCKER_NAT_8080, container_json, example
    >>> ctx = example(DOCKER_NAT_8080 + '''*filter
    ... :INPUT DROP [0:0]
    ... :FORWARD DROP [0:0]
    ... -A INPUT -p tcp -m tcp --dport 8080 -j ACCEPT
    ... COMMIT
    ... ''', container_json("web", "172.17.0.2", "8080:80"))
    >>> [(f.kind, f.severity.value, f.rule.where) for f in check_input_allows(ctx)]
    [('ineffective', 'low', 'filter INPUT #1')]
    """
    view = docker_view(ctx)
    if view is None:
        return
    allowed = _allowed_ports(view)
    named = _PortIndex(allowed) if allowed is not None else None
    shared = shared_traces(ctx)
    done: set[tuple[object, ...]] = set()
    for b, cell in _bindings_cells(view):
        if named is not None and b.host_port not in named:
            continue  # no ACCEPT names the port: no what-if simulator to build
        if shared is not None and _allows_quiet(shared, b, cell):
            continue
        real = _forwarded(view, b, cell)
        if real is None:
            continue
        dnats = [r for s in real.steps if rewrite_kind(s) == "DNAT"
                 for r in [view.ref(b.family, s)] if r is not None]
        if not dnats:
            continue
        for o in outcomes(view.without(b.family, dnats).trace(cell.packet)):
            d = next((s for s in o.steps if s.kind is StepKind.RULE and s.hook == "INPUT"
                      and s.target in _ACCEPT and _names_port(s.text, b.host_port)), None)
            if o.verdict is not Verdict.ACCEPT or d is None \
                    or any(_same(s, d) for s in real.steps):
                continue
            key = (b.family, d.source, d.family, d.table, d.chain, d.rule)
            ref = _ref(view, b.family, d)
            if key in done or ref is None:
                continue
            done.add(key)
            opened = real.verdict is Verdict.ACCEPT
            # a rule other cells meet (docker-proxy, a container reaching the host port) is not
            # dead: no fix, and low (the missing finding says the port is closed)
            fix = None if opened or _meets(view, d) else _delete(ref, d)
            yield Finding(
                kind="ineffective", severity=Severity.LOW if fix is None else Severity.MEDIUM,
                message=f"this INPUT allow is written for {b.label}, but its packets never "
                        f"reach INPUT: {_describe(cell.packet)} is DNATed and "
                        f"{_fate(view, b.family, real)}"
                        + (" anyway; deleting this allow would not close the port (block it in "
                           "DOCKER-USER with --ctorigdstport instead)" if opened else
                           "; the allow opens nothing: accept the port in FORWARD "
                           "(DOCKER-USER) instead"),
                proto=b.proto, host_port=b.host_port, container=b.container.name, rule=ref,
                related=tuple(dnats[:1]),
                fix=fix,
                packet=_packet(cell.packet, real),
            )


def _ctorig_nft(text: str) -> str | None:
    """``tcp dport 8080 drop`` → ``meta l4proto tcp ct original proto-dst 8080 drop``; None
    when the rule names no plain ``PROTO dport``."""
    new, n = re.subn(r"\b(tcp|udp|sctp) dport (?!!=)", r"meta l4proto \1 ct original proto-dst ",
                     text, count=1)
    return new if n else None


def check_nft_forward_ports(ctx: AuditContext) -> Iterator[Finding]:
    """Native nft rules on the forward hook written for a published host port (see the module
    docstring); decided per binding with its remote probe and a packet routed to the
    container's address with the host port."""
    view = docker_view(ctx)
    if view is None or view.snapshot.nft is None:
        return
    done: set[tuple[object, ...]] = set()
    for b in view.bindings():
        if b.loopback or b.host_port == b.container_port or not b.targets:
            continue
        probes = view.probes(b)[:1]
        for probe in probes:
            real = next((o for o in outcomes(view.trace(probe.packet))
                         if o.path == "forward" and o.final_dst in b.expected), None)
            if real is None:
                continue
            direct = replace(probe.packet, dst=b.targets[0])
            for o in outcomes(view.trace(direct)):
                for s in o.steps:
                    if s.source != "nft" or s.hook != "FORWARD" or s.kind is not StepKind.RULE \
                            or s.target not in _VERDICTS or not _names_port(s.text, b.host_port) \
                            or any(_same(s, r) for r in real.steps):
                        continue
                    key = (b.family, s.family, s.table, s.chain, s.rule)
                    if key in done:
                        continue
                    done.add(key)
                    ref = _nft_ref(view, b.family, s)
                    new = _ctorig_nft(s.text)
                    yield Finding(
                        kind="ineffective", severity=Severity.MEDIUM,
                        message=f"written for published host port {b.host_port}/{b.proto}, "
                                f"but the forward hook sees {b.label} only after DNAT, as "
                                f"{b.targets[0]}:{b.container_port}: {_describe(probe.packet)} "
                                f"is {_fate(view, b.family, real)} without meeting it; it hits "
                                f"forwarded traffic whose real destination port is "
                                f"{b.host_port} instead",
                        proto=b.proto, host_port=b.host_port, container=b.container.name,
                        rule=ref,
                        fix=None if new is None else command(
                            ["nft", "replace", "rule", str(s.family), str(s.table),
                             str(s.chain), "handle", str(s.rule), *new.split()]),
                        packet=_packet(probe.packet, real),
                    )
