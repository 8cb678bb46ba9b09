"""The kernel's answer for one probe, read from what a namespace observed, and natlens's match.

An observation (one entry of a case's ``kernel-observed.json``, or what ``diff_harness.Lab``
records) holds:

* ``counters``: ``{"table|chain|N" or "table|chain|policy": packets}`` (iptables-save -c,
  nonzero only);
* ``guard``: per-hook observations by the test's own nft table, ``{"pre_start": {"tuples":
  [[src, dst, sport, dport]], "if": {iface: n}, "marks": [..]}, ...}``: ``*_start`` runs before
  every iptables table of the hook, ``*_end`` after all of them (``in_mid``/``out_mid`` between
  nat and security); a probe dropped in a hook has no ``*_end`` there;
* ``send_error``: the local sender's error, for the record (the guard's observations decide).

``kernel_outcome`` turns it into verdict, path, final addresses, output interface and counters;
``compare`` says whether one of natlens's outcomes (the trace or, when it has them, each of its
branches) is the same. A random kernel choice (NAT port, address hash) agrees only when it lies
in what natlens said was possible: a port range ``IP:LO-HI`` or one branch per address. natlens
merges doubts that end the same way into one answer and names the doubted rules under
``uncertain``; a counter that differs from the kernel's only at such a rule is agreement too.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from natlens.netfilter.packet import Packet
from natlens.netfilter.trace import Branch, StepKind, Trace

__all__ = ["Agreement", "KernelOutcome", "compare", "kernel_outcome", "natlens_counters",
           "packet_of"]


@dataclass(frozen=True)
class KernelOutcome:
    """What the kernel did with one probe (``path`` None: not observable, e.g. dropped in
    PREROUTING before the routing decision)."""

    verdict: str
    path: str | None
    final_src: tuple[str, int | None] | None
    final_dst: tuple[str, int | None] | None
    out_interface: str | None
    counters: Mapping[str, int]

    def summary(self) -> str:
        """One line for messages."""
        def ep(e: tuple[str, int | None] | None) -> str:
            return "?" if e is None else e[0] if e[1] is None else f"{e[0]}:{e[1]}"
        return (f"verdict={self.verdict} path={self.path} final_src={ep(self.final_src)} "
                f"final_dst={ep(self.final_dst)} out={self.out_interface} "
                f"rules={dict(sorted(self.counters.items()))}")


def packet_of(probe: dict[str, Any]) -> Packet:
    """The natlens packet of a ``packets.json`` entry (an ICMP probe's ``sport`` is its echo
    id, which natlens does not model)."""
    ported = probe["proto"] in ("tcp", "udp", "sctp")
    where: dict[str, Any] = ({"local_origin": True} if probe["ingress"] == "local"
                             else {"in_interface": probe["ingress"]})
    return Packet(src=probe["src"], dst=probe["dst"], proto=probe["proto"],
                  sport=probe.get("sport") if ported else None,
                  dport=probe.get("dport") if ported else None,
                  icmp_type=8 if probe["proto"] == "icmp" else None, **where)


def _seen(guard: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    entry = guard.get(name)
    if isinstance(entry, dict) and entry.get("tuples"):
        return entry
    return None


def _tuple_of(entry: Mapping[str, Any], proto: str) -> tuple[tuple[str, int | None],
                                                             tuple[str, int | None]]:
    src, dst, sport, dport = entry["tuples"][-1]
    if proto not in ("tcp", "udp", "sctp"):
        return (src, None), (dst, None)
    return (src, int(sport)), (dst, int(dport))


def _iface(entry: Mapping[str, Any]) -> str | None:
    ifs = entry.get("if") or {}
    return next(iter(ifs)) if ifs else None


def kernel_outcome(packet: Mapping[str, Any], observed: Mapping[str, Any]) -> KernelOutcome:
    """The kernel's outcome of ``packet`` (a ``packets.json`` entry) from ``observed``."""
    guard: Mapping[str, Any] = observed.get("guard") or {}
    proto = packet["proto"]
    local = packet["ingress"] == "local"
    counters = {k: int(v) for k, v in (observed.get("counters") or {}).items() if int(v)}
    seen = [k for k in guard if _seen(guard, k) is not None]
    end_in = _seen(guard, "in_end")
    end_post = _seen(guard, "post_end")
    if end_in is not None:
        src, dst = _tuple_of(end_in, proto)
        return KernelOutcome("ACCEPT", "local", src, dst, "lo" if local else None, counters)
    if end_post is not None and _iface(end_post) != "lo":
        src, dst = _tuple_of(end_post, proto)
        return KernelOutcome("ACCEPT", "output" if local else "forward", src, dst,
                             _iface(end_post), counters)
    path: str | None = None
    if local:
        outs = [_seen(guard, k) for k in seen if k.startswith(("out_", "post_"))]
        looped = any(k.startswith(("pre_", "in_")) for k in seen)
        last_oif = _iface(outs[-1]) if outs and outs[-1] is not None else None
        if looped or last_oif == "lo":
            path = "local"
        elif outs:
            path = "output"
    elif any(k.startswith(("fwd_", "post_")) for k in seen):
        path = "forward"
    elif any(k.startswith("in_") for k in seen):
        path = "local"
    return KernelOutcome("DROP", path, None, None, None, counters)


