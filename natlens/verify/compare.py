"""Compare the simulator with the kernel, packet by packet, and run a whole verification.

For each probe natlens's ``Trace`` and the kernel's ``Observation`` must agree on:

* the verdict (ACCEPT / DROP / REJECT: delivered somewhere, silently gone, or answered with an
  ICMP error or TCP reset by the host);
* for an accepted packet: the path (local / forward / output), the final destination and
  source ``IP:PORT`` (what the receiving namespace saw: DNAT and MASQUERADE/SNAT results) and the
  output interface, and the conntrack entry's NAT mapping;
* the rules and policies that counted the packet (``iptables-save -c`` before/after) against the
  rules and policies the trace matched. A chain is compared exactly unless the host itself
  answered in a hook that reaches it (a TCP reset or ICMP error from a locally delivered or
  rejected probe walks OUTPUT/POSTROUTING, and for local origin PREROUTING/INPUT too; IPv6
  neighbour/MLD traffic may walk OUTPUT/POSTROUTING): there the trace's rules must be among the
  kernel's. nat chains only see the first packet of a connection, so the host's answers do not
  count there, except a REJECT's answer, which walks nat POSTROUTING (the rejected packet's
  conntrack entry never had its source NAT set up). When the trace has branches
  (``statistic``), agreeing with one branch is agreeing.

Then, for up to ``connections`` probes whose first packet natlens delivers, a real TCP or UDP
connection from the probe's source namespace to a responder where natlens says it lands must
complete exactly when the trace's ``connection.established`` says so (``connect``).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from natlens.errors import NatlensError
from natlens.model import Ruleset
from natlens.netfilter.engine import Simulator
from natlens.netfilter.packet import endpoint
from natlens.netfilter.pipeline import iptables_source
from natlens.netfilter.trace import Path, Step, StepKind, Trace, Verdict
from natlens.snapshot import Snapshot
from natlens.termstyle import wrap_line
from natlens.textsafe import terminal
from natlens.verify.connect import ConnectionResult, check_connections
from natlens.verify.generate import Probe, dnat_targets, generate
from natlens.verify.probe import Observation, Prober
from natlens.verify.runs import Run, cleanup
from natlens.verify.signals import interruptible
from natlens.verify.topology import Topology, plan

__all__ = ["Result", "VerifyError", "VerifyReport", "chain_hooks", "compare", "verify"]

_HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")


class VerifyError(NatlensError):
    """verify cannot run here (not root, no iptables) or the snapshot cannot be mirrored."""


def chain_hooks(ruleset: Ruleset) -> dict[tuple[str, str], frozenset[str]]:
    """For each (table, chain): the hooks whose built-in chains reach it by jumps and gotos."""
    out: dict[tuple[str, str], frozenset[str]] = {}
    for table in ruleset.tables:
        t = str(table.name.value)
        edges: dict[str, set[str]] = {}
        for chain in table.chains:
            edges[chain.name] = {r.target_name for r in chain.rules
                                 if r.jumps_to_chain and r.target_name}
        for chain in table.chains:
            if chain.name not in _HOOKS:
                continue
            todo, seen = [chain.name], {chain.name}
            while todo:
                name = todo.pop()
                out[(t, name)] = out.get((t, name), frozenset()) | {chain.name}
                for nxt in edges.get(name, ()):
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
    return out


def _step_label(step: Step, main: str | None = None) -> str | None:
    """``nat:DOCKER#3``, ``filter:FORWARD:policy``; a rule of another source than ``main``
    (the main iptables dump's) is prefixed with it (``iptables-legacy/filter:FORWARD#1``); an
    nft rule is ``nft/inet t:chain#HANDLE`` (nft policies have no counter: not labelled)."""
    if step.source == "nft":
        if step.kind is StepKind.RULE:
            return f"nft/{step.family} {step.table}:{step.chain}#{step.rule}"
        return None
    table = step.table
    if main is not None and step.source not in (None, main, "iptables"):
        table = f"{step.source}/{table}"
    if step.kind is StepKind.RULE:
        return f"{table}:{step.chain}#{step.rule}"
    if step.kind is StepKind.POLICY:
        return f"{table}:{step.chain}:policy"
    return None


def _chain_of(label: str) -> tuple[str, str]:
    table, _, rest = label.partition(":")
    chain = rest.split("#", 1)[0]
    if chain.endswith(":policy"):
        chain = chain[: -len(":policy")]
    return table, chain


@dataclass(frozen=True, slots=True)
class _Outcome:
    verdict: Verdict
    path: Path
    final_dst: str
    final_src: str
    out_interface: str | None
    rules: tuple[str, ...]
    probability: float = 1.0

    def describe(self) -> str:
        if self.verdict is Verdict.ACCEPT:
            via = f" via {self.out_interface}" if self.out_interface else ""
            head = (f"ACCEPT {self.path.value} {self.final_src} -> {self.final_dst}{via}")
        else:
            head = f"{self.verdict.value} ({self.path.value}, at {self.final_dst})"
        return head


def _outcomes(trace: Trace, main: str | None = None) -> list[_Outcome]:
    def rules(steps: Sequence[Step]) -> tuple[str, ...]:
        return tuple(lbl for lbl in (_step_label(s, main) for s in steps) if lbl)

    if trace.branches:
        return [_Outcome(b.verdict, b.path, b.final_dst, b.final_src, b.out_interface,
                         rules(b.steps), b.probability) for b in trace.branches]
    return [_Outcome(trace.verdict, trace.path, trace.final_dst, trace.final_src,
                     trace.out_interface, rules(trace.steps))]


def _noisy_hooks(obs: Observation) -> frozenset[str]:
    """Hooks the host's own answers (or IPv6 housekeeping) may have walked during the probe."""
    answered = obs.path is Path.LOCAL or bool(obs.errors)
    noisy: set[str] = set()
    if answered:
        noisy |= {"OUTPUT", "POSTROUTING"}
        if obs.packet.local_origin:
            noisy |= {"PREROUTING", "INPUT"}
    if obs.packet.family == 6:
        noisy |= {"OUTPUT", "POSTROUTING"}
    return frozenset(noisy)


def _delivery_differences(o: _Outcome, path: Path | None, final_dst: str | None,
                          final_src: str | None, out_interface: str | None) -> list[str]:
    diffs: list[str] = []
    if o.path is not path:
        diffs.append(f"path: natlens {o.path.value}, kernel {path.value if path else None}")
    if o.final_dst != final_dst:
        diffs.append(f"final destination: natlens {o.final_dst}, kernel {final_dst}")
    if o.final_src != final_src:
        diffs.append(f"final source: natlens {o.final_src}, kernel {final_src}")
    if o.out_interface != out_interface:
        diffs.append(f"output interface: natlens {o.out_interface}, kernel {out_interface}")
    return diffs


def _differences(o: _Outcome, obs: Observation,
                 hooks: dict[tuple[str, str], frozenset[str]]) -> list[str]:
    diffs: list[str] = []
    if o.verdict is not obs.verdict:
        diffs.append(f"verdict: natlens {o.verdict.value}, kernel {obs.verdict.value}")
    elif o.verdict is Verdict.ACCEPT:
        where = [(obs.path, obs.final_dst, obs.final_src, obs.out_interface), *obs.also]
        options: list[list[str]] = [_delivery_differences(o, *w) for w in where]
        closest = min(options, key=len)
        diffs.extend(closest)
    p = obs.packet
    if o.verdict is Verdict.ACCEPT:
        sent = (endpoint(p.src, p.sport), endpoint(p.dst, p.dport))
        for ct in obs.conntrack:
            if ct.original != sent:
                continue
            if ct.nat_dst != o.final_dst:
                diffs.append(f"conntrack NAT destination: natlens {o.final_dst}, kernel "
                             f"{ct.nat_dst} ({ct.text})")
            if ct.nat_src != o.final_src:
                diffs.append(f"conntrack NAT source: natlens {o.final_src}, kernel "
                             f"{ct.nat_src} ({ct.text})")
    noisy = _noisy_hooks(obs)
    # a REJECT's reset or ICMP error carries the rejected packet's conntrack entry, whose source
    # NAT was never set up: it walks nat POSTROUTING (nf_reject attaches the ct; nf_nat_inet_fn
    # runs the chain while the manip is uninitialised). The host's other answers do not.
    nat_noisy = noisy if obs.verdict is Verdict.REJECT else frozenset()
    kernel = {h.label() for h in obs.hits} - obs.uncounted
    mine = set(o.rules) - obs.uncounted
    for key in sorted({_chain_of(x) for x in kernel | mine}):
        k = {x for x in kernel if _chain_of(x) == key}
        n = {x for x in mine if _chain_of(x) == key}
        reach = hooks.get(key, frozenset(_HOOKS))
        loose = bool(reach & (nat_noisy if key[0] == "nat" else noisy))
        if loose:
            if not n <= k:
                diffs.append(f"rules in {key[0]}:{key[1]}: natlens matched "
                             f"{', '.join(sorted(n - k))}, kernel counters did not move")
        elif k != n:
            extra_k = ", ".join(sorted(k - n)) or "-"
            extra_n = ", ".join(sorted(n - k)) or "-"
            diffs.append(f"rules in {key[0]}:{key[1]}: only kernel {extra_k}; only natlens "
                         f"{extra_n}")
    return diffs


def compare(trace: Trace, obs: Observation,
            hooks: dict[tuple[str, str], frozenset[str]], main: str | None = None) -> list[str]:
    """The differences between ``trace`` and ``obs`` (empty: they agree). With branches, the
    closest branch is reported. ``main`` is the source of the main iptables dump
    (``iptables-nft``...): rules of other sources are compared under prefixed labels."""
    best: list[str] | None = None
    for o in _outcomes(trace, main):
        diffs = _differences(o, obs, hooks)
        if best is None or len(diffs) < len(best):
            best = diffs
        if not diffs:
            return []
    return best or []


@dataclass(frozen=True, slots=True)
class Result:
    """One probe: what natlens said, what the kernel did, and where they differ."""

    probe: Probe
    trace: Trace
    observation: Observation
    differences: tuple[str, ...]
    partial: bool = False
    """The snapshot lacks ip-addr.json or ip-route.json: the namespaces were built from the same
    assumptions natlens made, so a difference on a packet natlens made assumptions for proves
    nothing either way."""
    main: str | None = None
    """The source of the main iptables dump (rule labels of other sources are prefixed)."""

    @property
    def agrees(self) -> bool:
        """Whether natlens and the kernel agree on everything compared."""
        return not self.differences

    @property
    def inconclusive(self) -> bool:
        """They differ, but natlens said it could not decide (``Trace.uncertain``), or the
        snapshot is partial and natlens had to assume things for this packet."""
        doubt = bool(self.trace.uncertain) or (self.partial and bool(self.trace.assumptions))
        return bool(self.differences) and doubt

    @property
    def status(self) -> str:
        """``agree``, ``disagree`` or ``inconclusive``."""
        if self.agrees:
            return "agree"
        return "inconclusive" if self.inconclusive else "disagree"

    def natlens_says(self) -> str:
        """One line: verdict, path, addresses and matched rules of the trace."""
        parts = []
        for o in _outcomes(self.trace, self.main):
            prob = f"p={o.probability:.3g} " if self.trace.branches else ""
            parts.append(f"{prob}{o.describe()}; rules {', '.join(o.rules) or '-'}")
        return " | ".join(parts)

    def kernel_says(self) -> str:
        """One line: verdict, path, addresses, counters that moved, conntrack."""
        obs = self.observation
        if obs.verdict is Verdict.ACCEPT:
            via = f" via {obs.out_interface}" if obs.out_interface else ""
            head = (f"ACCEPT {obs.path.value if obs.path else '?'} {obs.final_src} -> "
                    f"{obs.final_dst}{via}")
        elif obs.verdict is Verdict.REJECT:
            head = "REJECT (" + "; ".join(s.describe() for s in obs.errors) + ")"
        else:
            head = "DROP (seen nowhere)"
        rules = ", ".join(h.label() for h in obs.hits) or "-"
        ct = "; ".join(c.text for c in obs.conntrack) or "none"
        return f"{head}; counters {rules}; conntrack {ct}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "packet": self.probe.packet.to_dict(),
            "source": self.probe.source,
            "why": self.probe.why,
            "agrees": self.agrees,
            "status": self.status,
            "differences": list(self.differences),
            "natlens": {**{k: v for k, v in self.trace.to_dict().items() if k != "packet"}},
            "kernel": self.observation.to_dict(),
        }


