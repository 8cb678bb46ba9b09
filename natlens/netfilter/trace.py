"""The result of a simulation: the packet's path through the hooks, rule by rule.

``Trace.to_dict`` is the ``natlens trace --format json`` object of DESIGN.md; ``kernel_lines``
renders the steps as the kernel's TRACE target logs them (``ipt_do_table`` → ``trace_packet``:
``TABLE:CHAIN:rule:N`` for a matched rule, ``TABLE:CHAIN:return:N`` at the end of a user chain,
``TABLE:CHAIN:policy:N`` for a built-in chain's policy, N counting the chain's rules from 1 with
the implicit tail entry last).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from natlens.netfilter.packet import Packet

__all__ = ["Branch", "Path", "Step", "StepKind", "Trace", "Verdict"]


class Verdict(str, Enum):
    """What finally happens to the packet."""

    ACCEPT = "ACCEPT"
    DROP = "DROP"
    REJECT = "REJECT"


class Path(str, Enum):
    """Where the packet goes: to a local socket, through the host, or out from a local process."""

    LOCAL = "local"
    FORWARD = "forward"
    OUTPUT = "output"


class StepKind(str, Enum):
    """A matched rule, the implicit end of a user chain, a policy, or a note (routing, skips)."""

    RULE = "rule"
    RETURN = "return"
    POLICY = "policy"
    NOTE = "note"


@dataclass(frozen=True, slots=True)
class Step:
    """One thing that happened to the packet.

    ``rule`` is the 1-based position of the matched rule in its chain (None for policies,
    implicit returns and notes); ``position`` is the kernel's rule number (for a policy or
    return the chain's rule count + 1). ``where`` is ``file:line`` of the rule when known.
    """

    hook: str
    table: str | None
    chain: str | None
    rule: int | None
    target: str
    text: str
    detail: str = ""
    kind: StepKind = StepKind.RULE
    position: int | None = None
    where: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"hook","table","chain","rule","target","text"}``."""
        return {"hook": self.hook, "table": self.table, "chain": self.chain,
                "rule": self.rule, "target": self.target, "text": self.text}

    def kernel_line(self) -> str | None:
        """``nat:PREROUTING:rule:1``, ``nat:DOCKER:return:3``, ``filter:FORWARD:policy:DROP``;
        None for a note. Rules and returns are numbered as the TRACE target logs them;
        policies name their verdict, as ``xtables-monitor --trace`` prints them."""
        if self.kind is StepKind.NOTE:
            return None
        if self.kind is StepKind.POLICY:
            return f"{self.table}:{self.chain}:policy:{self.target}"
        number = self.rule if self.kind is StepKind.RULE else self.position
        return f"{self.table}:{self.chain}:{self.kind.value}:{number}"

    def __str__(self) -> str:
        if self.kind is StepKind.NOTE:
            head = f"{self.hook:<11} {self.text}"
        else:
            where = f"{self.table}:{self.chain}"
            if self.kind is StepKind.RULE:
                source = f" ({self.where})" if self.where else ""
                head = f"{self.hook:<11} {where}#{self.rule}{source}  {self.text}"
            elif self.kind is StepKind.RETURN:
                head = f"{self.hook:<11} {where}  end of chain, return"
            else:
                head = f"{self.hook:<11} {where}  policy {self.target}"
        return f"{head}\n{'':<11}   -> {self.detail}" if self.detail else head


def _steps_text(steps: tuple[Step, ...], indent: str = "") -> list[str]:
    width = len(str(len(steps)))
    lines: list[str] = []
    for n, step in enumerate(steps, 1):
        first, *rest = str(step).split("\n")
        lines.append(f"{indent}{n:>{width}}. {first}")
        lines.extend(f"{indent}{'':>{width}}  {r}" for r in rest)
    return lines


@dataclass(frozen=True, slots=True)
class Branch:
    """One possible outcome when a match is left to chance (statistic) or doubt (uncertain).

    ``probability`` multiplies the statistic probabilities along this path; uncertain matches do
    not change it and are named in ``assumed`` instead.
    """

    probability: float
    verdict: Verdict
    path: Path
    final_dst: str
    final_src: str
    out_interface: str | None
    steps: tuple[Step, ...]
    assumed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form of one branch."""
        return {
            "probability": round(self.probability, 10),
            "verdict": self.verdict.value,
            "path": self.path.value,
            "final_dst": self.final_dst,
            "final_src": self.final_src,
            "out_interface": self.out_interface,
            "steps": [s.to_dict() for s in self.steps if s.kind is not StepKind.NOTE],
            "assumed": list(self.assumed),
        }

    def summary(self) -> str:
        """``p=0.5 ACCEPT forward 10.0.0.1:80 via eth1``."""
        via = f" via {self.out_interface}" if self.out_interface else ""
        return (f"p={self.probability:.4g} {self.verdict.value} {self.path.value} "
                f"{self.final_src} -> {self.final_dst}{via}")


@dataclass(frozen=True, slots=True)
class Trace:
    """A packet's way through the host; ``branches`` lists every outcome when there are several
    (the top-level fields then describe the first one)."""

    packet: Packet
    verdict: Verdict
    path: Path
    final_dst: str
    final_src: str
    out_interface: str | None
    steps: tuple[Step, ...]
    branches: tuple[Branch, ...] = ()
    uncertain: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()

    @property
    def final_dsts(self) -> tuple[str, ...]:
        """Every distinct final destination over all branches (just one without branches)."""
        if not self.branches:
            return (self.final_dst,)
        seen: dict[str, None] = {}
        for b in self.branches:
            seen.setdefault(b.final_dst, None)
        return tuple(seen)

    def to_dict(self) -> dict[str, Any]:
        """The ``natlens trace --format json`` object (DESIGN.md)."""
        return {
            "packet": self.packet.to_dict(),
            "verdict": self.verdict.value,
            "path": self.path.value,
            "final_dst": self.final_dst,
            "final_src": self.final_src,
            "out_interface": self.out_interface,
            "steps": [s.to_dict() for s in self.steps if s.kind is not StepKind.NOTE],
            "branches": [b.to_dict() for b in self.branches],
            "uncertain": list(self.uncertain),
            "assumptions": list(self.assumptions),
        }

    def kernel_lines(self) -> tuple[str, ...]:
        """The steps as the kernel's TRACE target would log them (``nat:PREROUTING:rule:1``)."""
        return tuple(line for s in self.steps if (line := s.kernel_line()) is not None)

    def __str__(self) -> str:
        via = f" via {self.out_interface}" if self.out_interface else ""
        lines = [f"packet: {self.packet!r}"]
        lines.extend(_steps_text(self.steps))
        lines.append(f"=> {self.verdict.value} ({self.path.value}) {self.final_src} -> "
                     f"{self.final_dst}{via}")
        if self.branches:
            lines.append(f"branches ({len(self.branches)}):")
            for n, b in enumerate(self.branches, 1):
                assumed = f"  [assumed: {'; '.join(b.assumed)}]" if b.assumed else ""
                lines.append(f"  {n}. {b.summary()}{assumed}")
        lines.extend(f"uncertain: {u}" for u in self.uncertain)
        lines.extend(f"assumption: {a}" for a in self.assumptions)
        return "\n".join(lines)