def natlens_counters(steps: Sequence[Any]) -> dict[str, int]:
    """The per-rule counters natlens's steps would move (``table|chain|N``/``|policy``)."""
    hits: Counter[str] = Counter()
    for s in steps:
        if s.kind is StepKind.RULE and s.table is not None:
            hits[f"{s.table}|{s.chain}|{s.rule}"] += 1
        elif s.kind is StepKind.POLICY and s.table is not None:
            hits[f"{s.table}|{s.chain}|policy"] += 1
    return dict(hits)


def _endpoint(text: str) -> tuple[str, tuple[int, int] | None]:
    """``IP``, ``IP:PORT``, ``IP:LO-HI`` (IPv4) → address and port range."""
    addr, sep, port = text.rpartition(":")
    if not sep or "." not in addr:
        return text, None
    lo, _, hi = port.partition("-")
    return addr, (int(lo), int(hi or lo))


def _same_endpoint(mine: str, kernel: tuple[str, int | None] | None) -> bool:
    if kernel is None:
        return True
    addr, span = _endpoint(mine)
    if ipaddress.ip_address(addr) != ipaddress.ip_address(kernel[0]):
        return False
    if kernel[1] is None or span is None:
        return True
    return span[0] <= kernel[1] <= span[1]


@dataclass(frozen=True)
class _Candidate:
    verdict: str
    path: str
    final_src: str
    final_dst: str
    out_interface: str | None
    counters: dict[str, int]


def _candidates(trace: Trace) -> list[_Candidate]:
    def of(b: Trace | Branch) -> _Candidate:
        verdict = "DROP" if b.verdict.value == "REJECT" else b.verdict.value
        return _Candidate(verdict, b.path.value, b.final_src, b.final_dst, b.out_interface,
                          natlens_counters(b.steps))
    if trace.branches:
        return [of(b) for b in trace.branches]
    return [of(trace)]


_DOUBT = re.compile(r"^([a-z]+):([^#\s]+)#(\d+): ")


def _doubted_rules(trace: Trace) -> frozenset[str]:
    """The rules natlens said it could not decide (``table:chain#N: why`` under
    ``uncertain``), as counter keys."""
    return frozenset(f"{m[1]}|{m[2]}|{m[3]}" for u in trace.uncertain
                     if (m := _DOUBT.match(u)) is not None)


def _differences(mine: _Candidate, kernel: KernelOutcome,
                 doubted: frozenset[str] = frozenset()) -> list[str]:
    diff: list[str] = []
    if mine.verdict != kernel.verdict:
        diff.append("verdict")
    if kernel.path is not None and mine.path != kernel.path:
        diff.append("path")
    if kernel.verdict == "ACCEPT":
        if not _same_endpoint(mine.final_src, kernel.final_src):
            diff.append("final_src")
        if not _same_endpoint(mine.final_dst, kernel.final_dst):
            diff.append("final_dst")
        if mine.out_interface != kernel.out_interface:
            diff.append("out_interface")
    if mine.counters != dict(kernel.counters):
        # natlens merges doubts that lead to the same outcome into one answer and names the
        # doubted rules under ``uncertain``: a counter that differs only there is one of the
        # outcomes natlens allowed for
        keys = {k for k in {*mine.counters, *kernel.counters}
                if mine.counters.get(k) != kernel.counters.get(k)}
        if not keys <= doubted:
            diff.append("rules")
    return diff


@dataclass(frozen=True)
class Agreement:
    """The comparison of one probe: ``differences`` is empty when natlens agrees; ``branched``
    is True when natlens gave several outcomes (or a random port range) and the kernel's was
    one of them."""

    differences: tuple[str, ...]
    branched: bool
    kernel: KernelOutcome
    natlens: tuple[str, ...] = field(default=())

    @property
    def agrees(self) -> bool:
        """No difference."""
        return not self.differences

    def explain(self) -> str:
        """Kernel and natlens side by side."""
        lines = [f"  kernel : {self.kernel.summary()}"]
        lines.extend(f"  natlens: {n}" for n in self.natlens)
        verdict = "AGREE" if self.agrees else "DISAGREE on " + ", ".join(self.differences)
        lines.append(f"  => {verdict}")
        return "\n".join(lines)


def compare(trace: Trace, packet: Mapping[str, Any], observed: Mapping[str, Any],
            ignore: frozenset[str] = frozenset()) -> Agreement:
    """Whether ``trace`` (natlens) agrees with the kernel's ``observed`` answer to ``packet``;
    ``ignore``: differences that do not count (``final_src``... when the input shows only some
    tables: a rule of a table not shown may have rewritten the packet)."""
    kernel = kernel_outcome(packet, observed)
    cands = _candidates(trace)
    doubted = _doubted_rules(trace)
    diffs = [[d for d in _differences(c, kernel, doubted) if d not in ignore] for c in cands]
    best = min(range(len(cands)), key=lambda i: len(diffs[i]))
    described = tuple(
        f"verdict={c.verdict} path={c.path} final_src={c.final_src} final_dst={c.final_dst} "
        f"out={c.out_interface} rules={dict(sorted(c.counters.items()))}" for c in cands)
    ranged = any("-" in c.final_src.rpartition(":")[2] or "-" in c.final_dst.rpartition(":")[2]
                 for c in cands)
    doubted_here = cands[best].counters != dict(kernel.counters) and not diffs[best]
    return Agreement(tuple(diffs[best]), len(cands) > 1 or ranged or doubted_here, kernel,
                     described)