@dataclass
class VerifyReport:
    """Every probe of one verification run."""

    snapshot: str
    seed: int
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    backend: str = ""
    connections: list[ConnectionResult] = field(default_factory=list)
    """Real connections tried (``connect``)."""

    @property
    def connection_disagreements(self) -> list[ConnectionResult]:
        """Connections that completed where natlens said they cannot, or the reverse."""
        return [c for c in self.connections if c.status == "disagree"]

    def _connections_count(self, status: str) -> int:
        return sum(1 for c in self.connections if c.status == status)

    @property
    def failed(self) -> bool:
        """Whether natlens and the kernel disagree on a packet or a connection (exit 1)."""
        return bool(self.disagreements or self.connection_disagreements)

    @property
    def tried(self) -> int:
        """Number of packets sent."""
        return len(self.results)

    @property
    def agreements(self) -> int:
        """Packets on which natlens and the kernel agree."""
        return sum(1 for r in self.results if r.agrees)

    @property
    def disagreements(self) -> list[Result]:
        """Packets on which they differ (natlens was sure of its answer)."""
        return [r for r in self.results if r.status == "disagree"]

    @property
    def inconclusive(self) -> list[Result]:
        """Packets on which they differ where natlens said it was uncertain."""
        return [r for r in self.results if r.status == "inconclusive"]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: summary, disagreements in full, every result."""
        return {
            "snapshot": self.snapshot,
            "seed": self.seed,
            "backend": self.backend,
            "summary": {"tried": self.tried, "agreements": self.agreements,
                        "disagreements": len(self.disagreements),
                        "inconclusive": len(self.inconclusive),
                        "connections": {
                            "tried": len(self.connections),
                            **{key: self._connections_count(status) for key, status in (
                                ("agreements", "agree"), ("disagreements", "disagree"),
                                ("undecided", "undecided"), ("inconclusive", "inconclusive"))},
                        }},
            "disagreements": [r.to_dict() for r in self.disagreements],
            "inconclusive": [r.to_dict() for r in self.inconclusive],
            "connection_disagreements": [c.to_dict() for c in self.connection_disagreements],
            "connections": [c.to_dict() for c in self.connections],
            "results": [{"packet": r.probe.packet.to_dict(), "source": r.probe.source,
                         "why": r.probe.why, "agrees": r.agrees, "status": r.status,
                         "natlens": r.natlens_says(), "kernel": r.kernel_says()}
                        for r in self.results],
            "notes": list(self.notes),
        }

    def render(self, width: int | None = None) -> str:
        """Plain-text report: one line per probe, then each disagreement in full (text from the
        snapshot escaped for a terminal, ``textsafe.terminal``). ``width`` (columns, as
        ``termstyle.terminal_width`` gives it; None: no limit) cuts longer lines at blanks,
        continuation lines indented under their line's text (``termstyle.wrap_line``), as
        ``trace`` and ``report`` do."""
        lines = [f"natlens verify {self.snapshot} (seed {self.seed}, iptables backend "
                 f"{self.backend}): {self.tried} packets, {self.agreements} agree, "
                 f"{len(self.disagreements)} disagree"
                 + (f", {len(self.inconclusive)} inconclusive (natlens uncertain or assuming)"
                    if self.inconclusive else "")]
        rows = [({"agree": "ok  ", "disagree": "DIFF", "inconclusive": "??  "}[r.status],
                 r.probe.source, terminal(repr(r.probe.packet)),
                 f"{r.observation.verdict.value:<6} {r.observation.final_dst or ''}".rstrip())
                for r in self.results]
        mark_c = {"agree": "ok  ", "disagree": "DIFF", "undecided": "--  ",
                  "inconclusive": "??  "}
        connection_rows = [(mark_c[c.status], c.probe.source, terminal(repr(c.probe.packet)),
                            "established" if c.established else "failed")
                           for c in self.connections]
        packet_width = max((len(row[2]) for row in [*rows, *connection_rows]), default=0)
        out = _fitted(lines, width) + _table(rows, packet_width, width)
        if self.connections:
            out += _fitted([
                f"connections: {len(self.connections)} tried, "
                f"{self._connections_count('agree')} agree, "
                f"{len(self.connection_disagreements)} disagree, "
                f"{self._connections_count('undecided')} undecided (natlens null)"
                + (f", {self._connections_count('inconclusive')} inconclusive"
                   if self._connections_count("inconclusive") else "")], width)
            out += _table(connection_rows, packet_width, width)
        lines = []
        numbered = [(f"disagreement {n}", r) for n, r in enumerate(self.disagreements, 1)]
        numbered += [(f"inconclusive {n}", r) for n, r in enumerate(self.inconclusive, 1)]
        for title, r in numbered:
            lines += [
                "",
                f"{title}: {r.probe.packet!r} ({r.probe.source}: {r.probe.why})",
                f"  natlens says: {r.natlens_says()}",
                f"  kernel says:  {r.kernel_says()}",
                *(f"  - {d}" for d in r.differences),
                *(f"  (natlens was uncertain: {u})" for u in r.trace.uncertain),
            ]
        for n, c in enumerate(self.connection_disagreements, 1):
            lines += [
                "",
                f"connection disagreement {n}: {c.probe.packet!r} ({c.probe.source}: "
                f"{c.probe.why})",
                f"  natlens says: {c.natlens_says()}",
                f"  kernel says:  {c.kernel_says()}",
            ]
        if self.notes:
            lines += ["", "notes:", *(f"  {n}" for n in self.notes)]
        return "".join(f"{line}\n" for line in out + _fitted(lines, width))


def _fitted(lines: list[str], width: int | None) -> list[str]:
    """``lines`` escaped for a terminal (names and comments come from the snapshot: no control
    or bidi character reaches it, and no value starts a line of its own) and cut at blanks to
    ``width`` (``termstyle.wrap_line``), continuations four blanks further in than their line."""
    return [part for line in lines for part in
            wrap_line(terminal(line), width, len(line) - len(line.lstrip(" ")) + 4)]


def _table(rows: list[tuple[str, str, str, str]], packet_width: int,
           width: int | None) -> list[str]:
    """Probe rows ``(mark, source, packet, outcome)`` as a table: columns aligned, the packet
    column as wide as the widest packet. When ``width`` (columns) is given and the table would
    be wider, the packet column is narrowed to fit (at least 24 columns), then the outcome
    column (at least 12), their text wrapped within the column at blanks, as ``report`` wraps
    its finding column."""
    lead = 2 + 4 + 1 + 9 + 1  # "  MARK SOURCE   "
    outcome = max((len(row[3]) for row in rows), default=0)
    column = packet_width
    if width is not None and lead + packet_width + 2 + outcome > width:
        column = max(24, width - lead - 2 - outcome)
        outcome = max(12, min(outcome, width - lead - 2 - column))
    out: list[str] = []
    for mark, source, packet, result in rows:
        left = textwrap.wrap(packet, column, break_on_hyphens=False) or [""]
        right = textwrap.wrap(result, outcome, break_on_hyphens=False) or [""]
        for n in range(max(len(left), len(right))):
            head = f"  {mark} {source:<9} " if n == 0 else " " * lead
            cell = left[n] if n < len(left) else ""
            more = right[n] if n < len(right) else ""
            out.append(f"{head}{cell:<{column}}  {more}".rstrip())
    return out


def verify(
    snapshot: Snapshot,
    *,
    packets: int = 60,
    seed: int = 0,
    expectation: Snapshot | None = None,
    probes: Iterable[Probe] | None = None,
    settle: float = 0.04,
    connections: int = 50,
    connection_timeout: float = 1.0,
) -> VerifyReport:
    """Replay ``snapshot`` in network namespaces and compare every probe with the simulator.

    ``expectation``: simulate against this snapshot instead (tests plant a wrong one to see the
    check fail); ``probes``: use these instead of generating ``packets`` probes from ``seed``;
    ``connections``: at most this many real connections (0: none), each given
    ``connection_timeout`` seconds (``connect``).
    Needs root; every namespace is removed before returning, also on errors and on SIGINT,
    SIGTERM, SIGHUP and SIGQUIT, which raise ``signals.Interrupted`` (a ``KeyboardInterrupt``)
    after the cleanup. Namespaces that dead runs left (SIGKILL) are removed first and noted.
    Raises ``VerifyError`` (not root), ``SnapshotError`` or ``TopologyError`` (a value of the
    snapshot the kernel refuses: one line naming file and line or JSON path).
    """
    if os.geteuid() != 0:
        raise VerifyError("natlens verify needs root (it creates network namespaces)")
    run = Run.new()
    with interruptible():
        removed = cleanup()
        draft = plan(snapshot, prefix=run.prefix)
        chosen = list(probes) if probes is not None else generate(snapshot, draft,
                                                                   count=packets, seed=seed)
        extra = [p.packet.dst for p in chosen]
        extra += dnat_targets(snapshot.ruleset) + dnat_targets(snapshot.ruleset6)
        senders = [(p.packet.src, p.packet.in_interface) for p in chosen
                   if p.source == "outside" and p.packet.in_interface is not None
                   and p.packet.src.is_link_local]
        final = plan(snapshot, extra_addresses=extra, link_local=senders, prefix=run.prefix)
        # the connection checks start a responder where each trace lands
        sim = Simulator.from_snapshot(expectation or snapshot).listening_everywhere()
        main = iptables_source(final.backend).value
        hooks = {4: chain_hooks(snapshot.ruleset), 6: chain_hooks(snapshot.ruleset6)}
        report = VerifyReport(snapshot.path, seed, notes=list(final.notes),
                              backend=final.backend)
        report.notes[:0] = [f"removed the namespaces an interrupted verify run left "
                            f"({r.describe()})" for r in removed]
        partial = snapshot.addresses is None or snapshot.routes is None
        if partial:
            report.notes.insert(0, "ip-addr.json or ip-route.json missing: the namespaces "
                                   "follow natlens's own assumptions, so differences on packets "
                                   "natlens made assumptions for are reported as inconclusive")
        topo = Topology(final, run=run)
        try:
            topo.build()
            with Prober(topo, settle=settle) as prober:
                for n, probe in enumerate(chosen):
                    tag = (0x6E6C0000 + (seed << 12) + n) & 0xFFFFFFFF
                    obs = prober.probe(probe.packet, tag)
                    trace = sim.trace(probe.packet)
                    diffs = compare(trace, obs, hooks[probe.packet.family], main)
                    report.results.append(Result(probe, trace, obs, tuple(diffs), partial,
                                                 main))
            if connections > 0:
                probed = [(r.probe, r.trace, bool(r.trace.uncertain) or (
                    partial and bool(r.trace.assumptions))) for r in report.results]
                report.connections, notes = check_connections(
                    topo, run, probed, limit=connections, timeout=connection_timeout)
                report.notes.extend(notes)
            report.notes.extend(topo.notes)
        finally:
            topo.teardown()
    return report
